//! The seed's four approval gates of the bundled default pack, end to end: the real
//! `policy-enforce` binary in a temporary copy of `registry/`. Each gate holds (exit 3) without an
//! approval, under case and white-space variants of what triggers it; what it does not cover
//! passes. The printed subject digest is the one `betty_core::approval::Subject` gives for the
//! operation, the target and the environment, and the hint names the `approval-queue request`
//! that asks for it.
//!
//! The approved paths (signed requests that unblock) are in signed.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_policy-enforce");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");

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

/// A project folder holding a copy of the bundled registry.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new(BUNDLED), &dir.path().join("registry"));
        std::fs::write(dir.path().join("registry/audit_log.json"), "[\n]\n").unwrap();
        let _ = std::fs::remove_file(dir.path().join("registry/telemetry/events.jsonl"));
        Project { dir }
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

    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(self.root())
            .env_remove("BETTY_REGISTRY")
            .env_remove("BETTY_HOME")
            .env_remove("RUST_LOG")
            .env("BETTY_USER", "tester@example.com")
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

    /// Runs with `--format json` and returns the exit code and the report.
    fn report(&self, args: &[&str]) -> (i32, Value) {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.run(&all);
        (out.code, out.json())
    }
}

/// The findings of one policy in a report.
fn of_policy<'a>(report: &'a Value, policy: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["policy"] == policy)
        .collect()
}

/// Asserts that the run is held by `policy`: exit 3 and a pending finding of it, needing
/// `approvers`.
fn assert_held(p: &Project, args: &[&str], policy: &str, approvers: &str) -> Value {
    let (code, r) = p.report(args);
    assert_eq!(code, 3, "{args:?}: {r:#}");
    let found = of_policy(&r, policy);
    assert!(!found.is_empty(), "{args:?}: no `{policy}` finding: {r:#}");
    for f in &found {
        assert_eq!(f["level"], "pending", "{args:?}: {f:#}");
        assert_eq!(f["approval"]["approvers"], approvers, "{f:#}");
        assert_eq!(f["approval"]["state"]["status"], "pending", "{f:#}");
    }
    found[0].clone()
}

fn assert_not_held(p: &Project, args: &[&str], policy: &str) {
    let (code, r) = p.report(args);
    assert_eq!(code, 0, "{args:?}: {r:#}");
    assert!(of_policy(&r, policy).is_empty(), "{args:?}: {r:#}");
}

fn skill(name: &str, tags: &str, permissions: &str) -> String {
    format!(
        "name: {name}\nversion: 0.1.0\ndescription: A skill the gates are tried on.\nstatus: draft\ntags: {tags}\npermissions: {permissions}\nentrypoints:\n  - command: /run\n    handler: run.py\n    runtime: python\n    permissions: [filesystem:read]\n"
    )
}

/// The digest `approval-queue` must compute for this subject.
fn subject_digest(
    operation: &str,
    kind: &str,
    name: &str,
    target: &str,
    env: Option<&str>,
) -> String {
    betty_core::approval::Subject {
        operation: operation.into(),
        target: Some(betty_core::approval::SubjectTarget {
            kind: kind.into(),
            name: name.into(),
            digest: target.into(),
        }),
        environment: env.map(str::to_string),
        args: Default::default(),
    }
    .digest()
}

/// The canonical digest of a registered entry (registry-added keys left out).
fn registered_digest(p: &Project, name: &str) -> String {
    let text = std::fs::read_to_string(p.root().join("registry/skills.json")).unwrap();
    let reg: Value = serde_json::from_str(&text).unwrap();
    let entry = reg["skills"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|s| s["name"] == name)
        .unwrap();
    betty_core::canonical::digest(&betty_core::registry::without_registry_keys(entry))
}

fn manifest_digest(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let value: Value = yaml_value(&text);
    betty_core::canonical::digest(&value)
}

