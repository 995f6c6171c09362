//! The 36 upstream versions of `registry/skills.json`, committed in order into a scratch git
//! repository, imported into history, compared, and rolled back.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::Value;

/// A scratch repository with the upstream versions committed in order, at their commit times;
/// returns it and the commit hash of each upstream number.
fn upstream_repo() -> Option<(tempfile::TempDir, Vec<(String, String)>)> {
    let corpus = upstream()?.join("history/skills.json");
    let index = std::fs::read_to_string(corpus.join("INDEX.txt")).unwrap();
    let t = tempfile::tempdir().unwrap();
    git_repo(t.path());
    let mut commits = Vec::new();
    for line in index.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (n, c, date) = (f[0], f[1], f[2]);
        let bytes = std::fs::read(corpus.join(format!("{n}-{c}.json"))).unwrap();
        commit_registry(t.path(), &bytes, &format!("upstream {n} {c}"), Some(date));
        commits.push((n.to_string(), git(t.path(), &["rev-parse", "HEAD"])));
    }
    assert_eq!(commits.len(), 36);
    Some((t, commits))
}

fn count_skills(v: &Value) -> usize {
    v["skills"].as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn import_36_upstream_versions_then_compare_and_roll_back() {
    let Some((t, commits)) = upstream_repo() else {
        return;
    };
    let dir = t.path();
    let o = run(dir, &["import-git", "--format", "json"]);
    // One version could not be read: reported, exit 1.
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    validate("registry-diff-output.schema.json", &report);
    assert_eq!(report["recorded"], 35);
    assert_eq!(report["unreadable"], 1);
    let bad: Vec<&Value> = report["commits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "unreadable")
        .collect();
    let n19 = &commits[18].1;
    assert_eq!(bad[0]["commit"], n19.as_str());
    let message = bad[0]["message"].as_str().unwrap();
    assert!(message.contains(":923:7: invalid JSON"), "{message}");

    // Upstream number → history version.
    let version_of: HashMap<String, String> = report["commits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "recorded")
        .map(|c| {
            let n = commits
                .iter()
                .find(|(_, h)| c["commit"] == h.as_str())
                .unwrap()
                .0
                .clone();
            (n, c["version"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(version_of.len(), 35);
    let history = dir.join("registry/history");
    let files: Vec<_> = std::fs::read_dir(&history)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 35);
    for f in &files {
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        validate("history-version.schema.json", &v);
        assert_eq!(v["changed_by"], "dev@example.com");
    }

    // The two silent regressions show as removals: 17 → 11 skills and 25 → 8.
    for (before, after, from_n, to_n, removed) in [("09", "10", 17, 11, 7), ("22", "23", 25, 8, 18)]
    {
        let o = run(
            dir,
            &[
                "--compare",
                &version_of[before],
                &version_of[after],
                "--format",
                "json",
            ],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(d["summary"]["removed"], removed, "{before} → {after}");
        let counts: Vec<usize> = [before, after]
            .iter()
            .map(|n| {
                let p = history.join(format!("{}.json", version_of[*n]));
                count_skills(&serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap()["registry"])
            })
            .collect();
        assert_eq!(counts, [from_n, to_n]);
        let text = stdout(&run(
            dir,
            &["--compare", &version_of[before], &version_of[after]],
        ));
        assert_eq!(
            text.matches("\nRemoved: ").count() + usize::from(text.starts_with("Removed: ")),
            removed
        );
        // The same through git revisions.
        let by_git = run(
            dir,
            &[
                "--compare",
                &commits[before.parse::<usize>().unwrap() - 1].1,
                &commits[after.parse::<usize>().unwrap() - 1].1,
            ],
        );
        assert_eq!(changes_only(&stdout(&by_git)), changes_only(&text));
        // History knows who made each change between two versions; git sides name commits.
        assert!(
            text.is_empty() || removed == 0 || text.contains("  (by dev@example.com)\n"),
            "{text}"
        );
        assert!(stdout(&by_git).starts_with("From: "), "{}", stdout(&by_git));
    }
    let log = stdout(&run(dir, &["log"]));
    assert!(
        log.contains("7 removed; removed: api.compatibility"),
        "{log}"
    );

    // Diffing any two versions works, in both directions and between git revisions.
    let mut ids: Vec<&String> = version_of.values().collect();
    ids.sort();
    for (i, a) in ids.iter().enumerate() {
        for b in ids.iter().skip(i).step_by(7) {
            for args in [
                ["--compare", a.as_str(), b.as_str()],
                ["--compare", b.as_str(), a.as_str()],
            ] {
                let o = run(dir, &args);
                assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
            }
        }
    }
    // The unreadable commit is reported when compared, with its line.
    let o = run(dir, &["--compare", n19, "HEAD"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains(":923:7:"), "{}", stderr(&o));

    // Importing again adds nothing.
    let again: Value =
        serde_json::from_slice(&run(dir, &["import-git", "--format", "json"]).stdout).unwrap();
    assert_eq!(again["recorded"], 0);

    // Roll back to upstream 09, then compare with it: no differences.
    let target = &version_of["09"];
    let dry = run(dir, &["rollback", target, "--dry-run"]);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    assert!(stdout(&dry).contains("Removed: "), "{}", stdout(&dry));
    assert_eq!(
        std::fs::read_dir(&history).unwrap().count(),
        35,
        "a dry run writes nothing"
    );
    let o = run(dir, &["rollback", target]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(dir, &["--compare", target, "current", "--exit-code"]);
    assert_eq!(
        (code(&o), body(&stdout(&o)).as_str()),
        (0, "No differences.\n")
    );
    // Byte for byte the file upstream had.
    let upstream09 = git(
        dir,
        &["show", &format!("{}:registry/skills.json", commits[8].1)],
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("registry/skills.json")).unwrap(),
        upstream09
    );
    let log = stdout(&run(dir, &["log", "-n", "1"]));
    assert!(log.contains(&format!("[rollback to {target}]")), "{log}");
    assert!(log.contains("tester@example.com"), "{log}");
    // Audit trail: verifies, and holds the import and the rollback.
    let audit = betty_core::audit::AuditLog::new(&dir.join("registry/audit_log.json"));
    let report = audit.verify(None).unwrap();
    assert!(report.ok(), "{:?}", report.breaks);
    let mut ops = Vec::new();
    audit
        .for_each_entry(|_, v| ops.push(v["operation"].as_str().unwrap_or("").to_string()))
        .unwrap();
    // Each write is an intent entry before it and a commit entry after it.
    assert_eq!(
        ops,
        [
            "registry.import_git",
            "registry.import_git",
            "registry.rollback",
            "registry.rollback"
        ]
    );
    assert!(report.unfinished.is_empty(), "{:?}", report.unfinished);
    let events = std::fs::read_to_string(dir.join("registry/telemetry/events.jsonl")).unwrap();
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"event_type\":\"registry.rolled_back\""))
    );
}

/// Upstream's own diff rejected 65 of its 81 manifests because the registry adds
/// `updated_at`; here a manifest equal to its registered entry shows no differences.
#[test]
fn upstream_manifests_against_the_upstream_registry() {
    let Some(up) = upstream() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("registry")).unwrap();
    std::fs::copy(
        up.join("registry/skills.json"),
        t.path().join("registry/skills.json"),
    )
    .unwrap();
    let registry: Value =
        serde_json::from_slice(&std::fs::read(up.join("registry/skills.json")).unwrap()).unwrap();
    let (mut same, mut total) = (0, 0);
    for e in std::fs::read_dir(up.join("skills")).unwrap() {
        let path = e.unwrap().path().join("skill.yaml");
        if !path.is_file() {
            continue;
        }
        total += 1;
        let doc =
            betty_core::Document::read_yaml(&path, &betty_core::limits::Limits::MANIFEST).unwrap();
        let name = doc.value["name"].as_str().unwrap().to_string();
        let entry = registry["skills"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["name"] == name.as_str())
            .map(betty_core::registry::without_registry_keys);
        let expect_same = entry.as_ref() == Some(&doc.value);
        let p = path.display().to_string();
        let o = run(t.path(), &["--compare", "current", &p, "--exit-code"]);
        assert_eq!(
            code(&o),
            if expect_same { 0 } else { 1 },
            "{p}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        if expect_same {
            same += 1;
            assert_eq!(stdout(&o), "No differences.\n");
        } else {
            let first = stdout(&o).lines().next().unwrap_or_default().to_string();
            assert!(
                first == format!("Changed: {name}") || first == format!("Added: {name}"),
                "{first}"
            );
        }
        // A single manifest argument compares it with the live registry.
        assert_eq!(
            code(&run(t.path(), &["--compare", &p, "--exit-code"])),
            code(&o)
        );
    }
    assert_eq!(total, 54);
    assert!(
        same >= 38,
        "{same} of {total} manifests equal their registered entry"
    );
}
