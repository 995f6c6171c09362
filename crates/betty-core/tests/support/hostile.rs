//! The hostile-files kit every binary's integration tests share (included with `#[path]`):
//! a scratch project holding a copy of the bundled registry, the three link attacks on it,
//! FIFOs, hostile text, and a runner with a hang guard that fails the test on a panic (exit 101)
//! or on a command that does not finish (a generous guard, not a time limit on the work).
#![allow(dead_code, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Killed after this long: a command that waits on a FIFO never finishes by itself.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Japanese text, emoji, mixed CR/LF, ANSI escapes, DEL, backspace, a lone combining mark, a right-to-left override, and
/// multi-byte characters placed where byte-index cuts (7, 64, 80, 128, 200 bytes) fall.
pub const HOSTILE: &[&str] = &[
    "データ変換",
    "🚀🔥.スキル",
    "line1\r\nline2\rline3\nline4",
    "名前\r\n😀\u{1b}[31mred\u{1b}]8;;http://x\u{7}",
    "Beare日本語のトークン🔑🔑🔑🔑",
    "a\u{7f}\u{8}b\u{301}\u{202e}",
    "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé",
    "data.transform😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
];

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `bin` in `cwd` with a clean environment; fails the test on exit 101 or a hang.
pub fn run(bin: &str, cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    run_env(bin, cwd, args, stdin, &[])
}

/// As [`run`], with extra environment variables.
pub fn run_env(
    bin: &str,
    cwd: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &Path)],
) -> Out {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("BETTY_REGISTRY")
        .env_remove("BETTY_HOME")
        .env_remove("RUST_LOG")
        .env("BETTY_USER", "tester@example.com")
        .env("NO_COLOR", "1")
        .env("GIT_CEILING_DIRECTORIES", std::env::temp_dir())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the binary runs");
    {
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            let _ = pipe.write_all(bytes);
        }
    }
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{bin} {}` hung (killed after {HANG_GUARD:?})",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let result = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(
        result.code, 101,
        "`{bin} {:?}` panicked: {}",
        args, result.stderr
    );
    assert!(
        (0..=3).contains(&result.code),
        "`{bin} {:?}` exited {}: {}",
        args,
        result.code,
        result.stderr
    );
    result
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".lock") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A scratch project: `<tmp>/project/registry` (a copy of `bundled`) and `<tmp>/outside`,
/// where the attacks point.
pub struct Project {
    pub tmp: tempfile::TempDir,
}

impl Project {
    pub fn new(bundled: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(Path::new(bundled), &tmp.path().join("project/registry"));
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        Project { tmp }
    }
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("project")
    }
    pub fn registry(&self) -> PathBuf {
        self.dir().join("registry")
    }
    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }
}

/// Every file under `dir` with its bytes (links recorded as their target, not followed).
pub fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let ft = e.file_type().unwrap();
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(p, format!("-> {}", target.display()).into_bytes());
            } else if ft.is_file() {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The three ways a registry file is made to point out of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `telemetry/events.jsonl` is a link to a file outside.
    Events,
    /// `audit_log.json` is a link to a file outside.
    Audit,
    /// `telemetry/` is a link to a folder outside (holding an `events.jsonl`).
    TelemetryDir,
}

pub const LINKS: [Link; 3] = [Link::Events, Link::Audit, Link::TelemetryDir];

impl Link {
    /// Sets the attack up; returns the path of the registry element that is a link.
    pub fn apply(self, p: &Project) -> PathBuf {
        let reg = p.registry();
        let out = p.outside();
        match self {
            Link::Events => {
                std::fs::write(out.join("victim.txt"), "precious, not an event log\n").unwrap();
                let link = reg.join("telemetry/events.jsonl");
                let _ = std::fs::remove_file(&link);
                std::fs::create_dir_all(reg.join("telemetry")).unwrap();
                std::os::unix::fs::symlink(out.join("victim.txt"), &link).unwrap();
                link
            }
            Link::Audit => {
                let link = reg.join("audit_log.json");
                let old = std::fs::read(&link).unwrap_or_else(|_| b"[\n]\n".to_vec());
                std::fs::write(out.join("audit_log.json"), old).unwrap();
                std::fs::remove_file(&link).ok();
                std::os::unix::fs::symlink(out.join("audit_log.json"), &link).unwrap();
                link
            }
            Link::TelemetryDir => {
                let link = reg.join("telemetry");
                let _ = std::fs::remove_dir_all(&link);
                std::fs::create_dir_all(out.join("telemetry")).unwrap();
                std::fs::write(out.join("telemetry/events.jsonl"), "").unwrap();
                std::os::unix::fs::symlink(out.join("telemetry"), &link).unwrap();
                link
            }
        }
    }
}

/// Runs `args` against a registry under each attack `command` gives a command for: exit 2,
/// the message names the link, and nothing outside the registry changed.
pub fn assert_no_write_through_links(
    bin: &str,
    bundled: &str,
    command: impl Fn(Link) -> Option<Vec<String>>,
) {
    for link in LINKS {
        let Some(args) = command(link) else { continue };
        let p = Project::new(bundled);
        let at = link.apply(&p);
        let before = files(&p.outside());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(bin, &p.dir(), &args, None);
        assert_eq!(
            out.code, 2,
            "{link:?}: `{bin} {args:?}` must refuse: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&*at.to_string_lossy()) && out.stderr.contains("symbolic link"),
            "{link:?}: the message must name `{}` as a link: {}",
            at.display(),
            out.stderr
        );
        assert_eq!(
            files(&p.outside()),
            before,
            "{link:?}: `{bin} {args:?}` wrote outside the registry"
        );
    }
}

/// Makes a FIFO (nothing ever writes to it: reading it would wait forever).
pub fn mkfifo(path: &Path) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// `run` on an input that is a FIFO: exit 2, naming it, without waiting on it.
pub fn assert_fifo_refused(bin: &str, cwd: &Path, args: &[&str], fifo: &Path) {
    let out = run(bin, cwd, args, None);
    assert_eq!(out.code, 2, "`{bin} {args:?}`: {}", out.stderr);
    let name = fifo.file_name().unwrap().to_string_lossy();
    assert!(
        out.stderr.contains(&*name) && out.stderr.contains("FIFO"),
        "`{bin} {args:?}` must name the FIFO `{name}`: {}",
        out.stderr
    );
}