/// A YAML manifest as JSON, through the reader the binaries use.
fn yaml_value(text: &str) -> Value {
    betty_core::Document::parse_yaml(
        betty_core::SourceName::Named("manifest".into()),
        text.to_string(),
        &betty_core::limits::Limits::MANIFEST,
    )
    .unwrap()
    .value
}

// ------------------------------------------------------ gate 1: creating a production skill

#[test]
fn creating_a_skill_that_touches_production_is_held() {
    let p = Project::new();
    let create = ["--action", "create", "--skill-name"];
    for name in ["deploy.production", "prod.db.migrate", "db.prod"] {
        let mut args = create.to_vec();
        args.push(name);
        let f = assert_held(&p, &args, "production-skill-approval", "platform");
        assert_eq!(f["rule"], "production-name-needs-approval", "{f:#}");
        let detail = f["detail"].as_str().unwrap();
        assert!(detail.contains("write the draft"), "{detail}");
    }
    // A name whose case differs is refused by the naming policy (exit 1) and still held.
    let (code, r) = p.report(&["--action", "create", "--skill-name", "Deploy.Production"]);
    assert_eq!(code, 1, "{r:#}");
    let held = of_policy(&r, "production-skill-approval");
    assert!(held.iter().any(|f| f["level"] == "pending"), "{r:#}");
    // `product` is not `prod`.
    assert_not_held(
        &p,
        &["--action", "create", "--skill-name", "product.catalog"],
        "production-skill-approval",
    );

    // A draft manifest: its tags and permission scopes, in any case, with white space.
    for (tags, perms) in [
        ("[reporting, Production]", "[filesystem:read]"),
        ("[\" PROD \"]", "[filesystem:read]"),
        ("[prod-eu]", "[filesystem:read]"),
        ("[reporting]", "[\"network:https:db.PROD-EU.example.com\"]"),
    ] {
        let m = p.write(
            "skills/report.sync/skill.yaml",
            &skill("report.sync", tags, perms),
        );
        let f = assert_held(
            &p,
            &["--action", "create", m.to_str().unwrap()],
            "production-skill-approval",
            "platform",
        );
        // The hint asks for exactly this manifest and operation.
        let detail = f["detail"].as_str().unwrap();
        assert!(
            detail.contains("approval-queue request --operation create --manifest skills/report.sync/skill.yaml --approvers platform --required 1"),
            "{detail}"
        );
        assert_eq!(
            f["approval"]["subject_digest"],
            subject_digest("create", "skill", "report.sync", &manifest_digest(&m), None)
        );
    }
    let m = p.write(
        "skills/report.sync/skill.yaml",
        &skill("report.sync", "[staging, reporting]", "[filesystem:read]"),
    );
    assert_not_held(
        &p,
        &["--action", "create", m.to_str().unwrap()],
        "production-skill-approval",
    );
}

// ------------------------------------------- gate 2: registering with elevated permissions

