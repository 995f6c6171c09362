//! Fail closed where a check cannot run (issue 9, item 4) and bounded cost (item 6): the real
//! `policy-enforce` binary on real files in temporary folders. Each test here failed on the
//! code before these checks existed.

#![allow(clippy::print_stderr)] // a skipped test says why on stderr

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_policy-enforce");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");
const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/upstream-betty"
);
const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");

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

/// Runs the binary; `guard` is a hang guard only (the test fails if it is reached).
fn run_guarded(cwd: &Path, args: &[&str], stdin: Option<&[u8]>, guard: Duration) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("BETTY_REGISTRY")
        .env_remove("BETTY_HOME")
        .env_remove("RUST_LOG")
        .env("BETTY_USER", "tester@example.com")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    {
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).expect("write stdin");
        }
    }
    // Output is drained while the command runs (a full pipe would stall it).
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(guard) {
        Ok(out) => out.expect("the binary finishes"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!(
                "hang guard: `policy-enforce {}` ran over {guard:?}",
                args.join(" ")
            );
        }
    };
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
        std::fs::write(dir.path().join("registry/audit_log.json"), "[\n]\n").unwrap();
        let _ = std::fs::remove_file(dir.path().join("registry/telemetry/events.jsonl"));
        Project { dir }
    }

    /// An empty project with only a `registry/` folder.
    fn bare() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("registry")).unwrap();
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
        run_guarded(self.root(), args, None, Duration::from_secs(120))
    }

    fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        run_guarded(self.root(), args, Some(stdin), Duration::from_secs(120))
    }

    fn audit_text(&self) -> String {
        std::fs::read_to_string(self.registry().join("audit_log.json")).unwrap_or_default()
    }
}

fn upstream() -> Option<&'static Path> {
    let p = Path::new(UPSTREAM);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/upstream-betty is absent");
        None
    }
}

fn findings(r: &Value) -> Vec<Value> {
    r["findings"].as_array().cloned().unwrap_or_default()
}

fn assert_exit2(out: &Out, what: &str, names: &str) {
    assert_eq!(out.code, 2, "{what}: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{what}: {}", out.stdout);
    assert!(out.stderr.contains(names), "{what}: {}", out.stderr);
}

const SKILL: &str = "name: report.build\nversion: 0.1.0\ndescription: Build a weekly report from the data folder.\nstatus: draft\npermissions:\n  - filesystem:read\n";

// ------------------------------------------------------------ the kind comes from the name

