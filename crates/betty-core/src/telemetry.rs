//! Telemetry events: one JSON object per line in `registry/telemetry/events.jsonl`.
//!
//! The writer fills what the caller need not know (`event_id` as UUID v7, `timestamp`, `user`,
//! `session_id`, `context.tool`/`context.version`), redacts values whose key looks like a secret
//! (and values that look like well-known credentials), checks the event against the schema, and
//! serializes it into an [`EventBatch`]. A refused event writes nothing. Every append goes
//! through the one stream appender, [`crate::stream::append`] (rotation, unordered segments);
//! binaries record through [`crate::record::Recorder`].

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::limits::Limits;

// Redaction lives in `crate::redact`; these names stay for callers of this module.
pub use crate::redact::{REDACTED, is_secret_key, looks_like_credential, redact_value as redact};
/// Schema version written into every event.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// An event as a caller describes it; the writer completes it.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub event_type: String,
    pub skill_name: Option<String>,
    pub outcome: String,
    pub duration_ms: Option<f64>,
    /// Extra context; `tool` and `version` are filled if absent.
    pub context: Map<String, Value>,
    /// Overrides (from an event given on stdin); `None` means "fill in".
    pub timestamp: Option<String>,
    pub event_id: Option<String>,
}

/// Events completed and serialized as lines of `events.jsonl`, ready for one append.
#[derive(Clone, Debug, Default)]
pub struct EventBatch {
    lines: Vec<u8>,
    count: usize,
    /// Earliest and latest timestamp given by a caller (events stamped "now" are in order).
    given: Option<(jiff::Timestamp, jiff::Timestamp)>,
}

impl EventBatch {
    pub fn new() -> EventBatch {
        EventBatch::default()
    }

    /// Complete events (from stdin, an import), every timestamp counted as given.
    pub fn from_values(events: &[Value]) -> Result<EventBatch> {
        let mut batch = EventBatch::new();
        for e in events {
            let start = batch.lines.len();
            serde_json::to_writer(&mut batch.lines, e)
                .map_err(|err| bad_event("event", &format!("cannot be serialized: {err}")))?;
            check_event_size((batch.lines.len() - start) as u64)?;
            batch.lines.push(b'\n');
            batch.count += 1;
            batch.note_time(e);
        }
        Ok(batch)
    }

    /// Adds another batch's events after this one's.
    pub fn extend(&mut self, other: EventBatch) {
        self.lines.extend_from_slice(&other.lines);
        self.count += other.count;
        if let Some((lo, hi)) = other.given {
            self.given = Some(match self.given {
                None => (lo, hi),
                Some((a, b)) => (a.min(lo), b.max(hi)),
            });
        }
    }

    fn note_time(&mut self, event: &Value) {
        // A timestamp that does not parse was refused by the check; treat it as far away.
        let t = event["timestamp"]
            .as_str()
            .and_then(|t| crate::time::parse_timestamp(t).ok())
            .unwrap_or(jiff::Timestamp::MIN);
        self.given = Some(match self.given {
            None => (t, t),
            Some((a, b)) => (a.min(t), b.max(t)),
        });
    }

    /// The lines, each ending in a newline.
    pub fn bytes(&self) -> &[u8] {
        &self.lines
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Earliest and latest caller-given timestamp, if any event carried one.
    pub fn given_times(&self) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        self.given
    }
}

/// Completes events for one `events.jsonl`.
#[derive(Clone, Debug)]
pub struct EventWriter {
    pub path: PathBuf,
    tool: String,
}

impl EventWriter {
    /// `tool` is the binary recording (`policy-enforce`, ...), written as `context.tool`.
    pub fn new(path: &Path, tool: &str) -> EventWriter {
        EventWriter {
            path: path.to_path_buf(),
            tool: tool.to_string(),
        }
    }

    /// Completes, redacts, checks and appends one event through the stream appender (no
    /// audit entry: for events that only report, such as a failed notification); returns what
    /// was written.
    pub fn record(&self, event: NewEvent, who: &Identity) -> Result<Value> {
        let value = self.complete(event, who)?;
        self.append_values(std::slice::from_ref(&value))?;
        Ok(value)
    }

    /// Completes, redacts and checks an event without writing it.
    pub fn complete(&self, event: NewEvent, who: &Identity) -> Result<Value> {
        let mut value = self.complete_unchecked(event, who)?;
        redact(&mut value);
        check_event(&value)?;
        Ok(value)
    }

