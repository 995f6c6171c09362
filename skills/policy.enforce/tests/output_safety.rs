//! Output that cannot be turned against its reader: user text with terminal escapes, bidi
//! overrides and line breaks is shown escaped in the text report and in error messages, and
//! secrets in a manifest never reach the terminal.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_policy-enforce");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");

/// Characters that must never reach a terminal raw (line breaks of the layout aside).
fn assert_terminal_safe(what: &str, text: &str) {
    for c in text.chars() {
        let bad = matches!(c,
            '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what} carries a raw {:?}: {text:?}", c);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().ends_with(".lock") {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn run(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("BETTY_REGISTRY")
        .env_remove("BETTY_HOME")
        .env_remove("RUST_LOG")
        .env("BETTY_USER", "tester@example.com")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(code, 101, "panic: {stderr}");
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn a_hostile_skill_name_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(BUNDLED), &dir.path().join("registry"));
    let name = "Bad\x1b]0;pwned\x07\x1b[2J\u{9b}1m\u{202e}Name\r\nforged";
    let (code, stdout, stderr) = run(dir.path(), &["--action", "create", "--skill-name", name]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_terminal_safe("stdout", &stdout);
    assert_terminal_safe("stderr", &stderr);
    assert!(
        stdout.contains("Bad\\x1b]0;pwned\\x07\\x1b[2J\\u{9b}1m\\u{202e}Name\\r\\nforged"),
        "{stdout}"
    );
    // The seed's layout is unchanged for an ordinary name.
    let (code, stdout, _) = run(
        dir.path(),
        &["--action", "create", "--skill-name", "BadName"],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with("❌ Policy violation: skill-naming-convention\n"),
        "{stdout}"
    );
    assert!(stdout.contains("`BadName` does not match"), "{stdout}");
}

#[test]
fn a_hostile_manifest_and_file_name_are_shown_escaped_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(BUNDLED), &dir.path().join("registry"));
    let skill = dir.path().join("skills/evil.skill");
    std::fs::create_dir_all(&skill).unwrap();
    std::fs::write(
        skill.join("skill.yaml"),
        "name: \"Evil\\e[31m\\u202eName\"\nversion: 1.0.0\ndescription: \"token=ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa \\e]8;;http://x\\a\"\nstatus: \"bogus\\e[2J\"\npermissions: [filesystem:read]\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(dir.path(), &["skills/evil.skill/skill.yaml"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_terminal_safe("stdout", &stdout);
    assert_terminal_safe("stderr", &stderr);
    assert!(stdout.contains("Evil\\x1b[31m\\u{202e}Name"), "{stdout}");
    assert!(!stdout.contains("ghp_aaaa"), "{stdout}");

    // An error quoting a file name: escaped on stderr, exit 2.
    let (code, _, stderr) = run(dir.path(), &["missing\x1b[2J\u{202e}.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert_terminal_safe("stderr", &stderr);
    assert!(stderr.contains("missing\\x1b[2J\\u{202e}.yaml"), "{stderr}");
}

#[test]
fn a_usage_error_quoting_an_argument_is_escaped_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        dir.path(),
        &["--format", "x\x1b[2Jpassword=hunter2", "--action", "create"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert_terminal_safe("stderr", &stderr);
    assert!(stderr.contains("for '--format <FORMAT>'"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
