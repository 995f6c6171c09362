//! Many processes writing at once lose nothing: 32 processes append 200 audit entries each,
//! and 32 processes append 200 telemetry events each. The children are this test binary run
//! again with `--ignored --exact child_...` (a process, not a thread: locks are per process).

use std::path::Path;
use std::process::Command;

use betty_core::audit::{AuditLog, AuditRecord};
use betty_core::identity::Identity;
use betty_core::telemetry::{EventWriter, NewEvent};

const PROCESSES: usize = 32;
const EACH: usize = 200;

fn who(n: &str) -> Identity {
    Identity {
        sources: Default::default(),
        user: format!("writer-{n}@example.com"),
        session_id: n.to_string(),
        ip_address: "127.0.0.1".into(),
    }
}

fn spawn_children(test: &str, target: &Path) {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    test,
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("BETTY_TEST_TARGET", target)
                .env("BETTY_TEST_WRITER", i.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
}

#[test]
#[ignore = "child process of concurrent_audit_appends_lose_nothing"]
fn child_append_audit() {
    let target = std::env::var("BETTY_TEST_TARGET").expect("run by the parent test");
    let n = std::env::var("BETTY_TEST_WRITER").unwrap();
    let log = AuditLog::new(Path::new(&target));
    for i in 0..EACH {
        log.append(
            &AuditRecord {
                operation: "test.append".into(),
                skill: Some(format!("w{n}.e{i}")),
                outcome: "success".into(),
                ..Default::default()
            },
            &who(&n),
        )
        .unwrap();
    }
}

#[test]
fn concurrent_audit_appends_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit_log.json");
    spawn_children("child_append_audit", &path);
    let log = AuditLog::new(&path);
    let report = log.verify(None).unwrap();
    assert!(
        report.ok(),
        "{:?}",
        &report.breaks[..report.breaks.len().min(3)]
    );
    assert_eq!(report.hashed_entries, (PROCESSES * EACH) as u64);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut skills: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["skill"].as_str().unwrap())
        .collect();
    skills.sort_unstable();
    skills.dedup();
    assert_eq!(skills.len(), PROCESSES * EACH);
}

#[test]
#[ignore = "child process of concurrent_telemetry_appends_lose_nothing"]
fn child_append_telemetry() {
    let target = std::env::var("BETTY_TEST_TARGET").expect("run by the parent test");
    let n = std::env::var("BETTY_TEST_WRITER").unwrap();
    let w = EventWriter::new(Path::new(&target), "test");
    for i in 0..EACH {
        w.record(
            NewEvent {
                event_type: "skill.validated".into(),
                skill_name: Some(format!("w{n}.e{i}")),
                outcome: "success".into(),
                duration_ms: Some(i as f64),
                ..Default::default()
            },
            &who(&n),
        )
        .unwrap();
    }
}

#[test]
fn concurrent_telemetry_appends_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry/events.jsonl");
    spawn_children("child_append_telemetry", &path);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut ids = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        betty_core::telemetry::check_event(&v).unwrap();
        // What the writer's own check accepts, the published schema accepts.
        betty_core::schema::validate(betty_core::schema::SchemaId::TelemetryEvent, &v).unwrap();
        ids.insert(v["skill_name"].as_str().unwrap().to_string());
    }
    assert_eq!(text.lines().count(), PROCESSES * EACH);
    assert_eq!(ids.len(), PROCESSES * EACH);
}
