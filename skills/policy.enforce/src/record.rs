//! Every decision is recorded: one audit entry per run with each policy's result
//! (`policy_checks`), and telemetry events: `policy.enforced` per target and `policy.violated`
//! per finding (waived and recorded ones included, marked as such), written in one batch,
//! through `betty_core::record::Recorder` (a decision changes no state: one entry is enough).

use betty_core::audit::{AuditRecord, Head, PolicyCheck};
use betty_core::discover::RegistryDir;
use betty_core::identity::Identity;
use betty_core::record::Recorder;
use betty_core::telemetry::{EventBatch, EventWriter, NewEvent};
use serde_json::{Map, Value, json};

use crate::engine::{Level, TargetResult};
use crate::report::{Report, TOOL};

/// Most targets listed in one audit entry's details.
const MAX_AUDITED_TARGETS: usize = 100;

/// Writes the audit entry and the events of one run, then starts the alert deliverer; returns
/// the new audit head. Each target's `policy.enforced` event carries the duration of its own
/// evaluation (`TargetResult::duration_ms`), not the run's.
pub fn record(
    registry: &RegistryDir,
    who: &Identity,
    report: &Report,
) -> Result<Head, betty_core::Error> {
    let action = report.action.map(|a| a.as_str()).unwrap_or("check");
    let recorder = Recorder::new(registry, TOOL, who);
    let writer = recorder.events();
    let skill = match report.results.as_slice() {
        [one] => Some(one.target.name.clone()),
        _ => None,
    };
    let record = AuditRecord {
        operation: "policy.enforce".into(),
        skill,
        outcome: report.outcome.as_str().into(),
        policy_checks: report
            .policy_checks()
            .into_iter()
            .map(|(policy, result)| PolicyCheck {
                policy,
                result: result.into(),
            })
            .collect(),
        details: Some(json!({
            "action": action,
            "environment": report.environment,
            "strict": report.strict,
            // Every target of a small run; of a large batch only those that did not pass
            // (each target also has its own `policy.enforced` event).
            "targets": report
                .results
                .iter()
                .filter(|r| report.results.len() <= MAX_AUDITED_TARGETS || r.outcome != crate::engine::Outcome::Passed)
                .take(MAX_AUDITED_TARGETS)
                .map(|r| json!({
                    "kind": r.target.kind, "name": r.target.name, "outcome": r.outcome, "digest": r.digest,
                }))
                .collect::<Vec<_>>(),
            "summary": report.summary(),
        })),
        step: None,
    };
    // Every event is completed (ids, redaction, checks, serialization: the costly part of a
    // large batch, spread over the cores) before anything is written, so an event that cannot
    // be made leaves no trace. Then the audit entry, then the events: if the audit entry cannot
    // be written, nothing claims a decision was made.
    let parts = betty_core::par::map(&report.results, 16, |r| {
        let mut lines = EventBatch::new();
        target_events(r, action, report.strict, writer, who, &mut lines).map(|()| lines)
    });
    let mut lines = EventBatch::new();
    for part in parts {
        lines.extend(part?);
    }
    recorder.record(&record, &lines)
}

