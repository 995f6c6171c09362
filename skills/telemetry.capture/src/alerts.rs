//! Alerts: rules in `registry/telemetry/alerts.yaml` that send matching events to
//! Slack-compatible hooks or generic webhooks when they are captured.
//!
//! ```yaml
//! alerts:
//!   - name: blocked-policy-violations
//!     event_type: policy.violated        # one or a list; globs allowed
//!     outcome: blocked                   # optional, likewise
//!     skill: "data.*"                    # optional, likewise
//!     slack: https://hooks.slack.com/services/T000/B000/XXX     # {"text": ...}
//!     webhook:                                                   # {"alert": ..., "event": {...}}
//!       url: https://ci.example.com/betty-alerts
//!       secret_env: BETTY_ALERTS_SECRET                          # Standard Webhooks signature
//! ```
//!
//! Alerts follow the event stream itself, so they fire for events every Betty binary writes,
//! not only `telemetry-capture`'s. A deliverer (`telemetry-capture alerts deliver`) reads the
//! stream from where it last stopped (`alerts-state.json`: an offset and first-line hash per
//! segment, which survives rotation), sends a notification per matching event, and saves its
//! place. `telemetry-capture` starts a detached deliverer after every capture, so its events
//! alert at once and the capture never waits for a hook; `alerts watch` runs one continuously
//! for events other binaries write. One deliverer runs at a time (`alerts-deliver.lock`); a
//! running one keeps reading until the stream stops growing. The first run starts at the events
//! written since `alerts.yaml` was last changed: history does not alert.
//!
//! A failed delivery is recorded in the state with its error and retried with backoff (30 s
//! doubling, up to 8 attempts), then kept as failed. A hook is a URL or `{url, insecure,
//! secret_env | secret}` ([`betty_core::deliver::Hook`]: `https://`, or `http://` to loopback
//! unless `insecure: true`; signed when it has a secret). A retry goes to the hook as the rules
//! describe it now: a target no longer in `alerts.yaml` fails rather than being sent as it was.

use std::path::{Path, PathBuf};

use betty_core::fsx;
use betty_core::limits::Limits;
use serde_json::{Value, json};

use crate::lines::{ForwardLines, Item, ReverseLines};
use crate::scan::{MAX_LINE, glob, parse_row};
use crate::segments;

/// Attempts before a delivery is given up (kept in the state as failed).
pub const MAX_ATTEMPTS: u64 = 8;
/// Failed deliveries kept for inspection.
const KEEP_FAILED: usize = 100;

