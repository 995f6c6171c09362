//! Helpers shared by the integration tests: run the real binary in a scratch folder, make
//! git repositories, write registries.
#![allow(dead_code, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_registry-diff");

pub fn upstream() -> Option<PathBuf> {
    betty_testkit::upstream()
}

/// The binary, run in `dir`, isolated from the caller's environment.
pub fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("BETTY_REGISTRY")
        .env_remove("BETTY_HOME")
        .env_remove("RUST_LOG")
        .env("BETTY_USER", "tester@example.com")
        .env("NO_COLOR", "1")
        // Scratch folders are not inside some other repository, even when TMPDIR is.
        .env("GIT_CEILING_DIRECTORIES", std::env::temp_dir())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    c
}

/// Runs with no registry at all (not even one found by walking up from a scratch folder).
pub fn run_without_registry(dir: &Path, args: &[&str]) -> Output {
    cmd(dir)
        .env("BETTY_REGISTRY", dir.join("no-registry-here"))
        .args(args)
        .output()
        .expect("run registry-diff")
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir).args(args).output().expect("run registry-diff")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Runs git in `dir` with no global or system configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_env(dir, args, &[])
}

pub fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git repository with a `registry/` folder and a local identity.
pub fn git_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.email", "dev@example.com"]);
    git(dir, &["config", "user.name", "Dev"]);
    git(dir, &["config", "commit.gpgsign", "false"]);
    std::fs::create_dir_all(dir.join("registry")).unwrap();
}

pub fn commit_registry(dir: &Path, bytes: &[u8], message: &str, date: Option<&str>) {
    std::fs::write(dir.join("registry/skills.json"), bytes).unwrap();
    git(dir, &["add", "registry/skills.json"]);
    let env: Vec<(&str, &str)> = date
        .map(|d| vec![("GIT_COMMITTER_DATE", d), ("GIT_AUTHOR_DATE", d)])
        .unwrap_or_default();
    git_env(dir, &["commit", "-q", "-m", message], &env);
}

/// A registry in upstream's shape, as upstream writes it (indent 2, no trailing newline).
pub fn registry(skills: Value) -> Vec<u8> {
    let v = json!({
        "registry_version": "1.0.0",
        "generated_at": "2025-10-23T00:00:00.000000+00:00",
        "skills": skills,
    });
    betty_core::pyjson::to_string(&v, betty_core::pyjson::Style::REGISTRY).into_bytes()
}

/// Validates against a schema in `schemas/`, with every schema there resolvable by `$id`.
pub fn validate(schema_file: &str, instance: &Value) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"));
    let mut reg = jsonschema::Registry::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".schema.json") {
            let s: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            reg = reg
                .add(format!("https://betty.dev/schemas/{name}"), s)
                .unwrap();
        }
    }
    let reg = reg.prepare().unwrap();
    let schema: Value =
        serde_json::from_slice(&std::fs::read(dir.join(schema_file)).unwrap()).unwrap();
    let v = jsonschema::options()
        .with_registry(&reg)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = v
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path().as_str()))
        .collect();
    assert!(errors.is_empty(), "{schema_file}: {errors:?}");
}

/// A comparison's text without its `From:`/`To:` lines (which say each side's version, time
/// and author): the seed's lines.
pub fn body(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with("From: ") || l.starts_with("To: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// [`body`] without the `  (by AUTHOR)` history adds to each change: the changes alone.
pub fn changes_only(text: &str) -> String {
    body(text)
        .lines()
        .map(|l| match l.rfind("  (by ") {
            Some(i) if l.ends_with(')') => format!("{}\n", &l[..i]),
            _ => format!("{l}\n"),
        })
        .collect()
}
