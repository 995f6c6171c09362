//! The real `registry-diff` binary on real files in scratch folders and git repositories.

mod common;

use common::*;
use serde_json::{Value, json};

fn seed_repo() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    git_repo(t.path());
    commit_registry(
        t.path(),
        &registry(json!([
            {"name": "workflow.validate", "version": "0.1.0", "description": "Validate workflows",
             "status": "draft", "updated_at": "2025-10-23T00:00:00.000000+00:00"}
        ])),
        "first",
        None,
    );
    let mut second = registry(json!([
        {"name": "workflow.validate", "version": "0.1.0", "description": "Validate workflows",
         "status": "active", "updated_at": "2025-10-24T09:00:00.000000+00:00"},
        {"name": "data.transform", "version": "0.1.0", "description": "Transform data", "status": "active"}
    ]));
    // The registry restamped itself too: not a change.
    let text = String::from_utf8(second).unwrap().replace(
        "2025-10-23T00:00:00.000000+00:00\",\n  \"skills\"",
        "2025-10-24T09:00:00.000000+00:00\",\n  \"skills\"",
    );
    second = text.into_bytes();
    commit_registry(t.path(), &second, "second", None);
    t
}

#[test]
fn the_seed_example_compare_head_1_head_verbatim() {
    let t = seed_repo();
    let o = run(t.path(), &["--compare", "HEAD~1", "HEAD"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        body(&stdout(&o)),
        "Changed: workflow.validate\n  status: draft → active\nAdded: data.transform\n"
    );
    // Each side is a commit: which one, when and by whom.
    let lines: Vec<String> = stdout(&o).lines().take(2).map(str::to_string).collect();
    let head = git(t.path(), &["rev-parse", "HEAD"]);
    assert!(
        lines[0].starts_with("From: HEAD~1: commit ") && lines[0].ends_with(" by dev@example.com"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("To: HEAD: commit {}", &head.trim()[..12])),
        "{lines:?}"
    );
    // From a subfolder, and with a hash and a branch name.
    std::fs::create_dir_all(t.path().join("deep/er")).unwrap();
    let first = git(t.path(), &["rev-parse", "HEAD~1"]);
    let o = run(&t.path().join("deep/er"), &["--compare", &first, "main"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(body(&stdout(&o)).starts_with("Changed: workflow.validate\n"));
    // --exit-code: 1 with differences, 0 without.
    assert_eq!(
        code(&run(
            t.path(),
            &["--compare", "HEAD~1", "HEAD", "--exit-code"]
        )),
        1
    );
    let same = run(t.path(), &["--compare", "HEAD", "current", "--exit-code"]);
    assert_eq!(code(&same), 0, "{}", stderr(&same));
    assert_eq!(body(&stdout(&same)), "No differences.\n");
    // --skill narrows.
    let o = run(
        t.path(),
        &["--compare", "HEAD~1", "HEAD", "--skill", "data.transform"],
    );
    assert_eq!(body(&stdout(&o)), "Added: data.transform\n");
    let o = run(
        t.path(),
        &["--compare", "HEAD~1", "HEAD", "--skill", "no.such"],
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no skill of that name"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_and_patch_formats() {
    let t = seed_repo();
    let o = run(
        t.path(),
        &["--compare", "HEAD~1", "HEAD", "--format", "json"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    validate("registry-diff-output.schema.json", &v);
    assert_eq!(
        v["summary"],
        json!({"changed": 1, "added": 1, "removed": 0, "unchanged": 0})
    );
    assert_eq!(v["skills"][0]["fields"][0]["field"], "status");
    assert_eq!(v["skills"][0]["fields"][0]["old_value"], "draft");
    assert_eq!(v["skills"][0]["required_bump"], "minor");

    let o = run(
        t.path(),
        &["--compare", "HEAD~1", "HEAD", "--format", "patch"],
    );
    let patch: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        patch[0],
        json!({"op": "replace", "path": "/skills/0/status", "value": "active"})
    );
    assert_eq!(patch[1]["op"], "add");
    assert_eq!(patch[1]["path"], "/skills/-");
    let mut old: Value =
        serde_json::from_str(&git(t.path(), &["show", "HEAD~1:registry/skills.json"])).unwrap();
    registry_diff::diff::apply_patch(&mut old, &patch).unwrap();
    let new: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("registry/skills.json")).unwrap())
            .unwrap();
    assert!(
        registry_diff::diff::diff_registries(&old, &new, betty_core::manifest::Kind::Skill)
            .is_empty()
    );
}

#[test]
fn nested_fields_named_items_and_files() {
    let t = tempfile::tempdir().unwrap();
    let a = registry(json!([
        {"name": "api.define", "version": "1.0.0", "description": "d",
         "inputs": [{"name": "spec", "type": "string", "required": true}, {"name": "style", "type": "string"}],
         "entrypoints": [{"command": "/api/define", "handler": "x", "runtime": "rust", "permissions": ["filesystem:read"]}]}
    ]));
    let b = registry(json!([
        {"name": "api.define", "version": "1.0.0", "description": "d",
         "inputs": [{"name": "style", "type": "string"}, {"name": "spec", "type": "object", "required": true}],
         "entrypoints": [{"command": "/api/define", "handler": "x", "runtime": "rust", "permissions": ["filesystem:read", "network:http"]}]}
    ]));
    std::fs::write(t.path().join("a.json"), a).unwrap();
    std::fs::write(t.path().join("b.json"), b).unwrap();
    let o = run_without_registry(t.path(), &["--compare", "a.json", "b.json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "Changed: api.define\n  inputs[name=spec].type: string → object\n  entrypoints[0].permissions: [\"filesystem:read\"] → [\"filesystem:read\",\"network:http\"]\n"
    );
    // check: a type change and a new permission with no version bump.
    let o = run_without_registry(t.path(), &["check", "--compare", "a.json", "b.json"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let text = stdout(&o);
    assert!(text.contains("bump-too-small: needs a major bump (input `spec` type string → object), got none (1.0.0 → 1.0.0)"), "{text}");
    assert!(
        text.contains(
            "permission-escalation: permission escalation: new permission `network.http`"
        ),
        "{text}"
    );
    let o = run_without_registry(
        t.path(),
        &["check", "--compare", "a.json", "b.json", "--format", "json"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    validate("registry-diff-output.schema.json", &v);
    assert_eq!(v["passed"], false);
}

#[test]
fn check_passes_a_sufficient_bump_and_catches_downgrades() {
    let t = tempfile::tempdir().unwrap();
    let a = registry(
        json!([{"name": "a.b", "version": "1.2.0", "description": "d", "permissions": ["filesystem"]}]),
    );
    let ok = registry(
        json!([{"name": "a.b", "version": "2.0.0", "description": "d", "permissions": ["filesystem:read"]}]),
    );
    let down = registry(
        json!([{"name": "a.b", "version": "1.1.0", "description": "e", "permissions": ["filesystem"]}]),
    );
    std::fs::write(t.path().join("a.json"), a).unwrap();
    std::fs::write(t.path().join("ok.json"), ok).unwrap();
    std::fs::write(t.path().join("down.json"), down).unwrap();
    let o = run_without_registry(t.path(), &["check", "--compare", "a.json", "ok.json"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("permission `filesystem` removed or narrowed (major)"),
        "{}",
        stdout(&o)
    );
    let o = run_without_registry(t.path(), &["check", "--compare", "a.json", "down.json"]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("version-down: version goes down (1.2.0 → 1.1.0)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn record_is_a_no_op_when_nothing_changed_and_safe_under_concurrency() {
    let t = tempfile::tempdir().unwrap();
    let reg = t.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    std::fs::write(
        reg.join("skills.json"),
        registry(json!([{"name": "a.b", "version": "0.1.0", "description": "d"}])),
    )
    .unwrap();
    // No history yet: a plain compare says what to do.
    let o = run(t.path(), &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("registry-diff record"),
        "{}",
        stderr(&o)
    );
    let o = run(t.path(), &["record"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("Recorded "), "{}", stdout(&o));
    let o = run(t.path(), &["record"]);
    assert!(
        stdout(&o).starts_with("No changes since "),
        "{}",
        stdout(&o)
    );
    // The registry restamps itself: still nothing.
    let restamped = String::from_utf8(std::fs::read(reg.join("skills.json")).unwrap())
        .unwrap()
        .replace("2025-10-23T00:00:00", "2025-10-24T00:00:00");
    std::fs::write(reg.join("skills.json"), restamped).unwrap();
    assert!(stdout(&run(t.path(), &["record"])).starts_with("No changes since "));

    std::fs::write(
        reg.join("skills.json"),
        registry(json!([{"name": "a.b", "version": "0.2.0", "description": "d"}])),
    )
    .unwrap();
    assert_eq!(
        body(&stdout(&run(t.path(), &[]))),
        "Changed: a.b\n  version: 0.1.0 → 0.2.0\n"
    );
    let children: Vec<_> = (0..8)
        .map(|_| cmd(t.path()).arg("record").spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let versions: Vec<_> = std::fs::read_dir(reg.join("history"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        versions.len(),
        2,
        "one new version for eight concurrent callers: {versions:?}"
    );
    let o = run(t.path(), &["log", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    validate("registry-diff-output.schema.json", &v);
    assert_eq!(v["versions"][0]["changes"][0]["field"], "version");
    assert_eq!(v["versions"][0]["changed_by"], "tester@example.com");
    let o = run(t.path(), &["log", "--skill", "a.b"]);
    assert!(
        stdout(&o).contains("    version: 0.1.0 → 0.2.0"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("    added at 0.1.0"), "{}", stdout(&o));
    let mut ids = Vec::new();
    for e in std::fs::read_dir(reg.join("history")).unwrap() {
        let path = e.unwrap().path();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        validate("history-version.schema.json", &v);
        ids.push(path.file_stem().unwrap().to_string_lossy().to_string());
    }
    ids.sort();
    let before = std::fs::read(reg.join("skills.json")).unwrap();
    for args in [
        vec!["rollback", ids[0].as_str(), "--dry-run", "--format", "json"],
        vec!["record", "--format", "json"],
        vec!["rollback", ids[0].as_str(), "--format", "json"],
    ] {
        let o = run(t.path(), &args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        validate("registry-diff-output.schema.json", &v);
        if args.contains(&"--dry-run") {
            assert_eq!(v["diff"]["skills"][0]["fields"][0]["new_value"], "0.1.0");
            assert_eq!(std::fs::read(reg.join("skills.json")).unwrap(), before);
        }
    }
    assert_eq!(
        body(&stdout(&run(t.path(), &["--compare", &ids[0], "current"]))),
        "No differences.\n"
    );
}

#[test]
fn bad_input_is_exit_2_with_a_clear_message_and_no_change() {
    let t = tempfile::tempdir().unwrap();
    let reg = t.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    std::fs::write(
        reg.join("skills.json"),
        "{\n  \"skills\": [\n    {\"name\": \"a\",}\n  ]\n}",
    )
    .unwrap();
    std::fs::write(t.path().join("ok.json"), registry(json!([]))).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--compare", "ok.json", "current"],
            "skills.json:3:18: invalid JSON: trailing comma",
        ),
        (
            &["--compare", "ok.json", "nothing-here"],
            "is not a history version, a file, or a git revision",
        ),
        (&["--compare", "--output=/tmp/x", "ok.json"], ""),
        (
            &["--compare", "HEAD~1", "ok.json"],
            "is not a history version",
        ),
        (&["rollback", "../../etc"], "YYYY.MM.DD.NNN"),
        (&["rollback", "2025.10.23.001"], "no such version"),
        (
            &["record"],
            "skills.json:3:18: invalid JSON: trailing comma",
        ),
        (
            &["--compare", "2025.13.01.001", "ok.json"],
            "is not a history version",
        ),
        (&["import-git"], "git"),
    ];
    for (args, expect) in cases {
        let o = run(t.path(), args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    assert!(!reg.join("history").exists());
    assert!(!reg.join("audit_log.json").exists());
}

#[test]
fn import_a_range_then_check_and_roll_back_refuse_edited_history() {
    let t = seed_repo();
    let dir = t.path();
    let o = run(dir, &["import-git", "HEAD~1..HEAD"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Imported 1 version(s) from 1 commit(s); 0 could not be read."),
        "{}",
        stdout(&o)
    );
    let o = run(dir, &["import-git", "--bad-option-like"]);
    assert_eq!(code(&o), 2);
    let o = run(dir, &["import-git", "--", "-x..HEAD"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid git revision"),
        "{}",
        stderr(&o)
    );
    // The whole log now: the first commit is older than history, so it is not appended.
    let o = run(dir, &["import-git"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("already imported"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("committed before the latest version"),
        "{}",
        stdout(&o)
    );
    // check with no --compare: the latest version against the live registry.
    std::fs::write(
        dir.join("registry/skills.json"),
        registry(json!([
            {"name": "workflow.validate", "version": "0.1.0", "description": "Validate workflows", "status": "active"},
            {"name": "data.transform", "version": "0.2.0", "description": "Transform data", "status": "active", "permissions": ["network:http"]}
        ])),
    )
    .unwrap();
    let o = run(dir, &["check"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let events = std::fs::read_to_string(dir.join("registry/telemetry/events.jsonl")).unwrap();
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"event_type\":\"registry.checked\"")
                && l.contains("\"outcome\":\"failed\"")),
        "{events}"
    );
    assert!(
        stdout(&o).contains("new permission `network.http`"),
        "{}",
        stdout(&o)
    );
    assert_eq!(code(&run(dir, &["check", "--allow-escalation"])), 0);

    // An edited version is refused, and nothing is written.
    let history = dir.join("registry/history");
    let mut files: Vec<_> = std::fs::read_dir(&history)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let first = files[0].clone();
    let text = std::fs::read_to_string(&first)
        .unwrap()
        .replace("Validate workflows", "Edited");
    std::fs::write(&first, text).unwrap();
    let before = std::fs::read(dir.join("registry/skills.json")).unwrap();
    let id = first.file_stem().unwrap().to_string_lossy().to_string();
    let o = run(dir, &["rollback", &id]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("registry_sha256"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.join("registry/skills.json")).unwrap(),
        before
    );
    assert_eq!(std::fs::read_dir(&history).unwrap().count(), files.len());
}

#[test]
fn the_skill_manifest_is_a_valid_betty_skill() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("skill.yaml");
    let m = betty_core::manifest::Manifest::read(&path, betty_core::manifest::Kind::Skill).unwrap();
    assert_eq!(m.name, "registry.diff");
    betty_core::schema::validate(betty_core::schema::SchemaId::SkillManifest, m.value()).unwrap();
    for p in m.permissions() {
        assert!(p.parsed.unwrap().is_known(), "{}", p.text);
    }
}

/// Every file of the registry and its bytes, sidecar lock files aside (they hold no data).
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
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

#[test]
fn an_audit_trail_that_cannot_be_appended_blocks_record_and_rollback() {
    for how in ["torn tail", "folder", "dangling symlink"] {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        std::fs::create_dir_all(dir.join("registry")).unwrap();
        let skills = dir.join("registry/skills.json");
        let v1 = registry(json!([{"name": "a.one", "version": "0.1.0", "status": "active"}]));
        let v2 = registry(json!([{"name": "a.one", "version": "0.2.0", "status": "active"}]));
        let v3 = registry(json!([{"name": "a.one", "version": "0.3.0", "status": "active"}]));
        std::fs::write(&skills, &v1).unwrap();
        let o = run(dir, &["record", "--format", "json"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let first: Value = serde_json::from_slice(&o.stdout).unwrap();
        let first = first["version"].as_str().unwrap().to_string();
        std::fs::write(&skills, &v2).unwrap();
        assert_eq!(code(&run(dir, &["record"])), 0);
        let log = dir.join("registry/audit_log.json");
        match how {
            "torn tail" => {
                let text = std::fs::read(&log).unwrap();
                std::fs::write(&log, &text[..text.len() - 4]).unwrap();
            }
            "folder" => {
                std::fs::remove_file(&log).unwrap();
                std::fs::create_dir(&log).unwrap();
            }
            _ => {
                std::fs::remove_file(&log).unwrap();
                std::os::unix::fs::symlink(dir.join("registry/gone/audit_log.json"), &log).unwrap();
            }
        }
        let before = snapshot(&dir.join("registry"));
        let o = run(dir, &["rollback", &first]);
        assert_eq!(code(&o), 2, "{how}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("audit_log.json"),
            "{how}: {}",
            stderr(&o)
        );
        assert_eq!(
            snapshot(&dir.join("registry")),
            before,
            "{how}: rollback changed a file"
        );
        assert_eq!(std::fs::read(&skills).unwrap(), v2);
        // A registry that changed since the last version cannot be recorded either.
        std::fs::write(&skills, &v3).unwrap();
        let before = snapshot(&dir.join("registry"));
        let o = run(dir, &["record"]);
        assert_eq!(code(&o), 2, "{how}: {}", stderr(&o));
        assert_eq!(
            snapshot(&dir.join("registry")),
            before,
            "{how}: record changed a file"
        );
        // Rollback with the live state not yet in history: still nothing.
        let o = run(dir, &["rollback", &first]);
        assert_eq!(code(&o), 2, "{how}: {}", stderr(&o));
        assert_eq!(
            snapshot(&dir.join("registry")),
            before,
            "{how}: rollback changed a file"
        );
    }
}

#[test]
fn a_records_audit_entries_name_the_skill_it_changed() {
    let t = tempfile::tempdir().unwrap();
    let reg = t.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let write = |skills: Value| std::fs::write(reg.join("skills.json"), registry(skills)).unwrap();
    write(json!([{"name": "a.b", "version": "0.1.0", "description": "d"}]));
    assert_eq!(code(&run(t.path(), &["record"])), 0);
    write(json!([
        {"name": "a.b", "version": "0.2.0", "description": "d"},
        {"name": "c.d", "version": "0.1.0", "description": "d"}
    ]));
    assert_eq!(code(&run(t.path(), &["record"])), 0);
    let audit: Vec<Value> =
        serde_json::from_slice(&std::fs::read(reg.join("audit_log.json")).unwrap()).unwrap();
    let records: Vec<&Value> = audit
        .iter()
        .filter(|e| e["operation"] == "registry.record")
        .collect();
    assert_eq!(
        records.len(),
        4,
        "an intent and a commit per record: {audit:?}"
    );
    // One skill changed: the entry names it, intent and commit alike.
    assert_eq!(records[0]["skill"], "a.b", "{}", records[0]);
    assert_eq!(records[1]["skill"], "a.b", "{}", records[1]);
    // Two changed: `skill` cannot hold both; the details list them.
    assert_eq!(records[3]["skill"], Value::Null);
    assert_eq!(
        records[2]["details"]["change"]["skills"],
        json!(["a.b", "c.d"])
    );
    assert_eq!(records[3]["details"]["skills"], json!(["a.b", "c.d"]));
}

#[test]
fn compare_names_each_versions_author_and_time_and_who_changed_what() {
    let t = tempfile::tempdir().unwrap();
    let reg = t.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let write = |skills: Value| std::fs::write(reg.join("skills.json"), registry(skills)).unwrap();
    let record = |user: &str| {
        let o = run(t.path(), &["record", "--user", user, "--format", "json"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["version"].as_str().unwrap().to_string()
    };
    write(json!([{"name": "a.b", "version": "0.1.0", "description": "d", "status": "draft"}]));
    let v1 = record("alice@example.com");
    write(json!([{"name": "a.b", "version": "0.1.0", "description": "d", "status": "active"}]));
    record("bob@example.com");
    write(json!([
        {"name": "a.b", "version": "0.2.0", "description": "d", "status": "active"},
        {"name": "c.d", "version": "0.1.0", "description": "d"}
    ]));
    let v3 = record("carol@example.com");
    let history = |id: &str| -> Value {
        serde_json::from_slice(&std::fs::read(reg.join(format!("history/{id}.json"))).unwrap())
            .unwrap()
    };
    let (t1, t3) = (
        history(&v1)["timestamp"].as_str().unwrap().to_string(),
        history(&v3)["timestamp"].as_str().unwrap().to_string(),
    );

    let o = run(t.path(), &["--compare", &v1, &v3]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "From: {v1} at {t1} by alice@example.com\nTo: {v3} at {t3} by carol@example.com\n\
             Changed: a.b\n  version: 0.1.0 → 0.2.0  (by carol@example.com)\n  status: draft → active  (by bob@example.com)\n\
             Added: c.d  (by carol@example.com)\n"
        )
    );

    let o = run(t.path(), &["--compare", &v1, &v3, "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    validate("registry-diff-output.schema.json", &v);
    assert_eq!(
        v["from_side"],
        json!({"spec": v1, "origin": "version", "version": v1, "timestamp": t1, "author": "alice@example.com"})
    );
    assert_eq!(v["to_side"]["author"], "carol@example.com");
    assert_eq!(v["to_side"]["timestamp"], t3);
    let a = &v["skills"][0];
    assert_eq!(a["name"], "a.b");
    assert_eq!(a["changed_by"], "carol@example.com");
    let by_field: Vec<(&str, &str)> = a["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap(),
                f["changed_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_field,
        [
            ("version", "carol@example.com"),
            ("status", "bob@example.com")
        ]
    );
    // The live registry has no version, author or time of its own; history does not know who
    // changed it since.
    write(json!([{"name": "a.b", "version": "0.3.0", "description": "d", "status": "active"}]));
    let o = run(t.path(), &["--compare", &v3, "current", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    validate("registry-diff-output.schema.json", &v);
    assert_eq!(v["to_side"]["version"], Value::Null);
    assert_eq!(v["skills"][0]["fields"][0]["changed_by"], Value::Null);
    let text = stdout(&run(t.path(), &["--compare", &v3, "current"]));
    assert!(
        text.starts_with(&format!(
            "From: {v3} at {t3} by carol@example.com\nChanged: a.b\n"
        )),
        "{text}"
    );
    assert!(!text.contains("(by "), "{text}");
}
