//! Benchmarks, measured as ratios against a baseline run in the same invocation (jq, grep,
//! Python's YAML loader, the previous build), so a noisy machine moves both sides alike.
//! Results go to `BENCHMARKS.md` together with the command that produced them.

#![allow(dead_code)] // timing helpers serve suites added with each binary

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One timed command.
pub struct Timing {
    pub median: Duration,
    pub min: Duration,
    pub runs: usize,
}

/// Runs `cmd` (through `sh -c`) `runs` times after one warm-up; returns median and min.
pub fn time_shell(cwd: &Path, cmd: &str, runs: usize) -> Result<Timing> {
    let run_once = || -> Result<Duration> {
        let start = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot run `{cmd}`"))?;
        let elapsed = start.elapsed();
        // Exit 1 means "findings" for our tools and grep; only 2+ is a failure to run.
        if status.code().is_none_or(|c| c > 1) {
            bail!("`{cmd}` failed: {status}");
        }
        Ok(elapsed)
    };
    run_once()?;
    let mut times: Vec<Duration> = (0..runs).map(|_| run_once()).collect::<Result<_>>()?;
    times.sort();
    Ok(Timing {
        median: times[times.len() / 2],
        min: times[0],
        runs,
    })
}

/// Peak resident memory of one run of `cmd`, in KiB, read from `/usr/bin/time -v` when
/// installed, else from the shell's child rusage via `/proc` is not portable: returns None.
pub fn peak_kib(cwd: &Path, cmd: &str) -> Option<u64> {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
}

/// A row of the results table.
pub struct Row {
    pub name: String,
    pub ours: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    pub met: Option<bool>,
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut build = crate::cargo();
    build.args(["build", "--release", "--workspace", "--bins"]);
    crate::step("cargo build --release", build)?;
    let bin = root.join("target/release");
    let work = std::env::temp_dir().join(format!("betty-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let ctx = Ctx {
        root: root.to_path_buf(),
        bin,
        work: work.clone(),
        quick,
    };
    for (name, f) in SUITES {
        eprintln!("==> bench {name}");
        match f(&ctx, &mut rows) {
            Ok(()) => {}
            Err(e) => notes.push(format!("- `{name}` did not run: {e:#}")),
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let mut md = String::new();
    let cmd = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Produced by `{cmd}` on {} ({} cores). Every row runs our command and its baseline in the same invocation; ratios, not absolute times, are the result. Times are whole-process wall clock, median of several runs after a warm-up.\n",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )?;
    writeln!(md, "| benchmark | ours | baseline | ratio | target | met |")?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for r in &rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.name, r.ours, r.baseline, r.ratio, r.target, met
        )?;
    }
    if !notes.is_empty() {
        writeln!(md, "\n## Not run\n")?;
        for n in &notes {
            writeln!(md, "{n}")?;
        }
    }
    std::fs::write(root.join("BENCHMARKS.md"), &md)?;
    println!("{md}");
    Ok(())
}

pub struct Ctx {
    pub root: PathBuf,
    pub bin: PathBuf,
    pub work: PathBuf,
    pub quick: bool,
}

impl Ctx {
    pub fn runs(&self) -> usize {
        if self.quick { 3 } else { 10 }
    }
    pub fn upstream(&self) -> Option<PathBuf> {
        let p = self.root.join("../shared/upstream-betty");
        p.is_dir().then_some(p)
    }
}

type Suite = fn(&Ctx, &mut Vec<Row>) -> Result<()>;

const SUITES: &[(&str, Suite)] = &[("audit append", audit_append)];

/// Appending to the audit trail costs the same at one entry and at a million (O(1) append):
/// in-process, so only the append itself is measured.
fn audit_append(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<()> {
    use betty_core::audit::{AuditLog, AuditRecord};
    let who = betty_core::identity::Identity {
        user: "bench@example.com".into(),
        session_id: "bench".into(),
        ip_address: "127.0.0.1".into(),
    };
    let record = AuditRecord {
        operation: "bench.append".into(),
        skill: Some("data.transform".into()),
        outcome: "success".into(),
        ..Default::default()
    };
    let big_n: u64 = if ctx.quick { 100_000 } else { 1_000_000 };
    let small = AuditLog::new(&ctx.work.join("audit-small.json"));
    small.append(&record, &who)?;
    let big = AuditLog::new(&ctx.work.join("audit-big.json"));
    write_chain(&big.path, big_n)?;
    let appends = 200;
    let time = |log: &AuditLog| -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..appends {
            log.append(&record, &who)?;
        }
        Ok(start.elapsed() / appends)
    };
    let (t_small, t_big) = (time(&small)?, time(&big)?);
    let ratio = t_big.as_secs_f64() / t_small.as_secs_f64();
    rows.push(Row {
        name: format!("audit append at {big_n} entries vs at 1 (per append, fsync included)"),
        ours: ms(t_big),
        baseline: ms(t_small),
        ratio: format!("{ratio:.2}x"),
        target: "same cost (within 1.5x)".into(),
        met: Some(ratio < 1.5),
    });
    let start = Instant::now();
    let report = big.verify(None)?;
    let took = start.elapsed();
    rows.push(Row {
        name: format!("audit verify of {} entries", report.entries),
        ours: ms(took),
        baseline: "-".into(),
        ratio: format!(
            "{:.0} entries/ms",
            report.entries as f64 / took.as_secs_f64() / 1000.0
        ),
        target: "verifies".into(),
        met: Some(report.ok()),
    });
    Ok(())
}

/// Writes a valid hash chain of `n` entries quickly (no lock, no fsync per entry).
fn write_chain(path: &Path, n: u64) -> Result<()> {
    use std::io::Write;
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    w.write_all(b"[\n")?;
    let mut prev = betty_core::audit::GENESIS.to_string();
    for seq in 0..n {
        let mut e = serde_json::json!({
            "timestamp": "2026-01-01T00:00:00.000000Z",
            "operation": "policy.enforce",
            "skill": format!("skill.n{seq}"),
            "user": "bench@example.com",
            "ip_address": "127.0.0.1",
            "outcome": "passed",
            "policy_checks": [{"policy": "skill-naming-convention", "result": "pass"}],
            "session_id": "bench",
            "seq": seq,
            "prev_hash": prev,
        });
        let hash = betty_core::audit::entry_hash(&e);
        e["hash"] = hash.clone().into();
        if seq > 0 {
            w.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut w, &e)?;
        prev = hash;
    }
    w.write_all(b"\n]\n")?;
    w.flush()?;
    Ok(())
}
