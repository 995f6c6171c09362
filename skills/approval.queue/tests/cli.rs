//! `approval-queue` end to end: the real binary on a registry in a temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: betty_testkit::keys::Keyring,
}

/// The subcommands that sign (and so take `--key`).
const SIGNING: [&str; 5] = ["request", "approve", "reject", "revoke", "cancel"];

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let reg = root.join("registry");
        std::fs::create_dir_all(reg.join("approvals")).unwrap();
        std::fs::write(reg.join("audit_log.json"), "[\n]\n").unwrap();
        std::fs::write(
            reg.join("approvals/groups.yaml"),
            "groups:\n  security: [alice@x.com, bob@x.com, carol@x.com]\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("skills/deploy.release")).unwrap();
        std::fs::write(
            root.join("skills/deploy.release/skill.yaml"),
            "name: deploy.release\nversion: 1.0.0\ndescription: Ship it\nstatus: active\npermissions: [network:http]\n",
        )
        .unwrap();
        // Real keys: everyone but `eve` is in allowed_signers; `mallory` is listed but in no group.
        let keys = betty_testkit::keys::Keyring::new(
            &root.join("keys"),
            &["dev", "alice", "bob", "carol", "mallory", "eve"],
        )
        .expect("ssh-keygen (install openssh-client)");
        keys.write_allowed_signers(
            &reg.join("approvals/allowed_signers"),
            &[
                ("dev@x.com", "dev"),
                ("alice@x.com", "alice"),
                ("bob@x.com", "bob"),
                ("carol@x.com", "carol"),
                ("mallory@x.com", "mallory"),
            ],
        );
        Env {
            _dir: dir,
            root,
            keys,
        }
    }

    /// Runs as `user`: claims the identity and, for a signing subcommand, signs with the key
    /// named by the address's local part.
    fn run(&self, user: &str, args: &[&str]) -> Output {
        self.command(user, args).output().unwrap()
    }

    /// Runs signing with the key `key`, claiming nothing unless `args` do.
    fn with_key(&self, key: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_approval-queue"));
        cmd.args(args)
            .arg("--key")
            .arg(self.keys.key(key))
            .current_dir(&self.root)
            .env_remove("BETTY_REGISTRY")
            .env_remove("BETTY_USER")
            .env_remove("BETTY_HOME")
            .env("NO_COLOR", "1");
        cmd
    }

    /// The command [`Env::run`] runs.
    fn command(&self, user: &str, args: &[&str]) -> Command {
        let key = user.split('@').next().unwrap_or(user);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_approval-queue"));
        cmd.args(args);
        // Only a command that acts as someone takes `--user` (a read-only one refuses it).
        if args.first().is_some_and(|a| SIGNING.contains(a)) {
            cmd.args(["--user", user])
                .arg("--key")
                .arg(self.keys.key(key));
        }
        cmd.current_dir(&self.root)
            .env_remove("BETTY_REGISTRY")
            .env_remove("BETTY_USER")
            .env_remove("BETTY_HOME")
            .env("NO_COLOR", "1");
        cmd
    }

    fn manifest(&self) -> String {
        self.root
            .join("skills/deploy.release/skill.yaml")
            .display()
            .to_string()
    }

    fn request(&self, required: &str) -> String {
        let m = self.manifest();
        let out = self.run(
            "dev@x.com",
            &[
                "request",
                "--operation",
                "deploy",
                "--manifest",
                &m,
                "--approvers",
                "security",
                "--required",
                required,
                "--reason",
                "release 1.0",
                "--format",
                "json",
            ],
        );
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    fn registry(&self) -> PathBuf {
        self.root.join("registry")
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn events(reg: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(reg.join("telemetry/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_of_a_group_approve_and_the_approval_binds_to_the_manifest() {
    let env = Env::new();
    let id = env.request("2");
    let m = env.manifest();
    let check = ["check", "--operation", "deploy", "--manifest", m.as_str()];
    assert_eq!(env.run("dev@x.com", &check).status.code(), Some(3));
    let a = env.run("alice@x.com", &["approve", &id, "--comment", "looks fine"]);
    assert_eq!(a.status.code(), Some(3), "{}", stderr(&a));
    assert!(stdout(&a).contains("1/2"), "{}", stdout(&a));
    // The same approver again: idempotent, still 1/2.
    let again = env.run("alice@x.com", &["approve", &id]);
    assert_eq!(again.status.code(), Some(3));
    assert!(stdout(&again).contains("1/2"));
    let b = env.run("bob@x.com", &["approve", &id]);
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    assert_eq!(
        env.run("dev@x.com", &["status", &id]).status.code(),
        Some(0)
    );
    assert_eq!(env.run("dev@x.com", &check).status.code(), Some(0));
    // Change the manifest: the approval no longer applies.
    std::fs::write(
        env.root.join("skills/deploy.release/skill.yaml"),
        "name: deploy.release\nversion: 1.0.1\ndescription: Ship it\nstatus: active\npermissions: [network:http]\n",
    )
    .unwrap();
    assert_eq!(env.run("dev@x.com", &check).status.code(), Some(1));
    // Every transition was audited and the chain verifies; events were recorded.
    let log = betty_core::audit::AuditLog::new(&env.registry().join("audit_log.json"));
    let report = log.verify(None).unwrap();
    assert!(report.ok());
    // Each transition is an intent entry before the file changed and a commit entry after.
    assert_eq!(report.hashed_entries, 6);
    assert!(report.unfinished.is_empty(), "{:?}", report.unfinished);
    let mut phases = Vec::new();
    log.for_each_entry(|_, e| phases.push(e["phase"].as_str().unwrap_or("").to_string()))
        .unwrap();
    assert_eq!(
        phases,
        ["intent", "commit", "intent", "commit", "intent", "commit"]
    );
    let types: Vec<String> = events(&env.registry())
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "approval.requested",
            "approval.decided",
            "approval.approved"
        ]
    );
    // The stored file matches the published schema.
    let text =
        std::fs::read_to_string(env.registry().join(format!("approvals/{id}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    betty_core::schema::validate(betty_core::schema::SchemaId::ApprovalRequest, &v).unwrap();
}

#[test]
fn refusals_and_rejection() {
    let env = Env::new();
    let id = env.request("1");
    let own = env.run("dev@x.com", &["approve", &id]);
    assert_eq!(own.status.code(), Some(2));
    assert!(stderr(&own).contains("may not decide"), "{}", stderr(&own));
    let outsider = env.run("mallory@x.com", &["approve", &id]);
    assert_eq!(outsider.status.code(), Some(2));
    assert!(
        stderr(&outsider).contains("not a member"),
        "{}",
        stderr(&outsider)
    );
    let r = env.run("carol@x.com", &["reject", &id, "--comment", "not today"]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    let late = env.run("alice@x.com", &["approve", &id]);
    assert_eq!(late.status.code(), Some(1));
    assert_eq!(
        env.run("dev@x.com", &["status", &id]).status.code(),
        Some(1)
    );
    let list = env.run("dev@x.com", &["list", "--status", "rejected"]);
    assert!(stdout(&list).contains(&id));
}

#[test]
fn bad_input_is_exit_2_and_writes_nothing() {
    let env = Env::new();
    let before = std::fs::read(env.registry().join("audit_log.json")).unwrap();
    for args in [
        vec!["status", "../../etc/passwd"],
        vec!["approve", "no-such-request"],
        vec![
            "request",
            "--operation",
            "deploy",
            "--approvers",
            "security",
            "--reason",
            "x",
            "--expires-in",
            "soon",
        ],
        vec![
            "request",
            "--operation",
            "deploy",
            "--approvers",
            "../x",
            "--reason",
            "x",
        ],
        vec![
            "request",
            "--operation",
            "deploy",
            "--approvers",
            "security",
            "--reason",
            "x",
            "--required",
            "0",
        ],
        vec!["check", "--operation", "deploy", "--arg", "novalue"],
    ] {
        let out = env.run("dev@x.com", &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    std::fs::write(
        env.registry().join("approvals/apr-broken.json"),
        "{\"id\": ",
    )
    .unwrap();
    let out = env.run("dev@x.com", &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("apr-broken.json:1:"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(env.registry().join("audit_log.json")).unwrap(),
        before
    );
}

#[test]
fn a_request_notifies_its_group_and_each_decision_the_requester() {
    use betty_testkit::loopback::{HttpServer, SmtpServer};
    let env = Env::new();
    let http = HttpServer::start();
    let smtp = SmtpServer::start();
    std::fs::write(
        env.registry().join("approvals/groups.yaml"),
        format!(
            "groups:\n  security:\n    members: [alice@x.com, bob@x.com, carol@x.com, dev@x.com]\n    notify:\n      slack: [{}]\n      webhooks: [{}]\n      email: members\n",
            http.url("/group-slack"),
            http.url("/group-hook")
        ),
    )
    .unwrap();
    std::fs::write(
        env.registry().join("approvals/notify.yaml"),
        format!(
            "smtp: {{relay: '{}', from: betty@x.com}}\nrequesters:\n  Carol@X.com: {{webhooks: [{}]}}\n",
            smtp.relay(),
            http.url("/carol")
        ),
    )
    .unwrap();
    let id = env.request("2");
    // The group hears of the request: its Slack hook, its webhook, a mail to every member
    // but the requester; the requester hears nothing of their own act.
    let slack = http.requests_to("/group-slack");
    assert_eq!(slack.len(), 1);
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains(&id) && text.contains("requested by dev@x.com"),
        "{text}"
    );
    let hook = http.requests_to("/group-hook");
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].json()["event"], "approval.requested");
    assert_eq!(hook[0].json()["request"]["id"], id.as_str());
    assert_eq!(hook[0].json()["state"], "pending");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].from, "betty@x.com");
    assert_eq!(mails[0].to, ["alice@x.com", "bob@x.com", "carol@x.com"]);
    assert!(mails[0].header("Subject").unwrap().contains(&id));

    // A decision is sent to the requester (a mail to their principal), not to the group.
    let out = env.run("alice@x.com", &["approve", &id, "--comment", "ok"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1].to, ["dev@x.com"]);
    let subject = mails[1].header("Subject").unwrap();
    assert!(
        subject.contains("decided") && subject.contains(&id),
        "{subject}"
    );
    assert!(
        mails[1].body().contains("by alice@x.com"),
        "{}",
        mails[1].body()
    );
    assert_eq!(http.requests_to("/group-slack").len(), 1);
    let out = env.run("bob@x.com", &["approve", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 3);
    assert!(mails[2].header("Subject").unwrap().contains("approved"));
    assert!(http.requests_to("/carol").is_empty());
    assert!(
        events(&env.registry())
            .iter()
            .all(|e| e["event_type"] != "approval.notification_failed")
    );

    // A requester with their own entry (matched as a person: case-folded) is told there.
    let m = env.manifest();
    let out = env.run(
        "carol@x.com",
        &[
            "request",
            "--operation",
            "deploy",
            "--manifest",
            &m,
            "--approvers",
            "security",
            "--required",
            "1",
            "--reason",
            "r",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let carol_id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        smtp.mails().last().unwrap().to,
        ["alice@x.com", "bob@x.com", "dev@x.com"]
    );
    let out = env.run("bob@x.com", &["reject", &carol_id, "--comment", "no"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let to_carol = http.requests_to("/carol");
    assert_eq!(to_carol.len(), 1);
    assert_eq!(to_carol[0].json()["event"], "approval.rejected");
    assert_eq!(to_carol[0].json()["actor"], "bob@x.com");
    assert_eq!(
        smtp.mails().len(),
        4,
        "the entry replaces the mail to the principal"
    );
}

#[test]
fn failed_notifications_are_recorded_and_never_fail_the_command() {
    use betty_testkit::loopback::{HttpServer, SmtpServer, dead_addr};
    let env = Env::new();
    let http = HttpServer::answering(|_| 503);
    let smtp = SmtpServer::start();
    let dead = dead_addr();
    // The first form of the file (the relay under `notify.email`) still works.
    std::fs::write(
        env.registry().join("approvals/notify.yaml"),
        format!(
            "notify:\n  slack: [{}]\n  webhooks: [http://{dead}/gone]\n  email:\n    smtp: {}\n    from: betty@x.com\n    to: [sec@x.com]\n",
            http.url("/hook"),
            smtp.relay()
        ),
    )
    .unwrap();
    let id = env.request("1");
    assert_eq!(http.requests_to("/hook").len(), 1);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["sec@x.com"]);
    assert!(mails[0].header("Subject").unwrap().contains("requested"));
    let failed: Vec<_> = events(&env.registry())
        .into_iter()
        .filter(|e| e["event_type"] == "approval.notification_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    let targets: Vec<&str> = failed
        .iter()
        .map(|e| e["context"]["target"].as_str().unwrap())
        .collect();
    assert!(targets.iter().any(|t| t.ends_with("/gone")), "{targets:?}");
    assert!(targets.iter().any(|t| t.ends_with("/hook")), "{targets:?}");
    assert!(
        failed
            .iter()
            .all(|e| e["context"]["approval_id"] == id.as_str())
    );
    assert!(
        failed
            .iter()
            .any(|e| e["context"]["error"].as_str().unwrap().contains("503"))
    );
    // The request itself stands: it is pending and its audit entries are there.
    let out = env.run("dev@x.com", &["status", &id]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn malformed_notification_settings_are_exit_2_before_anything_changes() {
    let env = Env::new();
    for (file, text, says) in [
        (
            "notify.yaml",
            "notify:\n  slak: [http://x/hook]\n",
            "unknown key `slak`",
        ),
        (
            "notify.yaml",
            "notify:\n  webhooks: [ftp://x/hook]\n",
            "not an http:// or https:// URL",
        ),
        (
            "notify.yaml",
            "notify:\n  email: [not an address]\n",
            "not an address",
        ),
        ("notify.yaml", "smtp: {relay: 127.0.0.1:25}\n", "`from`"),
        (
            "notify.yaml",
            "requesters: {dev@x.com: {email: members}}\n",
            "approver groups",
        ),
        (
            "groups.yaml",
            "groups:\n  security:\n    members: [alice@x.com, bob@x.com]\n    notify: {slack: hooks.example.com}\n",
            "not an http:// or https:// URL",
        ),
    ] {
        let path = env.registry().join("approvals").join(file);
        let before = std::fs::read(&path).ok();
        std::fs::write(&path, text).unwrap();
        let snap = snapshot(&env.registry());
        let m = env.manifest();
        let out = env.run(
            "dev@x.com",
            &[
                "request",
                "--operation",
                "deploy",
                "--manifest",
                &m,
                "--approvers",
                "security",
                "--reason",
                "r",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says) && err.contains(file), "{text}: {err}");
        assert_eq!(snapshot(&env.registry()), snap, "{text}: something changed");
        match before {
            Some(b) => std::fs::write(&path, b).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
    }
}

/// Every file of the registry and its bytes, sidecar lock files aside (they hold no data).
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
                out.insert(p, b"<dir>".to_vec());
            } else if meta.is_symlink() {
                out.insert(
                    p.clone(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else if p.extension().is_none_or(|x| x != "lock") {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Ways to make the audit trail impossible to append to, even for root.
fn break_audit_trail(log: &Path, how: &str) {
    match how {
        "torn tail" => {
            let text = std::fs::read(log).unwrap();
            std::fs::write(log, &text[..text.len() - 4]).unwrap();
        }
        "folder" => {
            std::fs::remove_file(log).unwrap();
            std::fs::create_dir(log).unwrap();
            std::fs::write(log.join("x"), "").unwrap();
        }
        "dangling symlink" => {
            std::fs::remove_file(log).unwrap();
            std::os::unix::fs::symlink(log.with_file_name("gone/audit_log.json"), log).unwrap();
        }
        other => unreachable!("{other}"),
    }
}

#[test]
fn an_audit_trail_that_cannot_be_appended_blocks_every_transition() {
    for how in ["torn tail", "folder", "dangling symlink"] {
        let env = Env::new();
        let id = env.request("1");
        let cancel_me = env.request("2");
        break_audit_trail(&env.registry().join("audit_log.json"), how);
        let before = snapshot(&env.registry());
        for (user, args) in [
            ("alice@x.com", vec!["approve", id.as_str()]),
            ("bob@x.com", vec!["reject", id.as_str()]),
            ("dev@x.com", vec!["cancel", cancel_me.as_str()]),
        ] {
            let out = env.run(user, &args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{how}: {args:?}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("audit_log.json"),
                "{how}: {}",
                stderr(&out)
            );
            assert_eq!(
                snapshot(&env.registry()),
                before,
                "{how}: {args:?} changed a file"
            );
        }
        // A new request is refused too, and leaves no request file behind.
        let m = env.manifest();
        let out = env.run(
            "dev@x.com",
            &[
                "request",
                "--operation",
                "deploy",
                "--manifest",
                &m,
                "--approvers",
                "security",
                "--required",
                "1",
                "--reason",
                "again",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{how}: {}", stderr(&out));
        assert_eq!(
            snapshot(&env.registry()),
            before,
            "{how}: request changed a file"
        );
        // And a request's state cannot be told either (whether a single-use approval was
        // spent is in the audit trail): exit 2 naming it, never a guess.
        let status = env.run("dev@x.com", &["status", &id]);
        assert_eq!(status.status.code(), Some(2), "{how}: {}", stderr(&status));
        assert!(
            stderr(&status).contains("audit_log.json"),
            "{how}: {}",
            stderr(&status)
        );
        assert_eq!(
            snapshot(&env.registry()),
            before,
            "{how}: status changed a file"
        );
    }
}

/// Every binary's events go through the one stream appender, so they rotate too.
#[test]
fn approval_events_rotate_like_every_binary_s() {
    let env = Env::new();
    let id = env.request("2");
    let out = env
        .command("alice@x.com", &["approve", &id])
        .env("BETTY_TELEMETRY_ROTATE_BYTES", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let rotated: Vec<String> = std::fs::read_dir(env.registry().join("telemetry"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events-") && n.ends_with(".jsonl"))
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let live = std::fs::read_to_string(env.registry().join("telemetry/events.jsonl")).unwrap();
    assert_eq!(live.lines().count(), 1);
    assert!(live.contains("approval.decided"), "{live}");
}

/// A decision killed with SIGKILL at any instant leaves no change, an intent without the
/// change, or the change with its intent entry; never a change the audit trail does not name.
#[test]
fn a_decision_killed_at_any_instant_is_never_unaudited() {
    let env = Env::new();
    let spawn = |id: &str| {
        env.command("alice@x.com", &["approve", id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // One full run sets the range of the random delays; it is no time limit.
    let id = env.request("2");
    let started = std::time::Instant::now();
    assert_eq!(spawn(&id).wait().unwrap().code(), Some(3));
    let full = started.elapsed().as_micros() as u64 + 1;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let log = betty_core::audit::AuditLog::new(&env.registry().join("audit_log.json"));
    for _ in 0..20 {
        let id = env.request("2");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = spawn(&id);
        std::thread::sleep(std::time::Duration::from_micros(rng % (full + full / 4)));
        let _ = child.kill();
        let _ = child.wait();
        let text =
            std::fs::read_to_string(env.registry().join(format!("approvals/{id}.json"))).unwrap();
        let req: serde_json::Value = serde_json::from_str(&text).unwrap();
        let decided = !req["decisions"].as_array().unwrap().is_empty();
        let report = log.verify(None).unwrap();
        assert!(report.ok(), "{:?}", report.breaks);
        let mut intents = 0;
        log.for_each_entry(|_, e| {
            if e["phase"] == "intent"
                && e["operation"] == "approval.decided"
                && e["details"]["change"]["id"] == id.as_str()
            {
                intents += 1;
            }
        })
        .unwrap();
        assert!(
            !decided || intents == 1,
            "{id} was decided without its intent entry"
        );
        assert!(intents <= 1);
    }
}

fn refusals(reg: &Path) -> Vec<String> {
    events(reg)
        .iter()
        .filter(|e| e["event_type"] == "approval.refused")
        .map(|e| {
            e["context"]["approval"]["refusal"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_claimed_identity_without_its_key_is_refused_and_recorded() {
    let env = Env::new();
    let id = env.request("1");
    // Mallory's key, claiming to be alice (a member): by --user and by BETTY_USER.
    let by_flag = env
        .with_key("mallory", &["approve", &id, "--user", "alice@x.com"])
        .output()
        .unwrap();
    assert_eq!(by_flag.status.code(), Some(2), "{}", stderr(&by_flag));
    assert!(
        stderr(&by_flag).contains("not a principal of the key"),
        "{}",
        stderr(&by_flag)
    );
    let by_var = env
        .with_key("mallory", &["approve", &id])
        .env("BETTY_USER", "alice@x.com")
        .output()
        .unwrap();
    assert_eq!(by_var.status.code(), Some(2), "{}", stderr(&by_var));
    // Both attempts left a trace; the request is unchanged.
    assert_eq!(
        refusals(&env.registry()),
        ["claim_mismatch", "claim_mismatch"]
    );
    let status = env.run("dev@x.com", &["status", &id, "--format", "json"]);
    assert_eq!(status.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["decisions"].as_array().unwrap().len(), 0);
    // A key nobody listed is refused, and recorded.
    let eve = env.with_key("eve", &["approve", &id]).output().unwrap();
    assert_eq!(eve.status.code(), Some(2), "{}", stderr(&eve));
    assert!(stderr(&eve).contains("not listed"), "{}", stderr(&eve));
    // A member who is not in the group: recorded too.
    let out = env.run("mallory@x.com", &["approve", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        refusals(&env.registry()),
        [
            "claim_mismatch",
            "claim_mismatch",
            "unknown_key",
            "not_in_group"
        ]
    );
}

#[test]
fn the_requester_under_a_case_or_width_variant_cannot_approve() {
    let env = Env::new();
    // dev has a second key, listed under a variant spelling, and the group lists dev under
    // another: all of them are one person.
    env.keys.add("dev2");
    let signers = env.registry().join("approvals/allowed_signers");
    let mut text = std::fs::read_to_string(&signers).unwrap();
    text.push_str(&env.keys.line("DEV@X.COM", "dev2"));
    std::fs::write(&signers, text).unwrap();
    std::fs::write(
        env.registry().join("approvals/groups.yaml"),
        "groups:\n  security: [alice@x.com, bob@x.com, \" Dev@X.com \"]\n",
    )
    .unwrap();
    let id = env.request("1");
    for claim in ["DEV@X.COM", "\u{ff24}\u{ff25}\u{ff36}@x.com", " dev@x.com "] {
        let out = env
            .with_key("dev2", &["approve", &id, "--user", claim])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{claim:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("may not decide"),
            "{claim:?}: {}",
            stderr(&out)
        );
    }
    // A zero-width character in a claim is refused before anything else.
    let out = env
        .with_key("dev2", &["approve", &id, "--user", "dev\u{200b}@x.com"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        env.run("dev@x.com", &["status", &id]).status.code(),
        Some(3)
    );
    assert!(
        refusals(&env.registry())
            .iter()
            .all(|r| r == "self_approval")
    );
}

#[test]
fn requests_that_can_never_be_met_are_refused_and_write_nothing() {
    let env = Env::new();
    let m = env.manifest();
    let before = snapshot(&env.registry());
    for (who, extra, says) in [
        ("dev@x.com", vec!["--approvers", "nobody"], "not defined"),
        (
            "dev@x.com",
            vec!["--approvers", "security", "--required", "4"],
            "3 member(s)",
        ),
        // alice is in security: the two others are all that can approve her request.
        (
            "alice@x.com",
            vec!["--approvers", "security", "--required", "3"],
            "2 member(s)",
        ),
        (
            "dev@x.com",
            vec![
                "--approvers",
                "security",
                "--expires-at",
                "2020-01-01T00:00:00Z",
            ],
            "not in the future",
        ),
    ] {
        let mut args = vec![
            "request",
            "--operation",
            "deploy",
            "--manifest",
            &m,
            "--reason",
            "r",
        ];
        args.extend(&extra);
        let out = env.run(who, &args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{extra:?}: {}", stderr(&out));
    }
    assert_eq!(snapshot(&env.registry()), before);
}

#[test]
fn an_approver_revokes_before_use_and_wait_sees_the_decision() {
    let env = Env::new();
    let id = env.request("1");
    assert_eq!(
        env.run("alice@x.com", &["approve", &id]).status.code(),
        Some(0)
    );
    let out = env.run("alice@x.com", &["revoke", &id, "--comment", "wrong build"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Revoked: pending again, and alice cannot approve once more.
    assert_eq!(
        env.run("dev@x.com", &["status", &id]).status.code(),
        Some(3)
    );
    let again = env.run("alice@x.com", &["approve", &id]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    // Only the requester cancels.
    let out = env.run("bob@x.com", &["cancel", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // `wait` times out as pending, then sees bob's approval.
    let out = env.run(
        "dev@x.com",
        &["wait", &id, "--timeout", "1s", "--interval", "1s"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let waiter = env
        .command(
            "dev@x.com",
            &["wait", &id, "--timeout", "10m", "--interval", "1s"],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        env.run("bob@x.com", &["approve", &id]).status.code(),
        Some(0)
    );
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("approved"), "{}", stdout(&out));
}

#[test]
fn twenty_approvers_signing_at_once_are_all_recorded() {
    let env = Env::new();
    let names: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    let signers = env.registry().join("approvals/allowed_signers");
    let mut text = std::fs::read_to_string(&signers).unwrap();
    for n in &names {
        env.keys.add(n);
        text.push_str(&env.keys.line(&format!("{n}@x.com"), n));
    }
    std::fs::write(&signers, text).unwrap();
    let members: Vec<String> = names.iter().map(|n| format!("{n}@x.com")).collect();
    std::fs::write(
        env.registry().join("approvals/groups.yaml"),
        format!("groups:\n  security: [{}]\n", members.join(", ")),
    )
    .unwrap();
    let id = env.request("20");
    let children: Vec<_> = members
        .iter()
        .map(|m| {
            env.command(m, &["approve", &id])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text =
        std::fs::read_to_string(env.registry().join(format!("approvals/{id}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    betty_core::schema::validate(betty_core::schema::SchemaId::ApprovalRequest, &v).unwrap();
    assert_eq!(v["decisions"].as_array().unwrap().len(), 20, "{v:#}");
    let status = env.run("dev@x.com", &["status", &id, "--format", "json"]);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["approvals"].as_array().unwrap().len(), 20);
    let log = betty_core::audit::AuditLog::new(&env.registry().join("audit_log.json"));
    let report = log.verify(None).unwrap();
    assert!(report.ok() && report.unfinished.is_empty(), "{report:?}");
}

fn request_file(env: &Env, id: &str) -> PathBuf {
    env.registry().join(format!("approvals/{id}.json"))
}

fn read_request(env: &Env, id: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(request_file(env, id)).unwrap()).unwrap()
}

fn status_json(env: &Env, id: &str) -> (Option<i32>, serde_json::Value) {
    let out = env.run("dev@x.com", &["status", id, "--format", "json"]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
    )
}

/// Found by an attack on the signed model: a withdrawal is evidence wherever it is recorded.
#[test]
fn deleting_a_revoke_or_a_rejection_from_the_file_does_not_bring_an_approval_back() {
    let env = Env::new();
    let id = env.request("1");
    assert_eq!(
        env.run("alice@x.com", &["approve", &id]).status.code(),
        Some(0)
    );
    assert_eq!(
        env.run("alice@x.com", &["revoke", &id]).status.code(),
        Some(3)
    );
    let mut v = read_request(&env, &id);
    v["decisions"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["decision"] != "revoke");
    std::fs::write(request_file(&env, &id), v.to_string()).unwrap();
    let (code, s) = status_json(&env, &id);
    assert_eq!(code, Some(3), "{s:#}");
    // A rejection deleted from the file still rejects.
    let id = env.request("2");
    assert_eq!(
        env.run("alice@x.com", &["approve", &id]).status.code(),
        Some(3)
    );
    assert_eq!(
        env.run("carol@x.com", &["reject", &id]).status.code(),
        Some(1)
    );
    let mut v = read_request(&env, &id);
    v["decisions"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["decision"] != "reject");
    std::fs::write(request_file(&env, &id), v.to_string()).unwrap();
    assert_eq!(
        env.run("bob@x.com", &["approve", &id]).status.code(),
        Some(1)
    );
    let (code, s) = status_json(&env, &id);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["effective_status"], "rejected");
}

#[test]
fn the_order_of_decisions_in_the_file_changes_nothing() {
    let env = Env::new();
    let id = env.request("1");
    assert_eq!(
        env.run("alice@x.com", &["approve", &id]).status.code(),
        Some(0)
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        env.run("bob@x.com", &["approve", &id]).status.code(),
        Some(0)
    );
    let (_, before) = status_json(&env, &id);
    let mut v = read_request(&env, &id);
    v["decisions"].as_array_mut().unwrap().reverse();
    std::fs::write(request_file(&env, &id), v.to_string()).unwrap();
    let (code, after) = status_json(&env, &id);
    assert_eq!(code, Some(0));
    // The quorum is the first approval by its signed time, wherever it stands in the file.
    assert_eq!(
        after["derived"]["valid_until"],
        before["derived"]["valid_until"]
    );
    assert_eq!(
        after["derived"]["quorum_at"],
        before["derived"]["quorum_at"]
    );
}

/// The requester re-signs an edited request with their own key: it must still say what binds.
#[test]
fn a_request_whose_stated_subject_is_not_what_binds_is_invalid() {
    let env = Env::new();
    let m = env.manifest();
    let out = env.run(
        "dev@x.com",
        &[
            "request",
            "--operation",
            "deploy",
            "--manifest",
            &m,
            "--environment",
            "production",
            "--arg",
            "ticket=CHG-1",
            "--approvers",
            "security",
            "--reason",
            "r",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let original = read_request(&env, &id);
    let dev = betty_core::sshsig::KeyRef::from_path(&env.keys.key("dev"));
    let resign = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = original.clone();
        edit(&mut v);
        let mut req: betty_core::approval::ApprovalRequest = serde_json::from_value(v).unwrap();
        req.signature = Some(
            dev.sign(betty_core::sshsig::NAMESPACE, &req.statement())
                .unwrap(),
        );
        std::fs::write(
            request_file(&env, &id),
            serde_json::to_string(&req).unwrap(),
        )
        .unwrap();
        status_json(&env, &id)
    };
    for (what, edit) in [
        (
            "the stated environment",
            &(|v: &mut serde_json::Value| v["subject"]["environment"] = "staging".into())
                as &dyn Fn(&mut serde_json::Value),
        ),
        ("no subject", &|v: &mut serde_json::Value| {
            v.as_object_mut().unwrap().remove("subject");
        }),
        ("another operation", &|v: &mut serde_json::Value| {
            v["operation"] = "no.deploy".into()
        }),
        (
            "a redacted-looking argument",
            &|v: &mut serde_json::Value| v["subject"]["args"]["ticket"] = "[REDACTED]".into(),
        ),
    ] {
        let (code, s) = resign(edit);
        assert_eq!(code, Some(1), "{what}: {s:#}");
        assert_eq!(s["effective_status"], "invalid", "{what}: {s:#}");
    }
    // Untouched, it is valid again.
    std::fs::write(request_file(&env, &id), original.to_string()).unwrap();
    assert_eq!(status_json(&env, &id).0, Some(3));
}

#[test]
fn notifications_reach_an_https_hook_trusted_through_ssl_cert_file_signed() {
    use betty_testkit::loopback::{HttpServer, TestCa};
    let env = Env::new();
    let ca = TestCa::new();
    let https = HttpServer::start_tls(&ca);
    let ca_file = ca.write_pem(&env.registry());
    std::fs::write(
        env.registry().join("approvals/notify.yaml"),
        format!(
            "notify:\n  webhooks:\n    - {{url: '{}', secret_env: BETTY_TEST_HOOK_SECRET}}\n",
            https.url("/hook")
        ),
    )
    .unwrap();
    let m = env.manifest();
    let args = [
        "request",
        "--operation",
        "deploy",
        "--manifest",
        &m,
        "--approvers",
        "security",
        "--required",
        "1",
        "--reason",
        "r",
        "--format",
        "json",
    ];
    let out = env
        .command("dev@x.com", &args)
        .env("SSL_CERT_FILE", &ca_file)
        .env(
            "BETTY_TEST_HOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let got = https.requests_to("/hook");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["event"], "approval.requested");
    assert!(got[0].header("webhook-id").is_some());
    assert!(
        got[0]
            .header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,"))
    );
    // Without the CA the delivery fails and is recorded as every failed notification is.
    let out = env
        .command("dev@x.com", &args)
        .env_remove("SSL_CERT_FILE")
        .env(
            "BETTY_TEST_HOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(https.requests_to("/hook").len(), 1);
    let failed: Vec<_> = events(&env.registry())
        .into_iter()
        .filter(|e| e["event_type"] == "approval.notification_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
}