#[test]
fn a_skill_yaml_holding_steps_is_checked_as_a_skill_and_blocked() {
    let p = Project::new();
    let text = "name: sneaky.tool\nversion: 0.1.0\ndescription: Looks like a workflow to a sniffer.\nstatus: draft\npermissions:\n  - secrets:write\nsteps:\n  - skill: data.validate\n";
    // Under a `workflows/` folder too: the file name says skill, and the name wins.
    for rel in [
        "skills/sneaky.tool/skill.yaml",
        "workflows/sneaky/skill.yaml",
    ] {
        p.write(rel, text);
        let out = p.run(&["--action", "register", rel, "--format", "json"]);
        assert_eq!(out.code, 1, "{rel}: {}{}", out.stdout, out.stderr);
        let r = out.json();
        assert_eq!(r["targets"][0]["kind"], "skill", "{rel}: {r}");
        let blocked = findings(&r).into_iter().any(|f| {
            f["level"] == "blocking"
                && f["policy"] == "permission-allow-list"
                && f["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("secrets:write")
                && f["line"] == 6
        });
        assert!(blocked, "{rel}: {r}");
    }
}

#[test]
fn a_file_whose_name_does_not_say_its_kind_needs_kind() {
    let p = Project::new();
    let wf = "name: sneaky\nsteps:\n  - skill: data.transform\n";
    p.write("sneaky.yaml", wf);
    let out = p.run(&["--action", "execute", "sneaky.yaml"]);
    assert_exit2(&out, "no kind", "--kind");
    assert!(out.stderr.contains("sneaky.yaml"), "{}", out.stderr);
    // Stdin has no name at all: it needs `--kind` (fail closed, never "a skill" by default).
    let out = p.run_stdin(&["--action", "register", "-"], SKILL.as_bytes());
    assert_exit2(&out, "stdin without --kind", "--kind");
    assert_eq!(
        p.audit_text(),
        "[\n]\n",
        "nothing decided, nothing recorded"
    );
    // With `--kind`, both are read as told.
    let out = p.run(&[
        "--action",
        "execute",
        "--kind",
        "workflow",
        "sneaky.yaml",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["targets"][0]["kind"], "workflow");
    let out = p.run_stdin(
        &["--action", "register", "--kind", "skill", "-"],
        SKILL.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = p.run_stdin(
        &[
            "--action", "execute", "--kind", "workflow", "-", "--format", "json",
        ],
        b"name: piped\nsteps:\n  - skill: no.such.step\n",
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
}

// ------------------------------------------------------------ unregistered workflow steps

/// A project whose registry holds only upstream's `skills.json` and its three policies.
fn upstream_project(up: &Path) -> Project {
    let p = Project::bare();
    std::fs::copy(
        up.join("registry/skills.json"),
        p.registry().join("skills.json"),
    )
    .unwrap();
    copy_dir(
        &up.join("registry/policies"),
        &p.registry().join("policies"),
    );
    p
}

#[test]
fn upstream_api_first_workflow_with_upstream_policies_blocks_the_unregistered_step() {
    let Some(up) = upstream() else { return };
    let p = upstream_project(up);
    let wf = up.join("workflows/api_first_development.yaml");
    let text = std::fs::read_to_string(&wf).unwrap();
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("api.generate-models").map(|c| (i + 1, c + 1)))
        .unwrap();
    let wf = wf.to_str().unwrap();
    let out = p.run(&["--action", "execute", wf]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("api.generate-models"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("api_first_development.yaml:{line}:{col}")),
        "{line}:{col}: {}",
        out.stdout
    );
    let r = p
        .run(&["--action", "execute", wf, "--format", "json"])
        .json();
    let steps: Vec<Value> = findings(&r)
        .into_iter()
        .filter(|f| f["rule"] == "workflow-step-registered")
        .collect();
    // Both steps that run it, each at its own line.
    assert_eq!(steps.len(), 2, "{r}");
    assert!(steps.iter().all(|f| f["level"] == "blocking"), "{r}");
    assert_eq!(steps[0]["line"], line as u64, "{r}");
    // The registered steps were checked as the registry has them.
    assert!(
        r["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "api.define"),
        "{r}"
    );
}

#[test]
fn nested_steps_are_checked_under_any_pack() {
    let p = Project::new();
    p.write(
        "workflows/nested.yaml",
        "name: nested\nsteps:\n  - skill: ghost.top\n  - name: group\n    steps:\n      - skill: data.transform\n      - steps:\n          - skill: ghost.skill\n",
    );
    for policies in [None, Some("registry/policies")] {
        let mut args = vec![
            "--action",
            "execute",
            "workflows/nested.yaml",
            "--format",
            "json",
        ];
        if let Some(dir) = policies {
            args.extend(["--policies", dir]);
        }
        let out = p.run(&args);
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        let r = out.json();
        let ghost: Vec<Value> = findings(&r)
            .into_iter()
            .filter(|f| {
                f["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("ghost.skill")
            })
            .collect();
        assert!(!ghost.is_empty(), "{r}");
        assert_eq!(ghost.len(), 1, "{r}");
        assert!(
            ghost.iter().all(|f| f["line"] == 8 && f["column"] == 20),
            "{r}"
        );
        assert_eq!(ghost[0]["rule"], "workflow-step-registered", "{r}");
        // A top-level step the pack's own rule reports is reported once, not once more
        // built in.
        let top = findings(&r)
            .into_iter()
            .filter(|f| {
                f["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("ghost.top")
            })
            .count();
        assert_eq!(top, 1, "{r}");
    }
    // A pack without any workflow policy still blocks it (a plain check, no `--action`).
    p.write(
        "only-naming/naming.yaml",
        &std::fs::read_to_string(p.registry().join("policies/skill-naming.yaml")).unwrap(),
    );
    let out = p.run(&["workflows/nested.yaml", "--policies", "only-naming"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("workflows/nested.yaml:8:20"),
        "{}",
        out.stdout
    );
}

/// Upstream's `workflow.compose` runs `agent:` steps (through `run.agent`) and runs a `skill:`
/// step from `skills/NAME/`: an unregistered agent step, or a skill step whose name only a
/// registered *agent* has, runs unchecked code and is blocked.
#[test]
fn agent_steps_are_checked_and_a_skill_step_is_not_vouched_for_by_an_agent() {
    let p = Project::new();
    p.write(
        "workflows/w.yaml",
        "name: w\nsteps:\n  - agent: evil.unregistered\n    steps: []\n  - skill: data.engineer\n  - agent: data.engineer\n  - skill: data.transform\n",
    );
    for policies in [None, Some("registry/policies")] {
        let mut args = vec![
            "--action",
            "execute",
            "workflows/w.yaml",
            "--format",
            "json",
        ];
        if let Some(dir) = policies {
            args.extend(["--policies", dir]);
        }
        let out = p.run(&args);
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        let r = out.json();
        let steps: Vec<(u64, String)> = findings(&r)
            .into_iter()
            .filter(|f| f["rule"] == "workflow-step-registered")
            .map(|f| {
                (
                    f["line"].as_u64().unwrap(),
                    f["detail"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(steps.len(), 2, "{r}");
        assert_eq!(steps[0].0, 3, "{r}");
        assert!(
            steps[0]
                .1
                .contains("`evil.unregistered` is not a registered agent"),
            "{r}"
        );
        assert_eq!(steps[1].0, 5, "{r}");
        assert!(
            steps[1]
                .1
                .contains("`data.engineer` is not a registered skill (a registered agent"),
            "{r}"
        );
        // The registered agent step is checked as the registry has it.
        assert!(
            r["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "data.engineer" && t["kind"] == "agent"),
            "{r}"
        );
    }
}

#[test]
fn a_workflow_that_grants_permissions_is_blocked_under_any_pack_and_action() {
    // Every permission policy is scoped to skills and agents; before this check a grant
    // written into a workflow passed them all (exit 0 under `--action execute`).
    let p = Project::new();
    p.write(
        "workflows/grant.yaml",
        "name: grant\nversion: 1.0.0\npermissions: [secrets:write]\nsteps:\n  - skill: data.transform\n    permissions: [network:unrestricted]\n  - steps:\n      - skill: data.validate\n        with:\n          permissions: filesystem:delete\n  - skill: data.validate\n    permissions: []\n",
    );
    p.write(
        "only-naming/naming.yaml",
        &std::fs::read_to_string(p.registry().join("policies/skill-naming.yaml")).unwrap(),
    );
    for args in [
        vec!["--action", "execute", "workflows/grant.yaml"],
        vec!["--action", "audit", "workflows/grant.yaml"],
        vec!["workflows/grant.yaml"],
        vec!["workflows/grant.yaml", "--policies", "only-naming"],
    ] {
        let mut args = args.clone();
        args.extend(["--format", "json"]);
        let out = p.run(&args);
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        let r = out.json();
        let grants: Vec<(i64, i64)> = findings(&r)
            .into_iter()
            .filter(|f| f["rule"] == "workflow-permissions" && f["level"] == "blocking")
            .map(|f| (f["line"].as_i64().unwrap(), f["column"].as_i64().unwrap()))
            .collect();
        // Top level, a step's, one at any depth; an empty list grants nothing.
        assert_eq!(grants, vec![(3, 14), (6, 18), (10, 24)], "{args:?}: {r}");
    }
    // The same steps without the grants pass.
    p.write(
        "workflows/plain.yaml",
        "name: plain\nversion: 1.0.0\nsteps:\n  - skill: data.transform\n",
    );
    let out = p.run(&["--action", "execute", "workflows/plain.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

// ------------------------------------------------------------ the registered version is needed

#[test]
fn a_missing_dangling_or_unreadable_skills_json_is_exit_2_when_a_check_needs_it() {
    let p = Project::new();
    p.write("skills/report.build/skill.yaml", SKILL);
    let skills = p.registry().join("skills.json");
    let saved = std::fs::read(&skills).unwrap();
    let update = ["--action", "update", "skills/report.build/skill.yaml"];
    // Missing.
    std::fs::remove_file(&skills).unwrap();
    for args in [
        &update[..],
        &["--action", "audit"][..],
        &["--action", "execute", "data.transform"][..],
    ] {
        let out = p.run(args);
        assert_exit2(&out, "missing skills.json", "skills.json");
        assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    }
    // Creating checks a name before anything is registered: no registry needed.
    let out = p.run(&["--action", "create", "--skill-name", "data.transform"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Dangling link.
    std::os::unix::fs::symlink(p.root().join("nowhere.json"), &skills).unwrap();
    assert_exit2(&p.run(&update), "dangling skills.json", "skills.json");
    std::fs::remove_file(&skills).unwrap();
    // A folder where the file belongs.
    std::fs::create_dir(&skills).unwrap();
    assert_exit2(&p.run(&update), "skills.json is a folder", "skills.json");
    std::fs::remove_dir(&skills).unwrap();
    // Back in place: the same check runs and passes.
    std::fs::write(&skills, saved).unwrap();
    let out = p.run(&update);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn a_policy_file_that_cannot_be_read_is_exit_2_never_skipped() {
    let p = Project::new();
    p.write("skills/report.build/skill.yaml", SKILL);
    let args = ["--action", "register", "skills/report.build/skill.yaml"];
    assert_eq!(p.run(&args).code, 0);
    let policies = p.registry().join("policies");
    std::fs::create_dir(policies.join("folder.yaml")).unwrap();
    assert_exit2(&p.run(&args), "folder named x.yaml", "folder.yaml");
    std::fs::remove_dir(policies.join("folder.yaml")).unwrap();
    std::os::unix::fs::symlink(p.root().join("gone.yaml"), policies.join("dangling.yaml")).unwrap();
    let out = p.run(&args);
    assert_exit2(&out, "dangling policy link", "dangling.yaml");
    assert_eq!(
        p.audit_text().matches("\"seq\"").count(),
        1,
        "only the first run was recorded"
    );
}

// ------------------------------------------------------------ a rule that matches nothing

#[test]
fn a_rule_whose_field_matches_nothing_is_reported_in_every_format() {
    let p = Project::new();
    p.write(
        "skills/report.build/skill.yaml",
        SKILL.replace("filesystem:read", "secrets:write").as_str(),
    );
    let typo = "policy:\n  name: no-secret-writes\n  version: 1.0.0\n  type: permission\n  scope: [skills]\n  rules:\n    - id: no-secrets-write\n      field: permisions\n      forbidden_values: [secrets:write]\n      message: no secret writes\n      severity: error\n  enforcement: blocking\n";
    p.write("pol/typo.yaml", typo);
    let base = ["skills/report.build/skill.yaml", "--policies", "pol"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        p.run(&args)
    };
    let out = run(&[]);
    assert_eq!(out.code, 0, "a warning: {}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("matched nothing: no-secret-writes/no-secrets-write"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("pol/typo.yaml:7:"), "{}", out.stdout);
    let r = run(&["--format", "json"]).json();
    let d = &r["diagnostics"][0];
    assert_eq!(d["code"], "rule-matched-nothing", "{r}");
    assert_eq!(
        (d["file"].as_str().unwrap(), d["line"].as_u64().unwrap()),
        ("pol/typo.yaml", 7),
        "{r}"
    );
    assert_eq!(d["level"], "warning");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(SCHEMAS).join("policy-report.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(
        v.is_valid(&r),
        "{:?}",
        v.iter_errors(&r).map(|e| e.to_string()).collect::<Vec<_>>()
    );
    let sarif = run(&["--format", "sarif"]).json();
    let official = Path::new(UPSTREAM).join("../schemas-external/sarif-schema-2.1.0.json");
    if let Ok(text) = std::fs::read_to_string(&official) {
        let schema: Value = serde_json::from_str(&text).unwrap();
        let v = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = v.iter_errors(&sarif).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}");
    } else {
        eprintln!("the SARIF schema is absent: notification not validated");
    }
    let n = &sarif["runs"][0]["invocations"][0]["toolConfigurationNotifications"][0];
    assert_eq!(n["descriptor"]["id"], "rule-matched-nothing", "{sarif}");
    assert_eq!(
        n["locations"][0]["physicalLocation"]["region"]["startLine"], 7,
        "{sarif}"
    );
    let junit = run(&["--format", "junit"]).stdout;
    assert!(
        junit.contains("rule-matched-nothing") && junit.contains("pol/typo.yaml:7:"),
        "{junit}"
    );
    // `--strict`: a rule that checks nothing blocks.
    let out = run(&["--strict"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    // The correct spelling blocks the skill; optional fields that one skill lacks are no typo.
    p.write("pol/typo.yaml", &typo.replace("permisions", "permissions"));
    let out = run(&["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(out.json()["diagnostics"], serde_json::json!([]));
    let out = p.run(&["skills/report.build/skill.yaml", "--format", "json"]);
    assert_eq!(
        out.json()["diagnostics"],
        serde_json::json!([]),
        "the default pack on one skill"
    );
}

// ------------------------------------------------------------ a manifest without a name

#[test]
fn a_manifest_without_a_name_is_a_naming_finding_and_all_goes_on() {
    let p = Project::new();
    p.write("skills/report.build/skill.yaml", SKILL);
    p.write(
        "skills/nameless/skill.yaml",
        &SKILL.replace("name: report.build\n", ""),
    );
    let out = p.run(&["--all", "--format", "json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["targets"].as_array().unwrap().len(), 2, "{r}");
    let naming = findings(&r)
        .into_iter()
        .find(|f| f["policy"] == "skill-naming-convention")
        .unwrap();
    assert!(
        naming["file"]
            .as_str()
            .unwrap()
            .ends_with("skills/nameless/skill.yaml"),
        "{naming}"
    );
    assert_eq!(naming["line"], 1);
    assert_eq!(naming["level"], "blocking");
    // Under upstream's pack (its naming policy does not apply at `register`), the built-in
    // check still blocks.
    let Some(up) = upstream() else { return };
    let out = p.run(&[
        "--action",
        "register",
        "skills/nameless/skill.yaml",
        "--policies",
        up.join("registry/policies").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        findings(&out.json())
            .iter()
            .any(|f| f["rule"] == "manifest-name"),
        "{}",
        out.stdout
    );
}

#[test]
fn all_that_finds_no_manifest_or_cannot_list_a_folder_is_exit_2() {
    // Every manifest deleted: a deploy gate asked to check everything must not pass.
    let p = Project::new();
    let out = p.run(&["--all", "--action", "deploy", "--environment", "production"]);
    assert_exit2(&out, "no manifests", "nothing to check, so nothing passes");
    // `skills` replaced by a file: the folder cannot be listed, so nothing under it was seen.
    let p = Project::new();
    p.write("agents/helper/agent.yaml", "name: helper\nversion: 0.1.0\n");
    p.write("skills", "not a folder\n");
    let out = p.run(&["--all"]);
    assert_exit2(&out, "skills is a file", "skills");
    let out = p.run(&["--action", "audit"]);
    assert_eq!(
        out.code, 2,
        "audit over an unlistable skills/: {}{}",
        out.stdout, out.stderr
    );
    assert!(out.stderr.contains("skills"), "{}", out.stderr);
    // Nothing was recorded as if the run had happened.
    assert!(
        !p.audit_text().contains("policy.enforced"),
        "{}",
        p.audit_text()
    );
}

// ------------------------------------------------------------ compliance: not evaluated

#[test]
fn a_control_whose_rules_checked_nothing_is_not_evaluated() {
    let p = Project::new();
    p.write(
        "pol/skills.yaml",
        "policy:\n  name: named\n  version: 1.0.0\n  scope: [skills]\n  rules:\n    - field: name\n      min_length: 1\n      message: m\n      severity: error\n  enforcement: blocking\n  controls: [CC6.1]\n",
    );
    p.write(
        "pol/workflows.yaml",
        "policy:\n  name: steps-named\n  version: 1.0.0\n  scope: [workflows]\n  rules:\n    - field: \"steps[*].skill\"\n      min_length: 1\n      message: m\n      severity: error\n  enforcement: blocking\n  controls: [CC7.2]\n",
    );
    let out = p.run(&[
        "report",
        "--framework",
        "soc2",
        "--format",
        "json",
        "--policies",
        "pol",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let r = out.json();
    let status = |c: &str| {
        r["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["control"] == c)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("CC6.1"), "pass", "{r}");
    assert_eq!(status("CC7.2"), "not evaluated", "{r}");
    assert_eq!(r["summary"]["not_evaluated"], 1);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(SCHEMAS).join("compliance-report.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(
        v.is_valid(&r),
        "{:?}",
        v.iter_errors(&r).map(|e| e.to_string()).collect::<Vec<_>>()
    );
    let text = p
        .run(&["report", "--framework", "soc2", "--policies", "pol"])
        .stdout;
    assert!(text.contains("CC7.2    not evaluated"), "{text}");
    assert!(!text.contains("CC7.2    pass"), "{text}");
}

// ------------------------------------------------------------ bounded cost

fn chain_registry(p: &Project, n: usize, chained: bool) {
    let mut skills = Vec::with_capacity(n);
    for i in 0..n {
        let deps: Vec<String> = if chained && i + 1 < n {
            vec![format!("chain.s{}", i + 1)]
        } else {
            Vec::new()
        };
        skills.push(serde_json::json!({
            "name": format!("chain.s{i}"), "version": "1.0.0",
            "description": "One link of a long dependency chain.", "status": "active",
            "dependencies": deps,
        }));
    }
    let reg = serde_json::json!({"registry_version": "1.0.0", "generated_at": "2026-01-01T00:00:00Z", "skills": skills});
    std::fs::write(
        p.registry().join("skills.json"),
        serde_json::to_vec(&reg).unwrap(),
    )
    .unwrap();
}

#[test]
fn audit_of_a_40000_skill_dependency_chain_finishes() {
    // Each skill's cycle search used to walk the whole chain below it: 40,000 skills meant
    // 800 million steps. Now one pass over the graph; the guard only catches a hang.
    let p = Project::new();
    std::fs::remove_file(p.registry().join("agents.json")).unwrap();
    chain_registry(&p, 40_000, true);
    let out = run_guarded(
        p.root(),
        &[
            "--action",
            "audit",
            "--policies",
            "registry/policies",
            "-q",
            "--format",
            "json",
        ],
        None,
        Duration::from_secs(300),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["summary"]["targets"], 40_000, "{}", r["summary"]);
    assert_eq!(r["summary"]["blocking"], 0);
    // Close a shorter chain into a cycle: every skill is on it, and each says so.
    chain_registry(&p, 5_000, true);
    let mut reg: Value =
        serde_json::from_slice(&std::fs::read(p.registry().join("skills.json")).unwrap()).unwrap();
    reg["skills"][4_999]["dependencies"] = serde_json::json!(["chain.s0"]);
    std::fs::write(
        p.registry().join("skills.json"),
        serde_json::to_vec(&reg).unwrap(),
    )
    .unwrap();
    let out = run_guarded(
        p.root(),
        &[
            "--action",
            "audit",
            "--policies",
            "registry/policies",
            "-q",
            "--format",
            "json",
        ],
        None,
        Duration::from_secs(300),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let cycles = findings(&out.json())
        .into_iter()
        .filter(|f| f["rule"] == "no-dependency-cycles")
        .count();
    assert_eq!(cycles, 5_000);
}
