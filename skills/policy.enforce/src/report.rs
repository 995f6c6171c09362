//! A whole run's results and their four presentations: `text` in the seed's style, `json`
//! (`schemas/policy-report.schema.json`), SARIF 2.1.0 (waived findings as suppressions) and
//! JUnit XML. Renderers return strings; the binary prints them.

use std::fmt::Write as _;

use betty_core::escape::Escaped;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::engine::{Finding, Level, Outcome, TargetResult};
use crate::policy::{Action, PolicySet};
use crate::target::Origin;

/// Version of the JSON report format.
pub const REPORT_SCHEMA_VERSION: u32 = 1;
pub const TOOL: &str = "policy-enforce";
const INFORMATION_URI: &str = "https://github.com/betty-governance/betty-rs";

/// The `json` output's shape (`schemas/policy-report.schema.json`), borrowing the results.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    tool: &'static str,
    version: &'static str,
    action: Option<Action>,
    environment: Option<&'a str>,
    strict: bool,
    outcome: Outcome,
    exit_code: u8,
    summary: Value,
    targets: Vec<JsonTarget<'a>>,
    findings: Vec<&'a Finding>,
    waivers: Vec<Value>,
    policies: Vec<Value>,
}

#[derive(serde::Serialize)]
struct JsonTarget<'a> {
    kind: crate::policy::TargetKind,
    name: &'a str,
    source: &'a str,
    origin: Origin,
    digest: &'a str,
    outcome: Outcome,
    findings: usize,
    checks: &'a [crate::engine::PolicyResult],
}

/// Everything one run found.
#[derive(Clone, Debug)]
pub struct Report {
    pub action: Option<Action>,
    pub strict: bool,
    pub environment: Option<String>,
    pub results: Vec<TargetResult>,
    pub policies: PolicySet,
    pub now: Timestamp,
    pub outcome: Outcome,
}

impl Report {
    pub fn new(
        policies: &PolicySet,
        results: Vec<TargetResult>,
        action: Option<Action>,
        strict: bool,
        environment: Option<String>,
        now: Timestamp,
    ) -> Report {
        let outcome = results
            .iter()
            .map(|r| r.outcome)
            .max()
            .unwrap_or(Outcome::Passed);
        Report {
            action,
            strict,
            environment,
            results,
            policies: policies.clone(),
            now,
            outcome,
        }
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.results.iter().flat_map(|r| r.findings.iter())
    }

    fn count(&self, f: impl Fn(&Finding) -> bool) -> usize {
        self.findings().filter(|x| f(x)).count()
    }

    pub fn summary(&self) -> Value {
        json!({
            "targets": self.results.len(),
            "policies": self.policies.policies.len(),
            "findings": self.findings().count(),
            "blocking": self.count(Finding::blocks),
            "pending": self.count(Finding::pends),
            "warnings": self.count(|f| f.level == Level::Warning && !f.waived()),
            "waived": self.count(Finding::waived),
            "recorded": self.count(|f| f.level == Level::Audit),
            "approved": self.count(|f| f.level == Level::Approved),
        })
    }

    /// The result of each policy over all targets (worst first), for the audit entry.
    pub fn policy_checks(&self) -> Vec<(String, &'static str)> {
        const ORDER: [&str; 7] = [
            "failed", "pending", "warning", "waived", "recorded", "approved", "passed",
        ];
        let mut out: Vec<(String, &'static str)> = Vec::new();
        for r in &self.results {
            for c in &r.checks {
                match out.iter_mut().find(|(p, _)| *p == c.policy) {
                    Some(existing) => {
                        let rank =
                            |s: &str| ORDER.iter().position(|o| *o == s).unwrap_or(ORDER.len());
                        if rank(c.result) < rank(existing.1) {
                            existing.1 = c.result;
                        }
                    }
                    None => out.push((c.policy.clone(), c.result)),
                }
            }
        }
        out
    }

    pub fn expired_waivers(&self) -> impl Iterator<Item = &crate::waiver::Waiver> {
        self.policies.waivers.iter().filter(|w| w.expired(self.now))
    }

    /// `json` output.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.json_view()).unwrap_or(Value::Null)
    }

