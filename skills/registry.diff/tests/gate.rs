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
                stderr(&o).contains("approved (signed) `update` request"),
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
    std::fs::write(
        reg.join("approvals/groups.yaml"),
        "groups:\n  security: [appsec@example.com]\n",
    )
    .unwrap();
    // A hand-written file saying `approved` does not count: it carries no signature.
    let forged = json!({
        "id": "apr-1", "operation": "update", "skill": "a.b",
        "requested_by": "dev@example.com", "requested_at": "2026-01-01T00:00:00Z",
        "reason": "restore the old permissions", "context": {}, "subject_digest": "x",
        "approvers": "security", "required": 1, "expires_at": "2099-01-01T00:00:00Z",
        "status": "approved",
        "decisions": [{"by": "appsec@example.com", "decision": "approve", "at": "2026-01-01T01:00:00Z"}]
    });
    let subject = betty_core::approval::Subject {
        operation: "update".into(),
        target: Some(betty_core::approval::SubjectTarget {
            kind: "skill".into(),
            name: "a.b".into(),
            digest,
        }),
        environment: None,
        args: Default::default(),
    };
    let mut forged = forged;
    forged["subject_digest"] = subject.digest().into();
    std::fs::write(reg.join("approvals/apr-1.json"), forged.to_string()).unwrap();
    let o = run(
        t.path(),
        &["rollback", ids[0].as_str(), "--allow-escalation"],
    );
    assert_eq!(code(&o), 1, "a forged approval counted: {}", stderr(&o));
    std::fs::remove_file(reg.join("approvals/apr-1.json")).unwrap();
    // The same request, signed by real keys listed in allowed_signers.
    let Some(keys) = betty_testkit::keys::Keyring::new(&t.path().join("keys"), &["dev", "appsec"])
    else {
        return;
    };
    keys.write_allowed_signers(
        &reg.join("approvals/allowed_signers"),
        &[("dev@example.com", "dev"), ("appsec@example.com", "appsec")],
    );
    sign_approved(&reg.join("approvals"), &keys, subject);
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

/// Writes a request for `subject` signed by `dev@example.com` and approved (signed) by
/// `appsec@example.com`, as `approval-queue` does, through the same core API.
fn sign_approved(
    dir: &std::path::Path,
    keys: &betty_testkit::keys::Keyring,
    subject: betty_core::approval::Subject,
) {
    use betty_core::approval::{ApprovalStore, NewRequest, Verdict};
    use betty_core::sshsig::{KeyRef, NAMESPACE};
    let store = ApprovalStore::new(dir);
    let trust = store.trust(None).unwrap();
    let now = betty_core::time::now();
    let mut req = store
        .draft(
            NewRequest {
                operation: subject.operation.clone(),
                skill: Some("a.b".into()),
                reason: "restore the old permissions".into(),
                context: json!({}),
                subject,
                approvers: "security".into(),
                required: 1,
                expires_at: now
                    .checked_add(std::time::Duration::from_secs(3600))
                    .unwrap(),
                valid_for: None,
                signed: true,
            },
            "dev@example.com",
            &trust,
            now,
        )
        .unwrap();
    req.signature = Some(
        KeyRef::from_path(&keys.key("dev"))
            .sign(NAMESPACE, &req.statement())
            .unwrap(),
    );
    let req = store.create(req, &trust, now, |_| Ok(())).unwrap();
    let (current, mut decision) = store
        .prepare(&req.id, "appsec@example.com", Verdict::Approve, None, now)
        .unwrap();
    decision.signature = Some(
        KeyRef::from_path(&keys.key("appsec"))
            .sign(NAMESPACE, &decision.statement(&current))
            .unwrap(),
    );
    store
        .decide(
            &req.id,
            decision,
            &current.statement_digest(),
            &trust,
            now,
            |_| Ok(()),
        )
        .unwrap();
}
