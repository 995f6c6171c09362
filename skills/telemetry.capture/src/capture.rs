//! Turning flags or stdin into events, and appending them to the stream.
//!
//! Every event goes through `betty_core::telemetry::EventWriter::complete` (ids, time, identity,
//! `context.tool`/`version`, redaction, the published schema). A batch is checked whole before
//! anything is written: one bad event refuses the batch, naming every bad line and why.
//!
//! Events are written by `betty_core::record::Recorder` through the one stream appender
//! (`betty_core::stream`: rotation, unordered segments, all-or-nothing batches). A batch from
//! stdin is named by [`batch_id`] (a digest of the input and the user) and its events without
//! an `event_id` get ids derived from it, so a retry after a crash is recognised and adds
//! nothing, and prints the same ids.

use std::path::PathBuf;

use betty_core::identity::Identity;
use betty_core::telemetry::{EventWriter, NewEvent};
use serde_json::{Map, Value};

/// Largest batch read from stdin.
pub const MAX_STDIN_BYTES: u64 = betty_core::limits::Limits::REGISTRY.max_bytes;

/// Longest line read by `--stream` (a little over the limit of one event, so the event check
/// gives the clearer message).
pub const MAX_STREAM_LINE: u64 = 2 * betty_core::limits::Limits::EVENT.max_bytes;

/// Keys an event on stdin may carry.
pub const EVENT_KEYS: &[&str] = &[
    "event_id",
    "event_type",
    "timestamp",
    "user",
    "session_id",
    "skill_name",
    "context",
    "outcome",
    "duration_ms",
    "schema_version",
];

/// Why events could not be captured. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Core(#[from] betty_core::Error),
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{input}: {count} bad event(s), nothing was written:\n{}", problems.join("\n"))]
    BadEvents {
        input: String,
        count: usize,
        problems: Vec<String>,
    },
    #[error("invalid `--context {0}`: {1}")]
    BadContext(String, String),
}