#[test]
fn registering_a_skill_with_elevated_permissions_is_held() {
    let p = Project::new();
    for perm in [
        "process:execute",
        "Process:Execute",
        "process.spawn",
        "secrets:read",
        "SECRETS:write",
        "registry:write",
        "registry",
    ] {
        let m = p.write(
            "skills/release.tag/skill.yaml",
            &skill(
                "release.tag",
                "[release]",
                &format!("[filesystem:read, \"{perm}\"]"),
            ),
        );
        let (code, r) = p.report(&["--action", "register", m.to_str().unwrap()]);
        let held = of_policy(&r, "elevated-permissions-approval");
        assert!(
            held.iter().any(|f| f["level"] == "pending"
                && f["rule"] == "elevated-permission-needs-approval"
                && f["approval"]["approvers"] == "security"),
            "{perm}: {r:#}"
        );
        // Pending, unless another policy blocks it (secrets:write and bare registry are off
        // the allow-list): never passed.
        assert!(code == 3 || code == 1, "{perm}: exit {code}: {r:#}");
    }
    // Network: network-approval.yaml is this gate's network part, in every case.
    for perm in ["network:https", "NETWORK:http", "network"] {
        let m = p.write(
            "skills/release.tag/skill.yaml",
            &skill(
                "release.tag",
                "[release]",
                &format!("[filesystem:read, \"{perm}\"]"),
            ),
        );
        let (code, r) = p.report(&["--action", "register", m.to_str().unwrap()]);
        assert!(code == 3 || code == 1, "{perm}: exit {code}: {r:#}");
        assert!(
            of_policy(&r, "network-approval")
                .iter()
                .any(|f| f["level"] == "pending"),
            "{perm}: {r:#}"
        );
    }
    // Outside the workspace: refused by workspace-file-access; waived, still held for security.
    let m = p.write(
        "skills/release.tag/skill.yaml",
        &skill(
            "release.tag",
            "[release]",
            "[\"filesystem:read:/etc/release\"]",
        ),
    );
    let (code, r) = p.report(&["--action", "register", m.to_str().unwrap()]);
    assert_eq!(code, 1, "{r:#}");
    assert!(
        !of_policy(&r, "elevated-permissions-approval").is_empty(),
        "{r:#}"
    );
    p.write(
        "registry/policies/waivers.yaml",
        "waivers:\n  - name: release-reads-etc\n    owner: platform-lead@example.com\n    reason: reads the release config\n    expires: 2099-12-31\n    scope:\n      policy: workspace-file-access\n      skill: release.tag\n",
    );
    let f = assert_held(
        &p,
        &["--action", "register", m.to_str().unwrap()],
        "elevated-permissions-approval",
        "security",
    );
    assert_eq!(f["rule"], "outside-workspace-needs-approval", "{f:#}");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("outside the workspace"),
        "{f:#}"
    );
    // Only workspace file access: not held.
    let m = p.write(
        "skills/release.tag/skill.yaml",
        &skill(
            "release.tag",
            "[release]",
            "[filesystem:read, \"filesystem:write:out/\"]",
        ),
    );
    assert_not_held(
        &p,
        &["--action", "register", m.to_str().unwrap()],
        "elevated-permissions-approval",
    );
    // Other operations are not this gate (update is checked by escalation and network rules).
    let m = p.write(
        "skills/release.tag/skill.yaml",
        &skill(
            "release.tag",
            "[release]",
            "[filesystem:read, process:execute]",
        ),
    );
    let (_, r) = p.report(&["--action", "update", m.to_str().unwrap()]);
    assert!(
        of_policy(&r, "elevated-permissions-approval").is_empty(),
        "{r:#}"
    );
}

// ------------------------------- gate 3: executing a workflow on critical infrastructure

#[test]
fn executing_a_workflow_that_modifies_critical_infrastructure_is_held() {
    let p = Project::new();
    // deploy.release has network and process permissions; secrets.rotate has secrets;
    // code.format runs processes.
    for (name, steps) in [
        (
            "release",
            "  - skill: data.validate\n  - skill: deploy.release\n",
        ),
        ("rotate", "  - skill: secrets.rotate\n"),
        (
            "nested",
            "  - skill: data.validate\n  - steps:\n      - steps:\n          - skill: code.format\n",
        ),
    ] {
        let wf = p.write(
            &format!("workflows/{name}.yaml"),
            &format!("name: {name}\nsteps:\n{steps}"),
        );
        let (code, r) = p.report(&["--action", "execute", wf.to_str().unwrap()]);
        assert!(code == 3, "{name}: exit {code}: {r:#}");
        let held: Vec<_> = of_policy(&r, "critical-workflow-approval")
            .into_iter()
            .filter(|f| f["target_kind"] == "workflow" && f["level"] == "pending")
            .collect();
        assert_eq!(held.len(), 1, "{name}: {r:#}");
        let f = held[0];
        assert_eq!(f["approval"]["approvers"], "platform");
        let detail = f["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "approval-queue request --operation execute --manifest workflows/{name}.yaml --kind workflow --approvers platform --required 1"
            )),
            "{detail}"
        );
        assert_eq!(
            f["approval"]["subject_digest"],
            subject_digest("execute", "workflow", name, &manifest_digest(&wf), None)
        );
    }
    // Tagged critical by the workflow itself, in any case.
    for tag in ["Critical", " INFRASTRUCTURE ", "prod-eu"] {
        let wf = p.write(
            "workflows/tagged.yaml",
            &format!("name: tagged\ntags: [\"{tag}\"]\nsteps:\n  - skill: data.validate\n"),
        );
        let f = assert_held(
            &p,
            &["--action", "execute", wf.to_str().unwrap()],
            "critical-workflow-approval",
            "platform",
        );
        assert_eq!(f["rule"], "critical-workflow-tag-needs-approval", "{f:#}");
    }
    // Steps that stay in the workspace: not held.
    let wf = p.write(
        "workflows/refresh.yaml",
        "name: refresh\ntags: [staging, data]\nsteps:\n  - skill: data.validate\n  - steps:\n      - skill: data.transform\n",
    );
    assert_not_held(
        &p,
        &["--action", "execute", wf.to_str().unwrap()],
        "critical-workflow-approval",
    );
}

