//! Who hears of an approval transition, and telling them.
//!
//! - A **request** is sent to its group's own channel (`notify:` under the group in
//!   `groups.yaml`; `email: members` mails every member but the requester).
//! - A **decision** (approve, reject, revoke, cancel) is sent to the requester: their entry
//!   under `requesters:` in `registry/approvals/notify.yaml`, else a mail to their principal
//!   when it is an e-mail address and a relay is configured. Nobody is told of their own act.
//! - **Watchers** (`notify:` in `notify.yaml`) hear every transition.
//!
//! ```yaml
//! smtp: {relay: "smtp://mail.example.com:587?tls=required", from: betty@example.com}
//! notify:                      # watchers
//!   slack: [https://hooks.slack.com/services/T000/B000/XXX]
//!   webhooks: [https://ci.example.com/betty-approvals]
//!   email: [audit@example.com]
//! requesters:
//!   alice@example.com: {slack: [https://hooks.slack.com/services/T000/B000/YYY]}
//! ```
//!
//! The settings are read before the transition, so a malformed file is exit 2 with nothing
//! changed. Delivery happens after the transition is committed and never fails the command:
//! each failure is logged and recorded as an `approval.notification_failed` event.

use std::collections::BTreeMap;

use betty_core::approval::{ApprovalRequest, Groups, Status};
use betty_core::deliver::{Channel, Failure, Notice, Relay};
use betty_core::discover::RegistryDir;
use betty_core::error::Error;
use betty_core::identity::Identity;
use betty_core::limits::Limits;
use betty_core::telemetry::{EventWriter, NewEvent};
use serde_json::{Map, Value, json};

const USER_AGENT: &str = "betty-approval-queue";

/// One transition to tell people about.
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    /// `approval.requested`, `approval.approved`, ...
    pub event: &'a str,
    /// The principal who acted (never told of their own act).
    pub actor: &'a str,
    pub request: &'a ApprovalRequest,
    /// The request's derived state after the transition.
    pub state: Status,
}

/// The notification settings of one registry.
#[derive(Debug, Default)]
pub struct Notifications {
    watchers: Channel,
    relay: Option<Relay>,
    requesters: BTreeMap<String, Channel>,
}

impl Notifications {
    /// Reads `approvals/notify.yaml` (absent: no watchers, no relay). A file that is there
    /// but malformed is an error naming the place, never "no notifications".
    pub fn load(registry: &RegistryDir) -> betty_core::Result<Notifications> {
        let path = registry.approvals_dir().join("notify.yaml");
        if path.symlink_metadata().is_err() {
            return Ok(Notifications::default());
        }
        let doc = betty_core::Document::read_yaml(&path, &Limits::MANIFEST)?;
        let bad = |ptr: &str, message: String| Error::Invalid {
            input: doc.source.clone(),
            pos: doc.pos(ptr),
            message,
        };
        let Some(top) = doc.value.as_object() else {
            return Err(bad(
                "",
                "expected a mapping with `smtp:`, `notify:` and `requesters:`".into(),
            ));
        };
        if let Some(k) = top
            .keys()
            .find(|k| !["smtp", "notify", "requesters"].contains(&k.as_str()))
        {
            return Err(bad(
                &format!("/{}", betty_core::source::escape_pointer(k)),
                format!("unknown key `{k}`; expected `smtp`, `notify` and `requesters`"),
            ));
        }
        let mut relay = match top.get("smtp") {
            None => None,
            Some(v) => Some(parse_relay(v).map_err(|e| bad("/smtp", e))?),
        };
        let watchers = match top.get("notify") {
            None | Some(Value::Null) => Channel::default(),
            Some(v) => {
                // The first form of this file put the relay under `notify.email`:
                // `email: {smtp: HOST:PORT, from: ADDR, to: [ADDR]}`; it still works.
                let mut v = v.clone();
                if let Some(email) = v.get("email").filter(|e| e.is_object()).cloned() {
                    let legacy = parse_relay(&json!({
                        "relay": email.get("smtp").cloned().unwrap_or(Value::Null),
                        "from": email.get("from").cloned().unwrap_or(Value::Null),
                    }))
                    .map_err(|e| bad("/notify/email", e))?;
                    relay.get_or_insert(legacy);
                    v["email"] = email.get("to").cloned().unwrap_or(Value::Null);
                }
                Channel::from_value(&v, false).map_err(|e| bad("/notify", e))?
            }
        };
        let mut requesters = BTreeMap::new();
        match top.get("requesters") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (who, v) in map {
                    let ptr = format!("/requesters/{}", betty_core::source::escape_pointer(who));
                    let p = betty_core::principal::normalise(who)
                        .map_err(|e| bad(&ptr, format!("requester `{who}`: {e}")))?;
                    let c = Channel::from_value(v, false)
                        .map_err(|e| bad(&ptr, format!("requester `{who}`: {e}")))?;
                    requesters.insert(p, c);
                }
            }
            Some(_) => {
                return Err(bad(
                    "/requesters",
                    "expected a mapping from principals to channels".into(),
                ));
            }
        }
        Ok(Notifications {
            watchers,
            relay,
            requesters,
        })
    }

    /// Tells everyone who should hear of `event` on `req` (see the module documentation) and
    /// records every failed delivery.
    pub fn send(&self, registry: &RegistryDir, who: &Identity, t: &Transition, groups: &Groups) {
        let Transition {
            event,
            actor,
            request: req,
            state,
        } = *t;
        let notice = notice(event, req, state, actor);
        let mut failures = self
            .watchers
            .deliver(&notice, self.relay.as_ref(), &[], USER_AGENT);
        if event == "approval.requested" {
            if let Some(group) = groups.group(&req.approvers)
                && let Some(channel) = &group.notify
            {
                let members: Vec<String> = group
                    .members
                    .iter()
                    .filter(|m| **m != req.requested_by)
                    .cloned()
                    .collect();
                failures.extend(channel.deliver(
                    &notice,
                    self.relay.as_ref(),
                    &members,
                    USER_AGENT,
                ));
            }
        } else if actor != req.requested_by {
            let fallback;
            let channel = match self.requesters.get(&req.requested_by) {
                Some(c) => Some(c),
                None if betty_core::deliver::is_address(&req.requested_by)
                    && self.relay.is_some() =>
                {
                    fallback = Channel {
                        email: vec![req.requested_by.clone()],
                        ..Channel::default()
                    };
                    Some(&fallback)
                }
                None => None,
            };
            if let Some(c) = channel {
                failures.extend(c.deliver(&notice, self.relay.as_ref(), &[], USER_AGENT));
            }
        }
        for f in failures {
            record_failure(registry, who, req, &f);
        }
    }
}