    /// The event with every field filled in, not yet redacted or checked.
    fn complete_unchecked(&self, event: NewEvent, who: &Identity) -> Result<Value> {
        let mut context = event.context;
        context
            .entry("tool")
            .or_insert_with(|| Value::String(self.tool.clone()));
        context
            .entry("version")
            .or_insert_with(|| Value::String(crate::VERSION.to_string()));
        let mut obj = Map::new();
        obj.insert(
            "event_id".into(),
            event
                .event_id
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
                .into(),
        );
        obj.insert("event_type".into(), event.event_type.into());
        obj.insert(
            "timestamp".into(),
            event
                .timestamp
                .unwrap_or_else(crate::time::now_rfc3339)
                .into(),
        );
        obj.insert("user".into(), who.user.clone().into());
        obj.insert("session_id".into(), who.session_id.clone().into());
        obj.insert(
            "skill_name".into(),
            event.skill_name.map(Value::String).unwrap_or(Value::Null),
        );
        obj.insert("context".into(), Value::Object(context));
        obj.insert("outcome".into(), event.outcome.into());
        obj.insert(
            "duration_ms".into(),
            match event.duration_ms {
                Some(d) => serde_json::Number::from_f64(d)
                    .map(Value::Number)
                    .ok_or_else(|| bad_event("duration_ms", "must be a finite number"))?,
                None => Value::Null,
            },
        );
        obj.insert("schema_version".into(), EVENT_SCHEMA_VERSION.into());
        Ok(Value::Object(obj))
    }

    /// Completes, redacts and checks an event like [`EventWriter::complete`], and adds it to
    /// `batch` as one line of `events.jsonl`, serialized once.
    pub fn complete_line(
        &self,
        event: NewEvent,
        who: &Identity,
        batch: &mut EventBatch,
    ) -> Result<()> {
        let given = event.timestamp.is_some();
        let mut value = self.complete_unchecked(event, who)?;
        redact(&mut value);
        check_event_fields(&value)?;
        let lines = &mut batch.lines;
        let start = lines.len();
        serde_json::to_writer(&mut *lines, &value)
            .map_err(|e| Error::write(&self.path, e.into()))?;
        check_event_size((lines.len() - start) as u64).inspect_err(|_| lines.truncate(start))?;
        lines.push(b'\n');
        batch.count += 1;
        if given {
            batch.note_time(&value);
        }
        Ok(())
    }

    /// Appends a batch through the one stream appender ([`crate::stream::append`]).
    pub fn append_lines(&self, batch: &EventBatch) -> Result<()> {
        crate::stream::append(
            &self.path,
            batch,
            &crate::stream::AppendOptions::from_env(crate::time::now()),
        )
        .map(|_| ())
    }

    /// Appends already-complete events, all in one append.
    pub fn append_values(&self, events: &[Value]) -> Result<()> {
        self.append_lines(&EventBatch::from_values(events)?)
    }
}

fn bad_event(field: &str, reason: &str) -> Error {
    Error::InvalidArgument {
        what: "telemetry event",
        value: field.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks a complete event: required fields and types, event type shape, finite non-negative
/// duration, RFC 3339 timestamp, size. Returns the first problem.
///
/// This is `schemas/telemetry-event.schema.json` in code: compiling the JSON Schema costs more
/// than recording one event, so the writer checks here, and tests check that what the writer
/// accepts the schema accepts too.
pub fn check_event(v: &Value) -> Result<()> {
    check_event_fields(v)?;
    check_event_size(serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX) as u64)
}

/// [`check_event`] but for the size, which the caller checks on the bytes it writes.
fn check_event_fields(v: &Value) -> Result<()> {
    let Some(obj) = v.as_object() else {
        return Err(bad_event("event", "must be a JSON object"));
    };
    for key in [
        "event_id",
        "event_type",
        "timestamp",
        "user",
        "session_id",
        "outcome",
    ] {
        match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => return Err(bad_event(key, "must be a non-empty string")),
            None => return Err(bad_event(key, "is required")),
        }
    }
    let et = obj["event_type"].as_str().unwrap_or_default();
    if !is_event_type(et) {
        return Err(bad_event(
            "event_type",
            &format!("`{et}` is not `domain.action[.detail]` in lowercase (e.g. `skill.created`)"),
        ));
    }
    let ts = obj["timestamp"].as_str().unwrap_or_default();
    if crate::time::parse_timestamp(ts).is_err() || !(ts.ends_with('Z') || ts.ends_with("+00:00")) {
        return Err(bad_event(
            "timestamp",
            &format!("`{ts}` is not an RFC 3339 UTC time such as 2026-11-24T08:00:00Z"),
        ));
    }
    if uuid::Uuid::parse_str(obj["event_id"].as_str().unwrap_or_default()).is_err() {
        return Err(bad_event("event_id", "must be a UUID"));
    }
    match obj.get("duration_ms") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|d| d.is_finite() && d >= 0.0) => {}
        Some(_) => {
            return Err(bad_event(
                "duration_ms",
                "must be a finite, non-negative number of milliseconds",
            ));
        }
    }
    match obj.get("skill_name") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Err(bad_event("skill_name", "must be a string or null")),
    }
    match obj.get("context") {
        Some(Value::Object(c)) => {
            for key in ["tool", "version"] {
                if !matches!(c.get(key), Some(Value::String(_))) {
                    return Err(bad_event("context", &format!("needs a string `{key}`")));
                }
            }
        }
        _ => return Err(bad_event("context", "must be an object")),
    }
    Ok(())
}

