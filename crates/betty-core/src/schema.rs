//! The JSON Schemas of every file format and JSON output, embedded from `schemas/` so a binary
//! validates without the repository beside it. Validators compile once per process.

use std::sync::OnceLock;

use serde_json::Value;

/// Each published schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaId {
    SkillManifest,
    AgentManifest,
    Registry,
    Policy,
    TelemetryEvent,
    AuditEntry,
    AuditLog,
    ApprovalRequest,
    HistoryVersion,
}

impl SchemaId {
    pub const ALL: &[SchemaId] = &[
        SchemaId::SkillManifest,
        SchemaId::AgentManifest,
        SchemaId::Registry,
        SchemaId::Policy,
        SchemaId::TelemetryEvent,
        SchemaId::AuditEntry,
        SchemaId::AuditLog,
        SchemaId::ApprovalRequest,
        SchemaId::HistoryVersion,
    ];

    /// The file name under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaId::SkillManifest => "skill-manifest.schema.json",
            SchemaId::AgentManifest => "agent-manifest.schema.json",
            SchemaId::Registry => "registry.schema.json",
            SchemaId::Policy => "policy.schema.json",
            SchemaId::TelemetryEvent => "telemetry-event.schema.json",
            SchemaId::AuditEntry => "audit-entry.schema.json",
            SchemaId::AuditLog => "audit-log.schema.json",
            SchemaId::ApprovalRequest => "approval-request.schema.json",
            SchemaId::HistoryVersion => "history-version.schema.json",
        }
    }

    /// The schema text as embedded at build time.
    pub fn text(self) -> &'static str {
        match self {
            SchemaId::SkillManifest => include_str!("../../../schemas/skill-manifest.schema.json"),
            SchemaId::AgentManifest => include_str!("../../../schemas/agent-manifest.schema.json"),
            SchemaId::Registry => include_str!("../../../schemas/registry.schema.json"),
            SchemaId::Policy => include_str!("../../../schemas/policy.schema.json"),
            SchemaId::TelemetryEvent => {
                include_str!("../../../schemas/telemetry-event.schema.json")
            }
            SchemaId::AuditEntry => include_str!("../../../schemas/audit-entry.schema.json"),
            SchemaId::AuditLog => include_str!("../../../schemas/audit-log.schema.json"),
            SchemaId::ApprovalRequest => {
                include_str!("../../../schemas/approval-request.schema.json")
            }
            SchemaId::HistoryVersion => {
                include_str!("../../../schemas/history-version.schema.json")
            }
        }
    }

    fn index(self) -> usize {
        SchemaId::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// One schema violation: where in the instance, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    /// JSON Pointer into the instance.
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "at `{at}`: {}", self.message)
    }
}

/// Where the schemas say they live (`$id`); references between them resolve here, offline.
pub const BASE_URI: &str = "https://betty.dev/schemas/";

static VALIDATORS: [OnceLock<Result<jsonschema::Validator, String>>; 9] =
    [const { OnceLock::new() }; 9];
static REGISTRY: OnceLock<Result<jsonschema::Registry<'static>, String>> = OnceLock::new();

/// Every schema, registered under its `$id`, so `$ref: "registry.schema.json"` never needs a network.
fn registry() -> Result<&'static jsonschema::Registry<'static>, String> {
    REGISTRY
        .get_or_init(|| {
            let mut builder = jsonschema::Registry::new();
            for id in SchemaId::ALL {
                let schema: Value = serde_json::from_str(id.text())
                    .map_err(|e| format!("{}: {e}", id.file_name()))?;
                builder = builder
                    .add(format!("{BASE_URI}{}", id.file_name()), schema)
                    .map_err(|e| format!("{}: {e}", id.file_name()))?;
            }
            builder.prepare().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether a schema refers to another file of `schemas/` (not only to its own `#/$defs`).
fn references_other(id: SchemaId) -> bool {
    id.text().match_indices("\"$ref\"").any(|(i, _)| {
        let rest = id.text()[i + 6..].trim_start_matches([':', ' ']);
        !rest.starts_with("\"#")
    })
}

fn validator(id: SchemaId) -> Result<&'static jsonschema::Validator, String> {
    VALIDATORS[id.index()]
        .get_or_init(|| {
            let schema: Value =
                serde_json::from_str(id.text()).map_err(|e| format!("{}: {e}", id.file_name()))?;
            let options = jsonschema::options().should_validate_formats(true);
            // Only schemas that reference others pay for the shared registry.
            let options = if id.text().contains("\"$ref\": \"") && references_other(id) {
                options.with_registry(registry()?)
            } else {
                options
            };
            options
                .build(&schema)
                .map_err(|e| format!("{}: {e}", id.file_name()))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Validates an instance; returns every violation (at most 20), sorted by position.
pub fn validate(id: SchemaId, instance: &Value) -> Result<(), Vec<SchemaError>> {
    let v = validator(id).map_err(|message| {
        vec![SchemaError {
            pointer: String::new(),
            message: format!("the embedded schema does not compile: {message}"),
        }]
    })?;
    let mut errors: Vec<SchemaError> = v
        .iter_errors(instance)
        .take(20)
        .map(|e| SchemaError {
            pointer: e.instance_path().as_str().to_string(),
            message: shorten(&e.to_string()),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        Err(errors)
    }
}

fn shorten(s: &str) -> String {
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_compiles() {
        for id in SchemaId::ALL {
            assert!(validator(*id).is_ok(), "{:?}", validator(*id).err());
        }
    }

    #[test]
    fn violations_carry_pointers() {
        let bad = serde_json::json!({"name": "a.b", "version": 1, "description": "d"});
        let errs = validate(SchemaId::SkillManifest, &bad).unwrap_err();
        assert!(errs.iter().any(|e| e.pointer == "/version"), "{errs:?}");
    }
}
