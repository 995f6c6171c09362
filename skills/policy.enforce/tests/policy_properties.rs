//! Property tests of the policy loader: no policy text, however broken or hostile (bad
//! regexes, wrong types, Japanese and emoji, CR/LF, YAML tricks), panics it. What it cannot
//! load is a list of problems, each with its position. `PROPTEST_CASES` raises the count.

use betty_core::limits::Limits;
use betty_core::source::{Document, SourceName};
use policy_enforce::policy::PolicySet;
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("データ".to_string()),
        Just("😀".to_string()),
        Just("\r\n".to_string()),
        Just("\r".to_string()),
        Just("(a+)+$".to_string()),
        Just("[".to_string()),
        Just("a{1000}{1000}".to_string()),
        Just("\\".to_string()),
        Just("^[a-z]+$".to_string()),
        Just("filesystem:read".to_string()),
        Just("entrypoints[*].permissions".to_string()),
        Just("inputs[name=x]".to_string()),
        Just("$".to_string()),
        "[ -~]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(pieces, 0..6).prop_map(|v| v.concat())
}

/// Any value a policy key might be given: the right type, the wrong one, or nonsense.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        text().prop_map(Value::String),
        prop::sample::select(vec![
            "blocking",
            "warning",
            "audit",
            "error",
            "info",
            "skills",
            "agents",
            "workflows",
            "create",
            "register",
            "naming",
            "permission",
            "dependency",
            "approval",
            "compliance",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const RULE_KEYS: &[&str] = &[
    "id",
    "field",
    "pattern",
    "required",
    "allowed_values",
    "forbidden_values",
    "min_length",
    "max_length",
    "semver",
    "allow",
    "deny",
    "allowed_globs",
    "forbidden_globs",
    "within_workspace",
    "no_escalation",
    "registered",
    "forbidden_status",
    "acyclic",
    "in_sync",
    "requires_approval",
    "message",
    "severity",
    "controls",
];

fn rule() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(RULE_KEYS), value()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn policy() -> impl Strategy<Value = Value> {
    (
        text(),
        value(),
        value(),
        prop::collection::vec(rule(), 0..4),
        value(),
        value(),
    )
        .prop_map(|(name, scope, kind, rules, enforcement, waivers)| {
            json!({"policy": {
                "name": name, "version": "1.0.0", "description": "property test",
                "type": kind, "scope": scope, "rules": rules,
                "enforcement": enforcement, "waivers": waivers,
            }})
        })
}

fn load(text: String) {
    let doc = Document::parse_yaml(
        SourceName::Named("prop-policy.yaml".into()),
        text,
        &Limits::MANIFEST,
    );
    if let Ok(doc) = doc {
        // Loaded or a list of problems: both are answers; a panic is not.
        let _ = PolicySet::from_documents(&[doc]);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_policy_of_any_shape_never_panics_the_loader(p in policy()) {
        load(serde_json::to_string_pretty(&p).unwrap());
    }

    #[test]
    fn a_policy_with_a_well_formed_rule_never_panics(pattern in text(), field in text(), msg in text()) {
        let p = json!({"policy": {
            "name": "prop-policy", "version": "1.0.0", "description": "property test",
            "type": "naming", "scope": ["skills"], "enforcement": "blocking",
            "rules": [
                {"field": field, "pattern": pattern, "message": msg, "severity": "error"},
                {"field": "permissions", "allow": [pattern.clone()], "message": msg, "severity": "error"},
                {"field": "name", "forbidden_globs": [pattern], "message": msg, "severity": "warning"},
            ],
        }});
        load(serde_json::to_string(&p).unwrap());
    }

    #[test]
    fn arbitrary_policy_text_never_panics_the_loader(
        cut in 0usize..2000,
        insert in text(),
    ) {
        // The bundled naming policy, cut and spliced at any character.
        let base = include_str!("../../../registry/policies/skill-naming.yaml");
        let at = base.char_indices().map(|(i, _)| i).nth(cut % base.chars().count()).unwrap_or(0);
        let mut t = base[..at].to_string();
        t.push_str(&insert);
        t.push_str(&base[at..]);
        load(t);
    }
}
