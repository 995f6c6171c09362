//! The bad-input catalogue: `cases.yaml` lists hostile or broken inputs for the five binaries,
//! each with the files to place in a scratch copy of the bundled registry (or stdin), the
//! command, the exit code it must give and a fragment of its message. [`run`] runs one case
//! against the real binary and checks, beyond the exit code and the message, that it did not
//! panic (101) and that every file of the scratch workspace (and of the folder outside it that
//! symlinks point into) is byte-identical afterwards: a bad input changes nothing on disk.
//!
//! A case whose correct behaviour is not yet on main carries `pending: "<why>"`: its failure is
//! reported but accepted, and its success is an error ("remove the pending mark"), so each merge
//! shows exactly which cases it fixed.

#![allow(clippy::print_stderr)] // the runner reports on stderr

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The binaries the catalogue covers.
pub const BINARIES: [&str; 5] = [
    "policy-enforce",
    "telemetry-capture",
    "telemetry-query",
    "registry-diff",
    "approval-queue",
];

/// A case gets this long before it counts as a hang (a guard, never a performance limit).
const HANG_GUARD: Duration = Duration::from_secs(10);

/// One row of `cases.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique, short, `binary-topic` style.
    pub id: String,
    /// One of [`BINARIES`].
    pub bin: String,
    /// Arguments; `{ws}` is the scratch workspace, `{outside}` a folder beside it.
    pub args: Vec<String>,
    /// Files to create, replace or remove, relative to the workspace (`registry/...`) or, with
    /// a leading `{outside}/`, in the folder outside it.
    #[serde(default)]
    pub files: BTreeMap<String, Spec>,
    /// Bytes on stdin (none: stdin is empty).
    #[serde(default)]
    pub stdin: Option<Spec>,
    /// Extra environment (`{ws}`/`{outside}` expanded).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The exit code the command must give.
    pub exit: i32,
    /// A fragment the command's stderr or stdout must contain.
    pub message: String,
    /// Why the correct behaviour is not on main yet.
    #[serde(default)]
    pub pending: Option<String>,
}

/// What to put at a path: text, or a generated, special or absent file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Spec {
    Text(String),
    Made(Made),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Made {
    /// Bytes in hex (non-UTF-8 input).
    #[serde(default)]
    pub hex: Option<String>,
    /// `prefix`, then `unit` `times` times, then `suffix` (huge or deep inputs).
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub times: usize,
    #[serde(default)]
    pub suffix: String,
    /// A FIFO (named pipe) nobody writes to.
    #[serde(default)]
    pub fifo: bool,
    /// A folder.
    #[serde(default)]
    pub dir: bool,
    /// A symlink to this target (`{ws}`/`{outside}` expanded).
    #[serde(default)]
    pub symlink: Option<String>,
    /// Remove what the base has there.
    #[serde(default)]
    pub remove: bool,
}

