//! Signed approvals end to end: real Ed25519 keys made by `ssh-keygen`, requests and decisions
//! made by the real `approval-queue`, gates decided by the real `policy-enforce`, in a copy of
//! the bundled registry. The state a gate sees is derived from verified signatures: a
//! hand-written file never counts, an approval binds to one environment, a deploy approval is
//! used once, and an approval stops counting after its `valid_for`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use betty_testkit::keys::Keyring;
use serde_json::Value;

const PE: &str = env!("CARGO_BIN_EXE_policy-enforce");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");

/// Everyone with a key, by key name and principal; `eve` has a key nobody listed.
const PEOPLE: [(&str, &str); 7] = [
    ("dev", "developer@example.com"),
    ("appsec", "appsec@example.com"),
    ("ciso", "ciso@example.com"),
    ("lead", "security-lead@example.com"),
    ("rm", "release-manager@example.com"),
    ("platform", "platform-lead@example.com"),
    ("sre", "sre-oncall@example.com"),
];

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}{}", self.stdout, self.stderr))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".lock") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

struct Project {
    dir: tempfile::TempDir,
    keys: Keyring,
    approval_queue: PathBuf,
}

impl Project {
    fn new() -> Option<Project> {
        let dir = tempfile::tempdir().unwrap();
        let mut names: Vec<&str> = PEOPLE.iter().map(|(k, _)| *k).collect();
        names.push("eve");
        let keys = Keyring::new(&dir.path().join("keys"), &names)?;
        let approval_queue = betty_testkit::bins::dir(&["approval-queue"]).join("approval-queue");
        let reg = dir.path().join("registry");
        copy_dir(Path::new(BUNDLED), &reg);
        std::fs::write(reg.join("audit_log.json"), "[\n]\n").unwrap();
        let _ = std::fs::remove_dir_all(reg.join("telemetry"));
        let entries: Vec<(&str, &str)> = PEOPLE.iter().map(|(k, p)| (*p, *k)).collect();
        keys.write_allowed_signers(&reg.join("approvals/allowed_signers"), &entries);
        Some(Project {
            dir,
            keys,
            approval_queue,
        })
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn exec(&self, cmd: &mut Command) -> Out {
        let out = cmd
            .current_dir(self.root())
            .env_remove("BETTY_REGISTRY")
            .env_remove("BETTY_HOME")
            .env_remove("BETTY_USER")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_ne!(out.code, 101, "panic: {}", out.stderr);
        out
    }

    /// `policy-enforce`, run by the CI user (who holds no key).
    fn enforce(&self, args: &[&str]) -> Out {
        self.exec(
            Command::new(PE)
                .args(args)
                .env("BETTY_USER", "ci@example.com"),
        )
    }

    /// `approval-queue` signing with `key` (the principal comes from the key).
    fn aq(&self, key: &str, args: &[&str]) -> Out {
        self.exec(
            Command::new(&self.approval_queue)
                .args(args)
                .arg("--key")
                .arg(self.keys.key(key)),
        )
    }

    /// `approval-queue request` with `args`; the new request's id.
    fn request(&self, key: &str, args: &[&str]) -> (String, Value) {
        let mut all = vec!["request", "--reason", "test", "--format", "json"];
        all.extend(args);
        let out = self.aq(key, &all);
        assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
        let v = out.json();
        (v["id"].as_str().unwrap().to_string(), v)
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.root().join("registry/telemetry/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn audit_operations(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.root().join("registry/audit_log.json")).unwrap();
        let v: Vec<Value> = serde_json::from_str(&text).unwrap();
        v.iter()
            .map(|e| e["operation"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// The pending finding of `policy` in a JSON report.
fn pending_of<'a>(report: &'a Value, policy: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["policy"] == policy && f["level"] == "pending")
        .unwrap_or_else(|| panic!("no pending `{policy}` finding: {report:#}"))
}

const NETWORK_SKILL: &str = "name: report.build\nversion: 0.1.0\ndescription: Build reports.\nstatus: draft\npermissions:\n  - filesystem:read\n  - network:http\nentrypoints:\n  - command: /run\n    handler: run.py\n    runtime: python\n    permissions: [filesystem:read]\n";

#[test]
fn network_access_needs_two_signed_approvals_and_an_edit_needs_them_again() {
    let Some(p) = Project::new() else { return };
    // The seed's example: network access needs 2 approvals from security.
    let policy = p.root().join("registry/policies/network-approval.yaml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("required: 1", "required: 2")).unwrap();
    let m = p.write("skills/report.build/skill.yaml", NETWORK_SKILL);
    let m = m.to_str().unwrap();
    let register = ["--action", "register", m];
    let mut json = register.to_vec();
    json.extend(["--format", "json"]);
    let out = p.enforce(&json);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let digest = pending_of(&out.json(), "network-approval")["approval"]["subject_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (id, req) = p.request(
        "dev",
        &[
            "--operation",
            "register",
            "--manifest",
            m,
            "--approvers",
            "security",
            "--required",
            "2",
        ],
    );
    assert_eq!(req["subject_digest"], digest.as_str(), "{req:#}");
    assert_eq!(req["requested_by"], "developer@example.com");
    assert!(
        req["signature"]
            .as_str()
            .unwrap()
            .contains("BEGIN SSH SIGNATURE")
    );
    // One signed approval keeps it pending.
    let one = p.aq("appsec", &["approve", &id, "--comment", "ok"]);
    assert_eq!(one.code, 3, "{}{}", one.stdout, one.stderr);
    assert_eq!(p.enforce(&register).code, 3);
    // Writing `approved` into the file changes nothing: the state is derived.
    let file = p.root().join(format!("registry/approvals/{id}.json"));
    let stored = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        stored.replace("\"status\": \"pending\"", "\"status\": \"approved\""),
    )
    .unwrap();
    assert_eq!(p.enforce(&register).code, 3);
    let status = p.exec(Command::new(&p.approval_queue).args(["status", &id]));
    assert_eq!(status.code, 3, "{}", status.stdout);
    assert!(status.stdout.contains("not believed"), "{}", status.stdout);
    std::fs::write(&file, &stored).unwrap();
    // The second approval approves it; policy-enforce lets the registration through.
    let two = p.aq("ciso", &["approve", &id]);
    assert_eq!(two.code, 0, "{}{}", two.stdout, two.stderr);
    let out = p.enforce(&register);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("✅ Approved: network-approval"),
        "{}",
        out.stdout
    );
    // Editing the manifest makes the approval not apply: held again.
    std::fs::write(m, NETWORK_SKILL.replace("0.1.0", "0.1.1")).unwrap();
    assert_eq!(p.enforce(&register).code, 3);
    // Every transition left its audit entry and event.
    let types: Vec<String> = p
        .events()
        .iter()
        .filter(|e| e["event_type"].as_str().unwrap().starts_with("approval."))
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
}

#[test]
fn a_staging_approval_leaves_production_pending_and_a_deploy_approval_is_used_once() {
    let Some(p) = Project::new() else { return };
    let deploy =
        |env: &str| p.enforce(&["--action", "deploy", "--environment", env, "data.transform"]);
    let approve_deploy = |env: &str| {
        let (id, _) = p.request(
            "dev",
            &[
                "--operation",
                "deploy",
                "--skill",
                "data.transform",
                "--environment",
                env,
                "--approvers",
                "release-managers",
                "--required",
                "2",
            ],
        );
        assert_eq!(p.aq("rm", &["approve", &id]).code, 3);
        let out = p.aq("platform", &["approve", &id]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        id
    };
    assert_eq!(deploy("production").code, 3);
    approve_deploy("staging");
    let out = deploy("production");
    assert_eq!(
        out.code, 3,
        "a staging approval covered production: {}",
        out.stdout
    );
    // Approved for production (spelled any way the environment is normalised to).
    let id = approve_deploy("Production");
    let out = deploy("production");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Single-use: the run that relied on it spent it, with an audit entry.
    assert!(
        p.audit_operations()
            .iter()
            .any(|o| o == "approval.consumed"),
        "{:?}",
        p.audit_operations()
    );
    let again = deploy("production");
    assert_eq!(again.code, 3, "{}", again.stdout);
    assert!(again.stdout.contains("already used"), "{}", again.stdout);
    let status = p.exec(Command::new(&p.approval_queue).args(["status", &id]));
    assert!(status.stdout.contains("consumed"), "{}", status.stdout);
    // Erasing `consumed` from the file does not make it usable again: the audit trail
    // remembers the use.
    let file = p.root().join(format!("registry/approvals/{id}.json"));
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("consumed");
    v["status"] = "approved".into();
    std::fs::write(&file, v.to_string()).unwrap();
    assert_eq!(deploy("production").code, 3);
}

#[test]
fn an_approval_past_its_valid_for_no_longer_counts() {
    let Some(p) = Project::new() else { return };
    let (id, _) = p.request(
        "dev",
        &[
            "--operation",
            "deploy",
            "--skill",
            "data.transform",
            "--environment",
            "prod-eu",
            "--approvers",
            "release-managers",
            "--required",
            "2",
            "--valid-for",
            "2s",
        ],
    );
    assert_eq!(p.aq("rm", &["approve", &id]).code, 3);
    assert_eq!(p.aq("platform", &["approve", &id]).code, 0);
    // Not a time limit on the test: the approval must outlive its two seconds.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let out = p.enforce(&[
        "--action",
        "deploy",
        "--environment",
        "prod-eu",
        "data.transform",
    ]);
    // Blocked as expired (exit 1), never let through: a new request is needed.
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("`{id}` expired")),
        "{}",
        out.stdout
    );
    let status = p.exec(Command::new(&p.approval_queue).args(["status", &id]));
    assert_ne!(status.code, 0, "{}", status.stdout);
}

