//! Evaluation: which policies apply to a target at an enforcement point, what each rule finds,
//! how waivers and approvals change a finding, and the outcome (passed, failed, pending).
//!
//! Evaluation is a pure function of the policies, the target and a [`Context`] (the registry,
//! approvals, action, time), so a batch is spread over threads and tests need no disk.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use betty_core::manifest::{scalar_text, select, type_name};
use betty_core::permission::{Permission, glob_match};
use jiff::Timestamp;
use serde_json::Value;

use crate::policy::{
    Action, ApprovalRule, Check, Enforcement, Policy, PolicySet, RegisteredTrigger, Rule, Severity,
    TargetKind,
};
use crate::target::{ApprovalState, Approvals, RegistryView, Target};
use crate::waiver::Waiver;

/// What a finding does to the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fails the check (exit 1) unless waived.
    Blocking,
    /// Holds the operation until an approval exists (exit 3).
    Pending,
    /// Reported; passes (`--strict` turns warnings into blocking).
    Warning,
    /// Reported; never blocks.
    Info,
    /// Only recorded (an `audit` policy).
    Audit,
    /// An approval requirement that an approved request satisfies.
    Approved,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Blocking => "blocking",
            Level::Pending => "pending",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Audit => "audit",
            Level::Approved => "approved",
        }
    }
}

/// The overall result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Pending,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Pending => "pending",
            Outcome::Failed => "failed",
        }
    }

    pub fn exit_status(self) -> betty_core::ExitStatus {
        match self {
            Outcome::Passed => betty_core::ExitStatus::Success,
            Outcome::Pending => betty_core::ExitStatus::Pending,
            Outcome::Failed => betty_core::ExitStatus::Failure,
        }
    }
}

/// A waiver applied to a finding.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WaiverUse {
    pub name: String,
    pub owner: String,
    pub reason: String,
    pub expires: String,
}

/// An approval a finding asks for.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ApprovalNeed {
    pub operation: String,
    pub approvers: String,
    pub required: u32,
    pub subject_digest: String,
    pub state: ApprovalState,
}

/// One violation (or approval requirement) of one rule at one place.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    pub target: String,
    pub target_kind: TargetKind,
    pub policy: String,
    pub policy_type: String,
    pub rule: String,
    pub rule_kind: &'static str,
    pub field: String,
    /// JSON Pointer inside the target.
    pub pointer: String,
    pub message: String,
    /// What exactly is wrong with the value.
    pub detail: String,
    pub severity: Severity,
    pub enforcement: Enforcement,
    pub level: Level,
    pub file: String,
    pub line: u32,
    pub column: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    pub controls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiver: Option<WaiverUse>,
    /// A waiver that matched but has expired: it no longer applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_waiver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalNeed>,
}

impl Finding {
    pub fn waived(&self) -> bool {
        self.waiver.is_some()
    }
    pub fn blocks(&self) -> bool {
        self.level == Level::Blocking && !self.waived()
    }
    pub fn pends(&self) -> bool {
        self.level == Level::Pending && !self.waived()
    }
    /// `policy/rule`: the id of the rule in SARIF and fixtures.
    pub fn rule_id(&self) -> String {
        format!("{}/{}", self.policy, self.rule)
    }
}

/// The result of one policy on one target.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyResult {
    pub policy: String,
    /// `passed`, `failed`, `pending`, `warning`, `waived`, `recorded`, `approved`.
    pub result: &'static str,
}

/// Everything found about one target.
#[derive(Clone, Debug)]
pub struct TargetResult {
    pub target: Target,
    pub digest: String,
    pub findings: Vec<Finding>,
    pub checks: Vec<PolicyResult>,
    pub outcome: Outcome,
    /// Every rule that applied to this target, as (policy index, rule index, whether its
    /// `field` reached a value): a rule that reaches nothing in any target of a run is
    /// reported (a misspelt path must not disable a rule silently).
    pub rules: Vec<RuleUse>,
    /// How long this target's evaluation took, in milliseconds (its `policy.enforced`
    /// event's `duration_ms`; a batch's targets each have their own).
    pub duration_ms: f64,
}

/// One rule applied to one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleUse {
    pub policy: u32,
    pub rule: u32,
    pub matched: bool,
}

/// What a check needs to know besides the policies and the target.
#[derive(Debug)]
pub struct Context<'a> {
    pub action: Option<Action>,
    pub strict: bool,
    pub environment: Option<String>,
    pub registry: &'a RegistryView,
    pub approvals: &'a Approvals,
    /// Names of the targets of this run: they count as registered for `registered` rules.
    pub batch: HashSet<String>,
    pub now: Timestamp,
    /// The registered dependency graph's cycles along each `acyclic` rule's field, computed
    /// once per run ([`CycleIndex::for_policies`]); a field without one is searched per target.
    pub cycles: HashMap<String, CycleIndex>,
}

