//! `registry-diff rollback` passes the escalation gate of an update (issue 9): a version with
//! wider permissions than today's is refused (exit 1, nothing written), and
//! `--allow-escalation` alone does not let it through without an approved request.

mod common;

use common::*;
use serde_json::json;

fn version_ids(reg: &std::path::Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(reg.join("history"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_rollback_that_widens_permissions_needs_the_update_gate() {
    let t = tempfile::tempdir().unwrap();
    let reg = t.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let wide = registry(json!([
        {"name": "a.b", "version": "1.0.0", "description": "d", "status": "active",
         "permissions": ["filesystem:read", "filesystem:write", "network:http"]}
    ]));
    let narrow = registry(json!([
        {"name": "a.b", "version": "2.0.0", "description": "d", "status": "active",
         "permissions": ["filesystem:read"]}
    ]));
    std::fs::write(reg.join("skills.json"), &wide).unwrap();
    assert_eq!(code(&run(t.path(), &["record"])), 0);
    std::fs::write(reg.join("skills.json"), &narrow).unwrap();
    assert_eq!(code(&run(t.path(), &["record"])), 0);
    let ids = version_ids(&reg);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let audit_before = std::fs::read(reg.join("audit_log.json")).unwrap_or_default();
    for args in [
        vec!["rollback", ids[0].as_str()],
        vec!["rollback", ids[0].as_str(), "--allow-escalation"],
    ] {
        let o = run(t.path(), &args);
        assert_eq!(code(&o), 1, "{args:?}: {}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains("a.b"), "{args:?}: {}", stderr(&o));
        if args.contains(&"--allow-escalation") {
            assert!(
                stderr(&o).contains("approved `update` request"),
                "{}",
                stderr(&o)
            );
        }
        assert_eq!(
            std::fs::read(reg.join("skills.json")).unwrap(),
            narrow,
            "{args:?}"
        );
        assert_eq!(version_ids(&reg), ids, "{args:?}: no version recorded");
        assert_eq!(
            std::fs::read(reg.join("audit_log.json")).unwrap_or_default(),
            audit_before,
            "{args:?}: no audit entry for a rollback that did not happen"
        );
    }
    // A dry run still shows what would change.
    assert_eq!(
        code(&run(t.path(), &["rollback", ids[0].as_str(), "--dry-run"])),
        0
    );
    // Narrowing back is no escalation: it goes through.
    std::fs::write(reg.join("skills.json"), &wide).unwrap();
    let o = run(t.path(), &["rollback", ids[1].as_str()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(reg.join("skills.json")).unwrap(), narrow);
    // With an approved `update` request bound to the widened entry, `--allow-escalation`
    // lets the rollback through.
    let entry = json!({"name": "a.b", "version": "1.0.0", "description": "d", "status": "active",
        "permissions": ["filesystem:read", "filesystem:write", "network:http"]});
    let digest = betty_core::canonical::digest(&entry);
    std::fs::create_dir_all(reg.join("approvals")).unwrap();
    let request = json!({
        "id": "apr-1", "operation": "update", "skill": "a.b",
        "requested_by": "dev@example.com", "requested_at": "2026-01-01T00:00:00Z",
        "reason": "restore the old permissions", "context": {}, "subject_digest": digest,
        "approvers": "security", "required": 1, "expires_at": "2099-01-01T00:00:00Z",
        "status": "approved",
        "decisions": [{"by": "appsec@example.com", "decision": "approve", "at": "2026-01-01T01:00:00Z"}]
    });
    std::fs::write(reg.join("approvals/apr-1.json"), request.to_string()).unwrap();
    let o = run(t.path(), &["rollback", ids[0].as_str()]);
    assert_eq!(
        code(&o),
        1,
        "the approval alone is not the flag: {}",
        stderr(&o)
    );
    let o = run(
        t.path(),
        &["rollback", ids[0].as_str(), "--allow-escalation"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(reg.join("skills.json")).unwrap(), wide);
}
