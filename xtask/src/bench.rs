//! Benchmarks, measured as ratios against a baseline run in the same invocation (jq, grep,
//! Python's YAML loader, the previous build), so a noisy machine moves both sides alike.
//! Results go to `BENCHMARKS.md` together with the command that produced them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One timed command.
pub struct Timing {
    pub median: Duration,
}

/// Runs `cmd` (through `sh -c`, for pipelines) `runs` times after one warm-up; returns the
/// median.
pub fn time_shell(cwd: &Path, cmd: &str, runs: usize) -> Result<Timing> {
    time_command(cwd, "sh", &["-c", cmd], runs)
}

/// Runs a program directly (no shell start-up on either side of a ratio) `runs` times after
/// one warm-up; returns the median. `words` is split on spaces; quote nothing.
pub fn time_argv(cwd: &Path, words: &str, runs: usize) -> Result<Timing> {
    let mut it = words.split_whitespace();
    let program = it.next().unwrap_or_default().to_string();
    let args: Vec<&str> = it.collect();
    time_command(cwd, &program, &args, runs)
}

fn time_command(cwd: &Path, program: &str, args: &[&str], runs: usize) -> Result<Timing> {
    let run_once = command_runner(cwd, program, args);
    run_once()?;
    let mut times: Vec<Duration> = (0..runs).map(|_| run_once()).collect::<Result<_>>()?;
    times.sort();
    Ok(Timing {
        median: times[times.len() / 2],
    })
}

/// Times two commands run by turns (ours, baseline, ours, ...), so a change in the machine's
/// load while the benchmark runs weighs on both sides alike instead of on whichever ran then.
fn time_pair(
    cwd: &Path,
    ours: &str,
    base_program: &str,
    base_args: &[&str],
    runs: usize,
) -> Result<(Timing, Timing)> {
    let mut it = ours.split_whitespace();
    let program = it.next().unwrap_or_default().to_string();
    let args: Vec<&str> = it.collect();
    let a = command_runner(cwd, &program, &args);
    let b = command_runner(cwd, base_program, base_args);
    a()?;
    b()?;
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ta.push(a()?);
        tb.push(b()?);
    }
    ta.sort();
    tb.sort();
    Ok((
        Timing {
            median: ta[ta.len() / 2],
        },
        Timing {
            median: tb[tb.len() / 2],
        },
    ))
}

