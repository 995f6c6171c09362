//! A whole run's results and their four presentations: `text` in the seed's style, `json`
//! (`schemas/policy-report.schema.json`), SARIF 2.1.0 (waived findings as suppressions) and
//! JUnit XML. Renderers return strings; the binary prints them. Every presentation shows
//! secrets redacted (`betty_core::redact`): a manifest value such as `token: ghp_…` reaches a
//! finding's detail and snippet, and a CI log or a SARIF upload must not carry it.

use std::fmt::Write as _;

use betty_core::escape::Escaped;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::engine::{Finding, Level, Outcome, TargetResult, builtin};
use crate::policy::{Action, Check, PolicySet, TargetKind, known_field};
use crate::target::Origin;

/// Version of the JSON report format.
pub const REPORT_SCHEMA_VERSION: u32 = 1;
pub const TOOL: &str = "policy-enforce";
const INFORMATION_URI: &str = "https://github.com/betty-governance/betty-rs";

/// A value serialized with every secret in it redacted (`betty_core::redact::redact_value`),
/// one at a time, so a large report never builds one tree for the whole.
struct Redacted<T>(T);

impl<T: serde::Serialize> serde::Serialize for Redacted<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?;
        betty_core::redact::redact_value(&mut v);
        v.serialize(s)
    }
}

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
    targets: Vec<Redacted<JsonTarget<'a>>>,
    findings: Vec<Redacted<&'a Finding>>,
    diagnostics: Vec<Redacted<&'a Diagnostic>>,
    waivers: Vec<Value>,
    policies: Vec<Value>,
}

/// A problem with the policies themselves, found while running them: a rule whose `field`
/// reached nothing in any target it applied to, and is not a documented field of those
/// targets (most likely a typo, which would disable the rule). A warning; `--strict` blocks.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Diagnostic {
    /// `rule-matched-nothing`.
    pub code: &'static str,
    pub level: Level,
    pub policy: String,
    pub rule: String,
    pub field: String,
    /// The policy file and the rule's line and column in it.
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// How many targets the rule applied to.
    pub targets: usize,
    pub message: String,
}

pub const RULE_MATCHED_NOTHING: &str = "rule-matched-nothing";

