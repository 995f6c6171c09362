//! The compliance view: SOC 2 and ISO 27001 control ids on policies and rules, and the
//! per-control report (`policy-enforce report --framework soc2|iso27001`): each control with
//! pass, fail, waived or not evaluated (no rule of the control checked any target) and the evidence behind it (the rules, the targets they checked, every
//! finding with its `file:line:col`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::engine::{Finding, Level};
use crate::report::Report;

/// A compliance framework.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// SOC 2 Trust Services Criteria (`CC6.1`, `A1.2`).
    Soc2,
    /// ISO/IEC 27001:2022 Annex A (`A.8.2`).
    Iso27001,
}

const TITLES: &[(&str, &str)] = &[
    ("CC2.1", "Information quality for internal control"),
    ("CC6.1", "Logical access security"),
    ("CC6.2", "Access provisioning"),
    ("CC6.3", "Least privilege and role-based access"),
    ("CC6.6", "Access from outside system boundaries"),
    ("CC6.8", "Prevention of unauthorised software"),
    ("CC7.1", "Detection of configuration changes"),
    ("CC7.2", "Monitoring of system components"),
    ("CC8.1", "Change management"),
    ("A.5.3", "Segregation of duties"),
    ("A.5.15", "Access control"),
    (
        "A.5.21",
        "Managing information security in the ICT supply chain",
    ),
    ("A.5.37", "Documented operating procedures"),
    ("A.8.2", "Privileged access rights"),
    ("A.8.3", "Information access restriction"),
    ("A.8.9", "Configuration management"),
    ("A.8.15", "Logging"),
    ("A.8.20", "Networks security"),
    ("A.8.28", "Secure coding"),
    ("A.8.32", "Change management"),
];

impl Framework {
    /// The framework a control id belongs to (`CC6.1`, `SOC2:CC6.1`, `A.8.2`, `ISO27001:A.8.2`).
    pub fn of(control: &str) -> Option<Framework> {
        let (id, hint) = match control.split_once(':') {
            Some(("SOC2", id)) => (id, Some(Framework::Soc2)),
            Some(("ISO27001", id)) => (id, Some(Framework::Iso27001)),
            Some(_) => return None,
            None => (control, None),
        };
        let found = if is_iso(id) {
            Framework::Iso27001
        } else if is_soc2(id) {
            Framework::Soc2
        } else {
            return None;
        };
        match hint {
            Some(h) if h != found => None,
            _ => Some(found),
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Framework::Soc2 => "SOC 2 (Trust Services Criteria)",
            Framework::Iso27001 => "ISO/IEC 27001:2022 Annex A",
        }
    }
}

fn is_iso(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("A.") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_soc2(id: &str) -> bool {
    let letters: String = id.chars().take_while(|c| c.is_ascii_uppercase()).collect();
    if !["CC", "A", "C", "PI", "P"].contains(&letters.as_str()) {
        return false;
    }
    let rest = &id[letters.len()..];
    match rest.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|x| x.is_ascii_digit())
                && b.bytes().all(|x| x.is_ascii_digit())
        }
        None => false,
    }
}

/// A control id without its framework prefix.
pub fn bare(control: &str) -> &str {
    control.split_once(':').map(|(_, id)| id).unwrap_or(control)
}

fn title_of(id: &str) -> &'static str {
    TITLES
        .iter()
        .find(|(c, _)| *c == id)
        .map(|(_, t)| *t)
        .unwrap_or("")
}

/// What a finding says about a control: counted against it unless only recorded or approved.
fn counts_against(f: &Finding) -> bool {
    matches!(f.level, Level::Blocking | Level::Warning | Level::Pending)
}

