//! Secrets never reach the audit trail or an approval request file, and redaction does not
//! break what binds an approval to its subject.

use betty_core::approval::{ApprovalStore, NewRequest, Subject, Verdict};
use betty_core::audit::{AuditLog, AuditRecord};
use betty_core::identity::Identity;
use betty_core::sshsig::{KeyRef, NAMESPACE};
use betty_testkit::keys::Keyring;
use serde_json::json;

fn who() -> Identity {
    Identity {
        sources: Default::default(),
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
    let Some(keys) = Keyring::new(&dir.path().join("keys"), &["dev", "alice"]) else {
        return;
    };
    let store = ApprovalStore::new(&dir.path().join("approvals"));
    std::fs::create_dir_all(&store.dir).unwrap();
    std::fs::write(
        store.dir.join("groups.yaml"),
        "groups:\n  security: [alice@x.com]\n",
    )
    .unwrap();
    keys.write_allowed_signers(
        &store.dir.join("allowed_signers"),
        &[("dev@x.com", "dev"), ("alice@x.com", "alice")],
    );
    let trust = store.trust(None).unwrap();
    let now = betty_core::time::now();
    let context = json!({"args": {"api_key": "k-1234567890", "env": "prod"}});
    let subject = Subject {
        operation: "deploy".into(),
        target: None,
        environment: Some("production".into()),
        args: [("api_key".to_string(), "k-1234567890".to_string())]
            .into_iter()
            .collect(),
    };
    // The digest is computed on the original subject, as `check` and policy-enforce do.
    let digest = subject.digest();
    let mut req = store
        .draft(
            NewRequest {
                operation: "deploy".into(),
                skill: Some("deploy.release".into()),
                reason: "see https://hooks.slack.com/services/T0/B0/SECRET".into(),
                context: context.clone(),
                subject,
                approvers: "security".into(),
                required: 1,
                expires_at: now + jiff::SignedDuration::from_hours(1),
                valid_for: None,
                signed: true,
            },
            "dev@x.com",
            &trust,
            now,
        )
        .unwrap();
    // The redacted request is what is signed.
    let dev = KeyRef::from_path(&keys.key("dev"));
    req.signature = Some(dev.sign(NAMESPACE, &req.statement()).unwrap());
    let req = store.create(req, &trust, now, |_| Ok(())).unwrap();
    assert_eq!(req.subject_digest, digest);
    assert_eq!(req.context["args"]["api_key"], "[REDACTED]");
    assert_eq!(req.context["args"]["env"], "prod");
    let (current, mut decision) = store
        .prepare(
            &req.id,
            "alice@x.com",
            Verdict::Approve,
            Some("ok; token=t0k3n".into()),
            now,
        )
        .unwrap();
    let alice = KeyRef::from_path(&keys.key("alice"));
    decision.signature = Some(
        alice
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
    let text = std::fs::read_to_string(store.dir.join(format!("{}.json", req.id))).unwrap();
    for secret in ["k-1234567890", "SECRET", "t0k3n"] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }
    // Read back from disk, the signatures still verify and the subject still matches.
    let found = store
        .find_approved(&digest, Some(&["deploy"]), &store.trust(None).unwrap(), now)
        .unwrap();
    assert_eq!(found.map(|(r, _)| r.id), Some(req.id));
}
