//! Hostile files and text against the real `registry-diff`: nothing is written through a link
//! out of the registry, a FIFO is refused at once, and no text (Japanese, emoji, CR/LF,
//! escapes) in a skill's name or fields makes it panic.

#[path = "../../../crates/betty-core/tests/support/hostile.rs"]
mod hostile;

use hostile::{HOSTILE, Project};

const BIN: &str = env!("CARGO_BIN_EXE_registry-diff");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");

#[test]
fn no_version_is_recorded_through_a_link() {
    hostile::assert_no_write_through_links(BIN, BUNDLED, |_| Some(vec!["record".to_string()]));
}

#[test]
fn a_fifo_is_refused_at_once() {
    let p = Project::new(BUNDLED);
    let fifo = p.dir().join("other.json");
    hostile::mkfifo(&fifo);
    hostile::assert_fifo_refused(BIN, &p.dir(), &["--compare", "other.json"], &fifo);
    let skills = p.registry().join("skills.json");
    hostile::mkfifo(&skills);
    hostile::assert_fifo_refused(BIN, &p.dir(), &["record"], &skills);
}

#[test]
fn hostile_text_in_a_skill_never_panics() {
    let p = Project::new(BUNDLED);
    let skills = p.registry().join("skills.json");
    for (i, text) in HOSTILE.iter().enumerate() {
        let registry = serde_json::json!({
            "registry_version": "1.0.0",
            "generated_at": "2026-01-01T00:00:00+00:00",
            "skills": [{"name": text, "version": format!("0.{i}.0"), "status": text,
                        "description": text, "permissions": [text]}],
        });
        std::fs::write(&skills, serde_json::to_string_pretty(&registry).unwrap()).unwrap();
        let out = hostile::run(BIN, &p.dir(), &["record"], None);
        assert_eq!(out.code, 0, "{text:?}: {}", out.stderr);
        for args in [
            vec!["log"],
            vec!["log", "--skill", text],
            vec!["--skill", text],
            vec!["--format", "json"],
            vec!["--format", "patch"],
            vec!["check"],
        ] {
            hostile::run(BIN, &p.dir(), &args, None);
        }
    }
    // Compare every version with the next, in every format.
    let out = hostile::run(BIN, &p.dir(), &["log", "-n", "100"], None);
    let versions: Vec<&str> = out
        .stdout
        .split_whitespace()
        .filter(|w| w.len() == 14 && w.as_bytes()[4] == b'.')
        .collect();
    assert!(versions.len() >= 2, "{}", out.stdout);
    for pair in versions.windows(2) {
        for format in ["text", "json", "patch"] {
            hostile::run(
                BIN,
                &p.dir(),
                &["--compare", pair[0], pair[1], "--format", format],
                None,
            );
            hostile::run(
                BIN,
                &p.dir(),
                &["check", "--compare", pair[0], pair[1]],
                None,
            );
        }
    }
    let out = hostile::run(BIN, &p.dir(), &["rollback", versions[0], "--dry-run"], None);
    assert!(out.code <= 2, "{}", out.stderr);
    // A history file edited by hand to carry multi-byte text where a commit hash goes (the
    // log cut it at byte 7, inside a character; it now keeps 7 characters).
    let file = p.registry().join(format!("history/{}.json", versions[0]));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["source"] = serde_json::json!({"kind": "import-git", "commit": "日本語のコミット"});
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let out = hostile::run(BIN, &p.dir(), &["log"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("[git 日本語のコミッ]"),
        "{}",
        out.stdout
    );
}
