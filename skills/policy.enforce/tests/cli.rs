//! Runs the real `policy-enforce` binary on real files in temporary folders: the seed's
//! examples, every enforcement point, every output format, waivers, approvals, the upstream
//! corpus and bad input.

#![allow(clippy::print_stderr)] // a skipped test says why on stderr

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_policy-enforce");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");
const SARIF_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/schemas-external/sarif-schema-2.1.0.json"
);
const REPORT_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../schemas/policy-report.schema.json"
);
const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");

fn schema(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(SCHEMAS).join(name)).unwrap()).unwrap()
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

fn run_in(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("BETTY_REGISTRY")
        .env_remove("BETTY_HOME")
        .env_remove("RUST_LOG")
        .env_remove("BETTY_CLIENT_IP")
        .env_remove("SSH_CLIENT")
        .env("BETTY_USER", "tester@example.com")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary runs");
    {
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("the binary finishes");
    let result = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(result.code, 101, "panic: {}", result.stderr);
    result
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

/// A project folder holding a copy of the bundled registry (and nothing else).
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new(BUNDLED), &dir.path().join("registry"));
        // Start from an empty trail and stream: the copy is ours to write.
        std::fs::write(dir.path().join("registry/audit_log.json"), "[\n]\n").unwrap();
        let _ = std::fs::remove_file(dir.path().join("registry/telemetry/events.jsonl"));
        Project { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn registry(&self) -> PathBuf {
        self.root().join("registry")
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Out {
        run_in(self.root(), args, None)
    }

    fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        run_in(self.root(), args, Some(stdin))
    }

    fn audit_text(&self) -> String {
        std::fs::read_to_string(self.registry().join("audit_log.json")).unwrap()
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.registry().join("telemetry/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn upstream_copy() -> Option<tempfile::TempDir> {
    let upstream = betty_testkit::upstream()?;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&upstream, dir.path());
    Some(dir)
}

const GOOD_SKILL: &str = "name: report.build\nversion: 0.1.0\ndescription: Build a weekly report from the data folder.\nstatus: draft\ndependencies: [data.validate]\npermissions:\n  - filesystem:read\nentrypoints:\n  - command: /report/build\n    handler: report.py\n    runtime: python\n    permissions: [filesystem:read]\n";

// ---------------------------------------------------------------- the seed's examples

#[test]
fn seed_example_bad_name_is_a_violation() {
    let p = Project::new();
    let out = p.run(&["--action", "create", "--skill-name", "BadName"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .starts_with("❌ Policy violation: skill-naming-convention\n   Skill names must follow lowercase.dotted format (e.g., data.transform)\n"),
        "{}",
        out.stdout
    );
    // Recorded: one audit entry and the events.
    let audit = p.audit_text();
    assert!(
        audit.contains("\"operation\":\"policy.enforce\"")
            && audit.contains("\"outcome\":\"failed\""),
        "{audit}"
    );
    assert!(
        audit.contains("{\"policy\":\"skill-naming-convention\",\"result\":\"failed\"}"),
        "{audit}"
    );
    let events = p.events();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["policy.enforced", "policy.violated"]);
    assert_eq!(events[1]["context"]["policy"], "skill-naming-convention");
    assert_eq!(events[0]["user"], "tester@example.com");
    for e in &events {
        let check = betty_core::schema::validate(betty_core::schema::SchemaId::TelemetryEvent, e);
        assert!(check.is_ok(), "{e}: {check:?}");
    }
    // A second decision chains onto the first; the trail verifies and matches its schema.
    p.run(&["--action", "create", "--skill-name", "data.transform"]);
    let log = betty_core::audit::AuditLog::new(&p.registry().join("audit_log.json"));
    let report = log.verify(None).unwrap();
    assert!(report.ok() && report.hashed_entries == 2, "{report:?}");
    let trail: Value = serde_json::from_str(&p.audit_text()).unwrap();
    let check = betty_core::schema::validate(betty_core::schema::SchemaId::AuditLog, &trail);
    assert!(check.is_ok(), "{check:?}");
}

#[test]
fn seed_example_good_name_passes() {
    let p = Project::new();
    let out = p.run(&["--action", "create", "--skill-name", "data.transform"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "✅ Policy check passed\n");
    assert!(p.audit_text().contains("\"outcome\":\"passed\""));
    assert_eq!(p.events().len(), 1);
}

#[test]
fn the_bundled_registry_passes_its_own_audit() {
    let p = Project::new();
    let out = p.run(&["--action", "audit"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("✅ Policy check passed"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_projects_own_skill_manifests_pass_the_bundled_policies() {
    let p = Project::new();
    let skills = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for entry in std::fs::read_dir(&skills).unwrap() {
        let manifest = entry.unwrap().path().join("skill.yaml");
        if manifest.is_file() {
            let out = p.run(&[
                "--action",
                "register",
                "--format",
                "json",
                manifest.to_str().unwrap(),
            ]);
            let report = out.json();
            let blocking = report["summary"]["blocking"].as_u64().unwrap();
            assert_eq!(blocking, 0, "{}: {}", manifest.display(), out.stdout);
        }
    }
}

// ---------------------------------------------------------------- enforcement points

#[test]
fn register_reads_paths_and_stdin_and_points_at_the_line() {
    let p = Project::new();
    let bad = p.write(
        "skills/x/skill.yaml",
        "name: report.build\nversion: 0.1.0\ndescription: Build a weekly report.\nstatus: shipped\npermissions:\n  - filesystem:read\n  - filesystem:delete\n",
    );
    let out = p.run(&["--action", "register", bad.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("skills/x/skill.yaml:4:9"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("skills/x/skill.yaml:7:5"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("❌ Policy violation: permission-allow-list"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("⚠️  Policy warning: permission-controls"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("   7 |   - filesystem:delete\n"),
        "{}",
        out.stdout
    );
    let out = p.run_stdin(
        &["--action", "register", "--kind", "skill", "-"],
        GOOD_SKILL.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn strict_makes_warnings_block() {
    let p = Project::new();
    let text = GOOD_SKILL.replace(
        "  - filesystem:read\nentry",
        "  - filesystem:read\n  - network:unrestricted\nentry",
    );
    let m = p.write("m.skill.yaml", &text);
    // network:unrestricted is a permission-controls warning and off the allow-list (blocking).
    let out = p.run(&["--format", "json", m.to_str().unwrap()]);
    let r = out.json();
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["policy"] == "permission-controls" && f["level"] == "warning")
    );
    let out = p.run(&["--strict", "--format", "json", m.to_str().unwrap()]);
    let r = out.json();
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["policy"] == "permission-controls" && f["level"] == "blocking")
    );
}

#[test]
fn escalation_against_the_registered_version_is_blocked() {
    let p = Project::new();
    let m = p.write(
        "skills/data.validate/skill.yaml",
        "name: data.validate\nversion: 0.6.0\ndescription: Validate datasets against a contract.\nstatus: active\npermissions:\n  - filesystem:read\n  - filesystem:write\n",
    );
    let out = p.run(&["--action", "update", m.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("❌ Policy violation: permission-escalation"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("escalates beyond the registered version 0.5.0"),
        "{}",
        out.stdout
    );
    // The continuous audit re-checks the file on disk: the escalation again, and the drift.
    let out = p.run(&["--action", "audit", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let drift = |r: &Value| {
        r["findings"].as_array().unwrap().iter().any(|f| {
            f["policy"] == "registry-drift"
                && f["level"] == "warning"
                && f["file"]
                    .as_str()
                    .unwrap()
                    .ends_with("skills/data.validate/skill.yaml")
        })
    };
    assert!(drift(&out.json()), "{}", out.stdout);
    // Drift alone is a warning: it passes, and blocks with --strict.
    p.write(
        "skills/data.validate/skill.yaml",
        "name: data.validate\nversion: 0.5.0\ndescription: Validate datasets.\nstatus: active\npermissions:\n  - filesystem:read\n",
    );
    let out = p.run(&["--action", "audit", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(drift(&out.json()), "{}", out.stdout);
    let out = p.run(&["--action", "audit", "--strict"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
}

#[test]
fn network_access_waits_and_a_hand_written_approval_does_not_count() {
    let p = Project::new();
    let text = GOOD_SKILL.replace(
        "  - filesystem:read\nentry",
        "  - filesystem:read\n  - network:http\nentry",
    );
    let m = p.write("skills/report.build/skill.yaml", &text);
    let out = p.run(&[
        "--action",
        "register",
        "--format",
        "json",
        m.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let r = out.json();
    let need = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["level"] == "pending")
        .expect("a pending finding");
    let digest = need["approval"]["subject_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let approval = |status: &str, decision: &str, digest: &str| {
        serde_json::json!({
            "id": "apr-1", "operation": "register", "skill": "report.build",
            "requested_by": "dev@example.com", "requested_at": "2026-01-01T00:00:00Z",
            "reason": "r", "context": {}, "subject_digest": digest, "approvers": "security",
            "required": 1, "expires_at": "2099-01-01T00:00:00Z", "status": status,
            "decisions": [{"by": "appsec@example.com", "decision": decision, "at": "2026-01-01T01:00:00Z"}]
        })
        .to_string()
    };
    // A hand-written file that says `approved`, with a decision by a member, does not count:
    // it carries no signature (the signed flows are in signed.rs, with real keys).
    p.write(
        "registry/approvals/apr-1.json",
        &approval("approved", "approve", &digest),
    );
    let out = p.run(&["--action", "register", m.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("`apr-1` does not count: it is unsigned"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("✅ Approved"), "{}", out.stdout);
    // A corrupt request is an error naming the file, never skipped.
    p.write("registry/approvals/apr-2.json", "{\"id\": ");
    let out = p.run(&["--action", "register", m.to_str().unwrap()]);
    assert_error(&out, "corrupt approval");
    assert!(out.stderr.contains("apr-2.json"), "{}", out.stderr);
    std::fs::remove_file(p.registry().join("approvals/apr-2.json")).unwrap();
    // A plain check and the audit are never held.
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn a_decision_whose_events_cannot_be_made_leaves_no_audit_entry() {
    let p = Project::new();
    // A workflow name of 1.1 MB: its `policy.enforced` event would pass the 1 MB event limit.
    let wf = p.write(
        "workflows/huge.yaml",
        &format!(
            "name: {}\nsteps:\n  - skill: data.transform\n",
            "a".repeat(1_100_000)
        ),
    );
    let out = p.run(&["--action", "execute", wf.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("over the limit"), "{}", out.stderr);
    assert_eq!(p.audit_text(), "[\n]\n", "no audit entry claims a decision");
    assert!(p.events().is_empty());
}

#[test]
fn execute_checks_a_registered_skill_and_a_workflow() {
    let p = Project::new();
    let out = p.run(&["--action", "execute", "data.transform"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = p.run(&["--action", "execute", "deploy.release", "--format", "json"]);
    assert_eq!(
        out.code, 3,
        "network access at execute needs approval: {}",
        out.stdout
    );
    let f = out.json()["findings"][0].clone();
    assert!(
        f["file"]
            .as_str()
            .unwrap()
            .ends_with("registry/skills.json"),
        "{f}"
    );
    assert!(f["line"].as_u64().unwrap() > 1, "{f}");
    let wf = p.write(
        "workflows/nightly.yaml",
        "name: nightly\nsteps:\n  - skill: data.validate\n  - skill: data.transform\n  - skill: api.generate-models\n",
    );
    let out = p.run(&["--action", "execute", wf.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("❌ Policy violation: workflow-steps"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("workflows/nightly.yaml:5:12"),
        "{}",
        out.stdout
    );
    let out = p.run(&["--action", "execute", "no.such.skill"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no.such.skill"), "{}", out.stderr);
}

#[test]
fn deploy_to_production_needs_two_release_managers() {
    let p = Project::new();
    let out = p.run(&[
        "--action",
        "deploy",
        "--environment",
        "production",
        "data.transform",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let r = out.json();
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["policy"] == "deploy-approval"
                && f["approval"]["required"] == 2
                && f["approval"]["approvers"] == "release-managers")
    );
    let out = p.run(&[
        "--action",
        "deploy",
        "--environment",
        "staging",
        "data.transform",
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = p.run(&["--action", "deploy", "data.transform"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn dependency_rules() {
    let p = Project::new();
    let text = GOOD_SKILL.replace(
        "dependencies: [data.validate]",
        "dependencies: [test.coverage, ghost.skill, report.build]",
    );
    let m = p.write("m.skill.yaml", &text);
    let out = p.run(&["--format", "json", m.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let r = out.json();
    let rules: Vec<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "dependencies-registered",
        "dependencies-current",
        "no-dependency-cycles",
    ] {
        assert!(rules.iter().any(|r| r == want), "{want}: {rules:?}");
    }
    let cycle = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "no-dependency-cycles")
        .unwrap();
    assert!(
        cycle["detail"]
            .as_str()
            .unwrap()
            .contains("report.build → report.build"),
        "{cycle}"
    );
}

// ---------------------------------------------------------------- waivers

#[test]
fn waivers_apply_until_they_expire_and_stay_visible() {
    let p = Project::new();
    let m = p.write(
        "m.skill.yaml",
        &GOOD_SKILL.replace("name: report.build", "name: Report_Build"),
    );
    let waiver = |expires: &str| {
        format!(
            "waivers:\n  - name: legacy-name\n    owner: platform@example.com\n    reason: renamed next release\n    expires: {expires}\n    scope:\n      policy: skill-naming-convention\n      rule: lowercase-dotted-name\n      skill: Report_*\n"
        )
    };
    p.write("registry/policies/waivers.yaml", &waiver("2099-12-31"));
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("⚪ Waived: skill-naming-convention"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("waived by `legacy-name` (owner platform@example.com"),
        "{}",
        out.stdout
    );
    let sarif = p.run(&["--format", "sarif", m.to_str().unwrap()]).json();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["suppressions"][0]["kind"], "external", "{sarif}");
    p.write("registry/policies/waivers.yaml", &waiver("2020-01-01"));
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("Waiver `legacy-name` expired on 2020-01-01"),
        "{}",
        out.stdout
    );
    // A waiver naming a policy that does not exist is a configuration error.
    p.write(
        "registry/policies/waivers.yaml",
        &waiver("2099-12-31").replace("policy: skill-naming-convention", "policy: nope"),
    );
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("waivers.yaml:7:") && out.stderr.contains("`nope`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_policy_may_carry_its_own_waivers() {
    let p = Project::new();
    let m = p.write(
        "m.skill.yaml",
        &GOOD_SKILL.replace("name: report.build", "name: Report_Build"),
    );
    let naming =
        std::fs::read_to_string(p.root().join("registry/policies/skill-naming.yaml")).unwrap();
    let with = |waivers: &str| format!("{naming}{waivers}");
    // `scope` may be left out entirely: the waiver waives the policy it sits in.
    let inline = "  waivers:\n    - name: legacy-name\n      owner: platform@example.com\n      reason: renamed next release\n      expires: 2099-12-31\n      scope: {rule: lowercase-dotted-name, skill: Report_*}\n";
    p.write("registry/policies/skill-naming.yaml", &with(inline));
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("waived by `legacy-name`"),
        "{}",
        out.stdout
    );
    let json = p.run(&["--format", "json", m.to_str().unwrap()]).json();
    let text = json.to_string();
    assert!(
        text.contains("skill-naming.yaml"),
        "the waiver names its file: {text}"
    );
    let bare = "  waivers:\n    - {name: all-names, owner: o@example.com, reason: r, expires: 2099-12-31}\n";
    p.write("registry/policies/skill-naming.yaml", &with(bare));
    assert_eq!(p.run(&[m.to_str().unwrap()]).code, 0);
    // Expired: it stops applying, and says so.
    p.write(
        "registry/policies/skill-naming.yaml",
        &with(&inline.replace("2099-12-31", "2020-01-01")),
    );
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("Waiver `legacy-name` expired"),
        "{}",
        out.stdout
    );
    // A waiver inside one policy cannot waive another.
    p.write(
        "registry/policies/skill-naming.yaml",
        &with(&inline.replace("scope: {", "scope: {policy: skill-status, ")),
    );
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("skill-naming.yaml:") && out.stderr.contains("not `skill-status`"),
        "{}",
        out.stderr
    );
    // One name, two waivers (inline and in waivers.yaml): refused, naming the first.
    p.write("registry/policies/skill-naming.yaml", &with(inline));
    p.write(
        "registry/policies/waivers.yaml",
        "waivers:\n  - name: legacy-name\n    owner: o\n    reason: r\n    expires: 2099-12-31\n    scope: {policy: skill-naming-convention}\n",
    );
    let out = p.run(&[m.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("used twice (first at") && out.stderr.contains("skill-naming.yaml:"),
        "{}",
        out.stderr
    );
    // And the schema accepts what the loader accepts.
    let doc = betty_core::Document::parse_yaml(
        betty_core::SourceName::Named("p.yaml".into()),
        with(inline),
        &betty_core::limits::Limits::MANIFEST,
    )
    .unwrap();
    assert!(schema_errors(&schema("policy.schema.json"), &doc.value).is_empty());
}

#[test]
fn the_inline_waiver_schema_is_the_waiver_schema_with_an_optional_scope() {
    let inline = schema("policy.schema.json")["$defs"]["inlineWaiver"].clone();
    let file = schema("policy-waivers.schema.json")["$defs"]["waiver"].clone();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&inline["properties"]), keys(&file["properties"]));
    for field in ["name", "owner", "reason", "expires"] {
        let (mut a, mut b) = (
            inline["properties"][field].clone(),
            file["properties"][field].clone(),
        );
        a.as_object_mut().unwrap().remove("description");
        b.as_object_mut().unwrap().remove("description");
        assert_eq!(a, b, "{field}");
    }
    let scope = |v: &Value| keys(&v["properties"]["scope"]["properties"]);
    assert_eq!(scope(&inline), scope(&file));
    let mut required: Vec<Value> = inline["required"].as_array().unwrap().clone();
    required.push("scope".into());
    assert_eq!(required, *file["required"].as_array().unwrap());
}

#[test]
fn bundled_and_upstream_policies_follow_the_policy_schema() {
    let schema = schema("policy.schema.json");
    let mut dirs = vec![Path::new(BUNDLED).join("policies")];
    if let Some(upstream) = betty_testkit::upstream() {
        dirs.push(upstream.join("registry/policies"));
    }
    let mut checked = 0;
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") || path.ends_with("waivers.yaml") {
                continue;
            }
            let doc = betty_core::Document::read_yaml(&path, &betty_core::limits::Limits::MANIFEST)
                .unwrap();
            let errors = schema_errors(&schema, &doc.value);
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 13, "{checked}");
    // What the loader refuses, the schema refuses too.
    let bad = serde_json::json!({"policy": {"name": "x", "version": "1", "enforcement": "blocking",
        "rules": [{"field": "name", "message": "m", "severity": "error", "must_match": "x"}]}});
    assert!(!schema_errors(&schema, &bad).is_empty());
    let two = serde_json::json!({"policy": {"name": "x", "version": "1", "enforcement": "blocking",
        "rules": [{"field": "name", "message": "m", "severity": "error", "required": true, "semver": true}]}});
    assert!(!schema_errors(&schema, &two).is_empty());
}

#[test]
fn waiver_files_follow_their_schema() {
    let schema = schema("policy-waivers.schema.json");
    let parse = |text: &str| {
        betty_core::Document::parse_yaml(
            betty_core::SourceName::Named("waivers.yaml".into()),
            text.to_string(),
            &betty_core::limits::Limits::MANIFEST,
        )
        .unwrap()
        .value
    };
    let bundled =
        std::fs::read_to_string(Path::new(BUNDLED).join("policies/waivers.yaml")).unwrap();
    assert!(schema_errors(&schema, &parse(&bundled)).is_empty());
    let example = "waivers:\n  - name: w\n    owner: o\n    reason: r\n    expires: 2027-03-31\n    scope: {policy: p, rule: r, skill: a.*}\n";
    assert!(schema_errors(&schema, &parse(example)).is_empty());
    assert!(!schema_errors(&schema, &parse(&example.replace("    owner: o\n", ""))).is_empty());
}

// ---------------------------------------------------------------- output formats

fn schema_errors(schema: &Value, instance: &Value) -> Vec<String> {
    let v = jsonschema::validator_for(schema).expect("the schema compiles");
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn sarif_validates_against_the_official_schema() {
    let Some(up) = upstream_copy() else { return };
    if !Path::new(SARIF_SCHEMA).is_file() {
        betty_testkit::skip("the SARIF schema `../shared/schemas-external` is absent");
        return;
    }
    std::fs::write(
        up.path().join("registry/policies/waivers.yaml"),
        "waivers:\n  - name: three-segments\n    owner: o@example.com\n    reason: r\n    expires: 2099-01-01\n    scope: {policy: skill-naming-convention, skill: threat.*}\n",
    )
    .unwrap();
    let out = run_in(
        up.path(),
        &["--registry", "registry", "--all", "--format", "sarif"],
        None,
    );
    assert_eq!(out.code, 1);
    let sarif = out.json();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(SARIF_SCHEMA).unwrap()).unwrap();
    let errors = schema_errors(&schema, &sarif);
    assert!(errors.is_empty(), "{errors:#?}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r.get("suppressions").is_some()));
    // A name before creation, registry entries (absolute paths) and stdin validate too.
    let p = Project::new();
    let registry = p.registry();
    for args in [
        vec![
            "--action",
            "create",
            "--skill-name",
            "BadName",
            "--format",
            "sarif",
        ],
        vec![
            "--registry",
            registry.to_str().unwrap(),
            "--action",
            "execute",
            "deploy.release",
            "--format",
            "sarif",
        ],
    ] {
        let out = p.run(&args);
        let errors = schema_errors(&schema, &out.json());
        assert!(errors.is_empty(), "{args:?}: {errors:#?}");
    }
    let out = p.run_stdin(
        &["--format", "sarif", "--kind", "skill", "-"],
        b"name: Bad\nversion: 1.0.0\n",
    );
    let errors = schema_errors(&schema, &out.json());
    assert!(errors.is_empty(), "stdin: {errors:#?}");
}

#[test]
fn json_validates_against_the_report_schema() {
    let p = Project::new();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(REPORT_SCHEMA).unwrap()).unwrap();
    let m = p.write(
        "m.skill.yaml",
        &GOOD_SKILL.replace("report.build", "Bad").replace(
            "  - filesystem:read\nentry",
            "  - secrets:read\n  - network:http\nentry",
        ),
    );
    for args in [
        vec!["--action", "audit", "--format", "json"],
        vec![
            "--action",
            "register",
            "--format",
            "json",
            m.to_str().unwrap(),
        ],
        vec![
            "--action",
            "create",
            "--skill-name",
            "BadName",
            "--format",
            "json",
        ],
    ] {
        let out = p.run(&args);
        let report = out.json();
        let errors = schema_errors(&schema, &report);
        assert!(errors.is_empty(), "{args:?}: {errors:#?}");
        assert_eq!(report["exit_code"].as_i64().unwrap(), i64::from(out.code));
    }
}

/// A small XML reader: well-formed elements, quoted attributes, balanced tags.
fn parse_xml(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = Vec::new();
    let mut rest = text.trim_start();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = &after[after.find("?>").expect("declaration ends") + 2..];
    }
    while let Some(start) = rest.find('<') {
        let body_text = &rest[..start];
        assert!(!body_text.contains('>'), "stray `>` in text: {body_text}");
        let end = rest[start..].find('>').expect("tag ends") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "unbalanced </{name}>"
            );
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut attrs_text) = tag.split_once(' ').unwrap_or((tag, ""));
        let mut attrs = Vec::new();
        loop {
            attrs_text = attrs_text.trim_start();
            if attrs_text.is_empty() {
                break;
            }
            let eq = attrs_text.find("=\"").expect("attribute has =\"");
            let key = attrs_text[..eq].to_string();
            let close = attrs_text[eq + 2..].find('"').expect("attribute closes") + eq + 2;
            let value = attrs_text[eq + 2..close].to_string();
            assert!(!value.contains('<'), "raw < in attribute");
            attrs.push((key, value));
            attrs_text = &attrs_text[close + 1..];
        }
        elements.push((name.to_string(), attrs));
        if !self_closing {
            stack.push(name.to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    elements
}

#[test]
fn junit_parses_as_junit() {
    let Some(up) = upstream_copy() else { return };
    let out = run_in(
        up.path(),
        &["--registry", "registry", "--all", "--format", "junit"],
        None,
    );
    assert_eq!(out.code, 1);
    let elements = parse_xml(&out.stdout);
    assert_eq!(elements[0].0, "testsuites");
    let suites = elements.iter().filter(|e| e.0 == "testsuite").count();
    assert_eq!(suites, 81);
    let failures = elements.iter().filter(|e| e.0 == "failure").count();
    let declared: usize = elements[0]
        .1
        .iter()
        .find(|(k, _)| k == "failures")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(failures, declared);
    assert_eq!(failures, 16);
}

// ---------------------------------------------------------------- upstream corpus

#[test]
fn upstream_all_checks_81_manifests_with_positions() {
    let Some(up) = upstream_copy() else { return };
    let out = run_in(
        up.path(),
        &["--registry", "registry", "--all", "--format", "json"],
        None,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["targets"].as_array().unwrap().len(), 81);
    let findings = r["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        assert!(
            f["line"].as_u64().unwrap() >= 1 && f["column"].as_u64().unwrap() >= 1,
            "{f}"
        );
        let file = f["file"].as_str().unwrap();
        assert!(
            file.ends_with("skill.yaml") || file.ends_with("agent.yaml"),
            "{f}"
        );
    }
    // Text output: every violation has `file:line:col`.
    let text = run_in(up.path(), &["--registry", "registry", "--all"], None).stdout;
    let arrows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("--> "))
        .collect();
    assert_eq!(arrows.len(), findings.len());
    for a in arrows {
        let loc = a
            .trim_start()
            .trim_start_matches("--> ")
            .split(' ')
            .next()
            .unwrap();
        let parts: Vec<&str> = loc.rsplitn(3, ':').collect();
        assert!(
            parts.len() == 3 && parts[0].parse::<u32>().is_ok() && parts[1].parse::<u32>().is_ok(),
            "{a}"
        );
    }
}

#[test]
fn a_policy_forbidding_process_execute_flags_code_format() {
    let Some(up) = upstream_copy() else { return };
    std::fs::write(
        up.path().join("registry/policies/no-process.yaml"),
        "policy:\n  name: no-process-execution\n  version: 1.0.0\n  type: security\n  rules:\n    - field: permissions\n      forbidden_values: [process.execute]\n      message: Process execution is forbidden\n      severity: error\n  enforcement: blocking\n",
    )
    .unwrap();
    let out = run_in(
        up.path(),
        &["--registry", "registry", "--all", "--format", "json"],
        None,
    );
    let r = out.json();
    let hits: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["policy"] == "no-process-execution")
        .collect();
    let code_format = hits
        .iter()
        .find(|f| f["target"] == "code.format")
        .expect("code.format is flagged");
    let text = std::fs::read_to_string(up.path().join("skills/code.format/skill.yaml")).unwrap();
    let line = text
        .lines()
        .position(|l| l.trim() == "- process:execute")
        .unwrap()
        + 1;
    assert_eq!(
        code_format["line"].as_u64().unwrap() as usize,
        line,
        "{code_format}"
    );
    assert_eq!(code_format["column"], 5);
    assert_eq!(code_format["pointer"], "/permissions/2");
}

#[test]
fn upstream_permissions_policy_matches_colon_form() {
    let Some(up) = upstream_copy() else { return };
    std::fs::create_dir_all(up.path().join("skills/files.purge")).unwrap();
    std::fs::write(
        up.path().join("skills/files.purge/skill.yaml"),
        "name: files.purge\nversion: 0.1.0\ndescription: Purge files\nstatus: active\npermissions:\n  - filesystem:read\n  - filesystem:delete\n",
    )
    .unwrap();
    let out = run_in(
        up.path(),
        &[
            "--registry",
            "registry",
            "--format",
            "json",
            "skills/files.purge/skill.yaml",
        ],
        None,
    );
    let r = out.json();
    let f = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["policy"] == "permission-controls")
        .expect("flagged");
    assert_eq!(f["level"], "warning");
    assert_eq!(f["line"], 7);
    assert_eq!(out.code, 0, "a warning policy passes");
}

// ---------------------------------------------------------------- compliance and fixtures

#[test]
fn compliance_report_per_control() {
    let p = Project::new();
    let out = p.run(&["report", "--framework", "soc2"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("CC6.1") && out.stdout.contains("pass"),
        "{}",
        out.stdout
    );
    let bad = p.write(
        "skills/bad/skill.yaml",
        &GOOD_SKILL.replace("name: report.build", "name: BadName"),
    );
    assert!(bad.exists());
    let out = p.run(&["report", "--framework", "iso27001", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let r = out.json();
    let a832 = r["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["control"] == "A.8.32")
        .unwrap();
    assert_eq!(a832["status"], "fail");
    assert!(
        a832["findings"][0]["location"]
            .as_str()
            .unwrap()
            .contains("skills/bad/skill.yaml:1:7"),
        "{a832}"
    );
    assert!(
        r["controls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["control"].as_str().unwrap().starts_with("CC"))
    );
    let errors = schema_errors(&schema("compliance-report.schema.json"), &r);
    assert!(errors.is_empty(), "{errors:#?}");
    // Read-only: no audit entry.
    assert_eq!(p.audit_text(), "[\n]\n");
}

#[test]
fn fixtures_run_against_the_policies() {
    let p = Project::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = p.run(&["test", fixtures.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("❌"), "{}", out.stdout);
    let dir = p.root().join("fx");
    p.write(
        "fx/wrong.yaml",
        "manifest:\n  name: BadName\nexpect:\n  outcome: passed\n",
    );
    p.write("fx/right.yaml", "action: create\nmanifest:\n  name: BadName\nexpect:\n  outcome: failed\n  findings: [skill-naming-convention/lowercase-dotted-name]\n");
    let out = p.run(&["test", dir.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("❌ wrong") && out.stdout.contains("expected passed, got failed"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("✅ right"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Rules no fixture exercises"),
        "{}",
        out.stdout
    );
    let out = p.run(&["test", dir.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.code, 1);
    let r = out.json();
    assert_eq!(r["passed"], false);
    let errors = schema_errors(&schema("policy-fixtures.schema.json"), &r);
    assert!(errors.is_empty(), "{errors:#?}");
}

// ---------------------------------------------------------------- bad input

fn assert_error(out: &Out, what: &str) {
    assert_eq!(
        out.code, 2,
        "{what}: exit {} {}{}",
        out.code, out.stdout, out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout must stay empty: {}",
        out.stdout
    );
    assert!(out.stderr.starts_with("error: "), "{what}: {}", out.stderr);
}

#[test]
fn bad_manifests_are_clear_errors_and_change_nothing() {
    let p = Project::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", b"".to_vec(), "is empty"),
        ("list", b"- a\n- b\n".to_vec(), "must be a mapping"),
        ("float version", b"name: a.b\nversion: 1.0\n".to_vec(), "quote it"),
        ("integer name", b"name: 42\nversion: \"1.0.0\"\n".to_vec(), "`name` must be a string"),
        ("non-UTF-8", b"name: caf\xe9\n".to_vec(), "not valid UTF-8"),
        (
            "alias bomb",
            b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n".to_vec(),
            "bad.yaml",
        ),
        ("syntax", b"name: [unclosed\n".to_vec(), "bad.yaml:"),
    ];
    for (what, bytes, expect) in cases {
        std::fs::write(p.root().join("bad.yaml"), &bytes).unwrap();
        let out = p.run(&["--action", "register", "--kind", "skill", "bad.yaml"]);
        assert_error(&out, what);
        assert!(out.stderr.contains(expect), "{what}: {}", out.stderr);
        let out = p.run_stdin(&["--action", "register", "--kind", "skill", "-"], &bytes);
        assert_error(&out, what);
    }
    // 100 MB: refused from its size, before reading.
    let big = std::fs::File::create(p.root().join("big.yaml")).unwrap();
    big.set_len(100 * 1024 * 1024).unwrap();
    let out = p.run(&["--action", "register", "--kind", "skill", "big.yaml"]);
    assert_error(&out, "100 MB");
    assert!(out.stderr.contains("over the limit"), "{}", out.stderr);
    let out = p.run(&["--action", "register", "--kind", "skill", "missing.yaml"]);
    assert_error(&out, "missing file");
    let out = p.run(&["--action", "register"]);
    assert_error(&out, "nothing to check");
    let out = p.run(&["--action", "create"]);
    assert_error(&out, "create without a name");
    // Nothing was recorded for any of them.
    assert_eq!(p.audit_text(), "[\n]\n");
    assert!(p.events().is_empty());
}

#[test]
fn bad_policies_are_clear_errors_with_the_policy_line() {
    let p = Project::new();
    let policy = |rule: &str| {
        format!(
            "policy:\n  name: extra\n  version: 1.0.0\n  rules:\n    - field: name\n{rule}      message: m\n      severity: error\n  enforcement: blocking\n"
        )
    };
    let cases = [
        (
            "invalid regex",
            policy("      pattern: \"[a-z\"\n"),
            "extra.yaml:6:16",
            "invalid regular expression",
        ),
        (
            "unknown rule kind",
            policy("      must_match: x\n"),
            "extra.yaml:6:",
            "unknown rule kind `must_match`",
        ),
        (
            "huge regex",
            policy(&format!("      pattern: \"{}\"\n", "a".repeat(5000))),
            "extra.yaml:6:16",
            "over the limit",
        ),
        (
            "exponential regex",
            policy("      pattern: \"(a{1000}){1000}\"\n"),
            "extra.yaml:6:16",
            "invalid regular expression",
        ),
        (
            "duplicate name",
            policy("      required: true\n")
                .replace("name: extra", "name: skill-naming-convention"),
            "extra.yaml:2:9",
            "already used by",
        ),
        (
            "not a policy",
            "- a\n".to_string(),
            "extra.yaml:1:1",
            "must be a mapping",
        ),
        ("empty", String::new(), "extra.yaml", "is empty"),
    ];
    for (what, text, at, expect) in cases {
        p.write("registry/policies/extra.yaml", &text);
        let out = p.run(&["--action", "create", "--skill-name", "data.transform"]);
        assert_error(&out, what);
        assert!(
            out.stderr.contains(at) && out.stderr.contains(expect),
            "{what}: {}",
            out.stderr
        );
    }
    std::fs::remove_file(p.registry().join("policies/extra.yaml")).unwrap();
    assert_eq!(p.audit_text(), "[\n]\n");
}

#[test]
fn a_corrupt_registry_is_an_error() {
    let p = Project::new();
    p.write("registry/skills.json", "{\"skills\": [");
    let out = p.run(&["--action", "audit"]);
    assert_error(&out, "corrupt registry");
    assert!(out.stderr.contains("skills.json"), "{}", out.stderr);
}

/// A blocked violation alerts at once: `policy-enforce` starts the `telemetry-capture` alert
/// deliverer, which posts the event to the Slack-compatible hook of `telemetry/alerts.yaml`.
#[test]
fn a_blocked_violation_fires_the_alert_rule() {
    use std::io::{BufRead, BufReader, Read};
    let deliverer = Path::new(BIN).with_file_name("telemetry-capture");
    if !deliverer.is_file() {
        betty_testkit::skip(&format!(
            "{} is not built (run the whole workspace's tests)",
            deliverer.display()
        ));
        return;
    }
    let p = Project::new();
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    p.write(
        "registry/telemetry/alerts.yaml",
        &format!(
            "alerts:\n  - name: blocked-violations\n    event_type: policy.violated\n    outcome: blocked\n    slack: http://{}/hook\n",
            hook.local_addr().unwrap()
        ),
    );
    let out = p.run(&["--action", "create", "--skill-name", "BadName"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // The deliverer is detached: wait for its POST (a generous bound, so a broken deliverer
    // fails the test instead of hanging it; this is not a speed assertion).
    hook.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut s = loop {
        match hook.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no alert was delivered; events: {:?}",
                    p.events()
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    s.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut len = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("BadName"), "{text}");
    let blocked = p
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "policy.violated" && e["outcome"] == "blocked")
        .count();
    assert_eq!(blocked, 1);
}

// ---------------------------------------------------------------- value rules on permissions

/// A registry holding only `policy` (plus the bundled registry files), and a skill asking for
/// `permissions`; the report of checking that skill.
fn check_permissions_against(policy_rule: &str, permissions: &[&str]) -> (i32, Vec<Value>) {
    let p = Project::new();
    for entry in std::fs::read_dir(p.registry().join("policies")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    p.write(
        "registry/policies/only.yaml",
        &format!(
            "policy:\n  name: only\n  version: 1.0.0\n  type: permission\n  rules:\n    - id: r\n      field: permissions\n{policy_rule}      message: not this permission\n      severity: error\n  enforcement: blocking\n"
        ),
    );
    let list: String = permissions.iter().map(|p| format!("  - {p}\n")).collect();
    p.write(
        "skills/net.fetch/skill.yaml",
        &format!("name: net.fetch\nversion: 0.1.0\ndescription: Fetch.\npermissions:\n{list}"),
    );
    let out = p.run(&["--format", "json", "skills/net.fetch/skill.yaml"]);
    assert!(
        out.code == 0 || out.code == 1,
        "{} {}",
        out.stdout,
        out.stderr
    );
    let findings: Vec<Value> = out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["policy"] == "only")
        .cloned()
        .collect();
    (out.code, findings)
}

#[test]
fn value_rules_on_permissions_mean_allow_and_deny() {
    // A bare domain covers its actions, in every spelling: what `deny: [network]` catches.
    for rule in [
        "      forbidden_values: [network]\n",
        "      deny: [network]\n",
        "      forbidden_globs: [\"net*\"]\n",
    ] {
        let (code, findings) =
            check_permissions_against(rule, &["filesystem:read", "network:http"]);
        assert_eq!(code, 1, "{rule}: {findings:?}");
        assert_eq!(findings.len(), 1, "{rule}: {findings:?}");
        assert_eq!(findings[0]["pointer"], "/permissions/1", "{rule}");
        let (code, findings) = check_permissions_against(rule, &["Network.HTTPS"]);
        assert_eq!((code, findings.len()), (1, 1), "{rule}: {findings:?}");
    }
    // A scoped value is the action with a scope: `read:/etc/shadow` is a filesystem read.
    let (code, findings) = check_permissions_against(
        "      forbidden_values: [filesystem.read]\n",
        &["read:/etc/shadow"],
    );
    assert_eq!((code, findings.len()), (1, 1), "{findings:?}");
    // The rule reports its kind as written.
    assert_eq!(findings[0]["rule_kind"], "forbidden_values");
    // `allowed_values` is an allow-list: `filesystem.read` admits `filesystem:read` and a scoped
    // read, not `filesystem:delete` nor the bare domain (every action).
    let rule = "      allowed_values: [filesystem.read, stdout]\n";
    let (code, findings) = check_permissions_against(
        rule,
        &["filesystem:read", "read:/workspace/x", "stdout:write"],
    );
    assert_eq!((code, findings.len()), (0, 0), "{findings:?}");
    let (code, findings) = check_permissions_against(rule, &["filesystem:delete", "filesystem"]);
    assert_eq!(code, 1);
    let pointers: Vec<&str> = findings
        .iter()
        .map(|f| f["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/permissions/0", "/permissions/1"],
        "{findings:?}"
    );
}

#[test]
fn a_value_rule_on_permissions_that_is_no_permission_is_refused_at_load() {
    let p = Project::new();
    p.write(
        "registry/policies/extra.yaml",
        "policy:\n  name: extra\n  version: 1.0.0\n  rules:\n    - field: permissions\n      forbidden_values: [\"rm -rf\"]\n      message: m\n      severity: error\n  enforcement: blocking\n",
    );
    let out = p.run(&["--action", "create", "--skill-name", "data.transform"]);
    assert_error(&out, "a value that is no permission");
    assert!(
        out.stderr.contains("extra.yaml:6:") && out.stderr.contains("`deny: [...]`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_pattern_rule_on_permissions_is_refused_at_load() {
    // A regex sees `filesystem.read` and `filesystem:read` as different text, though they are
    // one permission: the rule would read one way and match another.
    let p = Project::new();
    p.write(
        "registry/policies/extra.yaml",
        "policy:\n  name: extra\n  version: 1.0.0\n  rules:\n    - field: permissions\n      pattern: '^filesystem:read$'\n      message: m\n      severity: error\n  enforcement: blocking\n",
    );
    let out = p.run(&["--action", "create", "--skill-name", "data.transform"]);
    assert_error(&out, "`pattern` on a permission field");
    assert!(
        out.stderr.contains("extra.yaml:6:") && out.stderr.contains("`deny: [...]`"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- per-target records

#[test]
fn each_target_of_a_batch_records_its_own_duration() {
    let p = Project::new();
    let mut paths = Vec::new();
    for (name, count) in [("tiny.one", 1), ("mid.one", 200), ("huge.one", 5000)] {
        let perms: String = (0..count)
            .map(|i| format!("  - filesystem:read:data/f{i}\n"))
            .collect();
        let rel = format!("skills/{name}/skill.yaml");
        p.write(
            &rel,
            &format!("name: {name}\nversion: 0.1.0\ndescription: Read data.\nstatus: draft\npermissions:\n{perms}"),
        );
        paths.push(rel);
    }
    let mut args = vec!["--format", "json"];
    args.extend(paths.iter().map(String::as_str));
    let out = p.run(&args);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let durations: Vec<(String, f64)> = p
        .events()
        .iter()
        .filter(|e| e["event_type"] == "policy.enforced")
        .map(|e| {
            (
                e["skill_name"].as_str().unwrap().to_string(),
                e["duration_ms"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(durations.len(), 3, "{durations:?}");
    let of = |name: &str| durations.iter().find(|(n, _)| n == name).unwrap().1;
    let (tiny, mid, huge) = (of("tiny.one"), of("mid.one"), of("huge.one"));
    assert!(
        tiny != mid && mid != huge && tiny != huge,
        "one run's duration copied to every target: {durations:?}"
    );
    // 5000 permissions take longer to check than one.
    assert!(huge > tiny, "{durations:?}");
}

#[test]
fn audit_entries_say_where_user_and_ip_address_came_from() {
    let p = Project::new();
    let entries = |p: &Project| -> Vec<Value> { serde_json::from_str(&p.audit_text()).unwrap() };
    assert_eq!(
        p.run(&["--action", "create", "--skill-name", "data.transform"])
            .code,
        0
    );
    let out = p.run(&[
        "--action",
        "create",
        "--skill-name",
        "data.transform",
        "--user",
        "flag@example.com",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let e = entries(&p);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["user"], "tester@example.com");
    assert_eq!(
        e[0]["identity_sources"],
        serde_json::json!({"user": "environment", "ip_address": "default"})
    );
    assert_eq!(e[1]["user"], "flag@example.com");
    assert_eq!(e[1]["identity_sources"]["user"], "flag");
    let schema = schema("audit-entry.schema.json");
    for entry in &e {
        let errors = schema_errors(&schema, entry);
        assert!(errors.is_empty(), "{errors:?}");
    }
}
