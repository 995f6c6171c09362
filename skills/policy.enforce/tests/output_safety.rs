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

const LEAKY: &str = "name: leaky.tool\nversion: 0.1.0\ndescription: Posts reports to a webhook somewhere.\nstatus: draft\npermissions:\n  - \"network:https://ada:hunter2@hooks.example.com/x\"\ndependencies:\n  - ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  - \"token: s3cr3tvalue\"\n";
const LEAKED: [&str; 3] = ["hunter2", "ghp_aaaa", "s3cr3tvalue"];

/// Before: only the text report was redacted; JSON, SARIF and JUnit quoted a manifest's
/// secrets in finding details and snippets (six, six and two times here), straight into CI
/// logs and code-scanning uploads. The redacted pieces are pinned in every format.
#[test]
fn machine_formats_show_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(BUNDLED), &dir.path().join("registry"));
    std::fs::create_dir_all(dir.path().join("skills/leaky.tool")).unwrap();
    std::fs::write(dir.path().join("skills/leaky.tool/skill.yaml"), LEAKY).unwrap();
    let check = |format: &str| {
        let (code, stdout, stderr) = run(
            dir.path(),
            &[
                "--action",
                "register",
                "skills/leaky.tool/skill.yaml",
                "--format",
                format,
            ],
        );
        assert_eq!(code, 1, "{format}: {stdout}{stderr}");
        for secret in LEAKED {
            assert!(
                !stdout.contains(secret),
                "{format} shows {secret}: {stdout}"
            );
            assert!(!stderr.contains(secret), "{format} logs {secret}: {stderr}");
        }
        stdout
    };
    let expected = [
        ("`[REDACTED]` is not registered", "  - [REDACTED]"),
        (
            "`token: [REDACTED]` is not registered",
            "  - \"token: [REDACTED]\"",
        ),
        (
            "`network:https://ada:[REDACTED]@hooks.example.com/x` needs approval",
            "  - \"network:https://ada:[REDACTED]@hooks.example.com/x\"",
        ),
    ];

    let json: serde_json::Value = serde_json::from_str(&check("json")).unwrap();
    let shown: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let detail = f["detail"].as_str().unwrap();
            let cut = detail.find(": 1 approval").unwrap_or(detail.len());
            (
                detail[..cut].to_string(),
                f["snippet"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(d, s)| (d.to_string(), s.to_string()))
        .collect();
    assert_eq!(shown, want);
    // The digest an approval binds to is the manifest's own, untouched.
    let approval = json["findings"][2]["approval"]["subject_digest"].clone();
    assert!(
        approval.as_str().is_some_and(|d| d.starts_with("sha256:")),
        "{json}"
    );

    let sarif: serde_json::Value = serde_json::from_str(&check("sarif")).unwrap();
    let shown: Vec<(String, String)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = r["message"]["text"].as_str().unwrap();
            let detail = text.split_once(": ").unwrap().1;
            let cut = detail.find(": 1 approval").unwrap_or(detail.len());
            (
                detail[..cut].to_string(),
                r["locations"][0]["physicalLocation"]["region"]["snippet"]["text"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(shown, want);
    assert_eq!(sarif["version"], "2.1.0");

    let junit = check("junit");
    let failures: Vec<&str> = junit.lines().filter(|l| l.contains("<failure ")).collect();
    assert_eq!(failures.len(), 2, "{junit}");
    assert_eq!(
        failures[0],
        "      <failure message=\"Dependency is not registered\" type=\"policy-violation\">skills/leaky.tool/skill.yaml:8:5: [blocking] dependency-hygiene/dependencies-registered: Dependency is not registered (`[REDACTED]` is not registered)&#10;skills/leaky.tool/skill.yaml:9:5: [blocking] dependency-hygiene/dependencies-registered: Dependency is not registered (`token: [REDACTED]` is not registered)&#10;</failure>"
    );
    assert!(
        failures[1].contains(
            "(`network:https://ada:[REDACTED]@hooks.example.com/x` needs approval: 1 approval(s) from `security` for `register` of `leaky.tool` with subject_digest sha256:"
        ),
        "{junit}"
    );

    // The per-control report quotes the same details as evidence.
    let (code, stdout, stderr) = run(
        dir.path(),
        &["report", "--framework", "soc2", "--format", "json"],
    );
    assert!(code == 0 || code == 1, "{stdout}{stderr}");
    for secret in LEAKED {
        assert!(!stdout.contains(secret), "report shows {secret}: {stdout}");
    }
    assert!(
        stdout.contains("`[REDACTED]` is not registered"),
        "{stdout}"
    );
}