fn parse_relay(v: &Value) -> Result<Relay, String> {
    let url = v.get("relay").and_then(Value::as_str).unwrap_or_default();
    let from = v.get("from").and_then(Value::as_str).unwrap_or_default();
    if url.is_empty() || from.is_empty() {
        return Err(
            "the mail relay needs `relay` (HOST:PORT or an smtp:// / smtps:// URL) and `from` (an address)"
                .into(),
        );
    }
    if let Some(map) = v.as_object()
        && let Some(k) = map
            .keys()
            .find(|k| !["relay", "from"].contains(&k.as_str()))
    {
        return Err(format!("unknown key `{k}`; expected `relay` and `from`"));
    }
    if !betty_core::deliver::is_address(from) {
        return Err(format!("`from: {from}` is not an e-mail address"));
    }
    Ok(Relay {
        url: url.to_string(),
        from: from.to_string(),
    })
}

/// What a transition says: one line for people, the request for machines.
fn notice(event: &str, req: &ApprovalRequest, state: Status, actor: &str) -> Notice {
    let action = event.strip_prefix("approval.").unwrap_or(event);
    let text = format!(
        "Betty approval {action} by {actor}: {} on {} requested by {} ({}/{} from `{}`), now {}: {}",
        req.operation,
        req.skill.as_deref().unwrap_or("-"),
        req.requested_by,
        req.claimed_approvals().len(),
        req.required,
        req.approvers,
        state,
        req.id
    );
    Notice {
        subject: format!("[betty] {action}: {} ({})", req.operation, req.id),
        text,
        json: json!({"event": event, "actor": actor, "state": state.to_string(), "request": req}),
    }
}

fn record_failure(registry: &RegistryDir, who: &Identity, req: &ApprovalRequest, f: &Failure) {
    tracing::warn!("notification to {} failed: {}", f.target, f.error);
    let mut context = Map::new();
    context.insert("target".into(), f.target.clone().into());
    context.insert("error".into(), f.error.clone().into());
    context.insert("approval_id".into(), req.id.clone().into());
    if let Err(e) = EventWriter::new(&registry.events_jsonl(), "approval-queue").record(
        NewEvent {
            event_type: "approval.notification_failed".into(),
            skill_name: req.skill.clone(),
            outcome: "failure".into(),
            context,
            ..Default::default()
        },
        who,
    ) {
        tracing::warn!("the failed notification could not be recorded either: {e}");
    }
}
