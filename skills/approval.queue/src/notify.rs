//! Notifications of approval transitions, configured in `registry/approvals/notify.yaml`:
//!
//! ```yaml
//! notify:
//!   slack: [http://hooks.example.com/services/T000/B000/XXX]   # Slack-compatible: {"text": ...}
//!   webhooks: [http://ci.example.com/betty-approvals]           # the request as JSON
//!   email:
//!     smtp: mail.example.com:25
//!     from: betty@example.com
//!     to: [security@example.com]
//! ```
//!
//! Delivery never blocks or fails the command: a failure is logged, recorded as an
//! `approval.notification_failed` telemetry event, and the command goes on. Plain HTTP and
//! SMTP only: point `https://` hooks at a local relay (TLS is not built in).

use betty_core::approval::{ApprovalRequest, Groups};
use betty_core::discover::RegistryDir;
use betty_core::identity::Identity;
use betty_core::limits::Limits;
use betty_core::telemetry::{EventWriter, NewEvent};
use serde_json::{Map, Value, json};

/// Sends every configured notification for one transition; records failures.
///
/// Two places say where: `approvals/notify.yaml` (every transition), and the request's group
/// in `groups.yaml` (`notify:` under the group: a request notifies its group's channel).
pub fn send(
    registry: &RegistryDir,
    who: &Identity,
    event: &str,
    req: &ApprovalRequest,
    groups: &Groups,
) {
    let path = registry.approvals_dir().join("notify.yaml");
    if path.symlink_metadata().is_ok() {
        match betty_core::Document::read_yaml(&path, &Limits::MANIFEST) {
            Ok(doc) => {
                let notify = doc.value.get("notify").cloned().unwrap_or(Value::Null);
                send_to(registry, who, event, req, &notify);
            }
            Err(e) => tracing::warn!("notifications in notify.yaml skipped: {e}"),
        }
    }
    if let Some(notify) = groups.group(&req.approvers).and_then(|g| g.notify.as_ref()) {
        send_to(registry, who, event, req, notify);
    }
}

fn send_to(
    registry: &RegistryDir,
    who: &Identity,
    event: &str,
    req: &ApprovalRequest,
    notify: &Value,
) {
    let text = format!(
        "Betty approval {}: {} on {} requested by {} ({}/{} from `{}`): {}",
        req.status,
        req.operation,
        req.skill.as_deref().unwrap_or("-"),
        req.requested_by,
        req.claimed_approvals().len(),
        req.required,
        req.approvers,
        req.id
    );
    // User text (operation, names, ids) cannot format a Slack message or a terminal; secrets
    // are redacted by `deliver` on the way out.
    let slack = betty_core::deliver::slack_text(&text);
    let text = betty_core::escape::escape(&text).into_owned();
    let mut failures = Vec::new();
    for url in strings(notify, "slack") {
        if let Err(e) =
            betty_core::deliver::post_json(&url, &json!({ "text": slack }), "betty-approval-queue")
        {
            failures.push((
                betty_core::redact::redact_text(&url).into_owned(),
                e.to_string(),
            ));
        }
    }
    for url in strings(notify, "webhooks") {
        let body = json!({"event": event, "request": req});
        if let Err(e) = betty_core::deliver::post_json(&url, &body, "betty-approval-queue") {
            failures.push((
                betty_core::redact::redact_text(&url).into_owned(),
                e.to_string(),
            ));
        }
    }
    if let Some(email) = notify.get("email") {
        let server = email
            .get("smtp")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let from = email
            .get("from")
            .and_then(Value::as_str)
            .unwrap_or("betty@localhost");
        let to = strings(email, "to");
        if !server.is_empty() && !to.is_empty() {
            let subject = format!("[betty] {} {}", event, req.id);
            if let Err(e) = betty_core::deliver::send_mail(server, from, &to, &subject, &text) {
                failures.push((format!("smtp://{server}"), e.to_string()));
            }
        }
    }
    for (target, error) in failures {
        tracing::warn!("notification to {target} failed: {error}");
        let mut context = Map::new();
        context.insert("target".into(), target.into());
        context.insert("error".into(), error.into());
        context.insert("approval_id".into(), req.id.clone().into());
        let _ = EventWriter::new(&registry.events_jsonl(), "approval-queue").record(
            NewEvent {
                event_type: "approval.notification_failed".into(),
                skill_name: req.skill.clone(),
                outcome: "failure".into(),
                context,
                ..Default::default()
            },
            who,
        );
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
