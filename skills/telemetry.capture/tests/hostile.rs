//! Hostile files and text against the real `telemetry-capture` and `telemetry-query`: nothing
//! is written through a link out of the registry, a FIFO is refused at once, and no text
//! (Japanese, emoji, CR/LF, escapes) makes either panic.

#[path = "../../../crates/betty-core/tests/support/hostile.rs"]
mod hostile;

use hostile::{HOSTILE, Link, Project};

const CAPTURE: &str = env!("CARGO_BIN_EXE_telemetry-capture");
const QUERY: &str = env!("CARGO_BIN_EXE_telemetry-query");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn no_event_is_written_through_a_link() {
    // telemetry-capture writes no audit entry for a plain event: the audit link is for query.
    hostile::assert_no_write_through_links(CAPTURE, BUNDLED, |link| {
        (link != Link::Audit).then(|| {
            args(&[
                "--event-type",
                "skill.created",
                "--skill-name",
                "data.transform",
            ])
        })
    });
    hostile::assert_no_write_through_links(QUERY, BUNDLED, |link| match link {
        Link::Audit => Some(args(&["audit", "verify"])),
        _ => Some(args(&["metrics"])),
    });
}

#[test]
fn a_fifo_is_refused_at_once() {
    let p = Project::new(BUNDLED);
    let fifo = p.dir().join("telemetry.json");
    hostile::mkfifo(&fifo);
    hostile::assert_fifo_refused(CAPTURE, &p.dir(), &["import", "telemetry.json"], &fifo);
    let live = p.registry().join("telemetry/events.jsonl");
    hostile::mkfifo(&live);
    hostile::assert_fifo_refused(CAPTURE, &p.dir(), &["--event-type", "skill.created"], &live);
    hostile::assert_fifo_refused(QUERY, &p.dir(), &["--count"], &live);
}

#[test]
fn hostile_text_never_panics() {
    let p = Project::new(BUNDLED);
    for text in HOSTILE {
        let ctx = format!("note={text}");
        let json_ctx = format!("k:={}", serde_json::to_string(text).unwrap());
        // Success paths.
        let out = hostile::run(
            CAPTURE,
            &p.dir(),
            &[
                "--event-type",
                "skill.created",
                "--skill-name",
                text,
                "--context",
                &ctx,
                "--context",
                &json_ctx,
            ],
            None,
        );
        assert_eq!(out.code, 0, "{text:?}: {}", out.stderr);
        let event = serde_json::json!({"event_type": "skill.validated", "skill_name": text,
            "outcome": "success", "context": {"password": text, "authorization": format!("Bearer {text}")}});
        hostile::run(
            CAPTURE,
            &p.dir(),
            &["-"],
            Some(event.to_string().as_bytes()),
        );
        // Error paths: a bad event type, a key repeated, a context that is not JSON.
        for bad in [
            vec!["--event-type", text],
            vec!["--event-type", "skill.created", "--context", text],
            vec!["--event-type", "skill.created", "--context", &json_ctx[..2]],
        ] {
            let out = hostile::run(CAPTURE, &p.dir(), &bad, None);
            assert_eq!(out.code, 2, "{bad:?}: {}", out.stderr);
        }
        let dup = format!(
            r#"{{"event_type": "skill.created", "skill_name": {0}, "skill_name": {0}}}"#,
            serde_json::to_string(text).unwrap()
        );
        let out = hostile::run(CAPTURE, &p.dir(), &["-"], Some(dup.as_bytes()));
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("duplicate key `skill_name`"),
            "{}",
            out.stderr
        );
        for q in [
            vec!["--skill", text],
            vec!["--skill", text, "--format", "csv"],
            vec!["--skill", text, "--format", "json"],
            vec!["--user", text, "--format", "jsonl"],
            vec!["--event-type", text],
            vec!["stats", "--by", "skill_name"],
            vec!["--count-by", "skill_name"],
            vec!["metrics"],
            vec!["audit", "--skill", text],
        ] {
            hostile::run(QUERY, &p.dir(), &q, None);
        }
    }
}
