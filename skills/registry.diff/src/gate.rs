//! The gate a registry change passes before it lands: the escalation check of `registry-diff
//! check` (the same [`semver::check`] that gates an update), and for an escalation that is
//! let through with `--allow-escalation`, an approved request for it, as for an update.
//!
//! A rollback is an update of the registry to old contents: a version whose permissions are
//! wider than today's is an escalation like any other, and it does not land on the strength of
//! a flag alone. The approval is an `approval-queue` request for operation `update` (or
//! `rollback`) whose `subject_digest` is the canonical digest of the skill's entry at the target
//! version (registry-added keys left out), exactly what `policy-enforce --action update` binds
//! an approval to.

use betty_core::approval::{ApprovalStore, Subject, SubjectTarget};
use betty_core::discover::RegistryDir;
use betty_core::manifest::Kind;
use serde_json::Value;

use crate::diff::RegistryDiff;
use crate::semver::{self, CheckOptions};

/// Operations whose approval lets an escalation through.
pub const APPROVING_OPERATIONS: &[&str] = &["update", "rollback"];

/// Why the gate refused a change: one line per escalated skill.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct Refused(pub Vec<String>);

/// Checks a change from the live registry to `to` (its `skills` list). `Ok(Err(refused))` when
/// the gate refuses (exit 1); `Err` when it cannot check (an approval file it cannot read).
pub fn check(
    dir: &RegistryDir,
    diff: &RegistryDiff,
    to: &Value,
    allow_escalation: bool,
    now: jiff::Timestamp,
) -> betty_core::Result<Result<(), Refused>> {
    let (_, problems) = semver::check(
        diff,
        Kind::Skill,
        CheckOptions {
            allow_escalation: false,
            allow_removals: true,
        },
    );
    let escalations: Vec<&semver::Problem> = problems
        .iter()
        .filter(|p| p.rule == "permission-escalation")
        .collect();
    if escalations.is_empty() {
        return Ok(Ok(()));
    }
    if !allow_escalation {
        return Ok(Err(Refused(
            escalations
                .iter()
                .map(|p| {
                    format!(
                        "`{}`: {} (pass `--allow-escalation` with an approved `update` request for it)",
                        p.skill,
                        p.message.trim_end_matches(", or pass `--allow-escalation`")
                    )
                })
                .collect(),
        )));
    }
    let store = ApprovalStore::new(&dir.approvals_dir());
    let trust = store.trust(Some(&dir.audit_log()))?;
    let mut refused = Vec::new();
    let mut skills: Vec<&str> = escalations.iter().map(|p| p.skill.as_str()).collect();
    skills.dedup();
    for skill in skills {
        let entry_digest = entry(to, skill)
            .map(betty_core::registry::entry_digest)
            .unwrap_or_default();
        // The same binding `policy-enforce --action update` uses: the operation, the skill and
        // its digest at the target version, no environment.
        let mut approved = false;
        let mut digest = String::new();
        for op in APPROVING_OPERATIONS {
            let subject = Subject {
                operation: (*op).to_string(),
                target: Some(SubjectTarget {
                    kind: "skill".into(),
                    name: skill.to_string(),
                    digest: entry_digest.clone(),
                }),
                environment: None,
                args: Default::default(),
            };
            digest = subject.digest();
            if store
                .find_approved(&digest, Some(&[*op]), &trust, now)?
                .is_some()
            {
                approved = true;
                break;
            }
        }
        if !approved {
            refused.push(format!(
                "`{skill}`: `--allow-escalation` needs an approved (signed) `update` request for this escalation, with subject_digest {digest} (request it with `approval-queue request --operation update --manifest PATH`)"
            ));
        }
    }
    Ok(if refused.is_empty() {
        Ok(())
    } else {
        Err(Refused(refused))
    })
}

/// A skill's entry in a registry value (names are unique: a registry that repeats one is
/// refused when read).
fn entry<'a>(registry: &'a Value, skill: &str) -> Option<&'a Value> {
    registry
        .get("skills")
        .and_then(Value::as_array)?
        .iter()
        .rev()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(skill))
}
