//! Secrets never reach the audit trail or an approval request file, and redaction does not
//! break what binds an approval to its subject.

use betty_core::approval::{ApprovalStore, NewRequest, Verdict};
use betty_core::audit::{AuditLog, AuditRecord};
use betty_core::identity::Identity;
use serde_json::json;

fn who() -> Identity {
    Identity {
        user: "ada@example.com".into(),
        session_id: "s-1".into(),
        ip_address: "127.0.0.1".into(),
    }
}

#[test]
fn audit_details_are_redacted_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::new(&dir.path().join("audit_log.json"));
    log.append(
        &AuditRecord {
            operation: "registry.rollback".into(),
            skill: Some("日本語.スキル".into()),
            outcome: "success".into(),
            policy_checks: vec![],
            details: Some(json!({
                "db_password": "hunter2",
                "source": "https://ada:hunter2@git.example.com/r.git",
                "note": "Bearer abcDEF1234567890 ✅",
                "max_tokens": 5,
            })),
            step: None,
        },
        &who(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&log.path).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("abcDEF1234567890"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v[0]["details"],
        json!({
            "db_password": "[REDACTED]",
            "source": "https://ada:[REDACTED]@git.example.com/r.git",
            "note": "Bearer [REDACTED] ✅",
            "max_tokens": 5,
        })
    );
    assert!(log.verify(None).unwrap().ok());
}

#[test]
fn approval_requests_are_stored_redacted_and_still_match_their_subject() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::new(&dir.path().join("approvals"));
    std::fs::create_dir_all(&store.dir).unwrap();
    std::fs::write(
        store.dir.join("groups.yaml"),
        "groups:\n  security: [alice@x.com]\n",
    )
    .unwrap();
    let now: jiff::Timestamp = "2026-11-24T08:00:00Z".parse().unwrap();
    let context = json!({"args": {"api_key": "k-1234567890", "env": "prod"}});
    // The digest is the caller's, computed on the original subject.
    let digest = betty_core::canonical::digest(&json!({"operation": "deploy", "args": context}));
    let req = store
        .request(
            NewRequest {
                operation: "deploy".into(),
                skill: Some("deploy.release".into()),
                reason: "see https://hooks.slack.com/services/T0/B0/SECRET".into(),
                context: context.clone(),
                subject_digest: digest.clone(),
                approvers: "security".into(),
                required: 1,
                ttl: std::time::Duration::from_secs(3600),
            },
            "dev@x.com",
            now,
            |_| Ok(()),
        )
        .unwrap();
    assert_eq!(req.subject_digest, digest);
    assert_eq!(req.context["args"]["api_key"], "[REDACTED]");
    assert_eq!(req.context["args"]["env"], "prod");
    store
        .decide(
            &req.id,
            "alice@x.com",
            Verdict::Approve,
            Some("ok; token=t0k3n".into()),
            &store.groups().unwrap(),
            now,
            |_| Ok(()),
        )
        .unwrap();
    let text = std::fs::read_to_string(store.dir.join(format!("{}.json", req.id))).unwrap();
    for secret in ["k-1234567890", "SECRET", "t0k3n"] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }
    // Found by the digest of the original subject, as `check` and policy-enforce compute it.
    let found = store.find_approved(&digest, Some("deploy"), now).unwrap();
    assert_eq!(found.map(|r| r.id), Some(req.id));
}
