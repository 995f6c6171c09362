//! Aggregates over events: counts by a field (`--count-by`), and per-group statistics (`stats`):
//! count, success rate, outcomes, and duration percentiles from a [`Sketch`].
//! Memory grows with the number of distinct groups, never with the number of events.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::scan::{Row, is_success};
use crate::sketch::Sketch;

/// What `(none)` stands for in a group key: the event has no such field.
pub const NONE_KEY: &str = "(none)";

/// A field events can be grouped or counted by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    EventType,
    Skill,
    Outcome,
    User,
    Session,
    /// `context.tool`.
    Tool,
    /// `context.<key>` (dotted path inside `context`).
    Context(String),
    /// The UTC day (`2026-11-24`).
    Day,
    /// The UTC hour (`2026-11-24T08`).
    Hour,
}

impl Field {
    pub const NAMES: &'static str = "event_type, skill (skill_name), outcome, user, session (session_id), tool, day, hour, context.KEY";

    pub fn parse(name: &str) -> Result<Field, String> {
        Ok(match name {
            "event_type" | "type" | "event" => Field::EventType,
            "skill" | "skill_name" => Field::Skill,
            "outcome" => Field::Outcome,
            "user" => Field::User,
            "session" | "session_id" => Field::Session,
            "tool" | "context.tool" => Field::Tool,
            "day" | "date" => Field::Day,
            "hour" => Field::Hour,
            other => match other.strip_prefix("context.") {
                Some(key) if !key.is_empty() && key.len() <= 128 => Field::Context(key.into()),
                _ => {
                    return Err(format!(
                        "`{}` is not a field events can be grouped by; use one of: {}",
                        name.chars().take(64).collect::<String>(),
                        Field::NAMES
                    ));
                }
            },
        })
    }

    /// The name used in output.
    pub fn name(&self) -> String {
        match self {
            Field::EventType => "event_type".into(),
            Field::Skill => "skill_name".into(),
            Field::Outcome => "outcome".into(),
            Field::User => "user".into(),
            Field::Session => "session_id".into(),
            Field::Tool => "context.tool".into(),
            Field::Context(k) => format!("context.{k}"),
            Field::Day => "day".into(),
            Field::Hour => "hour".into(),
        }
    }

    /// The group key of one event; `line` is read only for `context` fields.
    pub fn key(&self, row: &Row<'_>, line: &[u8]) -> String {
        let s = |v: Option<&str>| v.unwrap_or(NONE_KEY).to_string();
        match self {
            Field::EventType => s(row.event_type.as_deref()),
            Field::Skill => s(row.skill_name.as_deref()),
            Field::Outcome => s(row.outcome.as_deref()),
            Field::User => s(row.user.as_deref()),
            Field::Session => s(row.session_id.as_deref()),
            Field::Day => row.time().get(..10).unwrap_or(NONE_KEY).to_string(),
            Field::Hour => row.time().get(..13).unwrap_or(NONE_KEY).to_string(),
            Field::Tool => context_value(line, "tool"),
            Field::Context(k) => context_value(line, k),
        }
    }
}

fn context_value(line: &[u8], key: &str) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return NONE_KEY.into();
    };
    let mut cur = &v["context"];
    for part in key.split('.') {
        cur = &cur[part];
    }
    match cur {
        Value::Null => NONE_KEY.into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Counts per value of one field.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub total: u64,
    pub counts: BTreeMap<String, u64>,
}

impl Counts {
    pub fn add(&mut self, key: String) {
        self.total += 1;
        *self.counts.entry(key).or_insert(0) += 1;
    }

    /// Largest first, then by value.
    pub fn sorted(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

/// Statistics of one group of events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub count: u64,
    pub success: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub durations: Sketch,
}

impl Group {
    pub fn add(&mut self, row: &Row<'_>) {
        self.count += 1;
        let outcome = row.outcome();
        if is_success(outcome) {
            self.success += 1;
        }
        *self.outcomes.entry(outcome.to_string()).or_insert(0) += 1;
        if let Some(d) = row.duration_ms {
            self.durations.add(d);
        }
    }

    pub fn success_rate(&self) -> Option<f64> {
        (self.count > 0).then(|| crate::sketch::round3(self.success as f64 / self.count as f64))
    }

    /// `{count, success, success_rate, outcomes, duration_ms: {count, mean, min, max, p50, p95, p99}}`,
    /// plus the sketch itself when `with_sketch` (for incremental updates).
    pub fn to_json(&self, with_sketch: bool) -> Value {
        let d = &self.durations;
        let mut duration = json!({
            "count": d.count,
            "mean": d.mean(),
            "min": d.min,
            "max": d.max,
            "p50": d.quantile(0.50),
            "p95": d.quantile(0.95),
            "p99": d.quantile(0.99),
        });
        if with_sketch && let Value::Object(m) = &mut duration {
            m.insert("sketch".into(), d.to_json());
        }
        let outcomes: Map<String, Value> = self
            .outcomes
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        json!({
            "count": self.count,
            "success": self.success,
            "success_rate": self.success_rate(),
            "outcomes": outcomes,
            "duration_ms": duration,
        })
    }

    /// Reads what [`Group::to_json`] wrote with its sketch.
    pub fn from_json(v: &Value) -> Option<Group> {
        let mut outcomes = BTreeMap::new();
        for (k, n) in v.get("outcomes")?.as_object()? {
            outcomes.insert(k.clone(), n.as_u64()?);
        }
        Some(Group {
            count: v.get("count")?.as_u64()?,
            success: v.get("success")?.as_u64()?,
            outcomes,
            durations: Sketch::from_json(v.get("duration_ms")?.get("sketch")?)?,
        })
    }
}

/// Groups keyed by one field, plus the total over all of them.
#[derive(Clone, Debug)]
pub struct GroupedStats {
    pub by: Field,
    pub groups: BTreeMap<String, Group>,
    pub total: Group,
}

impl GroupedStats {
    pub fn new(by: Field) -> GroupedStats {
        GroupedStats {
            by,
            groups: BTreeMap::new(),
            total: Group::default(),
        }
    }

    pub fn add(&mut self, row: &Row<'_>, line: &[u8]) {
        let key = self.by.key(row, line);
        self.groups.entry(key).or_default().add(row);
        self.total.add(row);
    }
}
