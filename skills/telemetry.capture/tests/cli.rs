//! Integration tests: the real `telemetry-capture` and `telemetry-query` binaries on real files
//! in a temporary registry.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const CAPTURE: &str = env!("CARGO_BIN_EXE_telemetry-capture");
const QUERY: &str = env!("CARGO_BIN_EXE_telemetry-query");

struct Reg {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Reg {
    fn new() -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("registry");
        std::fs::create_dir_all(&root).unwrap();
        Reg { _dir: dir, root }
    }

    fn events(&self) -> PathBuf {
        self.root.join("telemetry/events.jsonl")
    }

    fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(bin);
        c.arg("--registry")
            .arg(&self.root)
            .env("BETTY_USER", "ada@example.com")
            .env_remove("BETTY_SESSION_ID")
            .env_remove("BETTY_REGISTRY")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    fn capture(&self, args: &[&str]) -> Output {
        self.cmd(CAPTURE).args(args).output().unwrap()
    }

    fn capture_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(CAPTURE)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn query(&self, args: &[&str]) -> Output {
        self.cmd(QUERY).args(args).output().unwrap()
    }

    fn count(&self, args: &[&str]) -> u64 {
        let mut a = vec!["--count"];
        a.extend_from_slice(args);
        let out = self.query(&a);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).trim().parse().unwrap()
    }

    /// The number of matching events listed oldest first (a count has no order, so this lists).
    fn count_oldest(&self, args: &[&str]) -> u64 {
        let mut a = vec!["--format", "jsonl", "--order", "oldest"];
        a.extend_from_slice(args);
        let out = self.query(&a);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).lines().count() as u64
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.events())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn seed_example_verbatim() {
    let r = Reg::new();
    let out = r.capture(&[
        "--event-type",
        "skill.created",
        "--skill-name",
        "data.transform",
        "--outcome",
        "success",
        "--duration-ms",
        "412",
        "--context",
        "env=staging",
        "--context",
        "retries:=2",
        "--context",
        "api_key=abc",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    r.capture(&["--event-type", "policy.violated", "--outcome", "blocked"]);
    let out = r.query(&["--event-type", "skill.created", "--last", "24h"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("skill.created"), "{stdout}");
    assert!(stdout.contains("data.transform"), "{stdout}");
    assert!(!stdout.contains("policy.violated"), "{stdout}");
    let e: Value = serde_json::from_str(&r.lines()[0]).unwrap();
    assert_eq!(e["context"]["api_key"], "[REDACTED]");
    assert_eq!(e["context"]["retries"], 2);
    assert_eq!(e["context"]["tool"], "telemetry-capture");
    assert_eq!(e["user"], "ada@example.com");
    assert_eq!(e["event_id"].as_str().unwrap().as_bytes()[14], b'7');
}

/// 64 processes x 500 events each (the issue's figure; about 15 s on two cores, as every append
/// is fsynced under the lock). `BETTY_TEST_CONCURRENCY=16x200` runs a smaller version.
fn concurrency() -> (usize, usize) {
    std::env::var("BETTY_TEST_CONCURRENCY")
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((64, 500))
}

#[test]
fn concurrent_writers_lose_nothing() {
    let r = Reg::new();
    let (procs, each) = concurrency();
    let children: Vec<_> = (0..procs)
        .map(|p| {
            let mut child = r
                .cmd(CAPTURE)
                .args(["--stream", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = String::new();
            for i in 0..each {
                input.push_str(&format!(
                    "{{\"event_type\":\"skill.executed\",\"outcome\":\"success\",\"skill_name\":\"w{p}\",\"duration_ms\":{i},\"context\":{{\"p\":{p},\"i\":{i},\"pad\":\"{}\"}}}}\n",
                    "x".repeat(i % 300)
                ));
            }
            let mut stdin = child.stdin.take().unwrap();
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
            (child, writer)
        })
        .collect();
    for (child, writer) in children {
        writer.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }
    let lines = r.lines();
    assert_eq!(lines.len(), procs * each, "lost events");
    let mut seen = std::collections::HashSet::new();
    for l in &lines {
        let v: Value = serde_json::from_str(l).expect("a torn line");
        let key = (
            v["context"]["p"].as_u64().unwrap(),
            v["context"]["i"].as_u64().unwrap(),
        );
        assert!(seen.insert(key), "duplicate {key:?}");
    }
    assert_eq!(r.count(&[]), (procs * each) as u64);
    assert_eq!(r.count(&["--skill", "w0"]), each as u64);
}

#[test]
fn concurrent_processes_each_capturing() {
    let r = Reg::new();
    std::thread::scope(|s| {
        for p in 0..8 {
            let r = &r;
            s.spawn(move || {
                for i in 0..20 {
                    let out = r.capture(&[
                        "--event-type",
                        "skill.created",
                        "--context",
                        &format!("p:={p}"),
                        "--context",
                        &format!("i:={i}"),
                    ]);
                    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
                }
            });
        }
    });
    assert_eq!(r.lines().len(), 160);
    assert_eq!(r.count(&["--event-type", "skill.*"]), 160);
}

#[test]
fn bad_events_are_refused_and_nothing_is_written() {
    let r = Reg::new();
    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (vec!["-"], br#"{"event_type":"skill.created"}"#.to_vec(), "`outcome` is required"),
        (vec!["-"], br#"{"outcome":"success"}"#.to_vec(), "`event_type` is required"),
        (
            vec!["-"],
            br#"{"event_type":"skill.created","outcome":"success","duration_ms":-3}"#.to_vec(),
            "finite, non-negative",
        ),
        (
            vec!["-"],
            b"{\"event_type\":\"skill.created\",\"outcome\":\"success\",\"duration_ms\":NaN}".to_vec(),
            "NaN",
        ),
        (
            vec!["-"],
            br#"{"event_type":"Skill Created","outcome":"success"}"#.to_vec(),
            "domain.action",
        ),
        (
            vec!["-"],
            format!(
                "{{\"event_type\":\"skill.created\",\"outcome\":\"success\",\"context\":{{\"blob\":\"{}\"}}}}",
                "x".repeat(10 * 1024 * 1024)
            )
            .into_bytes(),
            "over the limit",
        ),
        (vec!["-"], b"".to_vec(), "empty"),
    ];
    for (args, input, expect) in cases {
        let out = r.capture_stdin(&args, &input);
        assert_eq!(code(&out), 2, "{expect}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(expect),
            "{expect}: {}",
            text(&out.stderr)
        );
    }
    for args in [
        vec!["--event-type", "skill.created", "--duration-ms", "NaN"],
        vec!["--event-type", "skill.created", "--duration-ms", "-1"],
        vec!["--event-type", "skill.created", "--duration-ms", "soon"],
        vec!["--event-type", "nodots"],
        vec!["--event-type", "skill.created", "--context", "novalue"],
        vec!["--outcome", "success"],
    ] {
        let out = r.capture(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).starts_with("error: "),
            "{}",
            text(&out.stderr)
        );
    }
    // A batch with one bad line writes none of it, and names every bad line.
    let batch = b"{\"event_type\":\"skill.created\",\"outcome\":\"success\"}\n{\"event_type\":\"skill.created\"}\nnot json\n";
    let out = r.capture_stdin(&["-"], batch);
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(err.contains("line 2") && err.contains("line 3"), "{err}");
    assert!(!r.events().exists(), "something was written");
}

#[test]
fn torn_and_garbage_lines_are_skipped_and_reported() {
    let r = Reg::new();
    for _ in 0..3 {
        r.capture(&["--event-type", "skill.created"]);
    }
    let mut lines = r.lines();
    lines.insert(1, "this is not json".into());
    // A 10 MB line (someone else's writer): skipped without being held in memory.
    lines.insert(
        3,
        format!(
            "{{\"event_type\":\"skill.created\",\"context\":{{\"blob\":\"{}\"}}}}",
            "x".repeat(10 << 20)
        ),
    );
    let body = format!("{}\n{{\"event_type\":\"skill.crea", lines.join("\n"));
    std::fs::write(r.events(), body).unwrap();
    let out = r.query(&["--count"]);
    assert_eq!(code(&out), 0);
    assert_eq!(text(&out.stdout).trim(), "3");
    let err = text(&out.stderr);
    assert!(
        err.contains("events.jsonl:2:") && err.contains("not JSON"),
        "{err}"
    );
    assert!(
        err.contains("events.jsonl:6:") && err.contains("torn last line"),
        "{err}"
    );
    assert!(
        err.contains("events.jsonl:4:") && err.contains("over the limit"),
        "{err}"
    );
    // Oldest first reports the same lines.
    let out = r.query(&["--format", "jsonl", "--order", "oldest"]);
    assert!(
        text(&out.stderr).contains("events.jsonl:2:"),
        "{}",
        text(&out.stderr)
    );
    // A filtered query still reports a line that is not JSON at all.
    let out = r.query(&["--count", "--event-type", "skill.created"]);
    assert_eq!(text(&out.stdout).trim(), "3");
    assert!(text(&out.stderr).contains("events.jsonl:2:"));
    // The next capture starts on a fresh line: nothing is lost.
    let out = r.capture(&["--event-type", "skill.created"]);
    assert_eq!(code(&out), 0);
    assert_eq!(r.count(&[]), 4);
    // metrics counts the same and reports the skips.
    let out = r.query(&["metrics", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["events"], 4);
    assert_eq!(m["skipped_lines"], 3);
}

#[test]
fn upstream_telemetry_imports_once() {
    let Some(upstream) = betty_testkit::upstream() else {
        return;
    };
    let upstream = upstream.join("registry/telemetry.json");
    let r = Reg::new();
    let copy = r.root.join("upstream-telemetry.json");
    std::fs::copy(&upstream, &copy).unwrap();
    let out = r.capture(&["import", copy.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported 225 of 225"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(r.lines().len(), 225);
    assert_eq!(r.count(&[]), 225);
    let out = r.capture(&["import", copy.to_str().unwrap()]);
    assert_eq!(code(&out), 0);
    assert!(
        text(&out.stdout).contains("imported 0 of 225"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(r.lines().len(), 225);
    // Both shapes are mapped: the capture skill's and the runners' (workflow steps, agents).
    let out = r.query(&["--count-by", "event_type", "--format", "json"]);
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by: std::collections::HashMap<String, u64> = counts["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by.values().sum::<u64>(), 225);
    assert!(
        by["skill.executed"] > 0 && by["workflow.step.completed"] > 0 && by["agent.executed"] > 0,
        "{by:?}"
    );
    for l in r.lines() {
        let v: Value = serde_json::from_str(&l).unwrap();
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(v["outcome"].as_str().is_some());
    }
    // Old events are out of time order: the live segment is marked so queries scan it whole.
    assert!(r.root.join("telemetry/events.jsonl.unordered").exists());
    assert!(r.count(&["--since", "2025-10-25", "--until", "2025-10-25T23:59:59"]) > 0);
    // The import is audited.
    let out = r.query(&[
        "audit",
        "--operation",
        "telemetry.import",
        "--format",
        "jsonl",
    ]);
    // Each import is an intent entry before the events and a commit entry after them.
    let phases: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["phase"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(phases, ["intent", "commit", "intent", "commit"]);
}

#[test]
fn import_reads_nan_naive_times_and_refuses_bad_files() {
    let r = Reg::new();
    let f = r.root.join("telemetry.json");
    std::fs::write(
        &f,
        r#"[{"timestamp": "2025-10-23T18:08:55.963188", "skill": "a.b", "status": "success", "duration_ms": NaN, "caller": "cli", "inputs": {"token": "t"}},
            {"timestamp": "2025-10-23T18:09:00+00:00", "execution_id": "e", "skill": "c.d", "status": "failed", "duration_ms": 7, "workflow": "w.yaml", "total_steps": 2, "caller": "cli"}]"#,
    )
    .unwrap();
    let out = r.capture(&["import", f.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let lines = r.lines();
    let a: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(a["timestamp"], "2025-10-23T18:08:55.963188Z");
    assert_eq!(a["duration_ms"], Value::Null);
    assert_eq!(a["context"]["duration_ms_upstream"], "NaN");
    assert_eq!(a["context"]["inputs"]["token"], "[REDACTED]");
    let b: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(b["event_type"], "workflow.completed");
    // A file with a bad entry imports nothing.
    std::fs::write(&f, r#"[{"skill": "x.y", "status": "success"}]"#).unwrap();
    let r2 = Reg::new();
    let out = r2.capture(&["import", f.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("entry 0: no `timestamp`"),
        "{}",
        text(&out.stderr)
    );
    assert!(!r2.events().exists());
    std::fs::write(&f, "{not json").unwrap();
    assert_eq!(code(&r2.capture(&["import", f.to_str().unwrap()])), 2);
}

#[test]
fn run_records_and_keeps_the_exit_code() {
    let r = Reg::new();
    let out = r
        .cmd(CAPTURE)
        .args([
            "run",
            "--skill-name",
            "data.transform",
            "--",
            "sh",
            "-c",
            "exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 7);
    let out = r
        .cmd(CAPTURE)
        .args(["run", "--skill-name", "data.transform", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    let lines = r.lines();
    assert_eq!(lines.len(), 2);
    let a: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(a["outcome"], "failure");
    assert_eq!(a["context"]["exit_code"], 7);
    assert!(a["duration_ms"].as_f64().unwrap() >= 0.0);
    let b: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(b["outcome"], "success");
    let out = r
        .cmd(CAPTURE)
        .args(["run", "--skill-name", "x.y", "--", "/nonexistent/cmd"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert_eq!(r.lines().len(), 2);
}

#[test]
fn filters_formats_and_order() {
    let r = Reg::new();
    let batch = [
        r#"{"event_type":"policy.violated","outcome":"blocked","skill_name":"a.one","user":"bob@example.com","session_id":"s1","timestamp":"2026-01-01T00:00:00Z","duration_ms":10}"#,
        r#"{"event_type":"policy.enforced","outcome":"passed","skill_name":"a.one","session_id":"s1","timestamp":"2026-01-02T00:00:00Z","duration_ms":20}"#,
        r#"{"event_type":"skill.created","outcome":"success","skill_name":"b.two","timestamp":"2026-01-03T00:00:00Z","duration_ms":30,"context":{"env":"prod, \"eu\""}}"#,
        r#"{"event_type":"skill.created","outcome":"failure","skill_name":"b.two","timestamp":"2026-01-04T00:00:00Z"}"#,
    ]
    .join("\n");
    let out = r.capture_stdin(&["-"], batch.as_bytes());
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(r.count(&["--event-type", "policy.*"]), 2);
    assert_eq!(
        r.count(&["--event-type", "policy.violated,skill.created"]),
        3
    );
    assert_eq!(r.count(&["--outcome", "blocked"]), 1);
    assert_eq!(r.count(&["--user", "bob@*"]), 1);
    assert_eq!(r.count(&["--session", "s1"]), 2);
    assert_eq!(r.count(&["--skill", "b.*"]), 2);
    assert_eq!(
        r.count(&["--since", "2026-01-02", "--until", "2026-01-03T00:00:00Z"]),
        2
    );
    assert_eq!(r.count(&["--last", "24h"]), 0);
    let out = r.query(&["--format", "jsonl", "--order", "oldest", "--limit", "2"]);
    let ids: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0]["event_type"], "policy.violated");
    let out = r.query(&["--format", "jsonl", "--limit", "1"]);
    let newest: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(newest["outcome"], "failure");
    let out = r.query(&["--format", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["events"].as_array().unwrap().len(), 4);
    let out = r.query(&[
        "--format",
        "csv",
        "--skill",
        "b.two",
        "--outcome",
        "success",
    ]);
    let csv = text(&out.stdout);
    assert!(csv.starts_with("event_id,timestamp,event_type"), "{csv}");
    assert!(csv.contains(r#""{""env"":""prod, \""eu\"""""#), "{csv}");
    let out = r.query(&["--count-by", "skill", "--format", "csv"]);
    assert_eq!(text(&out.stdout), "skill_name,count\na.one,2\nb.two,2\n");
    let out = r.query(&["stats", "--by", "event_type", "--format", "json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["total"]["count"], 4);
    let created = stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "skill.created")
        .unwrap();
    assert_eq!(created["success_rate"], 0.5);
    assert_eq!(created["duration_ms"]["p50"], 30.0);
    let out = r.query(&["stats"]);
    assert!(text(&out.stdout).contains("P95"), "{}", text(&out.stdout));
    // Bad flags are usage errors.
    for args in [
        vec!["--last", "soon"],
        vec!["--since", "yesterday"],
        vec!["--count-by", "colour"],
        vec!["--since", "2026-02-01", "--until", "2026-01-01"],
        vec!["--format", "xml"],
    ] {
        let out = r.query(&args);
        assert_eq!(code(&out), 2, "{args:?}");
    }
}

#[test]
fn metrics_incremental_equals_rebuild() {
    let r = Reg::new();
    let metrics = r.root.join("telemetry/metrics.json");
    for i in 0..5 {
        r.capture(&[
            "--event-type",
            "skill.created",
            "--duration-ms",
            &format!("{}", i * 10),
        ]);
    }
    assert_eq!(code(&r.query(&["metrics"])), 0);
    for i in 0..3 {
        r.capture(&[
            "--event-type",
            "policy.violated",
            "--outcome",
            "blocked",
            "--duration-ms",
            &format!("{}.5", i),
        ]);
    }
    // A torn last line is not counted yet.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(r.events())
        .unwrap();
    f.write_all(b"{\"event_type\":\"x.").unwrap();
    drop(f);
    assert_eq!(code(&r.query(&["metrics"])), 0);
    r.capture(&["--event-type", "skill.created", "--skill-name", "k.l"]);
    let out = r.query(&["metrics"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let incremental = std::fs::read(&metrics).unwrap();
    let out = r.query(&["metrics", "--rebuild"]);
    assert_eq!(code(&out), 0);
    let rebuilt = std::fs::read(&metrics).unwrap();
    assert_eq!(text(&incremental), text(&rebuilt));
    let m: Value = serde_json::from_slice(&rebuilt).unwrap();
    assert_eq!(m["events"], 9);
    assert_eq!(m["skipped_lines"], 1);
    assert_eq!(m["by_event_type"]["policy.violated"]["count"], 3);
    // A metrics file that is not ours is refused, untouched.
    std::fs::write(&metrics, "{\"hello\": 1}").unwrap();
    let out = r.query(&["metrics"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("--rebuild"));
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), "{\"hello\": 1}");
}

#[test]
fn rotated_segments_read_as_one_and_metrics_follow() {
    let r = Reg::new();
    let rotate = |c: &mut Command| {
        c.env("BETTY_TELEMETRY_ROTATE_BYTES", "2000");
    };
    for i in 0..30 {
        let mut c = r.cmd(CAPTURE);
        rotate(&mut c);
        let out = c
            .args([
                "--event-type",
                "skill.created",
                "--context",
                &format!("i:={i}"),
            ])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        if i == 10 {
            assert_eq!(code(&r.query(&["metrics"])), 0);
        }
    }
    let segments = std::fs::read_dir(r.root.join("telemetry"))
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name().into_string().unwrap();
            n.starts_with("events") && n.ends_with(".jsonl")
        })
        .count();
    assert!(segments > 2, "{segments} segments");
    assert_eq!(r.count(&[]), 30);
    assert_eq!(r.count_oldest(&["--last", "1h"]), 30);
    let out = r.query(&["--format", "jsonl", "--order", "oldest"]);
    let is: Vec<u64> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["context"]["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(is, (0..30).collect::<Vec<_>>());
    assert_eq!(code(&r.query(&["metrics"])), 0);
    let metrics = r.root.join("telemetry/metrics.json");
    let incremental = std::fs::read(&metrics).unwrap();
    assert_eq!(code(&r.query(&["metrics", "--rebuild"])), 0);
    assert_eq!(text(&incremental), text(&std::fs::read(&metrics).unwrap()));
}

#[test]
fn time_windows_by_bisection_match_a_full_scan() {
    let r = Reg::new();
    std::fs::create_dir_all(r.root.join("telemetry")).unwrap();
    // 40,000 time-ordered events, one a minute, ending now.
    let now = jiff::Timestamp::now();
    let mut body = String::new();
    let n = 40_000i64;
    for i in 0..n {
        let ts = now - jiff::SignedDuration::from_mins(n - 1 - i);
        body.push_str(&format!(
            "{{\"event_id\":\"01900000-0000-7000-8000-{i:012x}\",\"event_type\":\"{}\",\"timestamp\":\"{}\",\"user\":\"u\",\"session_id\":\"s\",\"skill_name\":null,\"context\":{{\"tool\":\"t\",\"version\":\"1\"}},\"outcome\":\"success\",\"duration_ms\":1}}\n",
            if i % 7 == 0 { "policy.violated" } else { "skill.created" },
            betty_core::time::format(ts)
        ));
    }
    std::fs::write(r.events(), &body).unwrap();
    let windows: Vec<Vec<&str>> = vec![
        vec!["--last", "1h"],
        vec!["--last", "90m", "--event-type", "policy.violated"],
        vec!["--last", "7d"],
        vec!["--since", "2000-01-01"],
    ];
    let mut expected = Vec::new();
    for w in &windows {
        expected.push((r.count(w), r.count_oldest(w)));
    }
    // The same queries on the file marked unordered (full scans) agree.
    std::fs::write(r.root.join("telemetry/events.jsonl.unordered"), "").unwrap();
    for (w, (newest, oldest)) in windows.iter().zip(expected) {
        let full = r.count(w);
        assert_eq!(newest, full, "{w:?}");
        assert_eq!(oldest, full, "{w:?}");
    }
    let last_hour = r.count(&["--last", "1h"]);
    assert!((60..=61).contains(&last_hour), "{last_hour}");
}

#[test]
fn audit_views_detect_tampering() {
    let r = Reg::new();
    let upstream = r.root.join("t.json");
    std::fs::write(&upstream, "[]").unwrap();
    for _ in 0..3 {
        assert_eq!(code(&r.capture(&["import", upstream.to_str().unwrap()])), 0);
    }
    let out = r.query(&["audit", "head"]);
    assert_eq!(code(&out), 0);
    let head = text(&out.stdout).trim().to_string();
    // Three imports, each an intent and a commit entry.
    assert!(head.starts_with("5:"), "{head}");
    let out = r.query(&["audit", "verify", "--expect-head", &head]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("intact"));
    let out = r.query(&["audit", "--format", "csv"]);
    assert_eq!(text(&out.stdout).lines().count(), 7);
    let out = r.query(&[
        "audit", "--order", "newest", "--limit", "1", "--format", "jsonl",
    ]);
    let e: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(e["seq"], 5);
    // Edit an entry.
    let log = r.root.join("audit_log.json");
    let original = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, original.replacen("\"success\"", "\"failure\"", 1)).unwrap();
    let out = r.query(&["audit", "verify"]);
    assert_eq!(code(&out), 1);
    let s = text(&out.stdout);
    assert!(s.contains("edited") && s.contains("entry 1:"), "{s}");
    // Truncate the tail (the last commit entry): only the kept head shows it as tampering;
    // without it, the intent left without its commit is an operation that did not finish.
    let mut lines: Vec<&str> = original.lines().collect();
    lines.remove(lines.len() - 2);
    let truncated = lines.join("\n").replace(",\n]", "\n]");
    std::fs::write(&log, truncated).unwrap();
    let out = r.query(&["audit", "verify"]);
    assert_eq!(code(&out), 0);
    let s = text(&out.stdout);
    assert!(
        s.contains("intact") && s.contains("operation did not finish") && s.contains("seq 4"),
        "{s}"
    );
    let out = r.query(&["audit", "verify", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["unfinished"][0]["seq"], 4);
    assert_eq!(v["unfinished"][0]["operation"], "telemetry.import");
    let out = r.query(&[
        "audit",
        "verify",
        "--expect-head",
        &head,
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["breaks"][0]["kind"], "truncated");
    assert_eq!(
        code(&r.query(&["audit", "verify", "--expect-head", "nothex"])),
        2
    );
    // A log emptied or deleted while the kept head names entries: tampering, exit 1.
    for emptied in ["", "[]", "  \n"] {
        std::fs::write(&log, emptied).unwrap();
        let out = r.query(&["audit", "verify", "--expect-head", &head]);
        assert_eq!(code(&out), 1, "{emptied:?}: {}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("truncated"),
            "{}",
            text(&out.stdout)
        );
    }
    std::fs::remove_file(&log).unwrap();
    let out = r.query(&[
        "audit",
        "verify",
        "--expect-head",
        &head,
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["breaks"][0]["kind"].as_str()),
        (Some(false), Some("truncated"))
    );
}

#[test]
fn help_shows_examples() {
    for (bin, args) in [
        (CAPTURE, vec!["--help"]),
        (CAPTURE, vec!["run", "--help"]),
        (CAPTURE, vec!["import", "--help"]),
        (QUERY, vec!["--help"]),
        (QUERY, vec!["stats", "--help"]),
        (QUERY, vec!["metrics", "--help"]),
        (QUERY, vec!["audit", "--help"]),
        (QUERY, vec!["audit", "verify", "--help"]),
        (QUERY, vec!["audit", "head", "--help"]),
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert_eq!(code(&out), 0);
        assert!(text(&out.stdout).contains("Example"), "{bin} {args:?}");
    }
}

#[test]
fn no_registry_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(QUERY)
        .current_dir(dir.path())
        .env_remove("BETTY_REGISTRY")
        .env_remove("BETTY_HOME")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("no registry found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn duckdb_reads_the_same_rows() {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        betty_testkit::skip("DuckDB for Python is not installed (`pip install duckdb`)");
        return;
    }
    let r = Reg::new();
    if let Some(upstream) = betty_testkit::upstream() {
        let upstream = upstream.join("registry/telemetry.json");
        assert_eq!(code(&r.capture(&["import", upstream.to_str().unwrap()])), 0);
    }
    for i in 0..50 {
        r.capture(&[
            "--event-type",
            if i % 3 == 0 {
                "policy.violated"
            } else {
                "skill.created"
            },
            "--context",
            &format!("n:={i}"),
        ]);
    }
    let sql = format!(
        "import duckdb; print(duckdb.sql(\"select count(*), count(*) filter (where event_type = 'policy.violated') from read_json_auto('{}', format='newline_delimited')\").fetchall()[0])",
        r.events().display()
    );
    let out = Command::new("python3").args(["-c", &sql]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = format!(
        "({}, {})",
        r.count(&[]),
        r.count(&["--event-type", "policy.violated"])
    );
    assert_eq!(text(&out.stdout).trim(), expected);
}

const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");

/// Resolves `https://betty.dev/schemas/<file>` to the repository's `schemas/<file>`.
struct LocalSchemas;

impl jsonschema::Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.as_str().rsplit('/').next().unwrap_or_default();
        let text = std::fs::read_to_string(Path::new(SCHEMAS).join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(Path::new(SCHEMAS).join(name)).unwrap();
    jsonschema::options()
        .with_retriever(LocalSchemas)
        .build(&serde_json::from_str(&text).unwrap())
        .expect("the schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{doc}");
}

#[test]
fn json_output_validates_against_the_published_schemas() {
    let r = Reg::new();
    let f = r.root.join("up.json");
    std::fs::write(&f, r#"[{"timestamp": "2025-10-23T18:08:55", "skill": "a.b", "status": "success", "duration_ms": 5, "caller": "cli"}]"#).unwrap();
    assert_eq!(code(&r.capture(&["import", f.to_str().unwrap()])), 0);
    for i in 0..5 {
        r.capture(&[
            "--event-type",
            "policy.violated",
            "--outcome",
            "blocked",
            "--duration-ms",
            &i.to_string(),
        ]);
    }
    let output = schema("telemetry-query-output.schema.json");
    for args in [
        vec!["--format", "json"],
        vec!["--format", "json", "--count"],
        vec!["--format", "json", "--count-by", "outcome"],
        vec!["stats", "--format", "json"],
        vec!["stats", "--by", "event_type", "--format", "json"],
        vec!["audit", "--format", "json"],
        vec!["audit", "verify", "--format", "json"],
        vec!["audit", "head", "--format", "json"],
    ] {
        let out = r.query(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_valid(&output, &doc, &format!("{args:?}"));
    }
    assert!(!output.is_valid(&serde_json::json!({"schema_version": 1, "count": -1})));
    assert!(
        !output
            .is_valid(&serde_json::json!({"schema_version": 1, "events": [{"event_type": "x"}]}))
    );
    let events = schema("telemetry-event.schema.json");
    for l in r.lines() {
        assert_valid(&events, &serde_json::from_str(&l).unwrap(), "event");
    }
    let out = r.query(&["metrics", "--format", "json"]);
    assert_eq!(code(&out), 0);
    let metrics = schema("telemetry-metrics.schema.json");
    assert_valid(
        &metrics,
        &serde_json::from_slice(&out.stdout).unwrap(),
        "metrics",
    );
}

/// A one-request-at-a-time HTTP server that answers 200 and hands each body to the test.
fn hook_server(listener: std::net::TcpListener, n: usize) -> std::thread::JoinHandle<Vec<Value>> {
    use std::io::{BufRead, BufReader, Read};
    std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            bodies.push(serde_json::from_slice(&body).unwrap());
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .unwrap();
        }
        bodies
    })
}

#[test]
fn alerts_fire_on_capture_and_failures_are_retried() {
    let r = Reg::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::create_dir_all(r.root.join("telemetry")).unwrap();
    std::fs::write(
        r.root.join("telemetry/alerts.yaml"),
        format!(
            "alerts:\n  - name: blocked-violations\n    event_type: policy.violated\n    outcome: blocked\n    slack: http://127.0.0.1:{port}/services/T0/B0/X\n    webhook: http://127.0.0.1:{port}/hook\n"
        ),
    )
    .unwrap();
    let server = hook_server(listener, 2);
    let inline = |args: &[&str]| {
        r.cmd(CAPTURE)
            .env("BETTY_ALERTS_INLINE", "1")
            .args(args)
            .output()
            .unwrap()
    };
    // Not matching: nothing sent.
    assert_eq!(
        code(&inline(&[
            "--event-type",
            "policy.violated",
            "--outcome",
            "warned"
        ])),
        0
    );
    let out = inline(&[
        "--event-type",
        "policy.violated",
        "--outcome",
        "blocked",
        "--skill-name",
        "data.transform",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 2);
    let slack = bodies.iter().find(|b| b.get("text").is_some()).unwrap();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("blocked-violations"),
        "{slack}"
    );
    assert!(
        slack["text"].as_str().unwrap().contains("data.transform"),
        "{slack}"
    );
    let hook = bodies.iter().find(|b| b.get("event").is_some()).unwrap();
    assert_eq!(hook["event"]["outcome"], "blocked");

    // The hook goes down: the capture still succeeds, the failure is recorded for retry.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    std::fs::write(
        r.root.join("telemetry/alerts.yaml"),
        format!("alerts:\n  - name: down\n    event_type: 'policy.*'\n    webhook: http://127.0.0.1:{dead_port}/hook\n"),
    )
    .unwrap();
    let out = inline(&["--event-type", "policy.violated", "--outcome", "blocked"]);
    assert_eq!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("failed"),
        "{}",
        text(&out.stderr)
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(r.root.join("telemetry/alerts-state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["retry"].as_array().unwrap().len(), 1);
    assert!(
        state["retry"][0]["last_error"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("connection refused")
    );
    // It comes back: a forced delivery sends the retry.
    let Ok(back) = std::net::TcpListener::bind(("127.0.0.1", dead_port)) else {
        eprintln!("skipped the retry half: port {dead_port} was taken meanwhile");
        return;
    };
    let server = hook_server(back, 1);
    let out = r
        .cmd(CAPTURE)
        .args(["alerts", "deliver", "--force"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 sent"),
        "{}",
        text(&out.stdout)
    );
    let bodies = server.join().unwrap();
    assert_eq!(bodies[0]["alert"], "down");
    // Events other binaries write alert too, on the next delivery (or under `alerts watch`).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(
        r.root.join("telemetry/alerts.yaml"),
        format!("alerts:\n  - name: any-violation\n    event_type: policy.violated\n    webhook: http://127.0.0.1:{port}/hook\n"),
    )
    .unwrap();
    let server = hook_server(listener, 1);
    let other = betty_core::telemetry::EventWriter::new(&r.events(), "policy-enforce");
    let who = betty_core::identity::Identity {
        sources: Default::default(),
        user: "eve@example.com".into(),
        session_id: "s".into(),
        ip_address: "127.0.0.1".into(),
    };
    other
        .record(
            betty_core::telemetry::NewEvent {
                event_type: "policy.violated".into(),
                outcome: "blocked".into(),
                ..Default::default()
            },
            &who,
        )
        .unwrap();
    let out = r.cmd(CAPTURE).args(["alerts", "deliver"]).output().unwrap();
    assert!(
        text(&out.stdout).contains("1 sent"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        server.join().unwrap()[0]["event"]["user"],
        "eve@example.com"
    );
    // Nothing new: nothing sent again.
    let out = r.cmd(CAPTURE).args(["alerts", "deliver"]).output().unwrap();
    assert!(
        text(&out.stdout).contains("0 sent"),
        "{}",
        text(&out.stdout)
    );
    // A broken alerts.yaml never fails a capture.
    std::fs::write(
        r.root.join("telemetry/alerts.yaml"),
        "alerts: [{name: x}]\n",
    )
    .unwrap();
    let out = inline(&["--event-type", "policy.violated"]);
    assert_eq!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("alerts skipped"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn many_bad_lines_are_counted_not_flooded() {
    let r = Reg::new();
    r.capture(&["--event-type", "skill.created"]);
    let mut body = std::fs::read_to_string(r.events()).unwrap();
    for i in 0..30 {
        body.push_str(&format!("garbage {i}\n"));
    }
    std::fs::write(r.events(), body).unwrap();
    r.capture(&["--event-type", "skill.created"]);
    let out = r.query(&["--count"]);
    assert_eq!(text(&out.stdout).trim(), "2");
    let err = text(&out.stderr);
    assert_eq!(err.matches("skipped line").count(), 20, "{err}");
    assert!(err.contains("30 lines were skipped in all"), "{err}");
}

#[test]
fn concurrent_writers_across_rotations_lose_nothing() {
    let r = Reg::new();
    let children: Vec<_> = (0..8)
        .map(|p| {
            let mut child = r
                .cmd(CAPTURE)
                .env("BETTY_TELEMETRY_ROTATE_BYTES", "40000")
                .args(["--stream", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let input: String = (0..250)
                .map(|i| format!("{{\"event_type\":\"skill.executed\",\"outcome\":\"success\",\"context\":{{\"p\":{p},\"i\":{i}}}}}\n"))
                .collect();
            let mut stdin = child.stdin.take().unwrap();
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
            (child, writer)
        })
        .collect();
    for (child, writer) in children {
        writer.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }
    let mut seen = std::collections::HashSet::new();
    let mut segments = 0;
    for entry in std::fs::read_dir(r.root.join("telemetry")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !(name.starts_with("events") && name.ends_with(".jsonl")) {
            continue;
        }
        segments += 1;
        for l in std::fs::read_to_string(&path).unwrap().lines() {
            let v: Value = serde_json::from_str(l).expect("a torn line");
            assert!(seen.insert((v["context"]["p"].as_u64(), v["context"]["i"].as_u64())));
        }
    }
    assert!(segments > 5, "{segments}");
    assert_eq!(seen.len(), 2000);
    assert_eq!(r.count(&[]), 2000);
    assert_eq!(r.count_oldest(&["--last", "1h"]), 2000);
}

/// Item 7: `telemetry-capture -` killed with SIGKILL at random instants leaves none of a batch
/// or all of it (as readers see the stream), across rotations, and retrying the same input
/// afterwards adds no duplicates.
#[test]
fn a_batch_killed_at_any_instant_lands_none_or_all_and_a_retry_adds_nothing() {
    const EVENTS: usize = 1500;
    const KILLS: usize = 30;
    let r = Reg::new();
    let batch = |k: usize| -> Vec<u8> {
        let mut s = String::new();
        for i in 0..EVENTS {
            s.push_str(&format!(
                "{{\"event_type\":\"skill.executed\",\"outcome\":\"success\",\"skill_name\":\"kill.test\",\"context\":{{\"kb\":\"k-{k}\",\"i\":{i},\"pad\":\"{}\"}}}}\n",
                "x".repeat(200)
            ));
        }
        s.into_bytes()
    };
    let spawn = |input: Vec<u8>| {
        let mut child = r
            .cmd(CAPTURE)
            .arg("-")
            .env("BETTY_TELEMETRY_ROTATE_BYTES", "1000000")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The child may be killed while reading: a broken pipe is expected.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        (child, writer)
    };
    // How much of the batch the readers see, after they settle a half-appended batch.
    let seen = |k: usize| -> usize {
        assert_eq!(code(&r.query(&["--count"])), 0);
        let needle = format!("\"kb\":\"k-{k}\"");
        let mut n = 0;
        for e in std::fs::read_dir(r.root.join("telemetry")).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("events") && name.ends_with(".jsonl") {
                n += std::fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .filter(|l| l.contains(&needle))
                    .count();
            }
        }
        n
    };
    // A full run sets the range of the random delays (so kills land before, during and after
    // the append); it is no time limit.
    let started = std::time::Instant::now();
    let (mut child, writer) = spawn(batch(0));
    assert!(child.wait().unwrap().success());
    writer.join().unwrap();
    let full = started.elapsed().as_micros() as u64 + 1;
    assert_eq!(seen(0), EVENTS);
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut outcomes = (0, 0);
    for k in 1..=KILLS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = rng % (full + full / 4);
        let (mut child, writer) = spawn(batch(k));
        std::thread::sleep(std::time::Duration::from_micros(delay));
        let _ = child.kill();
        let _ = child.wait();
        writer.join().unwrap();
        let n = seen(k);
        assert!(
            n == 0 || n == EVENTS,
            "kill {k} after {delay}µs left {n} of {EVENTS} events"
        );
        if n == 0 {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
        // The retry: exactly the batch, once.
        let (mut child, writer) = spawn(batch(k));
        assert!(child.wait().unwrap().success(), "retry {k}");
        writer.join().unwrap();
        assert_eq!(seen(k), EVENTS, "retry {k} after a kill that left {n}");
    }
    eprintln!("kills that left none: {}, all: {}", outcomes.0, outcomes.1);
    // Every line is whole, and no event id appears twice.
    let mut ids = std::collections::HashSet::new();
    let mut segments = 0;
    for e in std::fs::read_dir(r.root.join("telemetry")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("events") && name.ends_with(".jsonl") {
            segments += 1;
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let v: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
                assert!(
                    ids.insert(v["event_id"].as_str().unwrap().to_string()),
                    "duplicate {line}"
                );
            }
        }
    }
    assert_eq!(ids.len(), EVENTS * (KILLS + 1));
    assert!(segments > 1, "the stream rotated during the run");
    assert!(!r.root.join("telemetry/events.jsonl.batch").exists());
}

#[test]
fn order_is_time_order_across_an_import_of_older_events() {
    let r = Reg::new();
    let out = r.capture(&["--event-type", "skill.created", "--skill-name", "now.one"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    // Older events, appended after it, themselves out of order.
    let f = r.root.join("telemetry.json");
    std::fs::write(
        &f,
        r#"[{"timestamp": "2025-10-23T18:09:00+00:00", "skill": "middle.one", "status": "success", "caller": "cli"},
            {"timestamp": "2025-10-23T18:08:55+00:00", "skill": "oldest.one", "status": "success", "caller": "cli"},
            {"timestamp": "2025-10-24T07:00:00+00:00", "skill": "newer.one", "status": "success", "caller": "cli"}]"#,
    )
    .unwrap();
    let out = r.capture(&["import", f.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let first = |order: &str, limit: &str| -> Vec<String> {
        let out = r.query(&["--order", order, "--limit", limit, "--format", "jsonl"]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["skill_name"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(first("newest", "1"), ["now.one"]);
    assert_eq!(first("oldest", "1"), ["oldest.one"]);
    assert_eq!(
        first("newest", "10"),
        ["now.one", "newer.one", "middle.one", "oldest.one"]
    );
    assert_eq!(first("oldest", "2"), ["oldest.one", "middle.one"]);
}

#[test]
fn a_flag_a_command_cannot_honour_is_a_usage_error() {
    let r = Reg::new();
    let out = r.capture(&["--event-type", "skill.created"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    // Formats a command cannot produce: exit 2 naming the ones it can.
    for args in [
        vec!["metrics", "--format", "csv"],
        vec!["metrics", "--format", "jsonl"],
        vec!["audit", "head", "--format", "csv"],
        vec!["audit", "verify", "--format", "jsonl"],
    ] {
        let out = r.query(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stdout));
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("possible values: table, json"),
            "{args:?}: {err}"
        );
    }
    // Flags of the plain listing, given with a subcommand that would ignore them.
    for (args, flag) in [
        (vec!["--limit", "3", "stats"], "--limit"),
        (vec!["--event-type", "x", "metrics"], "--event-type"),
        (
            vec!["audit", "--operation", "policy.*", "verify"],
            "--operation",
        ),
        (vec!["--count", "--limit", "2"], "--limit"),
        (vec!["--count-by", "skill", "--limit", "1"], "--limit"),
        // A count has no order: `--order` with it would change nothing.
        (vec!["--count", "--order", "oldest"], "--order"),
        (vec!["--count", "--order", "newest"], "--order"),
        (vec!["--count-by", "skill", "--order", "oldest"], "--order"),
    ] {
        let out = r.query(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains(flag),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = r.capture(&["--outcome", "failure", "import", "x.json"]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("--outcome"),
        "{}",
        text(&out.stderr)
    );
    // `--events` is a file of events, which `audit` does not read.
    let events = r.events();
    let out = r.query(&["--events", events.to_str().unwrap(), "audit", "verify"]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("--events"),
        "{}",
        text(&out.stderr)
    );
    // What they can do still works, global flags after the subcommand included.
    assert_eq!(code(&r.query(&["metrics", "--format", "json"])), 0);
    let out = r.query(&["audit", "verify", "-q"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
}