/// Why alerts could not be read or delivered.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Core(#[from] betty_core::Error),
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One rule of `alerts.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub event_types: Vec<String>,
    pub outcomes: Vec<String>,
    pub skills: Vec<String>,
    /// `(kind, hook)`: `slack` or `webhook`.
    pub targets: Vec<(String, betty_core::deliver::Hook)>,
}

/// Files of the alert machinery, beside `events.jsonl`.
#[derive(Clone, Debug)]
pub struct AlertFiles {
    pub events: PathBuf,
    pub rules: PathBuf,
    pub state: PathBuf,
    pub deliver_lock: PathBuf,
}

impl AlertFiles {
    pub fn beside(events_jsonl: &Path) -> AlertFiles {
        let dir = events_jsonl.parent().unwrap_or(Path::new("."));
        AlertFiles {
            events: events_jsonl.to_path_buf(),
            rules: dir.join("alerts.yaml"),
            state: dir.join("alerts-state.json"),
            deliver_lock: dir.join("alerts-deliver.lock"),
        }
    }
}

/// Reads the rules; a missing file means no alerts.
pub fn load(path: &Path) -> Result<Vec<Rule>, AlertError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let doc = betty_core::Document::read_yaml(path, &Limits::MANIFEST)?;
    let bad = |ptr: &str, message: String| AlertError::Config {
        path: path.to_path_buf(),
        message: format!("line {}: {message}", doc.pos(ptr).line),
    };
    let Some(items) = doc.value.get("alerts").and_then(Value::as_array) else {
        return Err(bad("", "expected `alerts:` with a list of rules".into()));
    };
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ptr = format!("/alerts/{i}");
        let list = |key: &str| -> Result<Vec<String>, AlertError> {
            match item.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            bad(
                                &format!("{ptr}/{key}"),
                                format!("`{key}` must hold strings"),
                            )
                        })
                    })
                    .collect(),
                Some(_) => Err(bad(
                    &format!("{ptr}/{key}"),
                    format!("`{key}` must be a string or a list of strings"),
                )),
            }
        };
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(&ptr, format!("alert {i} has no `name`")))?;
        let mut targets = Vec::new();
        for kind in ["slack", "webhook"] {
            let hooks = betty_core::deliver::Hook::list_from_value(item.get(kind))
                .map_err(|e| bad(&format!("{ptr}/{kind}"), format!("`{kind}`: {e}")))?;
            targets.extend(hooks.into_iter().map(|h| (kind.to_string(), h)));
        }
        if targets.is_empty() {
            return Err(bad(
                &ptr,
                format!("alert `{name}` has no `slack` or `webhook` target"),
            ));
        }
        let event_types = list("event_type")?;
        if event_types.is_empty() {
            return Err(bad(&ptr, format!("alert `{name}` has no `event_type`")));
        }
        rules.push(Rule {
            name,
            event_types,
            outcomes: list("outcome")?,
            skills: list("skill")?,
            targets,
        });
    }
    Ok(rules)
}

/// The deliveries one event triggers.
pub fn deliveries_for(rules: &[Rule], event: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let field = |k: &str| event.get(k).and_then(Value::as_str);
    let any = |pats: &[String], v: Option<&str>| {
        pats.is_empty() || v.is_some_and(|v| pats.iter().any(|p| glob(p, v)))
    };
    let mut out = Vec::new();
    for rule in rules {
        if any(&rule.event_types, field("event_type"))
            && any(&rule.outcomes, field("outcome"))
            && any(&rule.skills, field("skill_name"))
        {
            for (kind, hook) in &rule.targets {
                out.push(json!({
                    "id": uuid::Uuid::now_v7().to_string(),
                    "alert": rule.name,
                    "kind": kind,
                    "url": hook.url,
                    "event": event,
                    "queued_at": betty_core::time::format(now),
                    "attempts": 0,
                }));
            }
        }
    }
    out
}

/// The message a Slack-compatible hook shows.
pub fn slack_text(alert: &str, e: &Value) -> String {
    let s = |k: &str| {
        betty_core::deliver::slack_text(&betty_core::redact::redact_text(
            e.get(k).and_then(Value::as_str).unwrap_or("-"),
        ))
    };
    let alert = betty_core::deliver::slack_text(alert);
    format!(
        "Betty alert `{alert}`: {} ({}) on {} by {} at {} [{}]",
        s("event_type"),
        s("outcome"),
        s("skill_name"),
        s("user"),
        s("timestamp"),
        s("event_id")
    )
}

/// Sends one delivery to its hook as `rules` describe it now. Its `id` is the `webhook-id`
/// of a signed hook, the same on every retry.
pub fn send(rules: &[Rule], delivery: &Value) -> Result<(), String> {
    let url = delivery["url"].as_str().unwrap_or_default();
    let alert = delivery["alert"].as_str().unwrap_or_default();
    let kind = delivery["kind"].as_str().unwrap_or_default();
    let Some(hook) = rules
        .iter()
        .filter(|r| r.name == alert)
        .flat_map(|r| &r.targets)
        .find(|(k, h)| k == kind && h.url == url)
        .map(|(_, h)| h)
    else {
        return Err(format!(
            "alert `{alert}` no longer has this {kind} target in alerts.yaml"
        ));
    };
    let body = match kind {
        "slack" => json!({"text": slack_text(alert, &delivery["event"])}),
        _ => json!({"alert": alert, "event": delivery["event"]}),
    };
    let id = delivery["id"]
        .as_str()
        .map_or_else(betty_core::deliver::message_id, |id| format!("msg_{id}"));
    betty_core::deliver::Client::new("betty-telemetry-capture")
        .post_json(hook, &body, &id)
        .map_err(|e| e.to_string())
}

/// What one deliverer run did.
#[derive(Clone, Debug, Default)]
pub struct DeliverReport {
    pub sent: u64,
    pub failed: u64,
    pub pending: u64,
    pub given_up: u64,
    /// Another deliverer was running; this one did nothing.
    pub busy: bool,
}

/// Where the deliverer stopped in one segment.
#[derive(Clone, Debug)]
struct Position {
    name: String,
    offset: u64,
    head: String,
}

fn positions_of(state: &Value) -> Option<Vec<Position>> {
    state["segments"].as_array().map(|a| {
        a.iter()
            .filter_map(|p| {
                Some(Position {
                    name: p["name"].as_str()?.to_string(),
                    offset: p["offset"].as_u64()?,
                    head: p["head"].as_str()?.to_string(),
                })
            })
            .collect()
    })
}

/// First run: start at the first event of the live segment written since `alerts.yaml`
/// changed (found walking back from the end), older segments at their ends.
fn initial_positions(files: &AlertFiles) -> Result<Vec<Position>, AlertError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AlertError::Io {
            action: "read",
            path,
            source,
        }
    };
    let since = std::fs::metadata(&files.rules)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(betty_core::time::format)
        .unwrap_or_default();
    let segs = segments::list(&files.events).map_err(io(&files.events))?;
    let mut out = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let len = std::fs::metadata(&seg.path).map_err(io(&seg.path))?.len();
        let mut offset = len;
        if i + 1 == segs.len() {
            let mut r = ReverseLines::open(&seg.path, len, MAX_LINE).map_err(io(&seg.path))?;
            while let Some(item) = r.next().map_err(io(&seg.path))? {
                let Item::Line {
                    bytes,
                    offset: at,
                    complete,
                } = item
                else {
                    continue;
                };
                if !complete {
                    offset = at;
                    continue;
                }
                match parse_row(bytes) {
                    Ok(row) if row.time() >= since.as_str() => offset = at,
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
        }
        out.push(Position {
            name: name_of(&seg.path),
            offset,
            head: crate::metrics::head_of(&seg.path).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Sends a notification for every matching event written since the last run, and due retries
/// (`force`: all retries, whatever their backoff). Only one deliverer runs at a time.
pub fn deliver(
    files: &AlertFiles,
    force: bool,
    now: impl Fn() -> jiff::Timestamp,
) -> Result<DeliverReport, AlertError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| AlertError::Io {
            action,
            path,
            source,
        }
    };
    let mut report = DeliverReport::default();
    if !files.rules.exists() {
        return Ok(report);
    }
    let rules = load(&files.rules)?;
    if let Some(dir) = files.deliver_lock.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let lock = betty_core::fsx::open_lock_file(&files.deliver_lock)?;
    if lock.try_lock().is_err() {
        report.busy = true;
        return Ok(report);
    }
    let state = if files.state.exists() {
        betty_core::source::read_json(&files.state, &Limits::REGISTRY)?
    } else {
        Value::Null
    };
    let mut positions = match positions_of(&state) {
        Some(p) => p,
        None => initial_positions(files)?,
    };
    let mut retry: Vec<Value> = state["retry"].as_array().cloned().unwrap_or_default();
    let mut failed: Vec<Value> = state["failed"].as_array().cloned().unwrap_or_default();
    let mut attempt = |mut d: Value, retry: &mut Vec<Value>, failed: &mut Vec<Value>| {
        let attempts = d["attempts"].as_u64().unwrap_or(0) + 1;
        d["attempts"] = attempts.into();
        match send(&rules, &d) {
            Ok(()) => report.sent += 1,
            Err(e) => {
                tracing::warn!(
                    "alert `{}` to {} failed (attempt {attempts}): {e}",
                    d["alert"].as_str().unwrap_or_default(),
                    d["url"].as_str().unwrap_or_default()
                );
                report.failed += 1;
                d["last_error"] = e.into();
                let t = now();
                d["last_attempt_at"] = betty_core::time::format(t).into();
                if attempts >= MAX_ATTEMPTS {
                    report.given_up += 1;
                    failed.push(d);
                } else {
                    let wait = 30i64.saturating_mul(1 << attempts.min(7)).min(3600);
                    let next = t
                        .checked_add(jiff::SignedDuration::from_secs(wait))
                        .unwrap_or(t);
                    d["next_attempt_at"] = betty_core::time::format(next).into();
                    retry.push(d);
                }
            }
        }
    };
    // Due retries first.
    let t = betty_core::time::format(now());
    let (due, later): (Vec<Value>, Vec<Value>) =
        std::mem::take(&mut retry).into_iter().partition(|d| {
            force
                || d["next_attempt_at"]
                    .as_str()
                    .is_none_or(|n| n <= t.as_str())
        });
    retry = later;
    for d in due {
        attempt(d, &mut retry, &mut failed);
    }
    // Then every event written since, until the stream stops growing.
    loop {
        let segs = segments::list(&files.events).map_err(io("list", &files.events))?;
        let mut next = Vec::new();
        let mut grew = false;
        for seg in &segs {
            let head = crate::metrics::head_of(&seg.path).unwrap_or_default();
            let mut offset = positions
                .iter()
                .find(|p| !p.head.is_empty() && p.head == head)
                .map_or(0, |p| p.offset);
            let mut r =
                ForwardLines::open(&seg.path, offset, MAX_LINE).map_err(io("read", &seg.path))?;
            let mut events = Vec::new();
            while let Some(item) = r.next().map_err(io("read", &seg.path))? {
                match item {
                    Item::Line {
                        complete: false, ..
                    } => break,
                    Item::Line {
                        bytes, offset: at, ..
                    } => {
                        offset = at + bytes.len() as u64 + 1;
                        if let Ok(v) = betty_core::source::json_from_slice(bytes) {
                            events.push(v);
                        }
                    }
                    Item::TooLong { offset: at, len } => offset = at + len + 1,
                }
            }
            for e in &events {
                grew = true;
                for d in deliveries_for(&rules, e, now()) {
                    attempt(d, &mut retry, &mut failed);
                }
            }
            next.push(Position {
                name: name_of(&seg.path),
                offset: if head.is_empty() { 0 } else { offset },
                head,
            });
        }
        positions = next;
        if !grew {
            break;
        }
    }
    if failed.len() > KEEP_FAILED {
        failed.drain(..failed.len() - KEEP_FAILED);
    }
    report.pending = retry.len() as u64;
    let segments: Vec<Value> = positions
        .iter()
        .map(|p| json!({"name": p.name, "offset": p.offset, "head": p.head}))
        .collect();
    let state =
        json!({"schema_version": 1, "segments": segments, "retry": retry, "failed": failed});
    let mut bytes = serde_json::to_vec_pretty(&state).unwrap_or_default();
    bytes.push(b'\n');
    fsx::atomic_write(&files.state, &bytes)?;
    Ok(report)
}

#[cfg(test)]
mod delivery_tests {
    use super::*;

    #[test]
    fn slack_text_cannot_mention_link_drive_a_terminal_or_leak() {
        let e = json!({
            "event_type": "policy.violated", "outcome": "blocked",
            "skill_name": "<!channel> <http://evil|click> \u{1b}[2J & more",
            "user": "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "timestamp": "t", "event_id": "id",
        });
        let text = slack_text("blocked <!here>", &e);
        assert_eq!(
            text,
            "Betty alert `blocked &lt;!here&gt;`: policy.violated (blocked) on &lt;!channel&gt; &lt;http://evil|click&gt; \\x1b[2J &amp; more by [REDACTED] at t [id]"
        );
    }
}