#[test]
fn a_decision_by_a_key_nobody_listed_never_counts() {
    let Some(p) = Project::new() else { return };
    let (id, _) = p.request(
        "dev",
        &[
            "--operation",
            "deploy",
            "--skill",
            "data.transform",
            "--environment",
            "production",
            "--approvers",
            "release-managers",
            "--required",
            "2",
        ],
    );
    assert_eq!(p.aq("rm", &["approve", &id]).code, 3);
    // Eve signs a decision as platform-lead with her own key and appends it by hand.
    let file = p.root().join(format!("registry/approvals/{id}.json"));
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let req: betty_core::approval::ApprovalRequest = serde_json::from_value(v.clone()).unwrap();
    let decision = betty_core::approval::Decision {
        by: "platform-lead@example.com".into(),
        decision: betty_core::approval::Verdict::Approve,
        comment: None,
        at: betty_core::time::format(betty_core::time::now()),
        key: None,
        signature: None,
    };
    let sig = betty_core::sshsig::KeyRef::from_path(&p.keys.key("eve"))
        .sign(betty_core::sshsig::NAMESPACE, &decision.statement(&req))
        .unwrap();
    let mut d = serde_json::to_value(&decision).unwrap();
    d["signature"] = sig.into();
    v["decisions"].as_array_mut().unwrap().push(d);
    v["status"] = "approved".into();
    std::fs::write(&file, v.to_string()).unwrap();
    let out = p.enforce(&[
        "--action",
        "deploy",
        "--environment",
        "production",
        "data.transform",
    ]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let status = p.exec(Command::new(&p.approval_queue).args(["status", &id]));
    assert_eq!(status.code, 3, "{}", status.stdout);
    assert!(
        status.stdout.contains("does not count"),
        "{}",
        status.stdout
    );
    // And through approval-queue, Eve's key is refused outright, and the refusal recorded.
    let out = p.aq("eve", &["approve", &id]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not listed"), "{}", out.stderr);
    assert!(
        p.events()
            .iter()
            .any(|e| e["event_type"] == "approval.refused"
                && e["context"]["approval"]["refusal"] == "unknown_key"),
        "{:?}",
        p.events()
    );
}

fn skill(name: &str, tags: &str, permissions: &str) -> String {
    format!(
        "name: {name}\nversion: 0.1.0\ndescription: A skill the gates are tried on.\nstatus: draft\ntags: {tags}\npermissions: {permissions}\nentrypoints:\n  - command: /run\n    handler: run.py\n    runtime: python\n    permissions: [filesystem:read]\n"
    )
}

/// Requests with the hint's arguments, approves with each of `approvers`, and checks that the
/// gate's run now passes that policy.
fn approve_through(
    p: &Project,
    enforce: &[&str],
    policy: &str,
    request: &[&str],
    approvers: &[&str],
) {
    let mut json = enforce.to_vec();
    json.extend(["--format", "json"]);
    let out = p.enforce(&json);
    assert_eq!(out.code, 3, "{enforce:?}: {}{}", out.stdout, out.stderr);
    let digest = pending_of(&out.json(), policy)["approval"]["subject_digest"].clone();
    let (id, req) = p.request("dev", request);
    assert_eq!(req["subject_digest"], digest, "{request:?}: {req:#}");
    for a in approvers {
        p.aq(a, &["approve", &id]);
    }
    let out = p.enforce(&json);
    let r = out.json();
    let still: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["policy"] == policy && f["level"] != "approved")
        .collect();
    assert!(still.is_empty(), "{enforce:?}: exit {}: {r:#}", out.code);
}

#[test]
fn approved_gates_let_their_operation_through() {
    let Some(p) = Project::new() else { return };
    // Gate 1: a draft manifest that touches production, approved for creation.
    let m = p.write(
        "skills/report.sync/skill.yaml",
        &skill("report.sync", "[Production]", "[filesystem:read]"),
    );
    let m = m.to_str().unwrap().to_string();
    approve_through(
        &p,
        &["--action", "create", &m],
        "production-skill-approval",
        &[
            "--operation",
            "create",
            "--manifest",
            &m,
            "--approvers",
            "platform",
        ],
        &["sre"],
    );
    // Gate 2: elevated permissions, approved by security; an edit holds it again.
    let text = skill(
        "release.tag",
        "[release]",
        "[filesystem:read, process:execute]",
    );
    let m = p.write("skills/release.tag/skill.yaml", &text);
    let m = m.to_str().unwrap().to_string();
    approve_through(
        &p,
        &["--action", "register", &m],
        "elevated-permissions-approval",
        &[
            "--operation",
            "register",
            "--manifest",
            &m,
            "--approvers",
            "security",
        ],
        &["appsec"],
    );
    assert_eq!(p.enforce(&["--action", "register", &m]).code, 0);
    std::fs::write(&m, text.replace("0.1.0", "0.1.1")).unwrap();
    assert_eq!(p.enforce(&["--action", "register", &m]).code, 3);
    // Gate 3: a workflow that modifies critical infrastructure binds to the workflow file.
    let wf = p.write(
        "workflows/release.yaml",
        "name: release\nsteps:\n  - skill: code.format\n    args: {target: production}\n",
    );
    let wf = wf.to_str().unwrap().to_string();
    approve_through(
        &p,
        &["--action", "execute", &wf],
        "critical-workflow-approval",
        &[
            "--operation",
            "execute",
            "--manifest",
            &wf,
            "--kind",
            "workflow",
            "--approvers",
            "platform",
        ],
        &["sre"],
    );
}