/// Rules whose field reached no value in any target they applied to, and is not a field
/// those targets are documented to have.
fn unmatched_rules(
    policies: &PolicySet,
    results: &[TargetResult],
    strict: bool,
) -> Vec<Diagnostic> {
    #[derive(Clone, Copy, Default)]
    struct Seen {
        applied: usize,
        matched: bool,
        kinds: [bool; 3],
    }
    let mut seen: Vec<Vec<Seen>> = policies
        .policies
        .iter()
        .map(|p| vec![Seen::default(); p.rules.len()])
        .collect();
    for r in results {
        let k = match r.target.kind {
            TargetKind::Skill => 0,
            TargetKind::Agent => 1,
            TargetKind::Workflow => 2,
        };
        for u in &r.rules {
            if let Some(s) = seen
                .get_mut(u.policy as usize)
                .and_then(|p| p.get_mut(u.rule as usize))
            {
                s.applied += 1;
                s.matched |= u.matched;
                s.kinds[k] = true;
            }
        }
    }
    let kinds = [TargetKind::Skill, TargetKind::Agent, TargetKind::Workflow];
    let mut out = Vec::new();
    for (p, rules) in policies.policies.iter().zip(&seen) {
        for (rule, s) in p.rules.iter().zip(rules) {
            // A `required` rule reports a missing field itself.
            if s.applied == 0 || s.matched || matches!(rule.check, Check::Required) {
                continue;
            }
            let applied: Vec<TargetKind> = kinds
                .iter()
                .zip(s.kinds)
                .filter(|(_, on)| *on)
                .map(|(k, _)| *k)
                .collect();
            // Known for any kind the policy's scope admits: a rule on an agent field legitimately
            // matches nothing in the skills a `[skills, agents]` policy also applies to.
            if kinds
                .iter()
                .filter(|k| p.scope.admits_kind(**k, true))
                .any(|k| known_field(*k, &rule.field))
            {
                continue;
            }
            let names: Vec<&str> = applied.iter().map(|k| k.as_str()).collect();
            out.push(Diagnostic {
                code: RULE_MATCHED_NOTHING,
                level: if strict { Level::Blocking } else { Level::Warning },
                policy: p.name.clone(),
                rule: rule.id.clone(),
                field: rule.field.clone(),
                file: crate::target::display_path(&p.file),
                line: rule.pos.line.max(1),
                column: rule.pos.column.max(1),
                targets: s.applied,
                message: format!(
                    "field `{}` matched nothing in the {} target(s) the rule applied to, and is not a documented field of a {} manifest: check its spelling (a misspelt path disables the rule)",
                    rule.field,
                    s.applied,
                    names.join(" or ")
                ),
            });
        }
    }
    out
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
    pub diagnostics: Vec<Diagnostic>,
    /// Single-use approvals the run relied on: spent ([`crate::record::consume`]) when it passes.
    pub relied_on: Vec<String>,
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
        let diagnostics = unmatched_rules(policies, &results, strict);
        let mut outcome = results
            .iter()
            .map(|r| r.outcome)
            .max()
            .unwrap_or(Outcome::Passed);
        if diagnostics.iter().any(|d| d.level == Level::Blocking) {
            outcome = Outcome::Failed;
        }
        Report {
            action,
            strict,
            environment,
            results,
            policies: policies.clone(),
            now,
            outcome,
            diagnostics,
            relied_on: Vec::new(),
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
            "diagnostics": self.diagnostics.len(),
        })
    }

    /// The result of each policy over all targets (worst first), for the audit entry.
    pub fn policy_checks(&self) -> Vec<(String, &'static str)> {
        const ORDER: [&str; 7] = [
            "failed", "pending", "warning", "waived", "recorded", "approved", "passed",
        ];
        let rank = |s: &str| ORDER.iter().position(|o| *o == s).unwrap_or(ORDER.len());
        let mut out: Vec<(String, &'static str)> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for r in &self.results {
            for c in &r.checks {
                match index.get(c.policy.as_str()) {
                    Some(&i) => {
                        if rank(c.result) < rank(out[i].1) {
                            out[i].1 = c.result;
                        }
                    }
                    None => {
                        index.insert(&c.policy, out.len());
                        out.push((c.policy.clone(), c.result));
                    }
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
            .map(|r| {
                Redacted(JsonTarget {
                    kind: r.target.kind,
                    name: &r.target.name,
                    source: &r.target.label,
                    origin: r.target.origin,
                    digest: &r.digest,
                    outcome: r.outcome,
                    findings: r.findings.len(),
                    checks: &r.checks,
                })
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
            findings: self.findings().map(Redacted).collect(),
            diagnostics: self.diagnostics.iter().map(Redacted).collect(),
            waivers: self
                .policies
                .waivers
                .iter()
                .map(|w| betty_core::redact::redacted(&w.to_json(self.now)))
                .collect(),
            policies: policies.iter().map(betty_core::redact::redacted).collect(),
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
        for d in &self.diagnostics {
            let head = if d.level == Level::Blocking {
                paint(
                    "1;31",
                    &format!("❌ Policy rule matched nothing: {}/{}", d.policy, d.rule),
                )
            } else {
                paint(
                    "1;33",
                    &format!("⚠️  Policy rule matched nothing: {}/{}", d.policy, d.rule),
                )
            };
            let _ = writeln!(out, "{head}");
            let _ = writeln!(
                out,
                "   --> {}:{}:{} (rule `{}`, field `{}`)",
                d.file, d.line, d.column, d.rule, d.field
            );
            let _ = writeln!(out, "   {}", d.message);
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
        let mut detail = format!(
            "{} target(s), {} policies: {blocking} blocking, {warnings} warning(s), {pending} awaiting approval, {waived} waived",
            self.results.len(),
            self.policies.policies.len()
        );
        let unmatched = self.diagnostics.len();
        if unmatched > 0 {
            let _ = write!(detail, ", {unmatched} rule(s) that matched nothing");
        }
        match self.outcome {
            Outcome::Passed => {
                let _ = writeln!(out, "{}", paint("1;32", "✅ Policy check passed"));
                if self.results.len() > 1 || warnings + waived + unmatched > 0 {
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
                if self.results.len() > 1 || blocking > 1 || unmatched > 0 {
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
        for r in builtin::RULES {
            ids.push(format!("{}/{}", builtin::POLICY, r.id));
            rules.push(json!({
                "id": format!("{}/{}", builtin::POLICY, r.id),
                "name": format!("{}.{}", builtin::POLICY, r.id),
                "shortDescription": { "text": r.message },
                "fullDescription": { "text": format!("Built-in check (holds under any policy pack): {}", r.message) },
                "defaultConfiguration": { "level": "error" },
                "properties": {
                    "policy": builtin::POLICY,
                    "policyType": builtin::POLICY_TYPE,
                    "enforcement": "blocking",
                    "ruleKind": r.kind,
                    "field": r.field,
                    "controls": builtin::CONTROLS,
                    "tags": [builtin::POLICY_TYPE],
                },
            }));
        }
        let index_of: std::collections::HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let notifications: Vec<Value> = self
            .diagnostics
            .iter()
            .map(|d| {
                let id = format!("{}/{}", d.policy, d.rule);
                json!({
                    "descriptor": { "id": d.code },
                    "associatedRule": { "id": id, "index": index_of.get(id.as_str()).copied().unwrap_or(0) },
                    "level": if d.level == Level::Blocking { "error" } else { "warning" },
                    "message": { "text": format!("{id}: {}", d.message) },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": sarif_uri(&d.file) },
                            "region": { "startLine": d.line, "startColumn": d.column },
                        },
                    }],
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings()
            .map(|f| {
                let id = f.rule_id();
                let index = index_of.get(id.as_str()).copied().unwrap_or(0);
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
        let mut sarif = json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": {
                    "name": TOOL,
                    "version": betty_core::VERSION,
                    "informationUri": INFORMATION_URI,
                    "rules": rules,
                    "notifications": [{
                        "id": RULE_MATCHED_NOTHING,
                        "shortDescription": { "text": "A rule's field matched nothing in any target it applied to (a misspelt path disables a rule)" },
                        "defaultConfiguration": { "level": "warning" },
                    }],
                }},
                "invocations": [{
                    "executionSuccessful": true,
                    "toolConfigurationNotifications": notifications,
                    "exitCode": self.outcome.exit_status().code(),
                    "properties": { "action": self.action, "strict": self.strict, "outcome": self.outcome },
                }],
                "results": results,
            }],
        });
        // SARIF's own keys name no secret, so only user text changes.
        betty_core::redact::redact_value(&mut sarif);
        sarif
    }

    /// JUnit XML: one test suite per target, one test case per applicable policy.
    pub fn to_junit(&self) -> String {
        let diag_failures = self
            .diagnostics
            .iter()
            .filter(|d| d.level == Level::Blocking)
            .count();
        let total: usize =
            self.results.iter().map(|r| r.checks.len()).sum::<usize>() + self.diagnostics.len();
        let failures: usize = self
            .results
            .iter()
            .flat_map(|r| r.checks.iter())
            .filter(|c| c.result == "failed" || c.result == "pending")
            .count()
            + diag_failures;
        // Each piece of user text is redacted on its own (a composed line could read as
        // `name: value` where none was meant).
        let red = |s: &str| betty_core::redact::redact_text(s).into_owned();
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
            let suite = format!("{} {}", r.target.kind, red(&r.target.name));
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skipped}\" file=\"{}\">",
                xml(&suite),
                r.checks.len(),
                xml(&red(&r.target.label))
            );
            for c in &r.checks {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
                    xml(&format!("{}.{}", r.target.kind, red(&r.target.name))),
                    xml(&c.policy),
                    xml(&red(&r.target.label))
                );
                let mine: Vec<&Finding> =
                    r.findings.iter().filter(|f| f.policy == c.policy).collect();
                let body: String = mine
                    .iter()
                    .map(|f| {
                        format!(
                            "{}:{}:{}: [{}] {}/{}: {} ({})\n",
                            red(&f.file),
                            f.line,
                            f.column,
                            if f.waived() {
                                "waived"
                            } else {
                                f.level.as_str()
                            },
                            f.policy,
                            f.rule,
                            red(&f.message),
                            red(&f.detail)
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
                        let msg = first.map(|f| red(&f.message)).unwrap_or_default();
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                            xml(&msg),
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
        if !self.diagnostics.is_empty() {
            let _ = writeln!(
                out,
                "  <testsuite name=\"policy rules\" tests=\"{}\" failures=\"{diag_failures}\" errors=\"0\" skipped=\"0\">",
                self.diagnostics.len()
            );
            for d in &self.diagnostics {
                let text = format!(
                    "{}:{}:{}: [{}] {}/{}: {}",
                    red(&d.file),
                    d.line,
                    d.column,
                    d.level.as_str(),
                    d.policy,
                    d.rule,
                    red(&d.message)
                );
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\">",
                    xml(&format!("policy.{}", d.policy)),
                    xml(&format!("{} {}", d.rule, d.code)),
                    xml(&d.file)
                );
                if d.level == Level::Blocking {
                    let _ = writeln!(
                        out,
                        "\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                        xml(&red(&d.message)),
                        d.code,
                        xml(&text)
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "\n      <system-out>warning: {}</system-out>\n    </testcase>",
                        xml(&text)
                    );
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