/// Reads `cases.yaml`.
pub fn load(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// How a case ended.
#[derive(Debug)]
pub enum Verdict {
    /// Passed; what it printed (for `BAD_INPUTS_VERBOSE=1`).
    Pass(String),
    /// Everything the case expects, for a case marked pending: remove the mark.
    PendingPassed,
    /// A pending case failed as expected (reported, accepted).
    PendingFailed(String),
    Fail(String),
}

/// Where the five binaries are, and the workspace's bundled registry.
#[derive(Debug)]
pub struct Env {
    pub bin_dir: PathBuf,
    pub bundled_registry: PathBuf,
}

impl Env {
    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// Runs one case in a fresh scratch folder `scratch/<n>` (a number, so that no message
/// fragment can match the case's id in a path).
pub fn run(env: &Env, case: &Case, n: usize, scratch: &Path) -> Verdict {
    match attempt(env, case, &scratch.join(n.to_string())) {
        Ok(_) if case.pending.is_some() => Verdict::PendingPassed,
        Ok(output) => Verdict::Pass(output),
        Err(why) if case.pending.is_some() => Verdict::PendingFailed(why),
        Err(why) => Verdict::Fail(why),
    }
}

fn attempt(env: &Env, case: &Case, root: &Path) -> Result<String, String> {
    if !BINARIES.contains(&case.bin.as_str()) {
        return Err(format!("unknown binary `{}`", case.bin));
    }
    let ws = root.join("ws");
    let outside = root.join("outside");
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
    copy_dir(&env.bundled_registry, &ws.join("registry")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(ws.join("home")).map_err(|e| e.to_string())?;
    std::fs::write(outside.join("target.txt"), "outside the registry\n")
        .map_err(|e| e.to_string())?;
    let expand = |s: &str| {
        s.replace("{ws}", &ws.to_string_lossy())
            .replace("{outside}", &outside.to_string_lossy())
    };
    for (path, spec) in &case.files {
        let path = PathBuf::from(expand(path));
        let path = if path.is_absolute() {
            path
        } else {
            ws.join(path)
        };
        place(&path, spec, &expand).map_err(|e| format!("placing {}: {e}", path.display()))?;
    }
    let stdin = match &case.stdin {
        None => Vec::new(),
        Some(Spec::Text(t)) => expand(t).into_bytes(),
        Some(Spec::Made(m)) => bytes(m)?,
    };
    let before = (snapshot(&ws)?, snapshot(&outside)?);

    let mut cmd = Command::new(env.bin(&case.bin));
    cmd.current_dir(&ws)
        .args(case.args.iter().map(|a| expand(a)))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", ws.join("home"))
        .env("BETTY_USER", "tester@example.com")
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CEILING_DIRECTORIES", root)
        .envs(case.env.iter().map(|(k, v)| (k, expand(v))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (code, stdout, stderr) = run_guarded(cmd, stdin)?;

    let after = (snapshot(&ws)?, snapshot(&outside)?);
    let mut problems = Vec::new();
    if code == Some(101) {
        problems.push("it panicked (exit 101)".to_string());
    }
    if code != Some(case.exit) {
        problems.push(format!("exit {code:?}, expected {}", case.exit));
    }
    let fragment = expand(&case.message);
    if !stderr.contains(&fragment) && !stdout.contains(&fragment) {
        problems.push(format!("no `{fragment}` in its output"));
    }
    problems.extend(changes(&before.0, &after.0, "workspace"));
    problems.extend(changes(&before.1, &after.1, "outside"));
    if problems.is_empty() {
        let _ = std::fs::remove_dir_all(root);
        return Ok(format!(
            "exit {}: {}{}",
            case.exit,
            clip(&stderr),
            clip(&stdout)
        ));
    }
    Err(format!(
        "{}\n      stderr: {}\n      stdout: {}",
        problems.join("; "),
        clip(&stderr),
        clip(&stdout)
    ))
}

fn clip(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s.chars().take(600).collect();
    if out.len() < s.len() {
        out.push_str(" […]");
    }
    out.replace('\n', "\n              ")
}

/// Runs `cmd` with `stdin`, collecting its output; kills it at the hang guard.
fn run_guarded(mut cmd: Command, stdin: Vec<u8>) -> Result<(Option<i32>, String, String), String> {
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let mut input = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(input) = input.as_mut() {
            // A command that does not read its stdin closes the pipe: not an error here.
            let _ = input.write_all(&stdin);
        }
    });
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(out.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = reader(err.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if started.elapsed() > HANG_GUARD => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it hung: killed after {}s", HANG_GUARD.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    Ok((status.code(), stdout, stderr))
}

fn bytes(m: &Made) -> Result<Vec<u8>, String> {
    if let Some(hex) = &m.hex {
        let hex: String = hex.split_whitespace().collect();
        return (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad hex `{hex}`"))
            })
            .collect();
    }
    let mut v = Vec::with_capacity(m.prefix.len() + m.unit.len() * m.times + m.suffix.len());
    v.extend_from_slice(m.prefix.as_bytes());
    for _ in 0..m.times {
        v.extend_from_slice(m.unit.as_bytes());
    }
    v.extend_from_slice(m.suffix.as_bytes());
    Ok(v)
}

fn place(path: &Path, spec: &Spec, expand: &dyn Fn(&str) -> String) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        }
        .map_err(|e| e.to_string())?;
    }
    match spec {
        Spec::Text(t) => std::fs::write(path, expand(t)).map_err(|e| e.to_string()),
        Spec::Made(m) if m.remove => Ok(()),
        Spec::Made(m) if m.dir => std::fs::create_dir(path).map_err(|e| e.to_string()),
        Spec::Made(m) if m.fifo => {
            let status = Command::new("mkfifo")
                .arg(path)
                .status()
                .map_err(|e| format!("mkfifo: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("mkfifo: {status}"))
            }
        }
        Spec::Made(m) => match &m.symlink {
            Some(target) => {
                std::os::unix::fs::symlink(expand(target), path).map_err(|e| e.to_string())
            }
            None => std::fs::write(path, bytes(m)?).map_err(|e| e.to_string()),
        },
    }
}

/// What a path is, without following symlinks or opening FIFOs.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    File([u8; 32]),
    Dir,
    Symlink(PathBuf),
    Other,
}

fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, Node>, String> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out).map_err(|e| format!("hashing {}: {e}", dir.display()))?;
    Ok(out)
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let rel = path.strip_prefix(base).unwrap_or(&path).to_path_buf();
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            out.insert(rel, Node::Symlink(std::fs::read_link(&path)?));
        } else if kind.is_dir() {
            out.insert(rel, Node::Dir);
            walk(base, &path, out)?;
        } else if kind.is_file() {
            let mut hasher = Sha256::new();
            std::io::copy(&mut std::fs::File::open(&path)?, &mut hasher)?;
            out.insert(rel, Node::File(hasher.finalize().into()));
        } else {
            out.insert(rel, Node::Other);
        }
    }
    Ok(())
}

/// Every difference between two snapshots, except new empty sidecar lock files (`*.lock`):
/// taking a lock before reading is not a change of state.
fn changes(
    before: &BTreeMap<PathBuf, Node>,
    after: &BTreeMap<PathBuf, Node>,
    label: &str,
) -> Vec<String> {
    const EMPTY: [u8; 32] = [
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ];
    let mut out = Vec::new();
    for (path, node) in before {
        match after.get(path) {
            None => out.push(format!("{label} `{}` was removed", path.display())),
            Some(n) if n != node => out.push(format!("{label} `{}` changed", path.display())),
            Some(_) => {}
        }
    }
    for (path, node) in after {
        let lock = path.extension().is_some_and(|e| e == "lock") && *node == Node::File(EMPTY);
        if !before.contains_key(path) && !lock {
            out.push(format!("{label} `{}` was created", path.display()));
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
