//! `registry-diff` text output cannot be turned against its reader: names, field values,
//! messages and committer e-mails are shown escaped, and secrets in values are redacted.

mod common;

use common::*;
use serde_json::json;

fn assert_terminal_safe(what: &str, text: &str) {
    for c in text.chars() {
        let bad = matches!(c,
            '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what} carries a raw {c:?}: {text:?}");
    }
}

#[test]
fn diff_check_and_log_show_hostile_text_escaped_and_redacted() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("registry")).unwrap();
    git_repo(t.path());
    commit_registry(
        t.path(),
        &registry(json!([
            {"name": "evil\u{1b}]0;pwned\u{7}.skill", "version": "1.0.0",
             "description": "old", "status": "active", "permissions": ["filesystem.read"]}
        ])),
        "first",
        None,
    );
    commit_registry(
        t.path(),
        &registry(json!([
            {"name": "evil\u{1b}]0;pwned\u{7}.skill", "version": "1.0.0",
             "description": "new\r\n\u{1b}[2J\u{202e} https://ada:hunter2@db.example.com/",
             "status": "active", "permissions": ["filesystem"]},
            {"name": "added\u{9b}31m", "version": "0.1.0", "description": "x", "status": "active"}
        ])),
        "second",
        None,
    );
    let diff = run(t.path(), &["--compare", "HEAD~1", "HEAD"]);
    assert_eq!(code(&diff), 0, "{}", stderr(&diff));
    let out = stdout(&diff);
    assert_terminal_safe("diff", &out);
    assert!(
        out.contains("Changed: evil\\x1b]0;pwned\\x07.skill\n"),
        "{out}"
    );
    assert!(
        out.contains("new\\r\\n\\x1b[2J\\u{202e} https://ada:[REDACTED]@db.example.com/"),
        "{out}"
    );
    assert!(out.contains("Added: added\\u{9b}31m\n"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");

    let check = run(t.path(), &["check", "--compare", "HEAD~1", "HEAD"]);
    assert_eq!(code(&check), 1, "{}", stderr(&check));
    assert_terminal_safe("check", &stdout(&check));
    assert!(stdout(&check).contains("evil\\x1b]0;pwned\\x07.skill"));

    // History imported from git: committer e-mails are user text too.
    let import = cmd(t.path())
        .args(["import-git"])
        .output()
        .expect("run registry-diff");
    assert_eq!(code(&import), 0, "{}", stderr(&import));
    let log = run(
        t.path(),
        &["log", "--skill", "evil\u{1b}]0;pwned\u{7}.skill"],
    );
    assert_eq!(code(&log), 0, "{}", stderr(&log));
    assert_terminal_safe("log", &stdout(&log));
    assert!(!stdout(&log).contains("hunter2"), "{}", stdout(&log));
}
