//! Output that cannot be turned against its reader: escaped tables, CSV cells a spreadsheet
//! will not evaluate, and secrets redacted in every listing, even in events and audit entries
//! written by another tool or an older version.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const CAPTURE: &str = env!("CARGO_BIN_EXE_telemetry-capture");
const QUERY: &str = env!("CARGO_BIN_EXE_telemetry-query");

fn assert_terminal_safe(what: &str, text: &str) {
    for c in text.chars() {
        let bad = matches!(c,
            '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what} carries a raw {c:?}: {text:?}");
    }
}

struct Reg {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Reg {
    fn new() -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("registry");
        std::fs::create_dir_all(root.join("telemetry")).unwrap();
        Reg { _dir: dir, root }
    }

    fn run(&self, bin: &str, args: &[&str]) -> Output {
        let out = Command::new(bin)
            .arg("--registry")
            .arg(&self.root)
            .args(args)
            .env("BETTY_USER", "ada@example.com")
            .env_remove("BETTY_REGISTRY")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(101), "{}", text(&out.stderr));
        out
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const SECRET: &str = "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn hostile_events(reg: &Reg) -> (String, String) {
    let hostile = serde_json::json!({
        "event_id": "01890a5d-ac96-774b-bcce-b302099a8057", "event_type": "skill.created",
        "timestamp": "2026-11-24T08:00:00.000000Z", "user": "@SUM(1+1)*cmd|' /C calc'!A0",
        "session_id": "=1+2", "skill_name": "=HYPERLINK(\"http://evil\")",
        "outcome": "-2+3", "duration_ms": 5.0,
        "context": {"tool": "+tool", "db_secrets": "s3", "note": format!("uses {SECRET}")},
    })
    .to_string();
    let escapes = serde_json::json!({
        "event_id": "01890a5d-ac96-774b-bcce-b302099a8058", "event_type": "skill.created",
        "timestamp": "2026-11-24T08:00:01.000000Z", "user": "mallory\r\nforged",
        "session_id": "s", "skill_name": "evil\u{1b}]0;pwned\u{7}\u{202e}name\u{9b}",
        "outcome": "success", "duration_ms": 1.0, "context": {"tool": "t"},
    })
    .to_string();
    std::fs::write(
        reg.root.join("telemetry/events.jsonl"),
        format!("{hostile}\n{escapes}\n"),
    )
    .unwrap();
    (hostile, escapes)
}

#[test]
fn tables_show_control_characters_escaped() {
    let reg = Reg::new();
    hostile_events(&reg);
    for args in [
        vec!["--order", "oldest"],
        vec!["--count-by", "skill"],
        vec!["stats", "--by", "skill"],
    ] {
        let out = reg.run(QUERY, &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_terminal_safe("table", &stdout);
        assert!(
            stdout.contains("evil\\x1b]0;pwned\\x07"),
            "{args:?}: {stdout}"
        );
    }
    let table = text(&reg.run(QUERY, &["--order", "oldest"]).stdout);
    assert!(table.contains("mallory\\r\\nforged"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn csv_cells_cannot_become_formulas_and_numbers_stay_numbers() {
    let reg = Reg::new();
    hostile_events(&reg);
    let out = reg.run(QUERY, &["--format", "csv", "--order", "oldest"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let first = csv.lines().nth(1).unwrap();
    assert!(
        first.starts_with(
            "01890a5d-ac96-774b-bcce-b302099a8057,2026-11-24T08:00:00.000000Z,skill.created,\"'=HYPERLINK(\"\"http://evil\"\")\",\"'-2+3\",5,\"'@SUM(1+1)*cmd|' /C calc'!A0\",\"'=1+2\",\"'+tool\","
        ),
        "{first}"
    );
    // No cell of any row starts with a formula character once unquoted.
    for line in csv.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(!cell.starts_with(['=', '+', '@', '\t', '\r']), "{line}");
        }
    }
    assert!(!csv.contains(SECRET) && !csv.contains("s3"), "{csv}");
    // The count-by and stats CSV too.
    let by = text(
        &reg.run(QUERY, &["--format", "csv", "--count-by", "user"])
            .stdout,
    );
    assert!(by.contains("\"'@SUM(1+1)*cmd|' /C calc'!A0\",1"), "{by}");
    let stats = text(
        &reg.run(QUERY, &["stats", "--by", "skill", "--format", "csv"])
            .stdout,
    );
    assert!(
        stats.contains("\"'=HYPERLINK(\"\"http://evil\"\")\",1,"),
        "{stats}"
    );
}

#[test]
fn listings_redact_secrets_and_keep_clean_lines_exact() {
    let reg = Reg::new();
    let (_, clean) = hostile_events(&reg);
    let out = reg.run(QUERY, &["--format", "jsonl", "--order", "oldest"]);
    let jsonl = text(&out.stdout);
    let lines: Vec<&str> = jsonl.lines().collect();
    assert_eq!(lines.len(), 2, "{jsonl}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["context"]["db_secrets"], "[REDACTED]");
    assert_eq!(first["context"]["note"], "uses [REDACTED]");
    // A line with nothing to redact is shown byte for byte (JSON keeps the exact text).
    assert_eq!(lines[1], clean);
    let json = text(&reg.run(QUERY, &["--format", "json"]).stdout);
    assert!(!json.contains(SECRET), "{json}");
    serde_json::from_str::<serde_json::Value>(&json).unwrap();
}

#[test]
fn captured_events_and_the_audit_listing_are_redacted_and_escaped() {
    let reg = Reg::new();
    let out = reg.run(
        CAPTURE,
        &[
            "--event-type",
            "skill.created",
            "--skill-name",
            "data.transform",
            "--outcome",
            "success",
            "--context",
            "db_secrets=abc123",
            "--context",
            "X-Auth-Token=t0k3n",
            "--context",
            "hook=http://hooks.slack.com/services/T0/B0/XYZ",
            "--context",
            "token_count=12",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stored = std::fs::read_to_string(reg.root.join("telemetry/events.jsonl")).unwrap();
    let e: serde_json::Value = serde_json::from_str(stored.trim()).unwrap();
    assert_eq!(e["context"]["db_secrets"], "[REDACTED]");
    assert_eq!(e["context"]["X-Auth-Token"], "[REDACTED]");
    assert_eq!(
        e["context"]["hook"],
        "http://hooks.slack.com/services/[REDACTED]"
    );
    assert_eq!(e["context"]["token_count"], "12");

    // A legacy audit entry (no hash) from elsewhere, carrying escapes and a secret.
    std::fs::write(
        reg.root.join("audit_log.json"),
        serde_json::json!([{
            "timestamp": "2026-11-24T08:00:00Z", "operation": "skill.create\u{1b}[2J",
            "skill": "=evil()", "user": "u\u{202e}", "ip_address": "127.0.0.1",
            "outcome": "ok", "policy_checks": [], "details": {"password": "hunter2"}
        }])
        .to_string(),
    )
    .unwrap();
    let table = text(&reg.run(QUERY, &["audit"]).stdout);
    assert_terminal_safe("audit table", &table);
    assert!(table.contains("skill.create\\x1b[2J"), "{table}");
    let csv = text(&reg.run(QUERY, &["audit", "--format", "csv"]).stdout);
    assert!(csv.contains(",\"'=evil()\","), "{csv}");
    let json = text(&reg.run(QUERY, &["audit", "--format", "json"]).stdout);
    assert!(!json.contains("hunter2"), "{json}");
    assert!(json.contains("[REDACTED]"), "{json}");
}

/// Before: CR, LF, ESC, C1 and bidi controls went into quoted CSV cells raw (a CR/LF forged a
/// record for a line-based reader, ESC moved the cursor of whoever `cat` the file). The whole
/// output is pinned: every control escaped as `betty_core::escape` shows it (JSON cells with
/// JSON's own `\uXXXX`, so they stay JSON), formulas still neutralised.
#[test]
fn csv_cells_carry_no_raw_control_characters() {
    let reg = Reg::new();
    let event = serde_json::json!({
        "event_id": "01890a5d-ac96-774b-bcce-b302099a8059", "event_type": "skill.created",
        "timestamp": "2026-11-24T08:00:02.000000Z", "user": "eve\r\n01890a5d,forged,row",
        "session_id": "\u{1b}[2J", "skill_name": "a\u{85}b\u{202e}c\u{2028}d\u{7f}",
        "outcome": "\tfail", "duration_ms": 3.0,
        "context": {"tool": "t\u{1b}]8;;http://x\u{7}", "note": "x\u{202e}y\u{9b}z\nw"},
    });
    std::fs::write(
        reg.root.join("telemetry/events.jsonl"),
        format!("{event}\n"),
    )
    .unwrap();
    let out = reg.run(QUERY, &["--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert_terminal_safe("csv", &csv.replace('\n', ""));
    assert_eq!(
        csv,
        concat!(
            "event_id,timestamp,event_type,skill_name,outcome,duration_ms,user,session_id,tool,context\n",
            r#"01890a5d-ac96-774b-bcce-b302099a8059,2026-11-24T08:00:02.000000Z,skill.created,a\u{85}b\u{202e}c\u{2028}d\x7f,"'\tfail",3,"eve\r\n01890a5d,forged,row",\x1b[2J,t\x1b]8;;http://x\x07,"{""tool"":""t\u001b]8;;http://x\u0007"",""note"":""x\u202ey\u009bz\nw""}""#,
            "\n"
        )
    );

    std::fs::write(
        reg.root.join("audit_log.json"),
        serde_json::json!([{
            "timestamp": "2026-11-24T08:00:00Z", "operation": "op\r\nforged",
            "skill": "s\u{202e}", "user": "u", "ip_address": "127.0.0.1", "outcome": "ok",
            "policy_checks": [{"policy": "p\u{1b}[1m\u{202e}", "result": "passed"}],
        }])
        .to_string(),
    )
    .unwrap();
    let out = reg.run(QUERY, &["audit", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        concat!(
            "seq,timestamp,operation,skill,outcome,user,session_id,policy_checks\n",
            r#",2026-11-24T08:00:00Z,op\r\nforged,s\u{202e},ok,u,"'-","[{""policy"":""p\u001b[1m\u202e"",""result"":""passed""}]""#,
            "\n"
        )
    );
}
