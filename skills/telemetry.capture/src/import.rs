//! Importing upstream Betty's `registry/telemetry.json` into the event stream.
//!
//! Upstream wrote one JSON array (Python's `json.dump`, so `NaN` and `Infinity` may appear) in
//! two shapes: the `telemetry.capture` skill's `{timestamp, skill, status, duration_ms, caller,
//! inputs, error_message, metadata}` and the runners' `{timestamp, execution_id, skill, status,
//! duration_ms, caller, inputs, workflow?, step_number?, total_steps?, agent?, exit_code?, ...}`.
//! Both map to the seed's event: `skill` → `skill_name`, `status` → `outcome`, the rest into
//! `context`; the event type says which runner wrote it (`skill.executed`,
//! `workflow.step.completed`, `workflow.completed`, `agent.executed`). Naive timestamps are
//! UTC. A `NaN` or infinite duration becomes `null` with the original kept in `context`.
//!
//! Each event's id is derived from the entry (a UUID v8 from SHA-256 of its canonical JSON and
//! how many identical entries came before it), and ids already in the stream are skipped, so
//! importing twice adds nothing.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use betty_core::SourceName;
use betty_core::identity::Identity;
use betty_core::limits::Limits;
use betty_core::telemetry::{EventWriter, NewEvent};
use serde_json::{Map, Value};

use crate::capture::CaptureError;
use crate::lines::{ForwardLines, Item};
use crate::scan::{MAX_LINE, parse_row};
use crate::segments::Segment;

/// `context.tool` of imported events.
pub const UPSTREAM_TOOL: &str = "betty-python";

/// Reads upstream's file: a JSON array (or `{"events"|"telemetry"|"entries": [...]}`, or JSON
/// Lines), with Python's `NaN`/`Infinity` read as strings.
pub fn read_upstream(path: &Path) -> Result<Vec<Value>, CaptureError> {
    let name = SourceName::from(path);
    let text = betty_core::source::read_text(&name, &Limits::REGISTRY)?;
    let text = python_constants_to_strings(&text);
    let value = match betty_core::source::parse_json(&name, &text) {
        Ok(v) => v,
        Err(whole_err) => {
            // JSON Lines?
            let mut items = Vec::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match betty_core::source::json_from_str(line) {
                    Ok(v) => items.push(v),
                    Err(_) => return Err(whole_err.into()),
                }
            }
            Value::Array(items)
        }
    };
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut m) => match ["events", "telemetry", "entries"]
            .iter()
            .find_map(|k| m.remove(*k))
        {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(CaptureError::BadEvents {
                    input: path.display().to_string(),
                    count: 1,
                    problems: vec!["  expected a JSON array of telemetry entries (upstream's `registry/telemetry.json`)".into()],
                });
            }
        },
        _ => {
            return Err(CaptureError::BadEvents {
                input: path.display().to_string(),
                count: 1,
                problems: vec!["  expected a JSON array of telemetry entries".into()],
            });
        }
    };
    Ok(items)
}

/// Python's `json.dump` writes `NaN`, `Infinity` and `-Infinity`, which JSON lacks; outside
/// strings they become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub fn python_constants_to_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        } else if let Some(tok) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push('"');
            out.push_str(tok);
            out.push('"');
            rest = &rest[tok.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A UUID (version 8, RFC 9562 custom) from the first 16 bytes of SHA-256 of `seed`.
pub fn derived_id(seed: &[u8]) -> String {
    let hex = betty_core::canonical::sha256_hex(seed);
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The event type an upstream entry stands for.
pub fn event_type_of(entry: &Map<String, Value>) -> &'static str {
    if entry.contains_key("workflow") {
        if entry.contains_key("step_number") {
            "workflow.step.completed"
        } else {
            "workflow.completed"
        }
    } else if entry.contains_key("agent") {
        "agent.executed"
    } else {
        "skill.executed"
    }
}

/// Maps one upstream entry to a complete event (not yet written).
pub fn to_event(
    writer: &EventWriter,
    entry: &Value,
    occurrence: usize,
    source: &str,
    importer: &Identity,
) -> Result<Value, String> {
    let Value::Object(obj) = entry else {
        return Err("not a JSON object".into());
    };
    let mut context = Map::new();
    let mut skill_name = None;
    let mut outcome = None;
    let mut timestamp = None;
    let mut duration_ms = None;
    let mut user = None;
    let mut session = None;
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("timestamp", Value::String(ts)) => {
                let t = betty_core::time::parse_timestamp(ts).map_err(|e| e.to_string())?;
                timestamp = Some(betty_core::time::format(t));
            }
            ("timestamp", _) => return Err("`timestamp` is not a string".into()),
            ("skill", Value::String(s)) => skill_name = Some(s.clone()),
            ("status", Value::String(s)) if !s.trim().is_empty() => {
                outcome = Some(s.trim().to_ascii_lowercase());
            }
            ("duration_ms", Value::Number(n)) => match n.as_f64() {
                Some(d) if d.is_finite() && d >= 0.0 => duration_ms = Some(d),
                _ => {
                    context.insert("duration_ms_upstream".into(), v.clone());
                }
            },
            ("duration_ms", Value::Null) => {}
            ("duration_ms", other) => {
                // `NaN`/`Infinity` (read as strings) or anything else unusable: not timed.
                context.insert("duration_ms_upstream".into(), other.clone());
            }
            ("metadata", Value::Object(m)) => {
                let mut rest = m.clone();
                if let Some(Value::String(u)) = rest.remove("user")
                    && !u.trim().is_empty()
                {
                    user = Some(u);
                }
                if let Some(Value::String(s)) = rest.remove("session_id")
                    && !s.trim().is_empty()
                {
                    session = Some(s);
                }
                if !rest.is_empty() {
                    context.insert("metadata".into(), Value::Object(rest));
                }
            }
            ("tool" | "version", v) => {
                context.insert(format!("upstream_{k}"), v.clone());
            }
            (_, Value::Null) => {}
            (k, v) => {
                context.insert(k.to_string(), v.clone());
            }
        }
    }
    let Some(timestamp) = timestamp else {
        return Err("no `timestamp`".into());
    };
    context.insert("tool".into(), UPSTREAM_TOOL.into());
    context.insert("version".into(), "upstream".into());
    context.insert("imported_from".into(), source.into());
    context.insert("imported_by".into(), importer.user.clone().into());
    let mut seed = b"betty upstream telemetry.json entry\n".to_vec();
    seed.extend_from_slice(&betty_core::canonical::to_vec(entry));
    seed.extend_from_slice(format!("\n{occurrence}").as_bytes());
    let who = Identity {
        sources: Default::default(),
        user: user.unwrap_or_else(|| "unknown".into()),
        session_id: session.unwrap_or_else(|| "upstream-import".into()),
        ip_address: importer.ip_address.clone(),
    };
    writer
        .complete(
            NewEvent {
                event_type: event_type_of(obj).into(),
                skill_name,
                outcome: outcome.unwrap_or_else(|| "unknown".into()),
                duration_ms,
                context,
                timestamp: Some(timestamp),
                event_id: Some(derived_id(&seed)),
            },
            &who,
        )
        .map_err(|e| e.to_string())
}

