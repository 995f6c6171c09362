//! Hostile files and text against the real `approval-queue`: nothing is written through a link
//! out of the registry, a FIFO is refused at once, and no text (Japanese, emoji, CR/LF,
//! escapes) in a reason, comment, argument or name makes it panic.

#[path = "../../../crates/betty-core/tests/support/hostile.rs"]
mod hostile;

use hostile::{HOSTILE, Project};

const BIN: &str = env!("CARGO_BIN_EXE_approval-queue");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");

fn request_args(reason: &str, arg: &str) -> Vec<String> {
    [
        "request",
        "--operation",
        "deploy",
        "--arg",
        arg,
        "--approvers",
        "security",
        "--reason",
        reason,
        "--format",
        "json",
        // Dev mode: hostile text is about parsing and display, not keys (signed flows are in
        // cli.rs and signed.rs).
        "--unsigned",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn no_request_is_written_through_a_link() {
    hostile::assert_no_write_through_links(BIN, BUNDLED, |_| Some(request_args("x", "a=b")));
}

#[test]
fn a_fifo_is_refused_at_once() {
    let p = Project::new(BUNDLED);
    let fifo = p.dir().join("skill.yaml");
    hostile::mkfifo(&fifo);
    let mut args = request_args("x", "a=b");
    args.extend(["--manifest".to_string(), "skill.yaml".to_string()]);
    args.retain(|a| a != "--arg" && a != "a=b");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    hostile::assert_fifo_refused(BIN, &p.dir(), &args, &fifo);
    // Groups are read when a decision is made.
    let args = request_args("x", "a=b");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = hostile::run(BIN, &p.dir(), &args, None);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap();
    let groups = p.registry().join("approvals/groups.yaml");
    hostile::mkfifo(&groups);
    let approve = ["approve", id, "--user", "security-lead@example.com"];
    hostile::assert_fifo_refused(BIN, &p.dir(), &approve, &groups);
    // A dangling link where the groups belong is an error, not "no groups defined".
    std::fs::remove_file(&groups).unwrap();
    std::os::unix::fs::symlink(p.outside().join("nothing.yaml"), &groups).unwrap();
    let out = hostile::run(BIN, &p.dir(), &approve, None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
}

#[test]
fn hostile_text_never_panics() {
    let p = Project::new(BUNDLED);
    for text in HOSTILE {
        let arg = format!("k={text}");
        let args = request_args(text, &arg);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = hostile::run(BIN, &p.dir(), &args, None);
        assert_eq!(out.code, 3, "{text:?}: {}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        let approver = "security-lead@example.com";
        for args in [
            vec!["approve", &id, "--comment", text, "--user", approver],
            vec!["reject", &id, "--comment", text, "--user", text],
            vec!["status", &id],
            vec!["status", text],
            vec!["approve", text, "--comment", text],
            vec!["list"],
            vec!["list", "--format", "json"],
            vec!["check", "--operation", "deploy", "--arg", &arg],
            vec!["check", "--operation", text, "--arg", &arg],
        ] {
            hostile::run(BIN, &p.dir(), &args, None);
        }
        let mut bad = request_args(text, &arg);
        bad[6] = text.to_string(); // approvers: a group that does not exist
        let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
        let out = hostile::run(BIN, &p.dir(), &bad, None);
        assert_eq!(out.code, 2, "{}", out.stderr);
    }
}