fn target_events(
    r: &TargetResult,
    action: &str,
    strict: bool,
    writer: &EventWriter,
    who: &Identity,
    lines: &mut EventBatch,
) -> Result<(), betty_core::Error> {
    let mut context = Map::new();
    context.insert("action".into(), action.into());
    context.insert("target_kind".into(), r.target.kind.as_str().into());
    context.insert("source".into(), r.target.label.clone().into());
    context.insert("digest".into(), r.digest.clone().into());
    context.insert("policies".into(), r.checks.len().into());
    // Only the policies that did not simply pass: the rest is implied.
    let notable: Map<String, Value> = r
        .checks
        .iter()
        .filter(|c| c.result != "passed")
        .map(|c| (c.policy.clone(), Value::from(c.result)))
        .collect();
    context.insert("results".into(), Value::Object(notable));
    context.insert("findings".into(), r.findings.len().into());
    context.insert("strict".into(), strict.into());
    writer.complete_line(
        NewEvent {
            event_type: "policy.enforced".into(),
            skill_name: Some(r.target.name.clone()),
            outcome: r.outcome.as_str().into(),
            duration_ms: Some(r.duration_ms),
            context,
            ..NewEvent::default()
        },
        who,
        lines,
    )?;
    for f in r.findings.iter().filter(|f| f.level != Level::Approved) {
        let mut context = Map::new();
        context.insert("action".into(), action.into());
        context.insert("policy".into(), f.policy.clone().into());
        context.insert("rule".into(), f.rule.clone().into());
        context.insert("field".into(), f.field.clone().into());
        context.insert("level".into(), f.level.as_str().into());
        context.insert(
            "waived".into(),
            f.waiver
                .as_ref()
                .map(|w| Value::from(w.name.clone()))
                .unwrap_or(Value::Null),
        );
        context.insert(
            "location".into(),
            format!("{}:{}:{}", f.file, f.line, f.column).into(),
        );
        context.insert("detail".into(), f.detail.clone().into());
        writer.complete_line(
            NewEvent {
                event_type: "policy.violated".into(),
                skill_name: Some(f.target.clone()),
                // What happened to the operation because of this finding (the finding's level
                // is in `context.level`): `blocked`, `warned`, `pending`, ...
                outcome: if f.waived() {
                    "waived".into()
                } else {
                    match f.level {
                        Level::Blocking => "blocked",
                        Level::Pending => "pending",
                        Level::Warning => "warned",
                        Level::Info => "noted",
                        Level::Audit => "recorded",
                        Level::Approved => "approved",
                    }
                    .into()
                },
                duration_ms: None,
                context,
                ..NewEvent::default()
            },
            who,
            lines,
        )?;
    }
    Ok(())
}

/// Spends the single-use approvals a passing run relied on (a deploy gate's approval is used
/// once): each under its request's lock, with an `approval.consumed` intent entry before the
/// file changes and a commit entry after, so the audit trail keeps the use even if the file is
/// rewritten. A run that does not pass spends nothing. An approval that cannot be spent (a
/// concurrent run used it first) is an error: the run does not go ahead on it.
pub fn consume(
    registry: &RegistryDir,
    who: &Identity,
    report: &Report,
) -> Result<Vec<String>, anyhow::Error> {
    use betty_core::approval::{ApprovalStore, CONSUMED_OPERATION, Consumption};
    if report.relied_on.is_empty()
        || report.outcome.exit_status() != betty_core::ExitStatus::Success
    {
        return Ok(Vec::new());
    }
    let action = report.action.map(|a| a.as_str()).unwrap_or("check");
    let recorder = Recorder::new(registry, TOOL, who);
    let store = ApprovalStore::new(&registry.approvals_dir());
    let trust = store.trust(Some(&registry.audit_log()))?;
    let now = betty_core::time::now();
    let mut spent = Vec::new();
    for id in &report.relied_on {
        let mut op = None;
        let consumption = Consumption {
            at: betty_core::time::format(now),
            by: who.user.clone(),
            action: action.to_string(),
            operation_id: None,
        };
        let used = store.consume(id, consumption, &trust, now, |req| {
            op = Some(recorder.begin(
                CONSUMED_OPERATION,
                req.skill.as_deref(),
                json!({"id": req.id, "action": action, "environment": report.environment, "file": format!("approvals/{}.json", req.id)}),
            )?);
            Ok(())
        });
        let req = used.map_err(|e| {
            anyhow::anyhow!(
                "the single-use approval `{id}` could not be used: {e}; nothing was deployed on it"
            )
        })?;
        if let Some(op) = op {
            op.commit(
                AuditRecord {
                    operation: CONSUMED_OPERATION.into(),
                    skill: req.skill.clone(),
                    outcome: "consumed".into(),
                    details: Some(
                        json!({"id": req.id, "action": action, "environment": report.environment}),
                    ),
                    ..AuditRecord::default()
                },
                &EventBatch::new(),
            )?;
        }
        spent.push(id.clone());
    }
    Ok(spent)
}