/// Maps every entry; any bad entry refuses the import (nothing written), naming each.
pub fn to_events(
    writer: &EventWriter,
    entries: &[Value],
    source: &str,
    importer: &Identity,
) -> Result<Vec<Value>, CaptureError> {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut events = Vec::with_capacity(entries.len());
    let mut problems = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = betty_core::canonical::to_vec(entry);
        let n = seen.entry(key).or_insert(0);
        let occurrence = *n;
        *n += 1;
        match to_event(writer, entry, occurrence, source, importer) {
            Ok(e) => events.push(e),
            Err(why) => problems.push(format!("  entry {i}: {why}")),
        }
    }
    if !problems.is_empty() {
        return Err(CaptureError::BadEvents {
            input: source.into(),
            count: problems.len(),
            problems,
        });
    }
    Ok(events)
}

/// The version-8 (derived) event ids already in the stream. Only derived ids are kept, so the
/// set stays as small as what was imported.
pub fn derived_ids_present(segments: &[Segment]) -> Result<HashSet<String>, CaptureError> {
    let mut ids = HashSet::new();
    for seg in segments {
        let mut r = match ForwardLines::open(&seg.path, 0, MAX_LINE) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CaptureError::Io {
                    action: "read",
                    path: seg.path.clone(),
                    source,
                });
            }
        };
        loop {
            let item = r.next().map_err(|source| CaptureError::Io {
                action: "read",
                path: seg.path.clone(),
                source,
            })?;
            let Some(item) = item else { break };
            if let Item::Line { bytes, .. } = item
                && memchr::memmem::find(bytes, b"-8").is_some()
                && let Ok(row) = parse_row(bytes)
                && let Some(id) = row.event_id.as_deref()
                && id.as_bytes().get(14) == Some(&b'8')
            {
                ids.insert(id.to_ascii_lowercase());
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_constants() {
        assert_eq!(
            python_constants_to_strings(
                r#"{"a": NaN, "b": "NaN x", "c": -Infinity, "d": "\"NaN"}"#
            ),
            r#"{"a": "NaN", "b": "NaN x", "c": "-Infinity", "d": "\"NaN"}"#
        );
    }

    #[test]
    fn both_shapes_map() {
        let w = EventWriter::new(Path::new("unused"), "telemetry-capture");
        let who = Identity {
            sources: Default::default(),
            user: "ops@example.com".into(),
            session_id: "s".into(),
            ip_address: "127.0.0.1".into(),
        };
        let a = json!({"timestamp": "2025-10-23T18:08:55.963188", "skill": "test.skill", "status": "success",
            "duration_ms": "NaN", "caller": "test", "inputs": {"password": "p"}, "error_message": null,
            "metadata": {"user": "bob", "env": "ci"}});
        let e = to_event(&w, &a, 0, "telemetry.json", &who).unwrap();
        assert_eq!(e["event_type"], "skill.executed");
        assert_eq!(e["timestamp"], "2025-10-23T18:08:55.963188Z");
        assert_eq!(e["duration_ms"], Value::Null);
        assert_eq!(e["context"]["duration_ms_upstream"], "NaN");
        assert_eq!(e["context"]["inputs"]["password"], "[REDACTED]");
        assert_eq!(e["user"], "bob");
        assert_eq!(e["context"]["metadata"]["env"], "ci");
        let b = json!({"timestamp": "2025-10-25T20:29:42.722157+00:00", "execution_id": "x", "skill": "skill.define",
            "status": "failed", "duration_ms": 382, "workflow": "w.yaml", "caller": "workflow.compose", "step_number": 1, "total_steps": 1});
        let e2 = to_event(&w, &b, 0, "telemetry.json", &who).unwrap();
        assert_eq!(e2["event_type"], "workflow.step.completed");
        assert_eq!(e2["outcome"], "failed");
        assert_eq!(e2["duration_ms"], 382.0);
        let again = to_event(&w, &b, 0, "other.json", &who).unwrap();
        assert_eq!(again["event_id"], e2["event_id"]);
        let twin = to_event(&w, &b, 1, "telemetry.json", &who).unwrap();
        assert_ne!(twin["event_id"], e2["event_id"]);
        assert_eq!(e2["event_id"].as_str().unwrap().as_bytes()[14], b'8');
    }
}