/// One timed run of a command, output drained, exit 2+ an error.
fn command_runner<'a>(
    cwd: &'a Path,
    program: &'a str,
    args: &'a [&'a str],
) -> impl Fn() -> Result<Duration> + 'a {
    let cmd = format!("{program} {}", args.join(" "));
    move || -> Result<Duration> {
        let start = Instant::now();
        // Output goes to a pipe we drain, not /dev/null: GNU grep stops at the first match
        // when it sees /dev/null, which would flatter the baseline.
        let status = Command::new(program)
            .args(args)
            .current_dir(cwd)
            // A 1 GB events file must not rotate under the benchmark.
            .env("BETTY_TELEMETRY_ROTATE_BYTES", "0")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{cmd}`"))?
            .status;
        let elapsed = start.elapsed();
        // Exit 1 means "findings" for our tools and grep, 3 "approval pending" (registering
        // policy.enforce, which writes the registry, waits for security): decisions. Only 2
        // and the rest are failures to run.
        if status.code().is_none_or(|c| c > 1 && c != 3) {
            bail!("`{cmd}` failed: {status}");
        }
        Ok(elapsed)
    }
}

/// Peak resident memory of one run of `cmd`, in KiB, read from `/usr/bin/time -v` when
/// installed, else from the shell's child rusage via `/proc` is not portable: returns None.
pub fn peak_kib(cwd: &Path, cmd: &str) -> Option<u64> {
    let out = Command::new("/usr/bin/time")
        .env("BETTY_TELEMETRY_ROTATE_BYTES", "0")
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
    // `--keep` leaves the work folder (generated registries and streams) for profiling.
    let keep = args.iter().any(|a| a == "--keep");
    // `cargo xtask bench [--quick] [--keep] [SUITE...]`: only the suites whose name contains a word given.
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
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
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        eprintln!("==> bench {name}");
        // Flush what earlier suites wrote (a 400 MB audit log, a 1 GB events file): their
        // writeback would otherwise stall this suite's fsyncs and charge it for them.
        let _ = Command::new("sync").status();
        match f(&ctx, &mut rows) {
            Ok(()) => {}
            Err(e) => notes.push(format!("- `{name}` did not run: {e:#}")),
        }
    }
    if keep {
        eprintln!("bench: the work folder is kept at {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    // A partial run refreshes its own rows and keeps every other row of BENCHMARKS.md.
    let mut kept_note = None;
    if !only.is_empty()
        && let Ok(old) = std::fs::read_to_string(root.join("BENCHMARKS.md"))
    {
        let mut merged: Vec<Row> = old.lines().filter_map(parse_row).collect();
        for r in rows.drain(..) {
            match merged.iter_mut().find(|m| m.name == r.name) {
                Some(m) => *m = r,
                None => merged.push(r),
            }
        }
        rows = merged;
        kept_note = Some(format!(
            "Rows of the suites matching {} were refreshed by `cargo xtask bench{} {}`; the others are from the last full run.\n",
            only.iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if quick { " --quick" } else { "" },
            only.iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let mut md = String::new();
    let cmd = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Produced by `{cmd}` on {} ({} cores). Every row runs our command and its baseline in the same invocation; ratios, not absolute times, are the result. Times are whole-process wall clock, median of several runs after a warm-up; the policy-enforce rows run ours and the baseline by turns, so load on the machine weighs on both alike.\n",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )?;
    if let Some(note) = &kept_note {
        writeln!(md, "{note}")?;
    }
    writeln!(
        md,
        "Crash-safety figures (`kill -9` at random instants, 200 kills per writer) are in [TORTURE.md](TORTURE.md), made by `cargo xtask torture --report FILE`.\n"
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

/// A row of a BENCHMARKS.md table, as [`run`] writes it.
fn parse_row(line: &str) -> Option<Row> {
    let cells: Vec<&str> = line
        .strip_prefix("| ")?
        .strip_suffix(" |")?
        .split(" | ")
        .collect();
    // A baseline may itself hold ` | ` (a shell pipeline): it is every cell between.
    let n = cells.len();
    if n < 6 || cells[0] == "benchmark" {
        return None;
    }
    Some(Row {
        name: cells[0].to_string(),
        ours: cells[1].to_string(),
        baseline: cells[2..n - 3].join(" | "),
        ratio: cells[n - 3].to_string(),
        target: cells[n - 2].to_string(),
        met: match cells[n - 1] {
            "yes" => Some(true),
            "**no**" => Some(false),
            _ => None,
        },
    })
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

const SUITES: &[(&str, Suite)] = &[
    ("audit append", audit_append),
    ("policy-enforce", policy_enforce),
    ("telemetry", telemetry),
    ("registry-diff", registry_diff),
    ("approvals", crate::bench_approval::approvals),
];

/// The real Python interpreter (not a pyenv shim, whose shell start-up would flatter us).
fn python() -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys, yaml; print(sys.executable)"])
        .output()
        .context("python3 with PyYAML is the baseline; install it with `pip install pyyaml`")?;
    if !out.status.success() {
        bail!("python3 with PyYAML is the baseline; install it with `pip install pyyaml`");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `2.0x faster` / `1.5x slower`: ours against a baseline.
fn ratio_text(ours: Duration, base: Duration) -> String {
    let r = base.as_secs_f64() / ours.as_secs_f64();
    if r >= 1.0 {
        format!("{r:.1}x faster")
    } else {
        format!("{:.1}x slower", 1.0 / r)
    }
}

fn ratio_row(
    name: &str,
    ours: &Timing,
    base: &Timing,
    base_name: &str,
    target: f64,
    at_least: bool,
) -> Row {
    let r = base.median.as_secs_f64() / ours.median.as_secs_f64();
    let (ratio, met) = if at_least {
        (format!("{r:.1}x faster"), r >= target)
    } else {
        let slower = 1.0 / r;
        (
            if r >= 1.0 {
                format!("{r:.1}x faster")
            } else {
                format!("{slower:.1}x slower")
            },
            slower <= target,
        )
    };
    Row {
        name: name.to_string(),
        ours: ms(ours.median),
        baseline: format!("{} ({base_name})", ms(base.median)),
        ratio,
        target: if at_least {
            format!(">= {target}x faster")
        } else {
            format!("within {target}x")
        },
        met: Some(met),
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn policy_enforce(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<()> {
    let py = python()?;
    let pe = ctx.bin.join("policy-enforce");
    let pe = pe.display();
    let runs = ctx.runs();
    // One manifest, whole process, against the bundled policies.
    let one = ctx.work.join("one");
    copy_dir(&ctx.root.join("registry"), &one.join("registry"))?;
    let manifest = ctx.root.join("skills/policy.enforce/skill.yaml");
    let manifest = manifest.display();
    let (ours, floor) = time_pair(
        &one,
        &format!("{pe} --registry registry --action register {manifest}"),
        &py,
        &[
            "-c",
            "import yaml,sys; yaml.safe_load(open(sys.argv[1]))",
            &manifest.to_string(),
        ],
        runs,
    )?;
    rows.push(ratio_row(
        "policy-enforce: one manifest, whole process (audit + event written)",
        &ours,
        &floor,
        "python yaml.safe_load floor",
        10.0,
        true,
    ));
    // All 81 upstream manifests, one process each side.
    if let Some(up) = ctx.upstream() {
        let proj = ctx.work.join("upstream");
        for d in ["skills", "agents", "examples", "registry"] {
            copy_dir(&up.join(d), &proj.join(d))?;
        }
        copy_dir(
            &ctx.root.join("registry/policies"),
            &proj.join("registry/policies"),
        )?;
        std::fs::write(proj.join("registry/audit_log.json"), "[\n]\n")?;
        let load_all = "import yaml,glob; [yaml.safe_load(open(f)) for f in sorted(glob.glob('skills/*/skill.yaml') + glob.glob('agents/*/agent.yaml'))]";
        let (ours, floor) = time_pair(
            &proj,
            &format!("{pe} --registry registry --all"),
            &py,
            &["-c", load_all],
            runs,
        )?;
        rows.push(ratio_row(
            "policy-enforce --all: 81 upstream manifests, one process",
            &ours,
            &floor,
            "python loading the 81 files",
            20.0,
            true,
        ));
    }
    // 10,000 generated manifests against 20 policies.
    let n = if ctx.quick { 2_000 } else { 10_000 };
    let big = ctx.work.join("gen");
    crate::generate::project(&big, &ctx.root.join("registry"), n, 20)?;
    let cmd = format!("{pe} --registry registry --all --format json");
    let t = time_argv(&big, &cmd, if ctx.quick { 1 } else { 3 })?;
    let mem =
        peak_kib(&big, &cmd).map_or("-".into(), |k| format!("{:.1} MiB peak", k as f64 / 1024.0));
    rows.push(Row {
        name: format!("policy-enforce --all: {n} generated manifests x 20 policies (2 cores)"),
        ours: ms(t.median),
        baseline: mem,
        ratio: format!("{:.0} manifests/s", n as f64 / t.median.as_secs_f64()),
        target: "< 1000 ms".into(),
        met: Some(t.median < Duration::from_millis(1000)),
    });
    dependency_chain(ctx, rows)?;
    Ok(())
}

/// `--action audit` over N registered skills in one dependency chain against N independent
/// ones: cycle and dependency checks are linear, so the chain costs about the same.
fn dependency_chain(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<()> {
    let pe = ctx.bin.join("policy-enforce");
    let pe = pe.display();
    let n = if ctx.quick { 5_000 } else { 40_000 };
    let mut dirs = Vec::new();
    for chained in [true, false] {
        let dir = ctx.work.join(if chained { "chain" } else { "independent" });
        copy_dir(
            &ctx.root.join("registry/policies"),
            &dir.join("registry/policies"),
        )?;
        std::fs::write(dir.join("registry/audit_log.json"), "[\n]\n")?;
        let skills: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                let deps: Vec<String> = if chained && i + 1 < n {
                    vec![format!("chain.s{}", i + 1)]
                } else {
                    Vec::new()
                };
                serde_json::json!({
                    "name": format!("chain.s{i}"), "version": "1.0.0",
                    "description": "One link of a long dependency chain.", "status": "active",
                    "dependencies": deps,
                })
            })
            .collect();
        let reg = serde_json::json!({"registry_version": "1.0.0", "generated_at": "2026-01-01T00:00:00Z", "skills": skills});
        std::fs::write(
            dir.join("registry/skills.json"),
            serde_json::to_vec_pretty(&reg)?,
        )?;
        dirs.push(dir);
    }
    // The audit trail grows by one entry a run on each side alike.
    let cmd = format!("{pe} --registry registry --action audit -q");
    let mut words = cmd.split_whitespace();
    let program = words.next().unwrap_or_default().to_string();
    let args: Vec<&str> = words.collect();
    let runs = if ctx.quick { 1 } else { 3 };
    let chain = command_runner(&dirs[0], &program, &args);
    let flat = command_runner(&dirs[1], &program, &args);
    chain()?;
    flat()?;
    let (mut tc, mut tf) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        tc.push(chain()?);
        tf.push(flat()?);
    }
    tc.sort();
    tf.sort();
    let ours = Timing {
        median: tc[tc.len() / 2],
    };
    let base = Timing {
        median: tf[tf.len() / 2],
    };
    rows.push(ratio_row(
        &format!("policy-enforce --action audit: {n} skills in one dependency chain"),
        &ours,
        &base,
        &format!("{n} independent skills"),
        1.5,
        false,
    ));
    Ok(())
}

fn telemetry(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<()> {
    let tq = ctx.bin.join("telemetry-query");
    let tq = tq.display();
    let tc = ctx.bin.join("telemetry-capture");
    let tc = tc.display();
    let bytes: u64 = if ctx.quick { 100 << 20 } else { 1100 << 20 };
    let reg = ctx.work.join("tel/registry");
    std::fs::create_dir_all(reg.join("telemetry"))?;
    std::fs::write(reg.join("audit_log.json"), "[\n]\n")?;
    let file = reg.join("telemetry/events.jsonl");
    let (n, violated) = crate::generate::events(&file, bytes, jiff::Timestamp::now())?;
    let f = file.display();
    let size = std::fs::metadata(&file)?.len();
    eprintln!("    generated {n} events, {:.2} GB", size as f64 / 1e9);
    let runs = if ctx.quick { 3 } else { 5 };
    let ours = time_argv(
        &ctx.work,
        &format!("{tq} --events {f} --event-type policy.violated --count"),
        runs,
    )?;
    // Check the answer, not only the speed.
    let out = Command::new(ctx.bin.join("telemetry-query"))
        .args([
            "--events",
            &file.display().to_string(),
            "--event-type",
            "policy.violated",
            "--count",
        ])
        .output()?;
    let counted: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if counted != violated {
        bail!(
            "telemetry-query counted {counted} policy.violated events, the generator wrote {violated}"
        );
    }
    let jq = time_shell(
        &ctx.work,
        &format!("jq -c 'select(.event_type==\"policy.violated\")' {f} | wc -l"),
        1,
    )?;
    let grep = time_shell(
        &ctx.work,
        &format!("grep -c '\"event_type\":\"policy.violated\"' {f}"),
        runs,
    )?;
    let label = format!("{n} events, {:.2} GB", size as f64 / 1e9);
    rows.push(ratio_row(
        &format!("telemetry-query filtered count ({label})"),
        &ours,
        &jq,
        "jq select | wc -l",
        10.0,
        true,
    ));
    rows.push(ratio_row(
        &format!("telemetry-query filtered count ({label})"),
        &ours,
        &grep,
        "grep -c",
        5.0,
        false,
    ));
    let last = time_argv(
        &ctx.work,
        &format!("{tq} --events {f} --last 1h --count"),
        ctx.runs(),
    )?;
    rows.push(Row {
        name: format!("telemetry-query --last 1h on the time-ordered file ({label})"),
        ours: ms(last.median),
        baseline: "-".into(),
        ratio: "bisection".into(),
        target: "< 20 ms whole process".into(),
        met: Some(last.median < Duration::from_millis(20)),
    });
    for (what, args) in [
        ("--count", "--count"),
        ("stats --by event_type", "stats --by event_type"),
        ("--count-by day", "--count-by day"),
        ("metrics --rebuild", "metrics --rebuild"),
    ] {
        let r = reg.display();
        let mem = peak_kib(&ctx.work, &format!("{tq} --registry {r} {args}"));
        rows.push(Row {
            name: format!("telemetry-query {what}, peak memory ({label})"),
            ours: mem.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "< 64 MiB".into(),
            met: mem.map(|k| k < 64 * 1024),
        });
    }
    // Capturing one event costs the same at 0 and at millions of events.
    let empty = ctx.work.join("tel0/registry");
    std::fs::create_dir_all(empty.join("telemetry"))?;
    std::fs::write(empty.join("audit_log.json"), "[\n]\n")?;
    let cap = |r: &Path| {
        format!(
            "{tc} --registry {} --event-type skill.created --skill-name data.transform --duration-ms 12",
            r.display()
        )
    };
    let at0 = time_argv(&ctx.work, &cap(&empty), ctx.runs())?;
    let at_n = time_argv(&ctx.work, &cap(&reg), ctx.runs())?;
    let r = at_n.median.as_secs_f64() / at0.median.as_secs_f64();
    rows.push(Row {
        name: format!("telemetry-capture one event at {n} events vs at 0"),
        ours: ms(at_n.median),
        baseline: format!("{} (empty file)", ms(at0.median)),
        ratio: format!("{r:.2}x"),
        target: "same (within 1.5x)".into(),
        met: Some(r < 1.5),
    });
    let _ = std::fs::remove_file(&file);
    Ok(())
}

fn registry_diff(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<()> {
    let rd = ctx.bin.join("registry-diff");
    let rd = rd.display();
    let dir = ctx.work.join("diff");
    std::fs::create_dir_all(dir.join("registry"))?;
    std::fs::write(dir.join("registry/audit_log.json"), "[\n]\n")?;
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    crate::generate::registry_pair(&a, &b, 10_000)?;
    // GNU diff on the same files, by turns with ours: it only compares lines, but it tells
    // whether a slow run was the machine's doing.
    let (t, text_diff) = time_pair(
        &dir,
        &format!("{rd} --registry registry --compare a.json b.json"),
        "diff",
        &["a.json", "b.json"],
        ctx.runs(),
    )?;
    rows.push(Row {
        name: "registry-diff --compare: two registries of 10,000 skills, whole process".into(),
        ours: ms(t.median),
        baseline: format!("{} (GNU diff of the text)", ms(text_diff.median)),
        ratio: ratio_text(t.median, text_diff.median),
        target: "< 100 ms".into(),
        met: Some(t.median < Duration::from_millis(100)),
    });
    if let Some(up) = ctx.upstream() {
        let hist = up.join("history/skills.json");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&hist)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        // Walk the 36 versions: compare each with the next, all in one shell invocation.
        let script: Vec<String> = files
            .windows(2)
            .map(|w| {
                format!(
                    "{rd} --registry registry --compare {} {} >/dev/null 2>&1 || true",
                    w[0].display(),
                    w[1].display()
                )
            })
            .collect();
        let t = time_shell(&dir, &script.join("; "), ctx.runs())?;
        rows.push(Row {
            name: format!(
                "registry-diff: walking all {} upstream versions (each with the next)",
                files.len()
            ),
            ours: ms(t.median),
            baseline: "-".into(),
            ratio: format!("{} compares", files.len() - 1),
            target: "< 200 ms".into(),
            met: Some(t.median < Duration::from_millis(200)),
        });
    }
    Ok(())
}

/// Appending to the audit trail costs the same at one entry and at a million (O(1) append).
/// Measured in-process by the release build of xtask (`xtask bench-audit`), so only the append
/// itself is timed, with optimised code.
fn audit_append(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<()> {
    let big_n: u64 = if ctx.quick { 100_000 } else { 1_000_000 };
    let out = Command::new(ctx.bin.join("xtask"))
        .args([
            "bench-audit",
            &ctx.work.display().to_string(),
            &big_n.to_string(),
        ])
        .output()
        .context("running the release xtask")?;
    if !out.status.success() {
        bail!(
            "xtask bench-audit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ns = |k: &str| Duration::from_nanos(v[k].as_u64().unwrap_or(0));
    let (t_small, t_big) = (ns("append_small_ns"), ns("append_big_ns"));
    let ratio = t_big.as_secs_f64() / t_small.as_secs_f64().max(1e-9);
    rows.push(Row {
        name: format!("audit append at {big_n} entries vs at 1 (per append, fdatasync included)"),
        ours: ms(t_big),
        baseline: format!("{} (1 entry)", ms(t_small)),
        ratio: format!("{ratio:.2}x"),
        target: "same cost (within 1.5x)".into(),
        met: Some(ratio < 1.5),
    });
    let took = ns("verify_ns");
    let entries = v["entries"].as_u64().unwrap_or(0);
    rows.push(Row {
        name: format!("audit verify of {entries} entries (streaming)"),
        ours: ms(took),
        baseline: "-".into(),
        ratio: format!(
            "{:.0} entries/ms",
            entries as f64 / took.as_secs_f64().max(1e-9) / 1000.0
        ),
        target: "verifies".into(),
        met: Some(v["ok"].as_bool().unwrap_or(false)),
    });
    Ok(())
}

/// `xtask bench-audit WORK N`: times 200 appends on a 1-entry log and on an N-entry log, and a
/// verify of the big one; prints JSON.
pub fn audit_in_process(args: &[String]) -> Result<()> {
    use betty_core::audit::{AuditLog, AuditRecord};
    let (Some(work), Some(n)) = (args.first(), args.get(1)) else {
        bail!("usage: xtask bench-audit WORK N");
    };
    let work = Path::new(work);
    let big_n: u64 = n.parse()?;
    let who = betty_core::identity::Identity {
        sources: Default::default(),
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
    let small = AuditLog::new(&work.join("audit-small.json"));
    small.append(&record, &who)?;
    let big = AuditLog::new(&work.join("audit-big.json"));
    write_chain(&big.path, big_n)?;
    // Flush the generated file first, so the first timed fdatasync does not pay for it.
    std::fs::File::open(&big.path)?.sync_all()?;
    let appends = 200u32;
    let time = |log: &AuditLog| -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..appends {
            log.append(&record, &who)?;
        }
        Ok(start.elapsed() / appends)
    };
    // Interleave the two sides so machine noise hits both alike.
    let (mut small_t, mut big_t) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..3 {
        small_t += time(&small)?;
        big_t += time(&big)?;
    }
    let start = Instant::now();
    let report = big.verify(None)?;
    let verify = start.elapsed();
    let out = serde_json::json!({
        "append_small_ns": (small_t / 3).as_nanos() as u64,
        "append_big_ns": (big_t / 3).as_nanos() as u64,
        "verify_ns": verify.as_nanos() as u64,
        "entries": report.entries,
        "ok": report.ok(),
    });
    println!("{out}");
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
