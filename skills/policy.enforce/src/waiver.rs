//! Waivers: named, owned, reasoned and expiring exceptions to a policy, kept in
//! `registry/policies/waivers.yaml` or next to the policy they waive (`policy.waivers`, where
//! `scope.policy` may be left out: it is the enclosing policy).
//!
//! ```yaml
//! waivers:
//!   - name: legacy-three-segment-names
//!     owner: platform-team@example.com
//!     reason: Renamed in the next release (JIRA-123)
//!     expires: 2027-03-31            # a date (end of that day, UTC) or an RFC 3339 time
//!     scope:
//!       policy: skill-naming-convention   # required
//!       rule: lowercase-dotted-name       # optional: every rule of the policy if absent
//!       skill: threat.model.*             # optional glob over the skill/agent/workflow name
//! ```
//!
//! A waived finding stays in every output (text, JSON, SARIF suppressions, JUnit skipped); it
//! just no longer blocks. An expired waiver stops applying and is reported on every run.

use betty_core::manifest::{scalar_text, type_name};
use betty_core::permission::glob_match;
use betty_core::{Document, Pos, SourceName};
use jiff::Timestamp;
use serde_json::Value;

use crate::policy::{Policy, Problem};

/// One waiver.
#[derive(Clone, Debug)]
pub struct Waiver {
    pub name: String,
    pub owner: String,
    pub reason: String,
    pub expires: Timestamp,
    /// As written, for messages.
    pub expires_text: String,
    pub policy: String,
    pub rule: Option<String>,
    /// Glob over the target's name.
    pub skill: Option<String>,
    pub source: SourceName,
    pub pos: Pos,
}

impl Waiver {
    /// Whether the waiver covers a finding (expiry is checked separately).
    pub fn covers(&self, policy: &str, rule: &str, target: &str) -> bool {
        self.policy == policy
            && self.rule.as_deref().is_none_or(|r| r == rule)
            && self.skill.as_deref().is_none_or(|g| glob_match(g, target))
    }

    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires <= now
    }

    /// The waiver as JSON, for reports.
    pub fn to_json(&self, now: Timestamp) -> Value {
        serde_json::json!({
            "name": self.name,
            "owner": self.owner,
            "reason": self.reason,
            "expires": self.expires_text,
            "expired": self.expired(now),
            "policy": self.policy,
            "rule": self.rule,
            "skill": self.skill,
            "file": self.source.to_string(),
            "line": self.pos.line,
        })
    }
}

/// Reads the waivers of a waivers file, checking that each names a loaded policy and rule and
/// that no name is used twice (`taken` holds the names already read elsewhere).
pub fn parse(
    doc: &Document,
    policies: &[Policy],
    taken: &[Waiver],
) -> Result<Vec<Waiver>, Vec<Problem>> {
    with_problems(doc, |problem| {
        let items = match doc.value.get("waivers") {
            Some(Value::Array(items)) => items.as_slice(),
            Some(Value::Null) => &[],
            Some(other) => {
                problem(
                    "/waivers",
                    format!("`waivers` must be a list, found {}", type_name(other)),
                );
                return Vec::new();
            }
            None => {
                problem("", "a waivers file holds `waivers: [...]`".to_string());
                return Vec::new();
            }
        };
        if let Some(map) = doc.value.as_object() {
            for key in map
                .keys()
                .filter(|k| *k != "waivers" && !k.starts_with("x-"))
            {
                problem(
                    &format!("/{key}"),
                    format!("unknown key `{key}` in the waivers file (only `waivers:`)"),
                );
            }
        }
        parse_list(doc, "/waivers", items, policies, None, taken, problem)
    })
}

/// Reads the waivers a policy file carries under `policy.waivers`: they waive that policy.
pub fn parse_inline(
    doc: &Document,
    policy: &Policy,
    policies: &[Policy],
    taken: &[Waiver],
) -> Result<Vec<Waiver>, Vec<Problem>> {
    with_problems(doc, |problem| match doc.value.pointer("/policy/waivers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => parse_list(
            doc,
            "/policy/waivers",
            items,
            policies,
            Some(&policy.name),
            taken,
            problem,
        ),
        Some(other) => {
            problem(
                "/policy/waivers",
                format!("`waivers` must be a list, found {}", type_name(other)),
            );
            Vec::new()
        }
    })
}