/// Evaluates every applicable policy on one target, then the [`builtin`] checks that hold
/// under any policy pack.
pub fn evaluate(set: &PolicySet, target: &Target, cx: &Context<'_>) -> TargetResult {
    let started = std::time::Instant::now();
    let mut findings = Vec::new();
    let mut checks = Vec::new();
    let mut rules = Vec::new();
    for (pi, policy) in set.policies.iter().enumerate() {
        if !policy
            .scope
            .admits_kind(target.kind, target.is_registered_entry())
            || !policy.scope.admits_action(cx.action)
        {
            continue;
        }
        let start = findings.len();
        let mut applied = false;
        for (ri, rule) in policy.rules.iter().enumerate() {
            if !rule.enabled || !rule_applies(rule, target, cx) {
                continue;
            }
            applied = true;
            let (hits, matched) = check_rule(rule, target, cx);
            rules.push(RuleUse {
                policy: pi as u32,
                rule: ri as u32,
                matched,
            });
            for (pointer, detail, approval) in hits {
                findings.push(finding(policy, rule, target, cx, pointer, detail, approval));
            }
        }
        if !applied {
            continue;
        }
        for f in &mut findings[start..] {
            apply_waivers(f, &set.waivers, cx.now);
        }
        checks.push(PolicyResult {
            policy: policy.name.clone(),
            result: policy_result(&findings[start..]),
        });
    }
    builtin::check(target, cx, &mut findings, &mut checks);
    let outcome = outcome_of(&findings);
    let digest = target.digest();
    TargetResult {
        digest,
        target: target.clone(),
        findings,
        checks,
        outcome,
        rules,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Checks no policy pack can switch off: without them a missing or hand-written pack would
/// pass what cannot be checked. Their findings are blocking, under the policy name
/// [`builtin::POLICY`].
pub mod builtin {
    use super::*;

    pub const POLICY: &str = "builtin";
    pub const POLICY_TYPE: &str = "integrity";
    /// Change management: what runs must be known and named.
    pub const CONTROLS: &[&str] = &["CC8.1", "A.8.32"];

    /// One built-in rule, described like a policy rule in SARIF and JSON.
    pub struct BuiltinRule {
        pub id: &'static str,
        pub kind: &'static str,
        pub field: &'static str,
        pub message: &'static str,
    }

    pub const STEP_REGISTERED: BuiltinRule = BuiltinRule {
        id: "workflow-step-registered",
        kind: "registered",
        field: "steps[*].skill",
        message: "Workflow step runs a skill that is not registered: there is nothing to check it against",
    };
    pub const MANIFEST_NAME: BuiltinRule = BuiltinRule {
        id: "manifest-name",
        kind: "required",
        field: "name",
        message: "A skill or agent manifest needs a `name`",
    };
    pub const WORKFLOW_PERMISSIONS: BuiltinRule = BuiltinRule {
        id: "workflow-permissions",
        kind: "forbidden",
        field: "**.permissions",
        message: "A workflow cannot grant permissions: it runs with the permissions of its steps' skills, which the permission policies check; declare them in the skill's manifest",
    };
    pub const RULES: &[&BuiltinRule] = &[&STEP_REGISTERED, &MANIFEST_NAME, &WORKFLOW_PERMISSIONS];

    pub(super) fn check(
        target: &Target,
        cx: &Context<'_>,
        findings: &mut Vec<Finding>,
        checks: &mut Vec<PolicyResult>,
    ) {
        let start = findings.len();
        let mut applied = false;
        match target.kind {
            TargetKind::Workflow => {
                applied = true;
                for step in crate::target::workflow_steps(target.value()) {
                    // A `skill:` step runs `skills/NAME/` and an `agent:` step an agent: a
                    // registered entry of the other kind vouches for neither.
                    if cx.registry.get(step.kind, &step.name).is_some()
                        || already_blocked(findings, &step.pointer)
                    {
                        continue;
                    }
                    let (this, other) = match step.kind {
                        TargetKind::Agent => ("agent", TargetKind::Skill),
                        _ => ("skill", TargetKind::Agent),
                    };
                    let note = if cx.registry.get(other, &step.name).is_some() {
                        format!(
                            " (a registered {} has that name, which does not count for a `{this}:` step)",
                            if other == TargetKind::Agent {
                                "agent"
                            } else {
                                "skill"
                            }
                        )
                    } else {
                        String::new()
                    };
                    findings.push(make(
                        &STEP_REGISTERED,
                        target,
                        step.pointer,
                        format!("`{}` is not a registered {this}{note}", step.name),
                    ));
                }
                // Policies on permissions are scoped to skills and agents, the kinds that
                // carry them; a grant written into a workflow would pass them all unseen.
                let mut grants = permission_keys(target.value());
                grants.sort_by_cached_key(|(pointer, _)| {
                    let pos = target.pos(pointer);
                    (pos.line, pos.column)
                });
                for (pointer, value) in grants {
                    findings.push(make(
                        &WORKFLOW_PERMISSIONS,
                        target,
                        pointer,
                        format!("the workflow declares `permissions: {}`", brief(value)),
                    ));
                }
            }
            TargetKind::Skill | TargetKind::Agent if target.name.is_empty() => {
                applied = true;
                let pointer = if target.value().get("name").is_some() {
                    "/name".to_string()
                } else {
                    String::new()
                };
                // The naming policy's own finding is the one to show when it has one.
                if !already_blocked(findings, &pointer) {
                    findings.push(make(
                        &MANIFEST_NAME,
                        target,
                        pointer,
                        format!("the {} manifest has no `name`", target.kind),
                    ));
                }
            }
            _ => {}
        }
        if applied {
            checks.push(PolicyResult {
                policy: POLICY.to_string(),
                result: policy_result(&findings[start..]),
            });
        }
    }

    /// Every `permissions` key at any depth of a workflow (top level, steps, nested steps,
    /// anything else), as (pointer to its value, value).
    fn permission_keys(root: &Value) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        let mut work = vec![(String::new(), root)];
        while let Some((ptr, node)) = work.pop() {
            match node {
                Value::Object(map) => {
                    for (key, value) in map.iter().rev() {
                        let child = format!("{ptr}/{}", betty_core::source::escape_pointer(key));
                        if key == "permissions" && !grants_nothing(value) {
                            out.push((child.clone(), value));
                        }
                        work.push((child, value));
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate().rev() {
                        work.push((format!("{ptr}/{i}"), item));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// `null`, `[]`, `{}` and `""` grant nothing.
    fn grants_nothing(value: &Value) -> bool {
        match value {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::String(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// A value in a finding's detail: a list of texts joined, anything else as JSON, bounded.
    fn brief(value: &Value) -> String {
        let text = match value {
            Value::Array(items) if items.iter().all(Value::is_string) => format!(
                "[{}]",
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        const MAX: usize = 120;
        if text.chars().count() > MAX {
            let cut: String = text.chars().take(MAX).collect();
            format!("{cut}…")
        } else {
            text
        }
    }

    /// Whether a blocking (or deliberately waived) finding already covers this place.
    fn already_blocked(findings: &[Finding], pointer: &str) -> bool {
        findings
            .iter()
            .any(|f| f.pointer == pointer && (f.level == Level::Blocking || f.waived()))
    }

    fn make(rule: &BuiltinRule, target: &Target, pointer: String, detail: String) -> Finding {
        let pos = target.pos(&pointer);
        Finding {
            target: target.name.clone(),
            target_kind: target.kind,
            policy: POLICY.to_string(),
            policy_type: POLICY_TYPE.to_string(),
            rule: rule.id.to_string(),
            rule_kind: rule.kind,
            field: rule.field.to_string(),
            pointer,
            message: rule.message.to_string(),
            detail,
            severity: Severity::Error,
            enforcement: Enforcement::Blocking,
            level: Level::Blocking,
            file: target.label.clone(),
            line: pos.line.max(1),
            column: pos.column.max(1),
            snippet: snippet(target, pos.line),
            controls: CONTROLS.iter().map(|c| c.to_string()).collect(),
            waiver: None,
            expired_waiver: None,
            approval: None,
        }
    }
}

/// Evaluates many targets, spread over the available cores; results keep the input order.
pub fn evaluate_all(set: &PolicySet, targets: &[Target], cx: &Context<'_>) -> Vec<TargetResult> {
    betty_core::par::map(targets, 16, |t| evaluate(set, t, cx))
}

/// The worst outcome of some findings.
pub fn outcome_of(findings: &[Finding]) -> Outcome {
    if findings.iter().any(Finding::blocks) {
        Outcome::Failed
    } else if findings.iter().any(Finding::pends) {
        Outcome::Pending
    } else {
        Outcome::Passed
    }
}

fn policy_result(findings: &[Finding]) -> &'static str {
    if findings.iter().any(Finding::blocks) {
        "failed"
    } else if findings.iter().any(Finding::pends) {
        "pending"
    } else if findings
        .iter()
        .any(|f| f.level == Level::Warning && !f.waived())
    {
        "warning"
    } else if findings.iter().any(Finding::waived) {
        "waived"
    } else if findings.iter().any(|f| f.level == Level::Audit) {
        "recorded"
    } else if findings.iter().any(|f| f.level == Level::Approved) {
        "approved"
    } else {
        "passed"
    }
}

fn rule_applies(rule: &Rule, target: &Target, cx: &Context<'_>) -> bool {
    // Before a manifest exists only its name is known: rules on other fields wait.
    if target.origin == crate::target::Origin::Argument {
        let root = rule.field.split(['.', '[']).next().unwrap_or_default();
        if target.value().get(root).is_none() {
            return false;
        }
    }
    match &rule.check {
        // Approvals hold operations; the continuous audit and a plain check hold nothing.
        Check::RequiresApproval(a) => {
            cx.action.is_some_and(Action::is_operation)
                && a.environment_matches(cx.environment.as_deref())
        }
        // These compare a proposed manifest with the registered one.
        Check::NoEscalation | Check::InSync => !target.is_registered_entry(),
        _ => true,
    }
}

fn level_of(policy: &Policy, rule: &Rule, strict: bool) -> Level {
    let level = match (policy.enforcement, rule.severity) {
        (Enforcement::Audit, _) => Level::Audit,
        (_, Severity::Info) => Level::Info,
        (Enforcement::Warning, _) | (Enforcement::Blocking, Severity::Warning) => Level::Warning,
        (Enforcement::Blocking, Severity::Error) => Level::Blocking,
    };
    if strict && level == Level::Warning {
        Level::Blocking
    } else {
        level
    }
}

fn finding(
    policy: &Policy,
    rule: &Rule,
    target: &Target,
    cx: &Context<'_>,
    pointer: String,
    detail: String,
    approval: Option<ApprovalNeed>,
) -> Finding {
    let pos = target.pos(&pointer);
    let mut level = level_of(policy, rule, cx.strict);
    if let Some(a) = &approval {
        level = match a.state {
            ApprovalState::Approved { .. } => Level::Approved,
            ApprovalState::Pending { .. } | ApprovalState::Unusable { .. } => Level::Pending,
            ApprovalState::Rejected { .. } | ApprovalState::Expired { .. } => Level::Blocking,
        };
    }
    Finding {
        target: target.name.clone(),
        target_kind: target.kind,
        policy: policy.name.clone(),
        policy_type: policy.kind.clone(),
        rule: rule.id.clone(),
        rule_kind: rule.kind(),
        field: rule.field.clone(),
        pointer,
        message: rule.message.clone(),
        detail,
        severity: rule.severity,
        enforcement: policy.enforcement,
        level,
        file: target.label.clone(),
        line: pos.line.max(1),
        column: pos.column.max(1),
        snippet: snippet(target, pos.line),
        controls: rule.controls.clone(),
        waiver: None,
        expired_waiver: None,
        approval,
    }
}

/// Longest source line shown as a snippet: a registry written on one line would otherwise put
/// the whole file into every finding.
const MAX_SNIPPET: usize = 400;

fn snippet(target: &Target, line: u32) -> Option<String> {
    target
        .line_text(line)
        .map(str::trim_end)
        .filter(|l| l.len() <= MAX_SNIPPET)
        .map(str::to_string)
}

fn apply_waivers(f: &mut Finding, waivers: &[Waiver], now: Timestamp) {
    for w in waivers
        .iter()
        .filter(|w| w.covers(&f.policy, &f.rule, &f.target))
    {
        if w.expired(now) {
            f.expired_waiver = Some(format!(
                "{} (expired {}, owner {})",
                w.name, w.expires_text, w.owner
            ));
        } else {
            f.waiver = Some(WaiverUse {
                name: w.name.clone(),
                owner: w.owner.clone(),
                reason: w.reason.clone(),
                expires: w.expires_text.clone(),
            });
            return;
        }
    }
}

type Hit = (String, String, Option<ApprovalNeed>);

fn hit(pointer: String, detail: String) -> Hit {
    (pointer, detail, None)
}

/// The values a rule's field reaches; `$` is the whole document.
fn selected<'a>(root: &'a Value, field: &str) -> Vec<(String, &'a Value)> {
    if field == "$" {
        vec![(String::new(), root)]
    } else {
        select(root, field)
    }
}

/// Value checks look at each element of a list.
fn elements<'a>(sel: &[(String, &'a Value)]) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    for (ptr, v) in sel {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    out.push((format!("{ptr}/{i}"), item));
                }
            }
            other => out.push((ptr.clone(), *other)),
        }
    }
    out
}

fn show(v: &Value) -> String {
    format!("`{}`", scalar_text(v))
}

/// What a rule finds on a target, and whether its field reached any value there.
fn check_rule(rule: &Rule, target: &Target, cx: &Context<'_>) -> (Vec<Hit>, bool) {
    let root = target.value();
    let sel = selected(root, &rule.field);
    let matched = !sel.is_empty();
    let mut hits = Vec::new();
    match &rule.check {
        Check::Required => {
            for ptr in missing(root, &rule.field) {
                hits.push(hit(ptr, format!("`{}` is missing or empty", rule.field)));
            }
        }
        Check::Pattern { regex, source } => {
            if rule.field == "name" && sel.is_empty() && target.kind != TargetKind::Workflow {
                hits.push(hit(
                    String::new(),
                    format!("the manifest has no `name`, so it cannot match `{source}`"),
                ));
            }
            for (ptr, v) in elements(&sel) {
                match v {
                    Value::String(s) if regex.is_match(s) => {}
                    Value::String(s) => {
                        hits.push(hit(ptr, format!("`{s}` does not match `{source}`")))
                    }
                    other => hits.push(hit(
                        ptr,
                        format!(
                            "expected text matching `{source}`, found {} {}",
                            type_name(other),
                            show(other)
                        ),
                    )),
                }
            }
        }
        Check::AllowedValues(allowed) => {
            for (ptr, v) in elements(&sel) {
                if !allowed
                    .iter()
                    .any(|a| same_value(a, v))
                {
                    let list: Vec<String> = allowed.iter().map(scalar_text).collect();
                    hits.push(hit(
                        ptr,
                        format!("{} is not one of: {}", show(v), list.join(", ")),
                    ));
                }
            }
        }
        Check::ForbiddenValues(forbidden) => {
            for (ptr, v) in elements(&sel) {
                if let Some(f) = forbidden
                    .iter()
                    .find(|a| same_value(a, v))
                {
                    hits.push(hit(
                        ptr,
                        format!("{} is forbidden (matches {})", show(v), show(f)),
                    ));
                }
            }
        }
        Check::Length { min, max } => {
            for (ptr, v) in &sel {
                let (len, unit) = match v {
                    Value::String(s) => (s.chars().count() as u64, "characters"),
                    Value::Array(a) => (a.len() as u64, "items"),
                    Value::Null => continue,
                    other => {
                        hits.push(hit(
                            ptr.clone(),
                            format!("expected text or a list, found {}", type_name(other)),
                        ));
                        continue;
                    }
                };
                if let Some(m) = min.filter(|m| len < *m) {
                    hits.push(hit(
                        ptr.clone(),
                        format!("{len} {unit}, fewer than the minimum {m}"),
                    ));
                }
                if let Some(m) = max.filter(|m| len > *m) {
                    hits.push(hit(
                        ptr.clone(),
                        format!("{len} {unit}, more than the maximum {m}"),
                    ));
                }
            }
        }
        Check::Semver => {
            for (ptr, v) in elements(&sel) {
                match v {
                    Value::String(s) if is_semver(s) => {}
                    other => hits.push(hit(
                        ptr,
                        format!("{} is not a semantic version such as `1.2.3`", show(other)),
                    )),
                }
            }
        }
        Check::Allow(patterns) => {
            for (ptr, v) in elements(&sel) {
                match parse_permission(v) {
                    Err(why) => hits.push(hit(ptr, why)),
                    Ok(p) if patterns.iter().any(|pat| pat.matches(&p)) => {}
                    Ok(p) => hits.push(hit(
                        ptr,
                        format!(
                            "{} (`{}`) is not covered by the allow-list ({})",
                            show(v),
                            p.canonical(),
                            patterns
                                .iter()
                                .map(|p| p.raw.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                }
            }
        }
        Check::Deny(patterns) => {
            for (ptr, v) in elements(&sel) {
                if let Ok(p) = parse_permission(v)
                    && let Some(pat) = patterns.iter().find(|pat| pat.overlaps(&p))
                {
                    hits.push(hit(
                        ptr,
                        format!(
                            "{} (`{}`) matches `{}` on the list",
                            show(v),
                            p.canonical(),
                            pat.raw
                        ),
                    ));
                }
            }
        }
        Check::AllowedGlobs(globs) => {
            for (ptr, v) in elements(&sel) {
                let text = scalar_text(v);
                if !globs.iter().any(|g| glob_match(g, &text)) {
                    hits.push(hit(
                        ptr,
                        format!("{} matches none of: {}", show(v), globs.join(", ")),
                    ));
                }
            }
        }
        Check::ForbiddenGlobs(globs) => {
            for (ptr, v) in elements(&sel) {
                let text = scalar_text(v);
                if let Some(g) = globs.iter().find(|g| glob_match(g, &text)) {
                    hits.push(hit(ptr, format!("{} matches the forbidden `{g}`", show(v))));
                }
            }
        }
        // On a permissions field: the path a filesystem permission carries. On any other field
        // (`artifact_metadata.produces[*].file_pattern`, a workdir): the value is a path.
        Check::WithinWorkspace => {
            for (ptr, v) in elements(&sel) {
                if let Some((path, why)) = outside_path(v, rule.permission_field) {
                    hits.push(hit(
                        ptr,
                        format!("{} reaches outside the workspace: `{path}` {why}", show(v)),
                    ));
                }
            }
        }
        Check::NoEscalation => {
            if let Some(registered) = cx.registry.get(target.kind, &target.name) {
                // For permissions, what the registered version had anywhere (top level or any
                // entrypoint): moving a permission between the two is not an escalation.
                let fields: Vec<&str> = if rule.permission_field {
                    vec!["permissions", "entrypoints[*].permissions"]
                } else {
                    vec![rule.field.as_str()]
                };
                let before: Vec<Permission> = fields
                    .iter()
                    .flat_map(|f| elements(&selected(registered.value(), f)))
                    .filter_map(|(_, v)| parse_permission(v).ok())
                    .collect();
                let version = registered
                    .value()
                    .get("version")
                    .map(scalar_text)
                    .unwrap_or_else(|| "?".into());
                for (ptr, v) in elements(&sel) {
                    if let Ok(p) = parse_permission(v)
                        && !before.iter().any(|b| b.covers(&p))
                    {
                        let had: Vec<String> = before.iter().map(Permission::canonical).collect();
                        hits.push(hit(
                            ptr,
                            format!(
                                "{} escalates beyond the registered version {version} (which has: {})",
                                show(v),
                                if had.is_empty() { "none".to_string() } else { had.join(", ") }
                            ),
                        ));
                    }
                }
            }
        }
        Check::Registered => {
            for (ptr, v) in elements(&sel) {
                match v.as_str() {
                    Some(name) if cx.registry.find(name).is_some() || cx.batch.contains(name) => {}
                    Some(name) => hits.push(hit(ptr, format!("`{name}` is not registered"))),
                    None => hits.push(hit(ptr, format!("expected a name, found {}", type_name(v)))),
                }
            }
        }
        Check::ForbiddenStatus(statuses) => {
            for (ptr, v) in elements(&sel) {
                if let Some(name) = v.as_str()
                    && let Some(entry) = cx.registry.find(name)
                    && let Some(status) = entry.value().get("status").and_then(Value::as_str)
                    && statuses.iter().any(|s| s == status)
                {
                    hits.push(hit(ptr, format!("`{name}` is {status}")));
                }
            }
        }
        Check::Acyclic => match find_cycle(rule, target, cx) {
            Cycle::None => {}
            Cycle::Found(ptr, path) => {
                hits.push(hit(ptr, format!("dependency cycle: {}", path.join(" → "))))
            }
            Cycle::TooLarge(ptr) => hits.push(hit(
                ptr,
                format!(
                    "cannot check for a cycle: more than {MAX_CYCLE_SEARCH} skills are reachable from `{}`",
                    target.name
                ),
            )),
        },
        Check::InSync => {
            if let Some(registered) = cx.registry.get(target.kind, &target.name) {
                hits.extend(drift(rule, target.value(), registered));
            }
        }
        Check::RequiresApproval(a) => {
            if let Some(h) = approval_hit(rule, a, &sel, target, cx) {
                hits.push(h);
            }
        }
    }
    (hits, matched)
}

fn approval_hit(
    rule: &Rule,
    a: &ApprovalRule,
    sel: &[(String, &Value)],
    target: &Target,
    cx: &Context<'_>,
) -> Option<Hit> {
    let action = cx.action?;
    let trigger = approval_trigger(rule, a, sel, target, cx)?;
    let subject = approval_subject(action, target, cx.environment.as_deref());
    let digest = subject.digest();
    let state = cx.approvals.state(action, &target.name, &digest, a, cx.now);
    let detail = match &state {
        ApprovalState::Approved { request } => {
            format!("{}: approved by request `{request}`", trigger.1)
        }
        ApprovalState::Pending { request: Some(id) } => {
            format!("{}: request `{id}` is pending", trigger.1)
        }
        ApprovalState::Pending { request: None } => {
            let env = subject
                .normalised_environment()
                .map(|e| format!(" in `{e}`"))
                .unwrap_or_default();
            let mut d = format!(
                "{}: {} approval(s) from `{}` for `{action}` of `{}`{env} with subject_digest {digest}",
                trigger.1, a.required, a.approvers, target.name
            );
            if !cx.approvals.defines_group(&a.approvers) {
                d.push_str(&format!(
                    "; the group `{}` is not defined in approvals/groups.yaml, so no one can approve yet",
                    a.approvers
                ));
            } else if let Some(command) = request_command(action, target, &subject, a) {
                d.push_str("; request it: ");
                d.push_str(&command);
            } else if target.origin == crate::target::Origin::Argument {
                d.push_str(&format!(
                    "; an approval binds to a manifest: write the draft and run `policy-enforce --action {action} PATH` for the request command"
                ));
            }
            d
        }
        ApprovalState::Rejected { request } => {
            format!("{}: request `{request}` was rejected", trigger.1)
        }
        ApprovalState::Expired { request } => format!("{}: request `{request}` expired", trigger.1),
        ApprovalState::Unusable { request, why } => {
            format!("{}: request `{request}` does not count: {why}", trigger.1)
        }
    };
    Some((
        trigger.0,
        detail,
        Some(ApprovalNeed {
            operation: action.as_str().to_string(),
            approvers: a.approvers.clone(),
            required: a.required,
            subject_digest: digest,
            state,
        }),
    ))
}

/// What an approval of this run binds to: the operation, the target (kind, name, canonical
/// digest) and the environment, with no further arguments. `approval-queue request` computes
/// the same subject from the same manifest, operation and environment.
pub fn approval_subject(
    action: Action,
    target: &Target,
    environment: Option<&str>,
) -> betty_core::approval::Subject {
    betty_core::approval::Subject {
        operation: action.as_str().to_string(),
        target: Some(betty_core::approval::SubjectTarget {
            kind: target.kind.as_str().to_string(),
            name: target.name.clone(),
            digest: target.digest(),
        }),
        environment: environment.map(str::to_string),
        args: Default::default(),
    }
}

/// The `approval-queue request` command that asks for exactly this subject: the manifest file
/// (or, for a registered entry, its name), the operation, the environment and the rule's group.
/// None for a bare name (`--skill-name`: there is no manifest to bind to yet) and stdin.
fn request_command(
    action: Action,
    target: &Target,
    subject: &betty_core::approval::Subject,
    a: &ApprovalRule,
) -> Option<String> {
    use crate::target::Origin;
    let what = match target.origin {
        Origin::File => format!("--manifest {}", shell_word(&target.label)),
        Origin::Registry => format!("--skill {}", shell_word(&target.name)),
        Origin::Stdin | Origin::Argument => return None,
    };
    let kind = match target.kind {
        TargetKind::Skill => String::new(),
        other => format!(" --kind {other}"),
    };
    let env = subject
        .normalised_environment()
        .map(|e| format!(" --environment {}", shell_word(&e)))
        .unwrap_or_default();
    Some(format!(
        "approval-queue request --operation {action} {what}{kind}{env} --approvers {} --required {} --reason \"...\"",
        shell_word(&a.approvers),
        a.required
    ))
}

/// A word a POSIX shell reads back as itself: as is when it holds only safe characters, else
/// in single quotes.
fn shell_word(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+=,".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Where and why an approval rule triggers on a target: the first value of its field that one
/// of its `when*` triggers matches (any value when it has none).
fn approval_trigger(
    rule: &Rule,
    a: &ApprovalRule,
    sel: &[(String, &Value)],
    target: &Target,
    cx: &Context<'_>,
) -> Option<(String, String)> {
    let needs = |v: &Value, why: String| format!("{} needs approval{why}", show(v));
    let unconditional = a.when.is_empty()
        && a.when_values.is_empty()
        && !a.when_outside_workspace
        && a.when_registered.is_none();
    if unconditional {
        return sel
            .first()
            .map(|(p, v)| (p.clone(), needs(v, String::new())));
    }
    if let Some(reg) = &a.when_registered {
        // A workflow runs its nested steps too: `steps[*].skill` reaches every step.
        // It runs its agent steps too: an approval rule written for its skills must
        // not be walked around by running the same work as an agent.
        let names: Vec<(Option<TargetKind>, String, String)> =
            if target.kind == TargetKind::Workflow && rule.field == "steps[*].skill" {
                crate::target::workflow_steps(target.value())
                    .into_iter()
                    .map(|s| (Some(s.kind), s.name, s.pointer))
                    .collect()
            } else {
                elements(sel)
                    .into_iter()
                    .filter_map(|(p, v)| v.as_str().map(|s| (None, s.to_string(), p)))
                    .collect()
            };
        for (kind, name, ptr) in names {
            let entry = match kind {
                Some(k) => cx.registry.get(k, &name),
                None => cx.registry.find(&name),
            };
            if let Some(entry) = entry
                && let Some(why) = registered_trigger(reg, entry)
            {
                return Some((ptr, format!("`{name}` needs approval: it {why}")));
            }
        }
    }
    elements(sel).into_iter().find_map(|(ptr, v)| {
        if !a.when.is_empty()
            && let Ok(p) = parse_permission(v)
            && a.when.iter().any(|w| w.matches(&p) || w.overlaps(&p))
        {
            return Some((ptr, needs(v, String::new())));
        }
        if !a.when_values.is_empty()
            && let Some(text) = v.as_str()
            && let Some(g) = ApprovalRule::value_matches(&a.when_values, text)
        {
            return Some((ptr, needs(v, format!(" (matches `{g}`)"))));
        }
        if a.when_outside_workspace
            && let Some((path, why)) = outside_path(v, rule.permission_field)
        {
            return Some((
                ptr,
                needs(v, format!(": `{path}` {why}, outside the workspace")),
            ));
        }
        None
    })
}

/// Why a registered skill or agent meets a `when_registered` trigger, if it does.
fn registered_trigger(reg: &RegisteredTrigger, entry: &Target) -> Option<String> {
    let value = entry.value();
    for field in ["permissions", "entrypoints[*].permissions"] {
        for (_, v) in elements(&selected(value, field)) {
            if let Ok(p) = parse_permission(v)
                && let Some(w) = reg
                    .permissions
                    .iter()
                    .find(|w| w.matches(&p) || w.overlaps(&p))
            {
                return Some(format!("has the permission {} (`{}`)", show(v), w.raw));
            }
        }
    }
    for (_, v) in elements(&selected(value, "tags")) {
        if let Some(text) = v.as_str()
            && let Some(g) = ApprovalRule::value_matches(&reg.tags, text)
        {
            return Some(format!("is tagged {} (`{g}`)", show(v)));
        }
    }
    None
}

/// Pointers where a required field is missing or empty.
fn missing(root: &Value, field: &str) -> Vec<String> {
    if field == "$" {
        return Vec::new();
    }
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    let (parent, key) = match field.rfind('.') {
        Some(i) if !field[i + 1..].contains('[') => (Some(&field[..i]), &field[i + 1..]),
        None if !field.contains('[') => (None, field),
        _ => {
            // Ends with an index: present and non-empty.
            let sel = select(root, field);
            return if sel.is_empty() || sel.iter().all(|(_, v)| empty(v)) {
                vec![String::new()]
            } else {
                Vec::new()
            };
        }
    };
    let parents = match parent {
        None => vec![(String::new(), root)],
        Some(p) => {
            let found = select(root, p);
            if found.is_empty() && !p.contains('[') {
                return vec![String::new()];
            }
            found
        }
    };
    let mut out = Vec::new();
    for (ptr, v) in parents {
        let targets: Vec<(String, &Value)> = match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("{ptr}/{i}"), x))
                .collect(),
            other => vec![(ptr.clone(), other)],
        };
        for (p, obj) in targets {
            match obj.get(key) {
                Some(v) if !empty(v) => {}
                Some(_) => out.push(format!("{p}/{}", betty_core::source::escape_pointer(key))),
                None => out.push(p),
            }
        }
    }
    out
}

/// Value rules on fields other than permissions (which are checked as `allow`/`deny`, see
/// `policy::is_permission_field`) compare values as written; numbers by value.
fn same_value(rule_value: &Value, v: &Value) -> bool {
    match (rule_value, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn parse_permission(v: &Value) -> Result<Permission, String> {
    match v {
        Value::String(s) => Permission::parse(s).map_err(|e| e.to_string()),
        other => Err(format!(
            "expected a permission such as `filesystem:read`, found {} {}",
            type_name(other),
            show(other)
        )),
    }
}

/// The path a value reaches and why it is outside the workspace: on a permissions field the
/// scope of a filesystem permission, on any other field the value itself.
fn outside_path(v: &Value, permission_field: bool) -> Option<(String, &'static str)> {
    let path = if permission_field {
        match parse_permission(v) {
            Ok(p) if p.domain == "filesystem" => p.scope,
            _ => None,
        }
    } else {
        v.as_str().map(str::to_string)
    }?;
    let why = outside_workspace(&path)?;
    Some((path, why))
}

fn outside_workspace(scope: &str) -> Option<&'static str> {
    if scope.starts_with('/') || scope.starts_with('\\') {
        return Some("is an absolute path");
    }
    if scope.starts_with('~') || scope.starts_with('$') || scope.starts_with('%') {
        return Some("starts from a home or environment folder");
    }
    if scope.len() >= 2 && scope.as_bytes()[1] == b':' {
        return Some("names a drive");
    }
    if scope.split(['/', '\\']).any(|part| part == "..") {
        return Some("climbs out with `..`");
    }
    None
}

/// Whether `text` is a semantic version as semver.org 2.0.0 defines it, in ASCII digits only (a
/// regex's `\d` also accepts other scripts' digits). Hand-written: compiling the equivalent
/// regex costs more than checking a whole batch.
fn is_semver(text: &str) -> bool {
    let (rest, build) = match text.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (text, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let digits = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    let numeric = |id: &str| digits(id) && (id == "0" || !id.starts_with('0'));
    let alnum =
        |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let mut parts = core.split('.');
    let three = (0..3).all(|_| parts.next().is_some_and(numeric)) && parts.next().is_none();
    three
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|id| alnum(id) && (!digits(id) || numeric(id)))
        })
        && build.is_none_or(|b| b.split('.').all(alnum))
}

/// What a cycle search found.
enum Cycle {
    None,
    /// The pointer of the first edge and the path back to the target.
    Found(String, Vec<String>),
    /// The search met its bound before it could decide: a finding, never a pass.
    TooLarge(String),
}

/// Most nodes one per-target search visits.
const MAX_CYCLE_SEARCH: usize = 100_000;
/// Most nodes visited to show one cycle's path (the cycle itself is already certain).
const MAX_PATH_SEARCH: usize = 256;
/// Most names shown of one cycle.
const MAX_PATH_SHOWN: usize = 12;

/// The registered graph's strongly connected components along one field, found once per run
/// with Tarjan's algorithm (linear in names and edges). A target whose edges are the
/// registered ones is in a cycle exactly when its component has more than one name or an
/// edge to itself, so a 40,000-skill dependency chain costs one pass, not one search per skill.
#[derive(Debug, Default)]
pub struct CycleIndex {
    index: HashMap<String, usize>,
    names: Vec<String>,
    edges: Vec<Vec<usize>>,
    component: Vec<usize>,
    component_size: Vec<usize>,
    self_loop: Vec<bool>,
    /// Nodes visited by searches after the index was built (for tests of the cost).
    pub visited: AtomicUsize,
}

impl CycleIndex {
    /// One index per field that an `acyclic` rule of the set follows.
    pub fn for_policies(set: &PolicySet, registry: &RegistryView) -> HashMap<String, CycleIndex> {
        let mut out = HashMap::new();
        for rule in set.policies.iter().flat_map(|p| &p.rules) {
            if matches!(rule.check, Check::Acyclic) && !out.contains_key(&rule.field) {
                out.insert(rule.field.clone(), CycleIndex::build(registry, &rule.field));
            }
        }
        out
    }

    /// The graph of the registered entries (a name resolves as [`RegistryView::find`] does).
    pub fn build(registry: &RegistryView, field: &str) -> CycleIndex {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        for t in registry.current() {
            if !index.contains_key(&t.name) {
                index.insert(t.name.clone(), names.len());
                names.push(t.name.clone());
            }
        }
        let edges: Vec<Vec<usize>> = names
            .iter()
            .map(|n| {
                registry
                    .find(n)
                    .map(|t| {
                        edge_names(t.value(), field)
                            .into_iter()
                            .filter_map(|(_, d)| index.get(&d).copied())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let self_loop = edges
            .iter()
            .enumerate()
            .map(|(i, e)| e.contains(&i))
            .collect();
        let component = tarjan(&edges);
        let mut component_size = vec![0; component.iter().max().map_or(0, |m| m + 1)];
        for c in &component {
            component_size[*c] += 1;
        }
        CycleIndex {
            index,
            names,
            edges,
            component,
            component_size,
            self_loop,
            visited: AtomicUsize::new(0),
        }
    }

    /// Whether the registered `name` lies on a cycle.
    fn on_cycle(&self, node: usize) -> bool {
        self.component_size[self.component[node]] > 1 || self.self_loop[node]
    }

    /// A path from `start` back to `node` inside their component, within a bound.
    fn path(&self, node: usize, start: usize) -> Vec<String> {
        let names = &self.names;
        let comp = self.component[node];
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = HashSet::from([start]);
        let mut visited = 0;
        while let Some(n) = queue.pop_front() {
            visited += 1;
            if n == node || visited > MAX_PATH_SEARCH {
                break;
            }
            for &next in &self.edges[n] {
                if self.component[next] == comp && seen.insert(next) {
                    parent.insert(next, n);
                    queue.push_back(next);
                }
            }
        }
        self.visited.fetch_add(visited, Ordering::Relaxed);
        if !seen.contains(&node) {
            // Certain, but too long to trace here.
            return vec![
                names[node].clone(),
                names[start].clone(),
                "…".to_string(),
                names[node].clone(),
            ];
        }
        let mut back = vec![node];
        let mut cur = node;
        while let Some(&p) = parent.get(&cur) {
            back.push(p);
            cur = p;
        }
        back.reverse();
        let mut path = vec![names[node].clone()];
        path.extend(back.iter().map(|i| names[*i].clone()));
        shorten(path)
    }
}

/// Keeps a long cycle's path readable: its start, `…`, its end.
fn shorten(mut path: Vec<String>) -> Vec<String> {
    if path.len() > MAX_PATH_SHOWN {
        let hidden = path.len() - MAX_PATH_SHOWN;
        let tail = path.split_off(path.len() - MAX_PATH_SHOWN / 2);
        path.truncate(MAX_PATH_SHOWN / 2);
        path.push(format!("… ({hidden} more)"));
        path.extend(tail);
    }
    path
}

/// Strongly connected components (Tarjan), iterative so a long chain cannot overflow the stack.
/// Returns each node's component id.
fn tarjan(edges: &[Vec<usize>]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let mut order = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut component = vec![UNSEEN; n];
    let mut stack = Vec::new();
    let mut next_order = 0;
    let mut next_component = 0;
    for root in 0..n {
        if order[root] != UNSEEN {
            continue;
        }
        // (node, index of the next edge to follow)
        let mut work = vec![(root, 0usize)];
        order[root] = next_order;
        low[root] = next_order;
        next_order += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if let Some(&w) = edges[v].get(*i) {
                *i += 1;
                if order[w] == UNSEEN {
                    order[w] = next_order;
                    low[w] = next_order;
                    next_order += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(order[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == order[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = next_component;
                    if w == v {
                        break;
                    }
                }
                next_component += 1;
            }
        }
    }
    component
}

/// The names a value lists along a field, with their pointers.
fn edge_names(value: &Value, field: &str) -> Vec<(String, String)> {
    elements(&selected(value, field))
        .into_iter()
        .filter_map(|(p, d)| d.as_str().map(|s| (p, s.to_string())))
        .collect()
}

/// A cycle through the target along the rule's field: the target's own values, then the
/// registered entries'. With the run's [`CycleIndex`], a target whose edges are its registered
/// ones is answered from the index; any other (a changed manifest) is searched, bounded.
fn find_cycle(rule: &Rule, target: &Target, cx: &Context<'_>) -> Cycle {
    let start_edges = edge_names(target.value(), &rule.field);
    if start_edges.is_empty() {
        return Cycle::None;
    }
    if let Some(ix) = cx.cycles.get(&rule.field)
        && let Some(&node) = ix.index.get(&target.name)
    {
        let registered: Vec<usize> = ix.edges[node].clone();
        let mine: Vec<Option<usize>> = start_edges
            .iter()
            .map(|(_, d)| ix.index.get(d).copied())
            .collect();
        let same = mine
            .iter()
            .flatten()
            .copied()
            .eq(registered.iter().copied());
        if same {
            if !ix.on_cycle(node) {
                return Cycle::None;
            }
            let comp = ix.component[node];
            for ((ptr, _), to) in start_edges.iter().zip(&mine) {
                if let Some(to) = *to
                    && ix.component[to] == comp
                    && (to != node || ix.self_loop[node])
                {
                    return Cycle::Found(ptr.clone(), ix.path(node, to));
                }
            }
        }
    }
    search_cycle(rule, target, cx, start_edges)
}

/// Breadth-first from each of the target's edges back to the target.
fn search_cycle(
    rule: &Rule,
    target: &Target,
    cx: &Context<'_>,
    start_edges: Vec<(String, String)>,
) -> Cycle {
    let edges = |name: &str| -> Vec<String> {
        let value = if name == target.name {
            Some(target.value())
        } else {
            cx.registry.find(name).map(Target::value)
        };
        value
            .map(|v| {
                edge_names(v, &rule.field)
                    .into_iter()
                    .map(|(_, d)| d)
                    .collect()
            })
            .unwrap_or_default()
    };
    // Names already known not to lead back to the target: each is expanded once over all
    // of the target's edges, so the search is linear in what it reaches.
    let mut dead: HashSet<String> = HashSet::new();
    for (ptr, first) in start_edges {
        if dead.contains(&first) {
            continue;
        }
        let mut parent: HashMap<String, String> = HashMap::new();
        let mut queue = VecDeque::from([first.clone()]);
        let mut seen: HashSet<String> = HashSet::from([first.clone()]);
        while let Some(node) = queue.pop_front() {
            if node == target.name {
                let mut back = vec![node.clone()];
                let mut cur = node;
                while let Some(p) = parent.get(&cur) {
                    back.push(p.clone());
                    cur = p.clone();
                }
                back.reverse();
                let mut path = vec![target.name.clone()];
                path.extend(back);
                return Cycle::Found(ptr, shorten(path));
            }
            if seen.len() + dead.len() > MAX_CYCLE_SEARCH {
                return Cycle::TooLarge(ptr);
            }
            for next in edges(&node) {
                if !dead.contains(&next) && seen.insert(next.clone()) {
                    parent.insert(next.clone(), node.clone());
                    queue.push_back(next);
                }
            }
        }
        dead.extend(seen);
    }
    Cycle::None
}

fn drift(rule: &Rule, value: &Value, registered: &Target) -> Vec<Hit> {
    let entry = registered.value();
    let mut hits = Vec::new();
    let version = entry
        .get("version")
        .map(scalar_text)
        .unwrap_or_else(|| "?".into());
    if rule.field == "$" {
        let empty = serde_json::Map::new();
        let here = value.as_object().unwrap_or(&empty);
        let there = entry.as_object().unwrap_or(&empty);
        let mut seen = HashSet::new();
        for key in here.keys().chain(there.keys()) {
            if !seen.insert(key)
                || betty_core::registry::REGISTRY_ADDED_KEYS.contains(&key.as_str())
            {
                continue;
            }
            let ptr = format!("/{}", betty_core::source::escape_pointer(key));
            match (here.get(key), there.get(key)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => hits.push(hit(
                    ptr,
                    format!("`{key}` differs from the registry (registered {version}): {} here, {} registered", show(a), show(b)),
                )),
                (Some(_), None) => hits.push(hit(ptr, format!("`{key}` is not in the registered entry ({version})"))),
                (None, Some(_)) => hits.push(hit(String::new(), format!("`{key}` is registered ({version}) but missing here"))),
                (None, None) => {}
            }
        }
    } else {
        let here = selected(value, &rule.field);
        let there = selected(entry, &rule.field);
        let a: Vec<&Value> = here.iter().map(|(_, v)| *v).collect();
        let b: Vec<&Value> = there.iter().map(|(_, v)| *v).collect();
        if a != b {
            let ptr = here.first().map(|(p, _)| p.clone()).unwrap_or_default();
            hits.push(hit(
                ptr,
                format!(
                    "`{}` differs from the registered version {version}",
                    rule.field
                ),
            ));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_found_at_every_depth() {
        let v =
            serde_json::json!({"name": "a", "status": "", "entrypoints": [{"command": "x"}, {}]});
        assert!(missing(&v, "name").is_empty());
        assert_eq!(missing(&v, "status"), vec!["/status"]);
        assert_eq!(missing(&v, "version"), vec![""]);
        assert_eq!(
            missing(&v, "entrypoints[*].command"),
            vec!["/entrypoints/1"]
        );
        assert_eq!(missing(&v, "meta.owner"), vec![""]);
    }

    /// A registry of `n` skills, each depending on the next; `ring` closes it into a cycle.
    fn chain(n: usize, ring: bool) -> (tempfile::TempDir, RegistryView) {
        let dir = tempfile::tempdir().unwrap();
        let skills: Vec<Value> = (0..n)
            .map(|i| {
                let next = if i + 1 < n {
                    Some(i + 1)
                } else {
                    ring.then_some(0)
                };
                serde_json::json!({"name": format!("c.s{i}"), "version": "1.0.0",
                    "dependencies": next.map(|j| vec![format!("c.s{j}")]).unwrap_or_default()})
            })
            .collect();
        let reg = serde_json::json!({"registry_version": "1.0.0", "skills": skills});
        std::fs::write(dir.path().join("skills.json"), reg.to_string()).unwrap();
        let rd = betty_core::discover::RegistryDir {
            root: dir.path().to_path_buf(),
            origin: betty_core::discover::Origin::Flag,
        };
        let view = RegistryView::load(&rd, true).unwrap();
        (dir, view)
    }

    fn acyclic_set() -> PolicySet {
        let doc = betty_core::Document::parse_yaml(
            betty_core::SourceName::Named("p.yaml".into()),
            "policy:\n  name: p\n  version: 1.0.0\n  rules:\n    - field: dependencies\n      acyclic: true\n      message: m\n      severity: error\n  enforcement: blocking\n".into(),
            &betty_core::limits::Limits::MANIFEST,
        )
        .unwrap();
        PolicySet::from_documents(&[doc]).unwrap()
    }

    /// Cost counted in nodes visited, not in time: every skill of a 40,000-skill chain is
    /// answered from the one Tarjan pass (no per-skill search), and a cycle's path is traced
    /// within a fixed bound per skill.
    #[test]
    fn cycle_checks_over_a_long_chain_are_linear() {
        let set = acyclic_set();
        let approvals = Approvals::default();
        for (n, ring) in [(40_000, false), (3_000, true)] {
            let (_dir, view) = chain(n, ring);
            let cx = Context {
                action: Some(Action::Audit),
                strict: false,
                environment: None,
                registry: &view,
                approvals: &approvals,
                batch: HashSet::new(),
                now: Timestamp::now(),
                cycles: CycleIndex::for_policies(&set, &view),
            };
            let targets: Vec<Target> = view.current().cloned().collect();
            let results = evaluate_all(&set, &targets, &cx);
            let cycles = results.iter().filter(|r| !r.findings.is_empty()).count();
            let visited = cx.cycles["dependencies"].visited.load(Ordering::Relaxed);
            if ring {
                assert_eq!(cycles, n);
                assert!(visited <= n * (MAX_PATH_SEARCH + 1), "{visited}");
                let d = &results[0].findings[0].detail;
                assert!(d.starts_with("dependency cycle: c.s0 → c.s1 → "), "{d}");
            } else {
                assert_eq!(cycles, 0);
                assert_eq!(visited, 0, "answered from the index, no search");
            }
        }
        // Tarjan itself is iterative: a 40,000-long chain does not overflow the stack.
        let edges: Vec<Vec<usize>> = (0..40_000).map(|i| vec![(i + 1) % 40_000]).collect();
        let c = tarjan(&edges);
        assert!(c.iter().all(|x| *x == c[0]));
        let edges: Vec<Vec<usize>> = (0..40_000usize)
            .map(|i| if i + 1 < 40_000 { vec![i + 1] } else { vec![] })
            .collect();
        let c: HashSet<usize> = tarjan(&edges).into_iter().collect();
        assert_eq!(c.len(), 40_000);
    }

    #[test]
    fn workspace_paths() {
        assert!(outside_workspace("/etc/shadow").is_some());
        assert!(outside_workspace("../x").is_some());
        assert!(outside_workspace("a/../../x").is_some());
        assert!(outside_workspace("~/.ssh").is_some());
        assert!(outside_workspace("data/in.csv").is_none());
        assert!(outside_workspace("data/*.csv").is_none());
    }

    #[test]
    fn semver_is_strict() {
        for ok in [
            "0.1.0",
            "1.2.3-rc.1+build.5",
            "1.0.0-alpha-1",
            "1.0.0-0.3.7",
            "1.0.0-x.7.z.92",
            "1.0.0+20130313144700",
            "1.0.0-beta+exp.sha.5114f85",
            "1.0.0+21AF26D3----117B344092BD",
            "1.0.0-0A.is.legal",
            "1.0.0+001",
        ] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "",
            "1.0",
            "01.2.3",
            "1.2.3.4",
            "v1.2.3",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-01",
            "1.2.3-a..b",
            "1.2.3+a+b",
            "1.2.3-\u{e9}",
            "\u{661}.\u{662}.\u{663}",
            "1.2.3 ",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }
}
