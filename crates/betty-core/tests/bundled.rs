//! The bundled default registry (`registry/`) and every file in it match their schemas, and
//! the registry files are written in upstream's byte conventions.

use std::path::Path;

use betty_core::Document;
use betty_core::limits::Limits;
use betty_core::manifest::Kind;
use betty_core::registry::Registry;
use betty_core::schema::{SchemaId, validate};

fn registry_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry"))
}

#[test]
fn bundled_registry_files_match_their_schemas_and_byte_conventions() {
    let dir = registry_dir();
    for (file, kind) in [("skills.json", Kind::Skill), ("agents.json", Kind::Agent)] {
        let path = dir.join(file);
        let r = Registry::load(&path, kind).unwrap();
        validate(SchemaId::Registry, &r.as_value()).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert_eq!(
            r.to_bytes(),
            std::fs::read(&path).unwrap(),
            "{file} is not in upstream's format"
        );
        assert!(r.entries().len() >= 3);
    }
    let skills = Registry::load(&dir.join("skills.json"), Kind::Skill).unwrap();
    assert!((10..=30).contains(&skills.entries().len()));
}

#[test]
fn bundled_policies_match_the_policy_schema() {
    let mut n = 0;
    for entry in std::fs::read_dir(registry_dir().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let doc = Document::read_yaml(&path, &Limits::MANIFEST).unwrap();
            if doc.value.get("policy").is_some() {
                validate(SchemaId::Policy, &doc.value)
                    .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
                n += 1;
            }
        }
    }
    assert!(n >= 3);
}

#[test]
fn bundled_audit_log_is_an_array() {
    let text = std::fs::read_to_string(registry_dir().join("audit_log.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    validate(SchemaId::AuditLog, &v).unwrap();
}

#[test]
fn real_output_matches_schemas() {
    // Audit entries and telemetry events as the writers produce them.
    let dir = tempfile::tempdir().unwrap();
    let who = betty_core::identity::Identity {
        sources: Default::default(),
        user: "ada@example.com".into(),
        session_id: "s".into(),
        ip_address: "127.0.0.1".into(),
    };
    let log = betty_core::audit::AuditLog::new(&dir.path().join("audit_log.json"));
    for i in 0..3 {
        log.append(
            &betty_core::audit::AuditRecord {
                operation: "policy.enforce".into(),
                skill: Some(format!("s.k{i}")),
                outcome: "passed".into(),
                policy_checks: vec![],
                details: Some(serde_json::json!({"action": "create"})),
                step: None,
            },
            &who,
        )
        .unwrap();
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log.path).unwrap()).unwrap();
    validate(SchemaId::AuditLog, &v).unwrap();
    for e in v.as_array().unwrap() {
        validate(SchemaId::AuditEntry, e).unwrap();
    }
    let w = betty_core::telemetry::EventWriter::new(&dir.path().join("events.jsonl"), "test");
    let e = w
        .record(
            betty_core::telemetry::NewEvent {
                event_type: "workflow.step.completed".into(),
                skill_name: Some("data.transform".into()),
                outcome: "success".into(),
                duration_ms: Some(3.5),
                ..Default::default()
            },
            &who,
        )
        .unwrap();
    validate(SchemaId::TelemetryEvent, &e).unwrap();
}
