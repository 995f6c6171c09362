//! Approval requests never store or show a secret, and never show user text raw: the reason,
//! the arguments and the comments are redacted as stored, listings redact and escape, and the
//! approval still binds to the original subject (the digest is computed before redaction, the
//! same way by `request` and `check`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn assert_terminal_safe(what: &str, text: &str) {
    for c in text.chars() {
        let bad = matches!(c,
            '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "{what} carries a raw {c:?}: {text:?}");
    }
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: betty_testkit::keys::Keyring,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let reg = root.join("registry");
        std::fs::create_dir_all(reg.join("approvals")).unwrap();
        std::fs::write(reg.join("audit_log.json"), "[\n]\n").unwrap();
        std::fs::write(
            reg.join("approvals/groups.yaml"),
            "groups:\n  security: [alice@x.com, bob@x.com]\n",
        )
        .unwrap();
        // `--skill NAME` binds to the registered entry.
        std::fs::write(
            reg.join("skills.json"),
            r#"{"registry_version": "1.0.0", "generated_at": "2026-01-01T00:00:00+00:00", "skills": [
  {"name": "vault.rotate", "version": "1.0.0", "description": "Rotate secrets", "status": "active"},
  {"name": "x.y", "version": "1.0.0", "description": "x", "status": "active"}
]}"#,
        )
        .unwrap();
        let keys = betty_testkit::keys::Keyring::new(&root.join("keys"), &["dev", "alice", "bob"])
            .expect("ssh-keygen (install openssh-client)");
        keys.write_allowed_signers(
            &reg.join("approvals/allowed_signers"),
            &[
                ("dev@x.com", "dev"),
                ("alice@x.com", "alice"),
                ("bob@x.com", "bob"),
            ],
        );
        Env {
            _dir: dir,
            root,
            keys,
        }
    }

    /// Runs as `user`, signing with their key where the subcommand signs.
    fn run(&self, user: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_approval-queue"));
        cmd.args(args);
        // Only a command that acts as someone takes `--user` (a read-only one refuses it).
        if args
            .first()
            .is_some_and(|a| ["request", "approve", "reject", "revoke", "cancel"].contains(a))
        {
            cmd.args(["--user", user])
                .arg("--key")
                .arg(self.keys.key(user.split('@').next().unwrap_or(user)));
        }
        let out = cmd
            .current_dir(&self.root)
            .env_remove("BETTY_USER")
            .env_remove("BETTY_REGISTRY")
            .env_remove("BETTY_HOME")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(101), "{}", text(&out.stderr));
        out
    }

    fn reg(&self) -> PathBuf {
        self.root.join("registry")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn all_files(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
}

const SECRET: &str = "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[test]
fn secrets_are_redacted_as_stored_and_the_approval_still_binds() {
    let env = Env::new();
    let token_arg = format!("token={SECRET}");
    let subject = [
        "--operation",
        "rotate",
        "--skill",
        "vault.rotate",
        "--arg",
        token_arg.as_str(),
        "--arg",
        "url=https://ada:hunter2@db.example.com/x",
    ];
    let mut request: Vec<&str> = vec!["request"];
    request.extend(subject);
    request.extend([
        "--approvers",
        "security",
        "--required",
        "1",
        "--reason",
        "rotate with Bearer abcDEF123456789 \x1b]0;pwned\x07\u{202e}",
        "--format",
        "json",
    ]);
    let out = env.run("dev@x.com", &request);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let approve = env.run(
        "alice@x.com",
        &["approve", &id, "--comment", "ok, password=hunter2 \x1b[2J"],
    );
    assert_eq!(approve.status.code(), Some(0), "{}", text(&approve.stderr));
    assert_terminal_safe("approve", &text(&approve.stdout));

    // Nothing in the registry (request file, audit trail, events) holds the secrets.
    let mut everything = String::new();
    all_files(&env.reg(), &mut everything);
    for secret in [SECRET, "hunter2", "abcDEF123456789"] {
        assert!(
            !everything.contains(secret),
            "{secret} stored: {everything}"
        );
    }
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.reg().join(format!("approvals/{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["context"]["args"]["token"], "[REDACTED]");
    assert_eq!(
        stored["context"]["args"]["url"],
        "https://ada:[REDACTED]@db.example.com/x"
    );
    assert!(
        stored["reason"]
            .as_str()
            .unwrap()
            .starts_with("rotate with Bearer [REDACTED] ")
    );

    // `check` with the same (original) arguments finds the approval; other arguments do not.
    let mut check: Vec<&str> = vec!["check"];
    check.extend(subject);
    let ok = env.run("dev@x.com", &check);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    let other_arg = "token=ghp_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let mut other = check.clone();
    other[6] = other_arg;
    assert_eq!(env.run("dev@x.com", &other).status.code(), Some(1));

    // Listings and status: escaped, redacted, in text and JSON.
    for args in [
        vec!["list"],
        vec!["status", id.as_str()],
        vec!["list", "--format", "json"],
    ] {
        let out = env.run("dev@x.com", &args);
        let stdout = text(&out.stdout);
        // JSON keeps the exact text (its own escaping covers C0); text is escaped.
        if !args.contains(&"json") {
            assert_terminal_safe("listing", &stdout);
        }
        assert!(
            !stdout.contains("hunter2") && !stdout.contains(SECRET),
            "{stdout}"
        );
    }
    let status = text(&env.run("dev@x.com", &["status", &id]).stdout);
    assert!(status.contains("\\x1b]0;pwned\\x07\\u{202e}"), "{status}");
    assert!(status.contains("password=[REDACTED] \\x1b[2J"), "{status}");
}

#[test]
fn a_request_file_written_by_someone_else_is_shown_redacted_and_escaped() {
    let env = Env::new();
    let id = "apr-0000000000000000000000000000abcd";
    std::fs::write(
        env.reg().join(format!("approvals/{id}.json")),
        serde_json::json!({
            "schema_version": 1, "id": id, "operation": "deploy\u{1b}[2J",
            "skill": "evil\u{202e}skill", "requested_by": "mallory@x.com\r\nforged",
            "requested_at": "2026-11-24T08:00:00.000000Z",
            "reason": format!("use {SECRET}"), "context": {"api_key": "k-123"},
            "subject_digest": format!("sha256:{}", "0".repeat(64)), "approvers": "security",
            "required": 1, "expires_at": "2999-01-01T00:00:00.000000Z", "status": "pending",
            "decisions": []
        })
        .to_string(),
    )
    .unwrap();
    for args in [vec!["list"], vec!["status", id]] {
        let stdout = text(&env.run("dev@x.com", &args).stdout);
        assert_terminal_safe("listing", &stdout);
        assert!(!stdout.contains(SECRET), "{stdout}");
        assert!(stdout.contains("evil\\u{202e}skill"), "{stdout}");
    }
    let json = text(&env.run("dev@x.com", &["list", "--format", "json"]).stdout);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["requests"][0]["context"]["api_key"], "[REDACTED]");
    assert_eq!(v["requests"][0]["skill"], "evil\u{202e}skill");
}

#[test]
fn notifications_are_escaped_and_redacted() {
    let env = Env::new();
    let http = betty_testkit::loopback::HttpServer::start();
    std::fs::write(
        env.reg().join("approvals/notify.yaml"),
        format!(
            "notify:\n  slack: [{}]\n  webhooks: [{}]\n",
            http.url("/hook"),
            http.url("/json")
        ),
    )
    .unwrap();
    let arg = format!("api_key={SECRET}");
    let out = env.run(
        "dev@x.com",
        &[
            "request",
            "--operation",
            "deploy<!channel>\u{1b}[2J",
            "--skill",
            "x.y",
            "--arg",
            &arg,
            "--approvers",
            "security",
            "--reason",
            "r",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let slack = http.requests_to("/hook")[0].json();
    let slack = slack["text"].as_str().unwrap();
    assert!(
        slack.contains("deploy&lt;!channel&gt;\\x1b[2J on x.y"),
        "{slack}"
    );
    let hook = http.requests_to("/json")[0].text();
    assert!(!hook.contains(SECRET), "{hook}");
    assert!(
        hook.contains("[REDACTED]") || hook.contains("sha256:"),
        "{hook}"
    );
}