/// `key=value` (a string) and `key:=JSON` (any JSON value), as HTTPie writes them.
pub fn parse_context(pairs: &[String]) -> Result<Map<String, Value>, CaptureError> {
    let mut map = Map::new();
    for pair in pairs {
        let shown: String = pair.chars().take(80).collect();
        let (key, value) = if let Some((k, json)) = pair.split_once(":=")
            && !k.contains('=')
        {
            let v: Value = betty_core::source::json_from_str(json).map_err(|e| {
                CaptureError::BadContext(
                    shown.clone(),
                    format!("the value after `:=` is not JSON ({e})"),
                )
            })?;
            (k, v)
        } else if let Some((k, v)) = pair.split_once('=') {
            (k, Value::String(v.to_string()))
        } else {
            return Err(CaptureError::BadContext(
                shown,
                "expected `key=value` (a string) or `key:=JSON`".into(),
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.len() > 128 || key.chars().any(char::is_control) {
            return Err(CaptureError::BadContext(
                shown,
                "the key must be 1 to 128 printable characters".into(),
            ));
        }
        map.insert(key.to_string(), value);
    }
    Ok(map)
}

/// Reads one event given as JSON (on stdin, or one line of a batch) and completes it.
pub fn complete_json(writer: &EventWriter, v: Value, who: &Identity) -> Result<Value, String> {
    let Value::Object(mut obj) = v else {
        return Err("an event must be a JSON object".into());
    };
    if let Some(unknown) = obj.keys().find(|k| !EVENT_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{unknown}`; an event has {}; put anything else in `context`",
            EVENT_KEYS.join(", ")
        ));
    }
    let mut text = |key: &str, required: bool| -> Result<Option<String>, String> {
        match obj.remove(key) {
            None | Some(Value::Null) if required => Err(format!("`{key}` is required")),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(format!("`{key}` must be a non-empty string"))
            }
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!(
                "`{key}` must be a string, not {}",
                betty_core::manifest::type_name(&other)
            )),
        }
    };
    let event_type = text("event_type", true)?.unwrap_or_default();
    let outcome = text("outcome", true)?.unwrap_or_default();
    let skill_name = text("skill_name", false)?;
    let user = text("user", false)?;
    let session_id = text("session_id", false)?;
    let event_id = text("event_id", false)?;
    let timestamp = match text("timestamp", false)? {
        Some(ts) => Some(betty_core::time::format(
            betty_core::time::parse_timestamp(&ts).map_err(|e| format!("`timestamp`: {e}"))?,
        )),
        None => None,
    };
    let duration_ms = match obj.remove("duration_ms") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(d) if d.is_finite() && d >= 0.0 => Some(d),
            _ => {
                return Err(format!(
                    "`duration_ms` is {n}: it must be a finite, non-negative number of milliseconds"
                ));
            }
        },
        Some(Value::String(s)) => {
            return Err(format!(
                "`duration_ms` is the string `{}`: it must be a finite, non-negative number of milliseconds",
                s.chars().take(32).collect::<String>()
            ));
        }
        Some(other) => {
            return Err(format!(
                "`duration_ms` must be a number, not {}",
                betty_core::manifest::type_name(&other)
            ));
        }
    };
    let context = match obj.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(format!(
                "`context` must be an object, not {}",
                betty_core::manifest::type_name(&other)
            ));
        }
    };
    let who = Identity {
        // Events do not record where the identity came from; the audit entry does.
        sources: who.sources,
        user: user.unwrap_or_else(|| who.user.clone()),
        session_id: session_id.unwrap_or_else(|| who.session_id.clone()),
        ip_address: who.ip_address.clone(),
    };
    writer
        .complete(
            NewEvent {
                event_type,
                skill_name,
                outcome,
                duration_ms,
                context,
                timestamp,
                event_id,
            },
            &who,
        )
        .map_err(|e| e.to_string())
}

/// Reads events from text: one JSON object, a JSON array of objects, or JSON Lines.
/// Every bad event is listed (with its line); any bad event refuses the whole batch.
pub fn complete_batch(
    writer: &EventWriter,
    input: &str,
    text: &str,
    who: &Identity,
) -> Result<Vec<Value>, CaptureError> {
    complete_batch_as(writer, input, text, who, None)
}

/// The id of a batch read from stdin: SHA-256 of the user and the exact input. The same bytes
/// sent again by the same user are a retry.
pub fn batch_id(text: &str, who: &Identity) -> String {
    let mut seed = Vec::with_capacity(text.len() + who.user.len() + 1);
    seed.extend_from_slice(who.user.as_bytes());
    seed.push(0);
    seed.extend_from_slice(text.as_bytes());
    format!("sha256:{}", betty_core::canonical::sha256_hex(&seed))
}

/// As [`complete_batch`]; with `batch`, an event without `event_id` gets one derived from the
/// batch id and its position (a UUID v8), so a retried batch has the same ids.
pub fn complete_batch_as(
    writer: &EventWriter,
    input: &str,
    text: &str,
    who: &Identity,
    batch: Option<&str>,
) -> Result<Vec<Value>, CaptureError> {
    let mut index = 0usize;
    let mut complete = |mut v: Value| {
        if let (Some(b), Value::Object(obj)) = (batch, &mut v)
            && !obj.contains_key("event_id")
        {
            obj.insert(
                "event_id".into(),
                crate::import::derived_id(format!("{b}:{index}").as_bytes()).into(),
            );
        }
        index += 1;
        complete_json(writer, v, who)
    };
    let mut problems = Vec::new();
    let mut events = Vec::new();
    let whole = text.trim();
    if whole.is_empty() {
        return Err(CaptureError::BadEvents {
            input: input.into(),
            count: 1,
            problems: vec![
                "no event: the input is empty; give one JSON event or JSON Lines".into(),
            ],
        });
    }
    // A single (possibly pretty-printed) object, or an array of objects.
    let whole_json = betty_core::source::json_from_str(whole);
    if let Err(e) = &whole_json
        && e.is_data()
    {
        // Valid JSON that repeats a key: refused whole, never read as lines.
        problems.push(format!("  {e}"));
    } else if let Ok(v) = whole_json {
        let items = match v {
            Value::Array(items) => items,
            other => vec![other],
        };
        for (i, item) in items.into_iter().enumerate() {
            match complete(item) {
                Ok(e) => events.push(e),
                Err(why) => problems.push(format!("  event {}: {why}", i + 1)),
            }
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match betty_core::source::json_from_str(line) {
                Ok(v) => match complete(v) {
                    Ok(e) => events.push(e),
                    Err(why) => problems.push(format!("  line {}: {why}", i + 1)),
                },
                Err(e) => problems.push(format!(
                    "  line {}: not JSON: {}{}",
                    i + 1,
                    e.to_string()
                        .split(" at line ")
                        .next()
                        .unwrap_or("invalid JSON"),
                    nan_hint(line)
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(CaptureError::BadEvents {
            input: input.into(),
            count: problems.len(),
            problems,
        });
    }
    Ok(events)
}

fn nan_hint(line: &str) -> &'static str {
    if line.contains("NaN") || line.contains("Infinity") {
        " (JSON has no NaN or Infinity: `duration_ms` must be a finite, non-negative number)"
    } else {
        ""
    }
}

/// Reads stdin whole, under [`MAX_STDIN_BYTES`].
pub fn read_stdin() -> Result<String, CaptureError> {
    let name = betty_core::SourceName::Stdin;
    let limits = betty_core::limits::Limits {
        max_bytes: MAX_STDIN_BYTES,
        ..betty_core::limits::Limits::REGISTRY
    };
    Ok(betty_core::source::read_text(&name, &limits)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Identity {
        Identity {
            sources: Default::default(),
            user: "ada@example.com".into(),
            session_id: "s-1".into(),
            ip_address: "127.0.0.1".into(),
        }
    }

    #[test]
    fn context_pairs() {
        let m = parse_context(&[
            "a=1".into(),
            "b:=2".into(),
            "c=x=y".into(),
            "d:={\"k\":true}".into(),
        ])
        .unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], 2);
        assert_eq!(m["c"], "x=y");
        assert_eq!(m["d"]["k"], true);
        assert!(parse_context(&["nokey".into()]).is_err());
        assert!(parse_context(&["=v".into()]).is_err());
        assert!(parse_context(&["a:=nope".into()]).is_err());
    }

    #[test]
    fn batches_are_all_or_nothing() {
        let w = EventWriter::new(std::path::Path::new("unused"), "telemetry-capture");
        let good = r#"{"event_type":"skill.created","outcome":"success"}"#;
        let ok = complete_batch(&w, "stdin", &format!("{good}\n{good}\n"), &who()).unwrap();
        assert_eq!(ok.len(), 2);
        let text = format!(
            "{good}\n{{\"event_type\":\"skill.created\"}}\n{{\"event_type\":\"skill.created\",\"outcome\":\"x\",\"duration_ms\":-1}}\nnope\n{{\"event_type\":\"skill.created\",\"outcome\":\"x\",\"colour\":1}}\n"
        );
        let err = complete_batch(&w, "stdin", &text, &who())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: `outcome` is required"), "{err}");
        assert!(err.contains("line 3: `duration_ms` is -1"), "{err}");
        assert!(err.contains("line 4: not JSON"), "{err}");
        assert!(err.contains("line 5: unknown key `colour`"), "{err}");
        let pretty = "{\n  \"event_type\": \"skill.created\",\n  \"outcome\": \"success\",\n  \"timestamp\": \"2025-10-23T18:08:55.963188\"\n}\n";
        let one = complete_batch(&w, "stdin", pretty, &who()).unwrap();
        assert_eq!(one[0]["timestamp"], "2025-10-23T18:08:55.963188Z");
    }
}
