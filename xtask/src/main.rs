//! Project automation, in Rust rather than shell: `cargo xtask <task>`.
//!
//! - `ci`: what CI runs: formatting check, clippy with `-D warnings`, every test (nextest when
//!   installed), including the schema and hygiene tests and the bad-input catalogue, then the
//!   crash torture at CI size (`torture --quick`).
//! - `torture`: `kill -9` of every writer at random instants, checking the registry after each
//!   kill (`xtask/src/torture.rs`; TORTURE.md has a full-size run).
//! - `bench`: release build, then each benchmark side by side with its baseline in the same
//!   invocation; writes `BENCHMARKS.md` with the command that produced it.
//! - `demo`: runs the README's main job on the bundled registry, then walks through a signed
//!   approval with throw-away keys in a temporary copy (`xtask/src/demo.rs`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_approval;
mod demo;
mod generate;
#[cfg(test)]
mod tidy;
mod torture;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some("demo") => demo::run(),
        Some("pytest") => python_tests(&root()),
        Some("torture") => torture::run(&root(), &args[1..]),
        Some("sync-registry") => sync_registry(),
        Some("dist") => dist(),
        // Internal: generate a time-ordered events file (`gen-events PATH BYTES`).
        Some("gen-events") => gen_events(&args[1..]),
        // Internal: the in-process audit benchmark, run from the release build by `bench`.
        Some("bench-audit") => bench::audit_in_process(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  ci      fmt check, clippy -D warnings, all tests (what .ci/run runs)\n  bench   benchmarks against baselines; writes BENCHMARKS.md\n  pytest  the Python package's tests (integrations/python) against the debug binaries (part of ci)\n  demo    the governance check of the bundled registry, then a signed approval walked through\n  torture kill -9 every writer at random instants; check the registry after each (--quick, --iterations N, --writer NAME, --seed N, --report FILE)\n  dist    release binaries, shell completions and man pages in target/dist\n  sync-registry   register every skills/*/skill.yaml in registry/skills.json"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn step(name: &str, mut cmd: Command) -> Result<()> {
    eprintln!("==> {name}");
    let started = std::time::Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{name}`"))?;
    eprintln!("    {name}: {:.1}s", started.elapsed().as_secs_f64());
    if !status.success() {
        bail!("`{name}` failed ({status})");
    }
    Ok(())
}

fn ci() -> Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    step("cargo fmt --check", fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    step("cargo clippy -D warnings", clippy)?;
    let has_nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut test = cargo();
    if has_nextest {
        test.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        step("cargo nextest run", test)?;
        let mut doc = cargo();
        doc.args(["test", "--workspace", "--doc"]);
        step("cargo test --doc", doc)?;
    } else {
        test.args(["test", "--workspace", "--no-fail-fast"]);
        step("cargo test", test)?;
    }
    python_tests(&root())?;
    // Crash torture at CI size (15 kills per writer, dev binaries the tests already built).
    eprintln!("==> cargo xtask torture --quick");
    torture::run(&root(), &["--quick".to_string(), "--no-build".to_string()])?;
    Ok(())
}

/// The Python package's pytest (integrations/python/tests) against the real debug binaries:
/// the package is installed (not imported from its source folder) into a virtual environment
/// under `target/pyvenv` that sees the system's site packages (pytest, and upstream Betty's
/// PyYAML, pydantic and packaging, which `.ci/run` installs). With `BETTY_REQUIRE_ALL=1` a
/// missing prerequisite fails the tests; it never skips them.
fn python_tests(root: &Path) -> Result<()> {
    let mut build = cargo();
    build.args(["build", "--workspace", "--bins"]);
    step("cargo build --bins (for pytest)", build)?;
    let venv = root.join("target/pyvenv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let mut make = Command::new("python3");
        make.args(["-m", "venv", "--system-site-packages"])
            .arg(&venv);
        step("python3 -m venv target/pyvenv", make)?;
    }
    // pip builds in the source folder (`build/`, `*.egg-info`): build from a copy under target/.
    let src = root.join("target/pysrc");
    if src.exists() {
        std::fs::remove_dir_all(&src)
            .with_context(|| format!("cannot remove {}", src.display()))?;
    }
    let mut copy = Command::new("cp");
    copy.arg("-r")
        .arg(root.join("integrations/python"))
        .arg(&src);
    step("copy integrations/python to target/pysrc", copy)?;
    let mut install = Command::new(&python);
    install
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
        ])
        .arg(&src);
    step("pip install integrations/python", install)?;
    let mut pytest = Command::new(&python);
    pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("integrations/python/tests"))
        .env("BETTY_BIN_DIR", root.join("target/debug"))
        .current_dir(root);
    step("pytest integrations/python", pytest)
}

/// The project's own skills are registered Betty skills: puts each `skills/*/skill.yaml` into
/// `registry/skills.json` (only when it changed, so `updated_at` moves only on real changes).
fn sync_registry() -> Result<()> {
    use betty_core::manifest::{Kind, Manifest};
    use betty_core::registry::{Registry, without_registry_keys};
    let root = root();
    let path = root.join("registry/skills.json");
    let mut registry = Registry::load(&path, Kind::Skill)?;
    let now = betty_core::time::now();
    let mut changed = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("skills"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("skill.yaml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let m = Manifest::read(&dir.join("skill.yaml"), Kind::Skill)?;
        let same = registry
            .get(&m.name)
            .is_some_and(|e| &without_registry_keys(e) == m.value());
        if !same {
            registry.upsert(m.value(), now);
            changed.push(m.name.clone());
        }
    }
    if changed.is_empty() {
        eprintln!("registry/skills.json is up to date");
        return Ok(());
    }
    registry.stamp(now);
    registry.save()?;
    eprintln!("registered: {}", changed.join(", "));
    Ok(())
}

/// Every binary's command line, from the one definition that also parses and prints `--help`.
fn commands() -> Vec<clap::Command> {
    use clap::CommandFactory;
    vec![
        policy_enforce::cli::Cli::command(),
        approval_queue::cli::Cli::command(),
        telemetry_capture::cli::CaptureCli::command(),
        telemetry_capture::cli::QueryCli::command(),
        registry_diff::cli::Cli::command(),
    ]
}

/// Release binaries plus generated shell completions (bash, zsh, fish) and man pages.
fn dist() -> Result<()> {
    let mut build = cargo();
    build.args(["build", "--release", "--workspace", "--bins"]);
    step("cargo build --release", build)?;
    let out = root().join("target/dist");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("bin"))?;
    std::fs::create_dir_all(out.join("man/man1"))?;
    for mut cmd in commands() {
        let name = cmd.get_name().to_string();
        std::fs::copy(
            root().join("target/release").join(&name),
            out.join("bin").join(&name),
        )
        .with_context(|| format!("copying the `{name}` binary"))?;
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let dir = out.join("completions").join(shell.to_string());
            std::fs::create_dir_all(&dir)?;
            clap_complete::generate_to(shell, &mut cmd, &name, &dir)?;
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        std::fs::write(out.join("man/man1").join(format!("{name}.1")), page)?;
        for sub in cmd.get_subcommands() {
            let sub_name = format!("{name}-{}", sub.get_name());
            let mut page = Vec::new();
            clap_mangen::Man::new(sub.clone().name(sub_name.clone())).render(&mut page)?;
            std::fs::write(out.join("man/man1").join(format!("{sub_name}.1")), page)?;
        }
    }
    eprintln!("dist: {}", out.display());
    Ok(())
}

fn gen_events(args: &[String]) -> Result<()> {
    let (Some(path), Some(bytes)) = (args.first(), args.get(1)) else {
        bail!("usage: cargo xtask gen-events PATH BYTES");
    };
    let (n, violated) = generate::events(Path::new(path), bytes.parse()?, jiff::Timestamp::now())?;
    eprintln!("{n} events ({violated} policy.violated) in {path}");
    Ok(())
}
