//! `cargo xtask torture`: crash torture. Each writer (a command that changes the registry) is
//! started again and again and killed with SIGKILL (`Child::kill`) at a random instant, drawn
//! from a range calibrated by timing uninterrupted runs first. After every kill the registry
//! must still be whole:
//!
//! - every JSON file parses (`audit_log.json` as an array); every JSON Lines file parses line
//!   by line, where only a torn *final* line is tolerated (readers report and skip it, README);
//! - `telemetry-query audit verify --expect-head <head before the run>` passes: the chain is
//!   intact and nothing was cut from its end;
//! - state and audit agree: every approval request and decision and every history version has
//!   an audit entry naming it, or is covered by an intent entry no commit follows (an operation
//!   that did not finish), which `audit verify` must then report, never hide;
//! - per writer: a batch capture landed all of its events or none, and retrying it adds no
//!   duplicates; a rollback left the live registry equal to one of the two versions; `metrics`
//!   and `alerts deliver` run cleanly after the crash.
//!
//! The binaries are the dev build (`cargo build --bins`, shared with the tests): debug binaries
//! are slower, which widens the window in which a kill lands mid-write. Any check that fails
//! fails the run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Events in one batch capture.
const BATCH: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    PolicyEnforce,
    CaptureSingle,
    CaptureBatch,
    RegistryRecord,
    RegistryRollback,
    ApprovalRequest,
    ApprovalDecision,
    Metrics,
    AlertState,
}

const WRITERS: [Writer; 9] = [
    Writer::PolicyEnforce,
    Writer::CaptureSingle,
    Writer::CaptureBatch,
    Writer::RegistryRecord,
    Writer::RegistryRollback,
    Writer::ApprovalRequest,
    Writer::ApprovalDecision,
    Writer::Metrics,
    Writer::AlertState,
];

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::PolicyEnforce => "policy-enforce",
            Writer::CaptureSingle => "capture-single",
            Writer::CaptureBatch => "capture-batch",
            Writer::RegistryRecord => "registry-record",
            Writer::RegistryRollback => "registry-rollback",
            Writer::ApprovalRequest => "approval-request",
            Writer::ApprovalDecision => "approval-decision",
            Writer::Metrics => "metrics",
            Writer::AlertState => "alert-state",
        }
    }

    fn command_line(self) -> &'static str {
        match self {
            Writer::PolicyEnforce => "policy-enforce --action audit",
            Writer::CaptureSingle => "telemetry-capture --event-type skill.created ...",
            Writer::CaptureBatch => "telemetry-capture - (200 events, JSON Lines)",
            Writer::RegistryRecord => "registry-diff record (skills.json toggled between two)",
            Writer::RegistryRollback => "registry-diff rollback (to the other of two versions)",
            Writer::ApprovalRequest => "approval-queue request --operation deploy ...",
            Writer::ApprovalDecision => "approval-queue approve (a fresh request each time)",
            Writer::Metrics => "telemetry-query metrics [--rebuild] (2,000+ events)",
            Writer::AlertState => "telemetry-capture alerts deliver --force (hook down)",
        }
    }
}

/// A small xorshift generator: the run prints its seed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, max)`.
    fn below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

struct Options {
    iterations: usize,
    writers: Vec<Writer>,
    seed: u64,
    report: Option<PathBuf>,
    build: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        iterations: 200,
        writers: Vec::new(),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1),
        report: None,
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("`{flag}` needs a value"))
        };
        match a.as_str() {
            "--quick" => o.iterations = 15,
            // The binaries in the target folder as they are (`ci` has just built them for the tests).
            "--no-build" => o.build = false,
            "--iterations" => o.iterations = value(a)?.parse().context("--iterations N")?,
            "--seed" => o.seed = value(a)?.parse::<u64>().context("--seed N")? | 1,
            "--report" => o.report = Some(PathBuf::from(value(a)?)),
            "--writer" => {
                let name = value(a)?;
                let w = WRITERS
                    .into_iter()
                    .find(|w| w.name() == name)
                    .with_context(|| {
                        format!(
                            "unknown writer `{name}`; writers: {}",
                            WRITERS.map(Writer::name).join(", ")
                        )
                    })?;
                o.writers.push(w);
            }
            other => bail!(
                "unknown argument `{other}`\nusage: cargo xtask torture [--quick | --iterations N] [--writer NAME]... [--seed N] [--report FILE] [--no-build]"
            ),
        }
    }
    if o.writers.is_empty() {
        o.writers = WRITERS.to_vec();
    }
    Ok(o)
}