fn check_event_size(size: u64) -> Result<()> {
    if size > Limits::EVENT.max_bytes {
        return Err(bad_event(
            "event",
            &format!(
                "is {size} bytes, over the limit of {} bytes; keep large data out of `context`",
                Limits::EVENT.max_bytes
            ),
        ));
    }
    Ok(())
}

/// `domain.action[.detail]`: lowercase segments of `a-z 0-9 _`, at least two.
pub fn is_event_type(s: &str) -> bool {
    let segs: Vec<&str> = s.split('.').collect();
    s.len() <= 128
        && segs.len() >= 2
        && segs.iter().all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_lowercase())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn a_completed_line_is_the_completed_event_serialized_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telemetry/events.jsonl");
        let w = EventWriter::new(&path, "policy-enforce");
        let event = |context: Map<String, Value>| NewEvent {
            event_type: "policy.enforced".into(),
            event_id: Some("01890a5d-ac96-774b-bcce-b302099a8057".into()),
            timestamp: Some("2026-11-28T08:00:00.000000Z".into()),
            skill_name: Some("data.transform".into()),
            outcome: "passed".into(),
            context,
            ..NewEvent::default()
        };
        let mut context = Map::new();
        context.insert("password".into(), "hunter2".into());
        let mut batch = EventBatch::new();
        w.complete_line(event(context.clone()), &who(), &mut batch)
            .unwrap();
        let value = w.complete(event(context), &who()).unwrap();
        let mut expected = serde_json::to_vec(&value).unwrap();
        expected.push(b'\n');
        assert_eq!(batch.bytes(), expected);
        assert!(!String::from_utf8_lossy(batch.bytes()).contains("hunter2"));
        // Too large: refused, and nothing half-written is left in the buffer.
        let mut big = Map::new();
        big.insert("blob".into(), "x".repeat(2 << 20).into());
        let before = batch.bytes().len();
        let err = w.complete_line(event(big), &who(), &mut batch).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
        assert_eq!((batch.bytes().len(), batch.len()), (before, 1));
        w.append_lines(&batch).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), batch.bytes());
    }

    #[test]
    fn fills_redacts_and_appends_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("telemetry/events.jsonl");
        let w = EventWriter::new(&path, "policy-enforce");
        let mut context = Map::new();
        context.insert("api_key".into(), "abc".into());
        context.insert("max_tokens".into(), 5.into());
        context.insert(
            "headers".into(),
            json!({"Authorization": "Basic x", "accept": "json"}),
        );
        context.insert("note".into(), "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into());
        let e = w
            .record(
                NewEvent {
                    event_type: "skill.created".into(),
                    skill_name: Some("data.transform".into()),
                    outcome: "success".into(),
                    duration_ms: Some(12.5),
                    context,
                    ..Default::default()
                },
                &who(),
            )
            .unwrap();
        assert_eq!(e["context"]["api_key"], REDACTED);
        assert_eq!(e["context"]["max_tokens"], 5);
        assert_eq!(e["context"]["headers"]["Authorization"], REDACTED);
        assert_eq!(e["context"]["headers"]["accept"], "json");
        assert_eq!(e["context"]["note"], REDACTED);
        assert_eq!(e["context"]["tool"], "policy-enforce");
        assert_eq!(e["user"], "ada@example.com");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        let back: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn bad_events_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let w = EventWriter::new(&path, "t");
        let base = || NewEvent {
            event_type: "skill.created".into(),
            outcome: "success".into(),
            ..Default::default()
        };
        for (event, expect) in [
            (
                NewEvent {
                    event_type: "BadType".into(),
                    ..base()
                },
                "event_type",
            ),
            (
                NewEvent {
                    duration_ms: Some(-1.0),
                    ..base()
                },
                "duration_ms",
            ),
            (
                NewEvent {
                    duration_ms: Some(f64::NAN),
                    ..base()
                },
                "duration_ms",
            ),
            (
                NewEvent {
                    outcome: String::new(),
                    ..base()
                },
                "outcome",
            ),
            (
                NewEvent {
                    timestamp: Some("yesterday".into()),
                    ..base()
                },
                "timestamp",
            ),
        ] {
            let err = w.record(event, &who()).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
        }
        let mut big = Map::new();
        big.insert("blob".into(), "x".repeat(2 * 1024 * 1024).into());
        let err = w
            .record(
                NewEvent {
                    context: big,
                    ..base()
                },
                &who(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn torn_last_line_does_not_swallow_the_next_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"event_type\": \"torn").unwrap();
        let w = EventWriter::new(&path, "t");
        w.record(
            NewEvent {
                event_type: "skill.created".into(),
                outcome: "success".into(),
                ..Default::default()
            },
            &who(),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(serde_json::from_str::<Value>(lines[1]).is_ok());
    }
}