// ------------------------------------------------------------ gate 4: deploying to production

#[test]
fn deploying_to_production_is_held_whatever_the_spelling() {
    let p = Project::new();
    let target = registered_digest(&p, "data.transform");
    let mut digests = Vec::new();
    for env in [
        "production",
        "Production",
        " PRODUCTION ",
        "PROD",
        "prod",
        "prod-eu",
        "Prod-US-1",
    ] {
        let f = assert_held(
            &p,
            &["--action", "deploy", "--environment", env, "data.transform"],
            "deploy-approval",
            "release-managers",
        );
        assert_eq!(f["approval"]["required"], 2);
        let normal = env.trim().to_lowercase();
        let digest = f["approval"]["subject_digest"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            digest,
            subject_digest("deploy", "skill", "data.transform", &target, Some(&normal)),
            "{env}"
        );
        let detail = f["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "approval-queue request --operation deploy --skill data.transform --environment {normal} --approvers release-managers --required 2"
            )),
            "{detail}"
        );
        digests.push((normal, digest));
    }
    // Spellings of one environment share a digest; environments do not.
    let of = |e: &str| digests.iter().find(|(n, _)| n == e).unwrap().1.clone();
    assert_eq!(of("production"), digests[1].1);
    assert_ne!(of("production"), of("prod"));
    assert_ne!(of("prod"), of("prod-eu"));
    for env in ["staging", "preprod", "dev"] {
        assert_not_held(
            &p,
            &["--action", "deploy", "--environment", env, "data.transform"],
            "deploy-approval",
        );
    }
    // Look-alike and invisible characters are refused, not let through.
    for env in ["pr\u{043e}d", "prod\u{200b}", "prod uction", ""] {
        let out = p.run(&["--action", "deploy", "--environment", env, "data.transform"]);
        assert_eq!(out.code, 2, "{env:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("environment"), "{}", out.stderr);
    }
}

#[test]
fn the_bundled_pack_is_signed_and_deploy_approvals_are_single_use() {
    // The pack's own approval rules: no rule opts out of signatures.
    let dir = Path::new(BUNDLED).join("policies");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("signed: false"),
            "{} turns signatures off",
            path.display()
        );
    }
    let deploy = std::fs::read_to_string(dir.join("deploy-approval.yaml")).unwrap();
    assert!(
        deploy.contains("environments: [production, prod, prod-*]"),
        "{deploy}"
    );
    assert!(deploy.contains("single_use: true"), "{deploy}");
}

#[test]
fn the_pack_fixtures_pass_and_the_audit_runs() {
    let p = Project::new();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let out = p.run(&["test", fixtures]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        !out.stdout.contains("no fixture exercises"),
        "{}",
        out.stdout
    );
    // The README's first command: the continuous audit is never held.
    let out = p.run(&["--action", "audit"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