/// What happened to one writer.
#[derive(Default)]
struct Tally {
    runs: usize,
    kills: usize,
    finished_first: usize,
    torn_final_lines: usize,
    unfinished_reported: usize,
    temp_files_left: usize,
    calibrated: Duration,
    failures: Vec<String>,
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let mut build = crate::cargo();
    build.args([
        "build",
        "--bins",
        "-p",
        "policy-enforce",
        "-p",
        "telemetry-capture",
        "-p",
        "registry-diff",
        "-p",
        "approval-queue",
    ]);
    if o.build {
        crate::step("cargo build --bins (dev)", build)?;
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bins = target.join("debug");
    let scratch = std::env::temp_dir().join(format!("betty-torture-{}", std::process::id()));
    let mut rng = Rng(o.seed);
    eprintln!(
        "torture: {} kills per writer, seed {} (replay with --seed {})",
        o.iterations, o.seed, o.seed
    );
    let started = Instant::now();
    let mut results = Vec::new();
    for &w in &o.writers {
        let t = Instant::now();
        let tally = torture(
            w,
            &bins,
            root,
            &scratch.join(w.name()),
            o.iterations,
            &mut rng,
        )
        .with_context(|| format!("writer {}", w.name()))?;
        eprintln!(
            "  {:<18} {:>4} kills / {:>4} runs, {} failures ({:.1}s)",
            w.name(),
            tally.kills,
            tally.runs,
            tally.failures.len(),
            t.elapsed().as_secs_f64()
        );
        for f in tally.failures.iter().take(3) {
            eprintln!("      FAIL {f}");
        }
        results.push((w, tally));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let elapsed = started.elapsed();
    if let Some(path) = &o.report {
        std::fs::write(path, report(&o, &results, elapsed))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("torture: report written to {}", path.display());
    }
    let failed: usize = results.iter().map(|(_, t)| t.failures.len()).sum();
    if failed > 0 {
        bail!("{failed} check(s) failed after a kill (seed {})", o.seed);
    }
    eprintln!(
        "torture: every check passed ({:.0}s)",
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn report(o: &Options, results: &[(Writer, Tally)], elapsed: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| writer | command | calibrated run | kills | runs (finished before the kill) | torn final lines | unfinished operations reported | temp files left | failures |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (w, t) in results {
        let _ = writeln!(
            s,
            "| {} | `{}` | {:.0} ms | {} | {} ({}) | {} | {} | {} | {} |",
            w.name(),
            w.command_line(),
            t.calibrated.as_secs_f64() * 1000.0,
            t.kills,
            t.runs,
            t.finished_first,
            t.torn_final_lines,
            t.unfinished_reported,
            t.temp_files_left,
            t.failures.len()
        );
    }
    let _ = writeln!(
        s,
        "\n{} kills per writer wanted, seed {}, {:.0} s in all.",
        o.iterations,
        o.seed,
        elapsed.as_secs_f64()
    );
    for (w, t) in results {
        if !t.failures.is_empty() {
            let _ = writeln!(s, "\n{} failures (first 5):\n", w.name());
            for line in t.failures.iter().take(5) {
                let _ = writeln!(s, "- {}", line.replace('\n', " "));
            }
        }
    }
    s
}

/// One scratch project: `ws/registry` (a copy of the bundled one) and a skill to request for.
struct Project {
    ws: PathBuf,
    bins: PathBuf,
}

const SKILL: &str = "name: report.build\nversion: 0.1.0\ndescription: Build a weekly report from the data folder.\nstatus: draft\npermissions:\n  - filesystem:read\nentrypoints:\n  - command: /report/build\n    handler: report.py\n    runtime: python\n    permissions: [filesystem:read]\n";

fn registry_with(skill: &str) -> String {
    format!(
        "{{\"registry_version\": \"1.0.0\", \"generated_at\": \"2025-10-23T00:00:00.000000+00:00\", \"skills\": [{{\"name\": \"{skill}\", \"version\": \"1.0.0\", \"status\": \"active\"}}]}}"
    )
}

impl Project {
    fn new(root: &Path, dir: &Path, bins: &Path) -> Result<Project> {
        let _ = std::fs::remove_dir_all(dir);
        let ws = dir.join("ws");
        copy_dir(&root.join("registry"), &ws.join("registry"))?;
        std::fs::create_dir_all(ws.join("skills/report.build"))?;
        std::fs::create_dir_all(ws.join("home"))?;
        std::fs::write(ws.join("skills/report.build/skill.yaml"), SKILL)?;
        Ok(Project {
            ws,
            bins: bins.to_path_buf(),
        })
    }

    fn reg(&self) -> PathBuf {
        self.ws.join("registry")
    }

    fn cmd(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(self.bins.join(bin));
        c.current_dir(&self.ws)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.ws.join("home"))
            .env("BETTY_USER", "tester@example.com")
            .env("BETTY_REGISTRY", self.reg())
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CEILING_DIRECTORIES", &self.ws)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// Runs to the end; returns the exit code and the output.
    fn run(&self, bin: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<(i32, String)> {
        let mut c = self.cmd(bin, args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().with_context(|| format!("starting {bin}"))?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(bytes);
        }
        let out = child.wait_with_output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.code().unwrap_or(-1), text))
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A batch of events whose ids depend only on `batch`, so a retry sends the same ones.
fn batch(batch: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..BATCH {
        let _ = writeln!(
            s,
            "{{\"event_type\":\"skill.validated\",\"outcome\":\"success\",\"skill_name\":\"data.transform\",\"event_id\":\"01900000-0000-7000-8000-{:012x}\",\"duration_ms\":{i},\"context\":{{\"batch\":{batch},\"i\":{i}}}}}",
            batch * 100_000 + i
        );
    }
    s.into_bytes()
}

/// Sets a project up for a writer.
fn setup(w: Writer, p: &Project) -> Result<()> {
    let reg = p.reg();
    match w {
        Writer::RegistryRecord | Writer::RegistryRollback => {
            for skill in ["a.one", "b.two"] {
                std::fs::write(reg.join("skills.json"), registry_with(skill))?;
                expect(
                    p.run("registry-diff", &["record"], None)?,
                    0,
                    "registry-diff record",
                )?;
            }
        }
        Writer::Metrics => {
            for b in 0..10 {
                expect(
                    p.run("telemetry-capture", &["-"], Some(&batch(1_000_000 + b)))?,
                    0,
                    "telemetry-capture -",
                )?;
            }
        }
        Writer::AlertState => {
            for _ in 0..50 {
                expect(
                    p.run(
                        "telemetry-capture",
                        &["--event-type", "policy.violated", "--outcome", "blocked"],
                        None,
                    )?,
                    0,
                    "telemetry-capture",
                )?;
            }
            // A port nobody listens on: every delivery fails and is kept for retry.
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            std::fs::write(
                reg.join("telemetry/alerts.yaml"),
                format!(
                    "alerts:\n  - name: down\n    event_type: 'policy.*'\n    webhook: http://127.0.0.1:{port}/hook\n"
                ),
            )?;
        }
        Writer::ApprovalRequest | Writer::ApprovalDecision => make_keys(p)?,
        _ => {}
    }
    Ok(())
}

/// The people of the approval writers, each with a throw-away key listed in the project's
/// `allowed_signers`: approvals are signed, so a writer without keys only tortures refusals.
const PEOPLE: [(&str, &str); 2] = [
    ("tester", "tester@example.com"),
    ("appsec", "appsec@example.com"),
];

fn make_keys(p: &Project) -> Result<()> {
    let signers = throwaway_keys(&p.ws.join("keys"), &PEOPLE)?;
    std::fs::write(p.reg().join("approvals/allowed_signers"), signers)?;
    Ok(())
}

/// Makes an Ed25519 key without a passphrase for each `(file, principal)` in `dir` with
/// `ssh-keygen`, and returns the `allowed_signers` text trusting each for approvals.
pub fn throwaway_keys(dir: &Path, people: &[(&str, &str)]) -> Result<String> {
    std::fs::create_dir_all(dir)?;
    let mut signers = String::new();
    for (file, principal) in people {
        let path = dir.join(file);
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .status()
            .context("cannot run ssh-keygen (install openssh-client)")?
            .success();
        if !ok {
            bail!("ssh-keygen could not make a key in {}", dir.display());
        }
        let public = std::fs::read_to_string(path.with_extension("pub"))?;
        let mut parts = public.split_whitespace();
        let (kind, blob) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        signers.push_str(&format!(
            "{principal} namespaces=\"betty-approval\" {kind} {blob}\n"
        ));
    }
    Ok(signers)
}

impl Project {
    fn key(&self, who: &str) -> String {
        self.ws.join("keys").join(who).display().to_string()
    }
}

fn expect((code, out): (i32, String), want: i32, what: &str) -> Result<()> {
    if code != want {
        bail!("`{what}` exited {code}, expected {want}: {out}");
    }
    Ok(())
}

/// The command for iteration `i` (after any preparation it needs, run uninterrupted), and its
/// stdin.
fn prepare(w: Writer, p: &Project, i: usize) -> Result<(&'static str, Vec<String>, Vec<u8>)> {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Ok(match w {
        Writer::PolicyEnforce => ("policy-enforce", args(&["--action", "audit"]), Vec::new()),
        Writer::CaptureSingle => (
            "telemetry-capture",
            args(&[
                "--event-type",
                "skill.created",
                "--skill-name",
                "data.transform",
                "--context",
                &format!("i={i}"),
            ]),
            Vec::new(),
        ),
        Writer::CaptureBatch => ("telemetry-capture", args(&["-"]), batch(i)),
        Writer::RegistryRecord => {
            let skill = if i.is_multiple_of(2) {
                "a.one"
            } else {
                "b.two"
            };
            let reg = p.reg();
            let tmp = reg.join(".torture-skills.json");
            std::fs::write(&tmp, registry_with(skill))?;
            std::fs::rename(&tmp, reg.join("skills.json"))?;
            ("registry-diff", args(&["record"]), Vec::new())
        }
        Writer::RegistryRollback => {
            let live = std::fs::read_to_string(p.reg().join("skills.json"))?;
            let (a, b) = first_two_versions(&p.reg())?;
            let target = if live.contains("b.two") { a } else { b };
            ("registry-diff", args(&["rollback", &target]), Vec::new())
        }
        Writer::ApprovalRequest => (
            "approval-queue",
            args(&[
                "request",
                "--operation",
                "deploy",
                "--manifest",
                "skills/report.build/skill.yaml",
                "--approvers",
                "security",
                "--reason",
                &format!("torture {i}"),
                "--key",
                &p.key("tester"),
            ]),
            Vec::new(),
        ),
        Writer::ApprovalDecision => {
            let (code, out) = p.run(
                "approval-queue",
                &[
                    "request",
                    "--operation",
                    "deploy",
                    "--arg",
                    &format!("i={i}"),
                    "--approvers",
                    "security",
                    "--reason",
                    "torture",
                    "--key",
                    &p.key("tester"),
                ],
                None,
            )?;
            expect((code, out.clone()), 3, "approval-queue request")?;
            let id = out
                .split_whitespace()
                .find(|w| w.starts_with("apr-"))
                .context("no request id in the output of `approval-queue request`")?
                .to_string();
            (
                "approval-queue",
                vec![
                    "approve".into(),
                    id,
                    "--user".into(),
                    "appsec@example.com".into(),
                    "--key".into(),
                    p.key("appsec"),
                ],
                Vec::new(),
            )
        }
        Writer::Metrics => {
            if i.is_multiple_of(2) {
                expect(
                    p.run(
                        "telemetry-capture",
                        &["--event-type", "skill.created", "--duration-ms", "5"],
                        None,
                    )?,
                    0,
                    "telemetry-capture",
                )?;
                ("telemetry-query", args(&["metrics"]), Vec::new())
            } else {
                (
                    "telemetry-query",
                    args(&["metrics", "--rebuild"]),
                    Vec::new(),
                )
            }
        }
        Writer::AlertState => (
            "telemetry-capture",
            args(&["alerts", "deliver", "--force"]),
            Vec::new(),
        ),
    })
}

fn first_two_versions(reg: &Path) -> Result<(String, String)> {
    let mut v: Vec<String> = std::fs::read_dir(reg.join("history"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    match (v.first(), v.get(1)) {
        (Some(a), Some(b)) => Ok((a.clone(), b.clone())),
        _ => bail!("history has fewer than two versions"),
    }
}

fn torture(
    w: Writer,
    bins: &Path,
    root: &Path,
    dir: &Path,
    kills: usize,
    rng: &mut Rng,
) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut p = Project::new(root, dir, bins)?;
    setup(w, &p)?;
    // Calibrate: the median of three uninterrupted runs.
    let mut times = Vec::new();
    let mut normal_exit = 0;
    for i in 0..3 {
        let (bin, args, stdin) = prepare(w, &p, 1_000 + i)?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = Instant::now();
        let (code, out) = p.run(bin, &args, Some(&stdin))?;
        times.push(t.elapsed());
        if code != 0 && code != 3 {
            bail!(
                "an uninterrupted `{bin} {}` exited {code}: {out}",
                args.join(" ")
            );
        }
        normal_exit = code;
    }
    times.sort();
    tally.calibrated = times[1];
    let mut state = Check::default();
    state.absorb(&p)?;
    let mut i = 0;
    while tally.kills < kills && tally.runs < kills * 5 {
        i += 1;
        tally.runs += 1;
        let (bin, args, stdin) = prepare(w, &p, i)?;
        let mut c = p.cmd(bin, &args.iter().map(String::as_str).collect::<Vec<_>>());
        c.stdin(Stdio::piped());
        let mut child = c.spawn()?;
        let mut pipe = child.stdin.take();
        let feeder = std::thread::spawn(move || {
            if let Some(pipe) = pipe.as_mut() {
                let _ = pipe.write_all(&stdin);
            }
        });
        // Most of a run is start-up; the range ends a little before a typical run does, so
        // most runs are killed, at instants spread over the whole of their life.
        std::thread::sleep(rng.below(tally.calibrated.mul_f64(0.9)));
        if child.try_wait()?.is_none() {
            child.kill()?;
            tally.kills += 1;
        } else {
            tally.finished_first += 1;
        }
        child.wait()?;
        let _ = feeder.join();
        let problems = state.check(w, &p, i, &mut tally)?;
        if !problems.is_empty() {
            tally
                .failures
                .extend(problems.into_iter().map(|m| format!("run {i}: {m}")));
            // Keep the broken registry for a look, then start again from a fresh one, so one
            // broken file does not fail every run after.
            let kept = std::env::temp_dir().join(format!("betty-torture-failed-{}-{i}", w.name()));
            let _ = std::fs::remove_dir_all(&kept);
            if copy_dir(&p.reg(), &kept).is_ok() {
                tally.failures.push(format!(
                    "run {i}: the registry is kept in {}",
                    kept.display()
                ));
            }
            p = Project::new(root, dir, bins)?;
            setup(w, &p)?;
            state = Check::default();
            state.absorb(&p)?;
        }
    }
    // Recovery: an uninterrupted run after all those kills still works.
    let (bin, args, stdin) = prepare(w, &p, i + 1)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = p.run(bin, &args, Some(&stdin))?;
    if code != normal_exit {
        tally.failures.push(format!(
            "after the kills, an uninterrupted `{bin} {}` exited {code} (first runs: {normal_exit}): {}",
            args.join(" "),
            out.trim()
        ));
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(tally)
}

/// What the checks remember between runs: the audit head before the run.
#[derive(Default)]
struct Check {
    head: Option<String>,
    /// Temp files and unfinished operations already counted (each stays in every later run).
    seen: std::collections::BTreeSet<String>,
}

impl Check {
    /// Takes the registry as it is as the starting point (after setup or a reset).
    fn absorb(&mut self, p: &Project) -> Result<()> {
        let mut scratch = Tally::default();
        let entries = audit_entries(&p.reg(), &mut scratch.failures);
        if !scratch.failures.is_empty() {
            bail!(
                "the registry is broken before any kill: {:?}",
                scratch.failures
            );
        }
        self.head = head(&entries);
        Ok(())
    }

    fn check(
        &mut self,
        w: Writer,
        p: &Project,
        i: usize,
        tally: &mut Tally,
    ) -> Result<Vec<String>> {
        let reg = p.reg();
        let mut problems = Vec::new();
        // Every file parses.
        let mut files = Vec::new();
        walk(&reg, &mut files)?;
        for f in &files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel = f.strip_prefix(&reg).unwrap_or(f).display().to_string();
            if name.starts_with('.') && name.contains(".tmp.") {
                if self.seen.insert(rel) {
                    tally.temp_files_left += 1;
                }
                continue;
            }
            if name.ends_with(".jsonl") {
                let bytes = std::fs::read(f)?;
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let n = lines.len();
                for (k, line) in lines.iter().enumerate() {
                    if line.is_empty() {
                        continue;
                    }
                    if serde_json::from_slice::<Value>(line).is_err() {
                        // The last piece: a final line without its newline.
                        if k + 1 == n {
                            tally.torn_final_lines += 1;
                        } else {
                            problems.push(format!("{rel}: line {} is not JSON", k + 1));
                        }
                    }
                }
            } else if name.ends_with(".json")
                && let Err(e) = serde_json::from_slice::<Value>(&std::fs::read(f)?)
            {
                problems.push(format!("{rel} does not parse: {e}"));
            }
        }
        // The chain verifies, against the head kept before the run.
        let mut args = vec!["audit", "verify"];
        if let Some(h) = &self.head {
            args.extend(["--expect-head", h]);
        }
        let (code, verify_out) = p.run("telemetry-query", &args, None)?;
        if code != 0 {
            problems.push(format!(
                "`telemetry-query {}` exited {code}: {}",
                args.join(" "),
                verify_out.trim()
            ));
        }
        let entries = audit_entries(&reg, &mut problems);
        // State and audit agree.
        let mut unfinished = Vec::new();
        for e in &entries {
            if e["phase"] == "intent" {
                let id = &e["operation_id"];
                if !entries
                    .iter()
                    .any(|c| c["phase"] == "commit" && &c["operation_id"] == id)
                {
                    unfinished.push(e.clone());
                }
            }
        }
        for u in &unfinished {
            let id = u["operation_id"].as_str().unwrap_or_default();
            if verify_out.contains(id)
                || verify_out.contains("did not finish")
                || verify_out.contains("unfinished")
            {
                if self.seen.insert(id.to_string()) {
                    tally.unfinished_reported += 1;
                }
            } else {
                problems.push(format!(
                    "the unfinished operation {id} is not reported by `audit verify`"
                ));
            }
        }
        let texts: Vec<(String, String, String)> = entries
            .iter()
            .map(|e| {
                (
                    e["operation"].as_str().unwrap_or_default().to_string(),
                    e["user"].as_str().unwrap_or_default().to_string(),
                    e.to_string(),
                )
            })
            .collect();
        let covered = |prefix: &str, needle: &str, user: Option<&str>| {
            texts.iter().any(|(op, who, text)| {
                op.starts_with(prefix) && text.contains(needle) && user.is_none_or(|u| u == who)
            }) || unfinished.iter().any(|u| {
                u["operation"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(prefix)
            })
        };
        let mut unrecorded = Vec::new();
        for f in files
            .iter()
            .filter(|f| f.parent() == Some(&reg.join("approvals")))
        {
            let Some(id) = f
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if !id.starts_with("apr-") {
                continue;
            }
            let Ok(req) = serde_json::from_slice::<Value>(&std::fs::read(f)?) else {
                continue;
            };
            if !covered("approval.", id, None) {
                unrecorded.push(format!("approval request {id} has no audit entry"));
            }
            for d in req["decisions"].as_array().into_iter().flatten() {
                let by = d["by"].as_str().unwrap_or_default();
                let n = texts
                    .iter()
                    .filter(|(op, who, text)| {
                        op.starts_with("approval.") && who == by && text.contains(id)
                    })
                    .count();
                if n == 0 && !covered("approval.", id, Some(by)) {
                    unrecorded.push(format!("the decision of {by} on {id} has no audit entry"));
                }
            }
        }
        for f in files
            .iter()
            .filter(|f| f.parent() == Some(&reg.join("history")))
        {
            let Some(v) = f
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if v.starts_with('.') {
                continue;
            }
            if !covered("registry.", &format!("\"{v}\""), None) {
                unrecorded.push(format!("history version {v} has no audit entry"));
            }
        }
        problems.extend(unrecorded);
        // Per writer.
        match w {
            Writer::CaptureBatch => {
                let n = count_batch(&reg, i)?;
                if n != 0 && n != BATCH {
                    problems.push(format!(
                        "batch {i}: {n} of {BATCH} events landed (all or nothing)"
                    ));
                }
                let retry = p.run("telemetry-capture", &["-"], Some(&batch(i)))?;
                let after = count_batch(&reg, i)?;
                if retry.0 != 0 {
                    problems.push(format!(
                        "the retry of batch {i} exited {}: {}",
                        retry.0,
                        retry.1.trim()
                    ));
                } else if after != BATCH {
                    problems.push(format!(
                        "after a retry batch {i} has {after} events, not {BATCH} (a retry must add no duplicates)"
                    ));
                }
            }
            Writer::RegistryRollback => {
                let live = std::fs::read_to_string(reg.join("skills.json"))?;
                if !(live.contains("a.one") ^ live.contains("b.two")) {
                    problems.push("skills.json is neither of the two versions".to_string());
                }
            }
            Writer::Metrics => {
                let (code, out) = p.run("telemetry-query", &["metrics"], None)?;
                if code != 0 {
                    problems.push(format!(
                        "`telemetry-query metrics` after the kill exited {code}: {}",
                        out.trim()
                    ));
                }
            }
            _ => {}
        }
        let entries = audit_entries(&reg, &mut Vec::new());
        self.head = head(&entries);
        Ok(problems)
    }
}

fn count_batch(reg: &Path, b: usize) -> Result<usize> {
    let needle = format!("\"batch\":{b},");
    let mut n = 0;
    for entry in std::fs::read_dir(reg.join("telemetry"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            n += std::fs::read_to_string(&path)?
                .lines()
                .filter(|l| l.contains(&needle))
                .count();
        }
    }
    Ok(n)
}

fn audit_entries(reg: &Path, problems: &mut Vec<String>) -> Vec<Value> {
    match std::fs::read(reg.join("audit_log.json")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            problems.push(format!("audit_log.json: {e}"));
            Vec::new()
        }
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(entries)) => entries,
            Ok(_) => {
                problems.push("audit_log.json is not an array".to_string());
                Vec::new()
            }
            Err(e) => {
                problems.push(format!("audit_log.json does not parse: {e}"));
                Vec::new()
            }
        },
    }
}

fn head(entries: &[Value]) -> Option<String> {
    let last = entries.iter().rev().find(|e| e.get("hash").is_some())?;
    Some(format!("{}:{}", last["seq"], last["hash"].as_str()?))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}