/// Runs `read` with a way to report problems at a pointer of `doc`: its waivers, or every
/// problem it reported.
fn with_problems(
    doc: &Document,
    read: impl FnOnce(&dyn Fn(&str, String)) -> Vec<Waiver>,
) -> Result<Vec<Waiver>, Vec<Problem>> {
    let problems = std::cell::RefCell::new(Vec::new());
    let problem = |ptr: &str, message: String| {
        problems.borrow_mut().push(Problem {
            source: doc.source.clone(),
            pos: doc.pos(ptr),
            message,
        })
    };
    let out = read(&problem);
    let problems = problems.into_inner();
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The waivers of one list; `owner_policy` is the enclosing policy of an inline list (the
/// scope's `policy` then defaults to it and may not name another).
fn parse_list(
    doc: &Document,
    base: &str,
    items: &[Value],
    policies: &[Policy],
    owner_policy: Option<&str>,
    taken: &[Waiver],
    problem: &dyn Fn(&str, String),
) -> Vec<Waiver> {
    let mut out: Vec<Waiver> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ptr = format!("{base}/{i}");
        let Some(map) = item.as_object() else {
            problem(
                &ptr,
                format!("a waiver must be a mapping, found {}", type_name(item)),
            );
            continue;
        };
        for key in map.keys() {
            if !["name", "owner", "reason", "expires", "scope"].contains(&key.as_str())
                && !key.starts_with("x-")
            {
                problem(
                    &format!("{ptr}/{key}"),
                    format!(
                        "unknown key `{key}` in a waiver (known: name, owner, reason, expires, scope)"
                    ),
                );
            }
        }
        let text = |key: &str,
                    map: &serde_json::Map<String, Value>,
                    base: &str,
                    required: bool|
         -> Option<String> {
            match map.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                None if !required => None,
                None => {
                    problem(base, format!("a waiver needs `{key}`"));
                    None
                }
                Some(other) => {
                    problem(
                        &format!("{base}/{key}"),
                        format!(
                            "`{key}` must be non-empty text, found {} `{}`",
                            type_name(other),
                            scalar_text(other)
                        ),
                    );
                    None
                }
            }
        };
        let name = text("name", map, &ptr, true);
        let owner = text("owner", map, &ptr, true);
        let reason = text("reason", map, &ptr, true);
        let expires_text = text("expires", map, &ptr, true);
        let scope_ptr = format!("{ptr}/scope");
        let (policy, rule, skill) = match map.get("scope") {
            Some(Value::Object(scope)) => {
                for key in scope.keys() {
                    if !["policy", "rule", "skill"].contains(&key.as_str()) {
                        problem(
                            &format!("{scope_ptr}/{key}"),
                            format!(
                                "unknown key `{key}` in a waiver's scope (known: policy, rule, skill)"
                            ),
                        );
                    }
                }
                let policy = match (
                    text("policy", scope, &scope_ptr, owner_policy.is_none()),
                    owner_policy,
                ) {
                    (Some(p), Some(owner)) if p != owner => {
                        problem(
                            &format!("{scope_ptr}/policy"),
                            format!(
                                "a waiver inside policy `{owner}` waives that policy, not `{p}`; move it to `waivers.yaml` or next to `{p}`"
                            ),
                        );
                        None
                    }
                    (p, owner) => p.or(owner.map(str::to_string)),
                };
                (
                    policy,
                    text("rule", scope, &scope_ptr, false),
                    text("skill", scope, &scope_ptr, false),
                )
            }
            Some(other) => {
                problem(
                    &scope_ptr,
                    format!(
                        "`scope` must be a mapping `{{policy, rule?, skill?}}`, found {}",
                        type_name(other)
                    ),
                );
                (None, None, None)
            }
            None if owner_policy.is_some() => (owner_policy.map(str::to_string), None, None),
            None => {
                problem(
                    &ptr,
                    "a waiver needs `scope: {policy, rule?, skill?}`".to_string(),
                );
                (None, None, None)
            }
        };
        let expires = expires_text.as_deref().and_then(|t| match parse_expiry(t) {
            Some(ts) => Some(ts),
            None => {
                problem(
                    &format!("{ptr}/expires"),
                    format!("`expires: {t}` is not a date (`2027-03-31`) or an RFC 3339 time"),
                );
                None
            }
        });
        if let Some(p) = &policy {
            match policies.iter().find(|x| &x.name == p) {
                None => problem(
                    &format!("{scope_ptr}/policy"),
                    format!("the waiver names the policy `{p}`, which is not loaded"),
                ),
                Some(pol) => {
                    if let Some(r) = &rule
                        && !pol.rules.iter().any(|x| &x.id == r)
                    {
                        problem(
                            &format!("{scope_ptr}/rule"),
                            format!(
                                "policy `{p}` has no rule `{r}` (its rules: {})",
                                pol.rules
                                    .iter()
                                    .map(|x| x.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
            }
        }
        if let Some(n) = &name
            && let Some(first) = taken.iter().chain(&out).find(|w| &w.name == n)
        {
            problem(
                &format!("{ptr}/name"),
                format!(
                    "waiver name `{n}` is used twice (first at {}:{})",
                    first.source, first.pos
                ),
            );
        }
        if let (
            Some(name),
            Some(owner),
            Some(reason),
            Some(expires_text),
            Some(expires),
            Some(policy),
        ) = (name, owner, reason, expires_text, expires, policy)
        {
            out.push(Waiver {
                name,
                owner,
                reason,
                expires,
                expires_text,
                policy,
                rule,
                skill,
                source: doc.source.clone(),
                pos: doc.pos(&ptr),
            });
        }
    }
    out
}

/// A date means the end of that day (UTC): a waiver "until 2027-03-31" covers that whole day.
fn parse_expiry(text: &str) -> Option<Timestamp> {
    if let Ok(d) = text.trim().parse::<jiff::civil::Date>() {
        let end = d
            .to_datetime(jiff::civil::Time::midnight())
            .checked_add(jiff::Span::new().days(1))
            .ok()?;
        return jiff::tz::TimeZone::UTC.to_timestamp(end).ok();
    }
    betty_core::time::parse_timestamp(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_expires_at_the_end_of_that_day() {
        let ts = parse_expiry("2027-03-31").unwrap();
        assert_eq!(ts.to_string(), "2027-04-01T00:00:00Z");
        assert!(parse_expiry("next week").is_none());
    }
}