/// The per-control report of one run, as JSON.
pub fn control_report(framework: Framework, report: &Report, audit_head: Option<String>) -> Value {
    let mut controls: Vec<String> = Vec::new();
    for p in &report.policies.policies {
        for r in &p.rules {
            for c in &r.controls {
                let id = bare(c).to_string();
                if Framework::of(c) == Some(framework) && !controls.contains(&id) {
                    controls.push(id);
                }
            }
        }
    }
    controls.sort_by_key(|c| natural_key(c));
    // How many targets each rule applied to, counted once for the whole report.
    let mut checked_by: Vec<Vec<usize>> = report
        .policies
        .policies
        .iter()
        .map(|p| vec![0; p.rules.len()])
        .collect();
    for t in &report.results {
        for u in &t.rules {
            if let Some(n) = checked_by
                .get_mut(u.policy as usize)
                .and_then(|p| p.get_mut(u.rule as usize))
            {
                *n += 1;
            }
        }
    }
    let mut out = Vec::new();
    let (mut pass, mut fail, mut waived, mut not_evaluated) = (0, 0, 0, 0);
    for control in &controls {
        let mut rules = Vec::new();
        let mut evaluated = false;
        for (pi, p) in report.policies.policies.iter().enumerate() {
            for (ri, r) in p.rules.iter().enumerate() {
                if r.controls.iter().any(|c| bare(c) == control) {
                    let checked = checked_by[pi][ri];
                    evaluated |= checked > 0;
                    rules.push(json!({
                        "rule": format!("{}/{}", p.name, r.id),
                        "policy_type": p.kind,
                        "enforcement": p.enforcement,
                        "targets_checked": checked,
                    }));
                }
            }
        }
        let findings: Vec<&Finding> = report
            .findings()
            .filter(|f| f.controls.iter().any(|c| bare(c) == control))
            .collect();
        let against: Vec<&&Finding> = findings.iter().filter(|f| counts_against(f)).collect();
        let status = if against.iter().any(|f| !f.waived()) {
            fail += 1;
            "fail"
        } else if !against.is_empty() {
            waived += 1;
            "waived"
        } else if !evaluated && findings.is_empty() {
            // Nothing was checked: no evidence either way, never a pass.
            not_evaluated += 1;
            "not evaluated"
        } else {
            pass += 1;
            "pass"
        };
        let evidence: Vec<Value> = findings
            .iter()
            .map(|f| {
                json!({
                    "location": format!("{}:{}:{}", f.file, f.line, f.column),
                    "target": f.target,
                    "rule": f.rule_id(),
                    "level": f.level,
                    "waived": f.waiver.as_ref().map(|w| &w.name),
                    "detail": f.detail,
                })
            })
            .collect();
        out.push(json!({
            "control": control,
            "title": title_of(control),
            "status": status,
            "rules": rules,
            "findings": evidence,
        }));
    }
    let mut report = json!({
        "schema_version": crate::report::REPORT_SCHEMA_VERSION,
        "tool": crate::report::TOOL,
        "framework": framework,
        "title": framework.title(),
        "generated_at": betty_core::time::format(report.now),
        "targets": report.results.len(),
        "policies": report.policies.policies.len(),
        "audit_trail_head": audit_head,
        "summary": { "controls": controls.len(), "pass": pass, "fail": fail, "waived": waived, "not_evaluated": not_evaluated },
        "controls": out,
    });
    // Evidence quotes targets: shown redacted in JSON and text alike.
    betty_core::redact::redact_value(&mut report);
    report
}

/// The per-control report as text.
pub fn control_text(v: &Value) -> String {
    let mut out = String::new();
    // Text from policies and targets: redacted and escaped for the terminal.
    let s = |v: &Value, k: &str| {
        let text = v.get(k).and_then(Value::as_str).unwrap_or_default();
        betty_core::escape::escape(&betty_core::redact::redact_text(text)).into_owned()
    };
    let _ = writeln!(
        out,
        "{}: {} controls over {} targets and {} policies",
        s(v, "title"),
        v["summary"]["controls"],
        v["targets"],
        v["policies"]
    );
    if let Some(head) = v.get("audit_trail_head").and_then(Value::as_str) {
        let _ = writeln!(out, "audit trail head: {head}");
    }
    for c in v["controls"].as_array().into_iter().flatten() {
        let status = s(c, "status");
        let mark = match status.as_str() {
            "pass" => "✅",
            "fail" => "❌",
            "not evaluated" => "⬜",
            _ => "⚪",
        };
        let _ = writeln!(
            out,
            "\n{mark} {:<8} {:<6} {}",
            s(c, "control"),
            status,
            s(c, "title")
        );
        for r in c["rules"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "   rule {} ({}, {}): {} target(s) checked",
                s(r, "rule"),
                s(r, "policy_type"),
                s(r, "enforcement"),
                r["targets_checked"]
            );
        }
        for f in c["findings"].as_array().into_iter().flatten() {
            let waived = f
                .get("waived")
                .and_then(Value::as_str)
                .map(|w| format!(" [waived by {}]", betty_core::escape::Escaped(w)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "   {} {} {} [{}]{waived}: {}",
                s(f, "location"),
                s(f, "target"),
                s(f, "rule"),
                s(f, "level"),
                s(f, "detail")
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} pass, {} fail, {} waived, {} not evaluated (no rule of theirs checked a target)",
        v["summary"]["pass"],
        v["summary"]["fail"],
        v["summary"]["waived"],
        v["summary"]["not_evaluated"]
    );
    out
}

fn natural_key(id: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut letters = String::new();
    let mut digits = String::new();
    for c in id.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((std::mem::take(&mut letters), digits.parse().unwrap_or(0)));
                digits.clear();
            }
            letters.push(c);
        }
    }
    key.push((letters, digits.parse().unwrap_or(0)));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_ids_are_sorted_into_frameworks() {
        assert_eq!(Framework::of("CC6.1"), Some(Framework::Soc2));
        assert_eq!(Framework::of("A1.2"), Some(Framework::Soc2));
        assert_eq!(Framework::of("SOC2:CC8.1"), Some(Framework::Soc2));
        assert_eq!(Framework::of("A.8.2"), Some(Framework::Iso27001));
        assert_eq!(Framework::of("ISO27001:A.5.15"), Some(Framework::Iso27001));
        assert_eq!(Framework::of("SOC2:A.8.2"), None);
        assert_eq!(Framework::of("X9"), None);
        assert!(natural_key("CC6.10") > natural_key("CC6.2"));
    }
}
