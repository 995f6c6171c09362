//! `telemetry-capture audit append`: what upstream's `audit.log` skill records (skill, status,
//! duration in ms, errors JSON, metadata JSON), checked and turned into one entry of the hash
//! chain, appended by `betty_core::record::Recorder` like every other audit entry.
//!
//! Every argument is untrusted: each is at most [`MAX_ARG_BYTES`], names carry no control
//! characters, JSON must parse (errors an array, metadata an object) and its strings carry no
//! control characters but tab and newline (a traceback keeps its lines; a terminal escape does
//! not get into the trail). A bad argument is refused before anything is written.

use betty_core::audit::AuditRecord;
use serde_json::{Map, Value, json};

/// Largest value of any one argument.
pub const MAX_ARG_BYTES: usize = 64 * 1024;
/// Longest skill name or status.
const MAX_NAME_CHARS: usize = 256;

/// What upstream's `audit_log.py SKILL STATUS [MS] [ERRORS_JSON] [METADATA_JSON]` passes.
#[derive(Debug, Clone, Default)]
pub struct UpstreamAudit<'a> {
    pub skill: &'a str,
    pub status: &'a str,
    pub duration_ms: Option<&'a str>,
    pub errors: Option<&'a str>,
    pub metadata: Option<&'a str>,
}

/// An argument of `audit append` was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("invalid `{input}`: {problem}; nothing was written")]
pub struct BadAuditInput {
    pub input: &'static str,
    pub problem: String,
}

fn bad(input: &'static str, problem: impl Into<String>) -> BadAuditInput {
    BadAuditInput {
        input,
        problem: problem.into(),
    }
}

fn check_size(input: &'static str, text: &str) -> Result<(), BadAuditInput> {
    if text.len() > MAX_ARG_BYTES {
        return Err(bad(
            input,
            format!(
                "{} bytes, more than the {MAX_ARG_BYTES} allowed",
                text.len()
            ),
        ));
    }
    Ok(())
}

fn check_name(input: &'static str, text: &str) -> Result<(), BadAuditInput> {
    check_size(input, text)?;
    if text.trim().is_empty() {
        return Err(bad(input, "it is empty"));
    }
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(bad(
            input,
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(bad(
            input,
            format!("it contains the control character {c:?}"),
        ));
    }
    Ok(())
}

/// Strings inside JSON may hold tab and newline, no other control character.
fn check_strings(input: &'static str, v: &Value) -> Result<(), BadAuditInput> {
    let check = |s: &str| match s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(bad(
            input,
            format!("a string contains the control character {c:?}"),
        )),
        None => Ok(()),
    };
    match v {
        Value::String(s) => check(s),
        Value::Array(a) => a.iter().try_for_each(|x| check_strings(input, x)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            check(k)?;
            check_strings(input, x)
        }),
        _ => Ok(()),
    }
}

fn parse_json(input: &'static str, text: &str) -> Result<Value, BadAuditInput> {
    check_size(input, text)?;
    let v: Value = betty_core::source::json_from_slice(text.as_bytes())
        .map_err(|e| bad(input, format!("not JSON ({e})")))?;
    check_strings(input, &v)?;
    Ok(v)
}

/// Checks upstream's arguments and makes the audit record (operation `skill.executed`, the
/// status as outcome, the rest in `details`).
pub fn record_of(args: &UpstreamAudit<'_>) -> Result<AuditRecord, BadAuditInput> {
    check_name("SKILL", args.skill)?;
    check_name("STATUS", args.status)?;
    let mut details = Map::new();
    details.insert("status".into(), args.status.into());
    details.insert("source".into(), "audit.log".into());
    if let Some(ms) = args.duration_ms.filter(|s| !s.is_empty()) {
        check_name("MS", ms)?;
        let n: f64 = ms
            .trim()
            .parse()
            .map_err(|_| bad("MS", format!("`{ms}` is not a number of milliseconds")))?;
        if !n.is_finite() || n < 0.0 {
            return Err(bad(
                "MS",
                format!("`{ms}` is not a finite, non-negative duration"),
            ));
        }
        details.insert("duration_ms".into(), json!(n));
    }
    if let Some(text) = args.errors.filter(|s| !s.is_empty()) {
        match parse_json("ERRORS_JSON", text)? {
            v @ Value::Array(_) => details.insert("errors".into(), v),
            _ => return Err(bad("ERRORS_JSON", "expected a JSON array of errors")),
        };
    }
    if let Some(text) = args.metadata.filter(|s| !s.is_empty()) {
        match parse_json("METADATA_JSON", text)? {
            v @ Value::Object(_) => details.insert("metadata".into(), v),
            _ => return Err(bad("METADATA_JSON", "expected a JSON object")),
        };
    }
    Ok(AuditRecord {
        operation: "skill.executed".into(),
        skill: Some(args.skill.to_string()),
        outcome: args.status.to_string(),
        policy_checks: vec![],
        details: Some(Value::Object(details)),
        step: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: UpstreamAudit<'_>, expect: Result<(), &str>) {
        match (record_of(&args), expect) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(want)) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{msg} lacks {want}")
            }
            (got, want) => panic!("{got:?} but expected {want:?}"),
        }
    }

    fn base() -> UpstreamAudit<'static> {
        UpstreamAudit {
            skill: "registry.update",
            status: "success",
            ..Default::default()
        }
    }

    #[test]
    fn upstream_arguments_are_checked_and_kept() {
        let r = record_of(&UpstreamAudit {
            duration_ms: Some("412"),
            errors: Some(r#"["boom\nline 2"]"#),
            metadata: Some(r#"{"step": 2}"#),
            ..base()
        })
        .unwrap();
        let d = r.details.unwrap();
        assert_eq!(
            (r.operation.as_str(), r.outcome.as_str()),
            ("skill.executed", "success")
        );
        assert_eq!(d["duration_ms"], 412.0);
        assert_eq!(d["errors"][0], "boom\nline 2");
        assert_eq!(d["metadata"]["step"], 2);
        check(base(), Ok(()));
        check(
            UpstreamAudit {
                skill: "",
                ..base()
            },
            Err("`SKILL`: it is empty"),
        );
        check(
            UpstreamAudit {
                status: "ok\u{1b}[2J",
                ..base()
            },
            Err("`STATUS`"),
        );
        check(
            UpstreamAudit {
                duration_ms: Some("-1"),
                ..base()
            },
            Err("`MS`"),
        );
        check(
            UpstreamAudit {
                duration_ms: Some("NaN"),
                ..base()
            },
            Err("`MS`"),
        );
        check(
            UpstreamAudit {
                errors: Some("[oops"),
                ..base()
            },
            Err("`ERRORS_JSON`: not JSON"),
        );
        check(
            UpstreamAudit {
                errors: Some("{}"),
                ..base()
            },
            Err("`ERRORS_JSON`: expected"),
        );
        check(
            UpstreamAudit {
                metadata: Some("[]"),
                ..base()
            },
            Err("`METADATA_JSON`"),
        );
        check(
            UpstreamAudit {
                metadata: Some(r#"{"a": "\u001b[31m"}"#),
                ..base()
            },
            Err("control character"),
        );
        let huge = format!("[\"{}\"]", "x".repeat(MAX_ARG_BYTES));
        check(
            UpstreamAudit {
                errors: Some(&huge),
                ..base()
            },
            Err("bytes, more than"),
        );
    }
}