    /// `json` output as text, serialized straight from the results (a large batch never
    /// builds an intermediate JSON tree).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.json_view()).unwrap_or_default()
    }

    fn json_view(&self) -> JsonReport<'_> {
        let targets = self
            .results
            .iter()
            .map(|r| JsonTarget {
                kind: r.target.kind,
                name: &r.target.name,
                source: &r.target.label,
                origin: r.target.origin,
                digest: &r.digest,
                outcome: r.outcome,
                findings: r.findings.len(),
                checks: &r.checks,
            })
            .collect();
        let policies: Vec<Value> = self
            .policies
            .policies
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "version": p.version,
                    "type": p.kind,
                    "enforcement": p.enforcement,
                    "scope": p.scope.names(),
                    "file": crate::target::display_path(&p.file),
                    "controls": p.controls,
                    "rules": p.rules.iter().map(|r| json!({
                        "id": r.id, "kind": r.kind(), "field": r.field, "severity": r.severity, "controls": r.controls,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        JsonReport {
            schema_version: REPORT_SCHEMA_VERSION,
            tool: TOOL,
            version: betty_core::VERSION,
            action: self.action,
            environment: self.environment.as_deref(),
            strict: self.strict,
            outcome: self.outcome,
            exit_code: self.outcome.exit_status().code(),
            summary: self.summary(),
            targets,
            findings: self.findings().collect(),
            waivers: self
                .policies
                .waivers
                .iter()
                .map(|w| w.to_json(self.now))
                .collect(),
            policies,
        }
    }

    /// `text` output, in the seed's style.
    pub fn to_text(&self, colour: bool) -> String {
        let paint = |code: &str, s: &str| {
            if colour {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        // User text (names, messages, file names, lines of files) cannot drive the terminal
        // (escaped) nor show a secret (redacted).
        let e = |s: &str| Escaped(s).to_string();
        let shown = |s: &str| Escaped(&betty_core::redact::redact_text(s)).to_string();
        let mut out = String::new();
        for r in &self.results {
            for f in &r.findings {
                let head = if f.waived() {
                    paint("2", &format!("⚪ Waived: {}", e(&f.policy)))
                } else {
                    match f.level {
                        Level::Blocking => {
                            paint("1;31", &format!("❌ Policy violation: {}", e(&f.policy)))
                        }
                        Level::Pending => {
                            paint("1;33", &format!("⏳ Approval required: {}", e(&f.policy)))
                        }
                        Level::Warning => {
                            paint("1;33", &format!("⚠️  Policy warning: {}", e(&f.policy)))
                        }
                        Level::Info => format!("ℹ️  Policy note: {}", e(&f.policy)),
                        Level::Audit => {
                            paint("2", &format!("📝 Recorded for audit: {}", e(&f.policy)))
                        }
                        Level::Approved => paint("32", &format!("✅ Approved: {}", e(&f.policy))),
                    }
                };
                let _ = writeln!(out, "{head}");
                let _ = writeln!(out, "   {}", shown(&f.message));
                let location = if r.target.origin == Origin::Argument {
                    format!("{} \"{}\"", e(&f.file), e(&f.target))
                } else {
                    format!("{}:{}:{}", e(&f.file), f.line, f.column)
                };
                let _ = writeln!(
                    out,
                    "   --> {location} ({} `{}`, rule `{}`, field `{}`)",
                    f.target_kind,
                    e(&f.target),
                    e(&f.rule),
                    e(&f.field)
                );
                let _ = writeln!(out, "   {}", shown(&f.detail));
                if let Some(snippet) = &f.snippet
                    && r.target.origin != Origin::Argument
                {
                    let num = f.line.to_string();
                    let pad = " ".repeat(num.len());
                    // The caret sits under the column in the line as shown (escapes widen it).
                    let before: String = snippet
                        .chars()
                        .take(f.column.saturating_sub(1) as usize)
                        .collect();
                    let caret_pad = " ".repeat(shown(&before).chars().count());
                    let _ = writeln!(out, "   {pad} |");
                    let _ = writeln!(out, "   {num} | {}", shown(snippet));
                    let _ = writeln!(out, "   {pad} | {caret_pad}^");
                }
                if let Some(w) = &f.waiver {
                    let _ = writeln!(
                        out,
                        "   waived by `{}` (owner {}, until {}): {}",
                        e(&w.name),
                        e(&w.owner),
                        e(&w.expires.to_string()),
                        shown(&w.reason)
                    );
                }
                if let Some(w) = &f.expired_waiver {
                    let _ = writeln!(out, "   the waiver {} no longer applies", e(&w.to_string()));
                }
            }
        }
        for w in self.expired_waivers() {
            let _ = writeln!(
                out,
                "{}",
                paint(
                    "1;33",
                    &format!(
                        "⚠️  Waiver `{}` expired on {} (owner {}, policy `{}`): it no longer applies; renew or remove it ({}:{})",
                        e(&w.name),
                        e(&w.expires_text),
                        e(&w.owner),
                        e(&w.policy),
                        e(&w.source.to_string()),
                        w.pos
                    )
                )
            );
        }
        let blocking = self.count(Finding::blocks);
        let pending = self.count(Finding::pends);
        let warnings = self.count(|f| f.level == Level::Warning && !f.waived());
        let waived = self.count(Finding::waived);
        let failed_targets = self
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Failed)
            .count();
        let detail = format!(
            "{} target(s), {} policies: {blocking} blocking, {warnings} warning(s), {pending} awaiting approval, {waived} waived",
            self.results.len(),
            self.policies.policies.len()
        );
        match self.outcome {
            Outcome::Passed => {
                let _ = writeln!(out, "{}", paint("1;32", "✅ Policy check passed"));
                if self.results.len() > 1 || warnings + waived > 0 {
                    let _ = writeln!(out, "   {detail}");
                }
            }
            Outcome::Pending => {
                // Two rules asking the same group about the same subject need one request.
                let mut distinct: Vec<(&str, &str, u32)> = self
                    .findings()
                    .filter(|f| f.pends())
                    .filter_map(|f| {
                        f.approval
                            .as_ref()
                            .map(|a| (f.target.as_str(), a.approvers.as_str(), a.required))
                    })
                    .collect();
                distinct.sort();
                distinct.dedup();
                let requests = distinct.len();
                let _ = writeln!(
                    out,
                    "{}",
                    paint(
                        "1;33",
                        &format!(
                            "⏳ Approval pending: {requests} approved request(s) needed before this can go ahead (request them with `approval-queue`)"
                        )
                    )
                );
                let _ = writeln!(out, "   {detail}");
            }
            Outcome::Failed => {
                if self.results.len() > 1 || blocking > 1 {
                    let _ = writeln!(
                        out,
                        "{}",
                        paint(
                            "1;31",
                            &format!(
                                "❌ Policy check failed: {failed_targets} of {} target(s)",
                                self.results.len()
                            )
                        )
                    );
                    let _ = writeln!(out, "   {detail}");
                }
            }
        }
        out
    }

    /// SARIF 2.1.0 output: one run, one reporting descriptor per rule, waived findings as
    /// accepted external suppressions.
    pub fn to_sarif(&self) -> Value {
        let mut rules: Vec<Value> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        for p in &self.policies.policies {
            for r in &p.rules {
                ids.push(format!("{}/{}", p.name, r.id));
                let level = match (p.enforcement, r.severity) {
                    (crate::policy::Enforcement::Blocking, crate::policy::Severity::Error) => {
                        "error"
                    }
                    (_, crate::policy::Severity::Info) | (crate::policy::Enforcement::Audit, _) => {
                        "note"
                    }
                    _ => "warning",
                };
                rules.push(json!({
                    "id": format!("{}/{}", p.name, r.id),
                    "name": format!("{}.{}", p.name, r.id).replace(['[', ']'], "_"),
                    "shortDescription": { "text": r.message },
                    "fullDescription": { "text": if p.description.is_empty() { r.message.clone() } else { format!("{}: {}", p.description, r.message) } },
                    "defaultConfiguration": { "level": level },
                    "properties": {
                        "policy": p.name,
                        "policyVersion": p.version,
                        "policyType": p.kind,
                        "enforcement": p.enforcement,
                        "ruleKind": r.kind(),
                        "field": r.field,
                        "controls": r.controls,
                        "tags": [p.kind.clone()],
                    },
                }));
            }
        }
        let results: Vec<Value> = self
            .findings()
            .map(|f| {
                let id = f.rule_id();
                let index = ids.iter().position(|x| *x == id).unwrap_or(0);
                let level = match f.level {
                    Level::Blocking => "error",
                    Level::Warning | Level::Pending => "warning",
                    Level::Info | Level::Audit | Level::Approved => "note",
                };
                let mut region = json!({ "startLine": f.line, "startColumn": f.column });
                if let Some(s) = &f.snippet {
                    region["snippet"] = json!({ "text": s });
                }
                let mut result = json!({
                    "ruleId": id,
                    "ruleIndex": index,
                    "level": level,
                    "message": { "text": format!("{}: {}", f.message, f.detail) },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": sarif_uri(&f.file) },
                            "region": region,
                        },
                        "logicalLocations": [{ "name": f.target, "kind": "module", "fullyQualifiedName": format!("{}/{}{}", f.target_kind, f.target, f.pointer) }],
                    }],
                    "properties": {
                        "target": f.target,
                        "targetKind": f.target_kind,
                        "field": f.field,
                        "pointer": f.pointer,
                        "outcome": f.level,
                        "controls": f.controls,
                    },
                });
                if let Some(w) = &f.waiver {
                    result["suppressions"] = json!([{
                        "kind": "external",
                        "status": "accepted",
                        "justification": format!("waiver `{}` (owner {}, until {}): {}", w.name, w.owner, w.expires, w.reason),
                        "properties": { "waiver": w.name, "owner": w.owner, "expires": w.expires },
                    }]);
                }
                result
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": {
                    "name": TOOL,
                    "version": betty_core::VERSION,
                    "informationUri": INFORMATION_URI,
                    "rules": rules,
                }},
                "invocations": [{
                    "executionSuccessful": true,
                    "exitCode": self.outcome.exit_status().code(),
                    "properties": { "action": self.action, "strict": self.strict, "outcome": self.outcome },
                }],
                "results": results,
            }],
        })
    }

    /// JUnit XML: one test suite per target, one test case per applicable policy.
    pub fn to_junit(&self) -> String {
        let total: usize = self.results.iter().map(|r| r.checks.len()).sum();
        let failures: usize = self
            .results
            .iter()
            .flat_map(|r| r.checks.iter())
            .filter(|c| c.result == "failed" || c.result == "pending")
            .count();
        let mut out = String::new();
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"{TOOL}\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\">"
        );
        for r in &self.results {
            let fails = r
                .checks
                .iter()
                .filter(|c| c.result == "failed" || c.result == "pending")
                .count();
            let skipped = r.checks.iter().filter(|c| c.result == "waived").count();
            let suite = format!("{} {}", r.target.kind, r.target.name);
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skipped}\" file=\"{}\">",
                xml(&suite),
                r.checks.len(),
                xml(&r.target.label)
            );
            for c in &r.checks {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
                    xml(&format!("{}.{}", r.target.kind, r.target.name)),
                    xml(&c.policy),
                    xml(&r.target.label)
                );
                let mine: Vec<&Finding> =
                    r.findings.iter().filter(|f| f.policy == c.policy).collect();
                let body: String = mine
                    .iter()
                    .map(|f| {
                        format!(
                            "{}:{}:{}: [{}] {}/{}: {} ({})\n",
                            f.file,
                            f.line,
                            f.column,
                            if f.waived() {
                                "waived"
                            } else {
                                f.level.as_str()
                            },
                            f.policy,
                            f.rule,
                            f.message,
                            f.detail
                        )
                    })
                    .collect();
                match c.result {
                    "passed" | "approved" if mine.is_empty() => out.push_str("/>\n"),
                    "failed" | "pending" => {
                        let first = mine
                            .iter()
                            .find(|f| f.blocks() || f.pends())
                            .or(mine.first());
                        let msg = first.map(|f| f.message.as_str()).unwrap_or("");
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                            xml(msg),
                            if c.result == "pending" {
                                "approval-pending"
                            } else {
                                "policy-violation"
                            },
                            xml(&body)
                        );
                    }
                    "waived" => {
                        let _ = writeln!(
                            out,
                            ">\n      <skipped message=\"waived\"/>\n      <system-out>{}</system-out>\n    </testcase>",
                            xml(&body)
                        );
                    }
                    _ => {
                        let _ = writeln!(
                            out,
                            ">\n      <system-out>{}</system-out>\n    </testcase>",
                            xml(&body)
                        );
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot hold.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A finding's file as a URI reference: relative paths stay relative, absolute ones become
/// `file://` URIs; anything outside the unreserved set is percent-encoded.
fn sarif_uri(file: &str) -> String {
    let (prefix, path) = if file.starts_with('/') {
        ("file://", file)
    } else if file == "<stdin>" {
        ("", "stdin")
    } else {
        ("", file)
    };
    let mut out = String::from(prefix);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_xml_are_escaped() {
        assert_eq!(
            sarif_uri("skills/a b/skill.yaml"),
            "skills/a%20b/skill.yaml"
        );
        assert_eq!(sarif_uri("/tmp/x.yaml"), "file:///tmp/x.yaml");
        assert_eq!(sarif_uri("<stdin>"), "stdin");
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
