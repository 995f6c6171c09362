//! Policies: reading `registry/policies/*.yaml`, validating every key with the policy file's
//! `line:column` in the message, and compiling each rule into a [`Check`] once per process.
//!
//! The seed's and upstream's shape loads unchanged: `policy: {name, version, description, type,
//! scope, rules: [{field, <check>, message, severity}], enforcement}`. Every problem in every
//! file is collected before the load fails, so one run shows them all.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use betty_core::limits::{Limits, MAX_NAME_LEN, MAX_REGEX_COMPILED, MAX_REGEX_LEN};
use betty_core::manifest::{check_path, scalar_text, type_name};
use betty_core::permission::PermissionPattern;
use betty_core::{Document, Pos, SourceName};
use regex::Regex;
use serde_json::{Map, Value};

use crate::waiver::{self, Waiver};

/// The file in the policies folder that holds waivers instead of a policy.
pub const WAIVERS_FILE: &str = "waivers.yaml";

/// Most policy files read from one folder.
const MAX_POLICY_FILES: usize = 1_000;

/// What a violation of a policy does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Error-severity violations fail the check.
    Blocking,
    /// Violations are reported and pass (`--strict` makes them block).
    Warning,
    /// Violations are only recorded.
    Audit,
}

/// How serious one rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// Where a check happens: the contract's enforcement points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Before a skill exists: only its name is known.
    Create,
    /// A changed manifest.
    Update,
    /// Before a manifest enters the registry.
    Register,
    /// Before a skill or a workflow runs.
    Execute,
    /// Before a deployment to an environment.
    Deploy,
    /// Continuous: everything registered and on disk.
    Audit,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Register => "register",
            Action::Execute => "execute",
            Action::Deploy => "deploy",
            Action::Audit => "audit",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "create" => Action::Create,
            "update" => Action::Update,
            "register" => Action::Register,
            "execute" => Action::Execute,
            "deploy" => Action::Deploy,
            "audit" => Action::Audit,
            _ => return None,
        })
    }

    /// Operations that an approval can hold (everything but the continuous audit).
    pub fn is_operation(self) -> bool {
        self != Action::Audit
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Skill,
    Agent,
    Workflow,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Skill => "skill",
            TargetKind::Agent => "agent",
            TargetKind::Workflow => "workflow",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy's scope: target kinds and enforcement points; an empty list means all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub skills: bool,
    pub agents: bool,
    pub workflows: bool,
    pub registry: bool,
    pub points: Vec<Action>,
}

impl Scope {
    fn any_kind(&self) -> bool {
        self.skills || self.agents || self.workflows || self.registry
    }

    /// Whether the scope's target kinds admit this target. `registry` admits registered entries.
    pub fn admits_kind(&self, kind: TargetKind, registered_entry: bool) -> bool {
        if !self.any_kind() {
            return true;
        }
        match kind {
            TargetKind::Skill => self.skills || (self.registry && registered_entry),
            TargetKind::Agent => self.agents || (self.registry && registered_entry),
            TargetKind::Workflow => self.workflows,
        }
    }

    /// Whether the scope's enforcement points admit this action. Without an action every policy
    /// applies. The continuous audit re-checks what the gates a registered thing passed through
    /// (`create`, `update`, `register`) checked, plus policies scoped to `audit` itself.
    pub fn admits_action(&self, action: Option<Action>) -> bool {
        let Some(action) = action else { return true };
        if self.points.is_empty() || self.points.contains(&action) {
            return true;
        }
        action == Action::Audit
            && self
                .points
                .iter()
                .any(|p| matches!(p, Action::Create | Action::Update | Action::Register))
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.skills, "skills"),
            (self.agents, "agents"),
            (self.workflows, "workflows"),
            (self.registry, "registry"),
        ] {
            if on {
                out.push(name);
            }
        }
        out.extend(self.points.iter().map(|a| a.as_str()));
        out
    }
}

/// An approval requirement: N distinct approvals from a named group.
///
/// The rule triggers on the values its `field` reaches: when none of the `when*` triggers is
/// set, on any value; otherwise when one of them matches (any one is enough).
#[derive(Clone, Debug)]
pub struct ApprovalRule {
    pub approvers: String,
    pub required: u32,
    /// Permission patterns: a permission value of the field that one matches or overlaps.
    pub when: Vec<PermissionPattern>,
    /// Globs over text values, compared trimmed and lower-cased ([`ApprovalRule::value_matches`]):
    /// the whole value or one of its words (`deploy.production` has the words `deploy` and
    /// `production`; `prod-eu` is one word).
    pub when_values: Vec<String>,
    /// A filesystem permission (or, on other fields, a path) that reaches outside the
    /// workspace (the `within_workspace` rule's test).
    pub when_outside_workspace: bool,
    /// The field's values name registered skills or agents (a workflow's
    /// `steps[*].skill`, nested steps included); the rule triggers when one of them matches.
    pub when_registered: Option<RegisteredTrigger>,
    /// Environment globs for `--action deploy`, trimmed and lower-cased when loaded, matched
    /// against the trimmed, lower-cased `--environment`. Empty: every environment.
    pub environments: Vec<String>,
    /// How long an approval counts after it reached its quorum (`valid_for`, default 24h).
    pub valid_for: std::time::Duration,
    /// Whether one approval is used up by the run that relies on it (`single_use`). `None`:
    /// the default, true for `deploy` and false otherwise ([`ApprovalRule::single_use_for`]).
    pub single_use: Option<bool>,
    /// Whether decisions must be signed (`signed`, default true); `false` is dev mode.
    pub signed: bool,
}

/// What makes a registered skill or agent named by a rule's field need approval.
#[derive(Clone, Debug, Default)]
pub struct RegisteredTrigger {
    /// Matched (or overlapped) by one of its permissions, top level or per entrypoint.
    pub permissions: Vec<PermissionPattern>,
    /// Globs over its tags, as [`ApprovalRule::when_values`].
    pub tags: Vec<String>,
}

/// `valid_for` when a rule does not say.
pub const DEFAULT_VALID_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The shortest and longest `valid_for` a rule may set.
pub const VALID_FOR_RANGE: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(60),
    std::time::Duration::from_secs(30 * 86_400),
);

impl Default for ApprovalRule {
    fn default() -> Self {
        ApprovalRule {
            approvers: String::new(),
            required: 1,
            when: Vec::new(),
            when_values: Vec::new(),
            when_outside_workspace: false,
            when_registered: None,
            environments: Vec::new(),
            valid_for: DEFAULT_VALID_FOR,
            single_use: None,
            signed: true,
        }
    }
}

impl ApprovalRule {
    /// Whether an approval for `action` is used up by the run that relies on it: as the rule
    /// says, else only for `deploy` (the seed's deploy gate is single-use).
    pub fn single_use_for(&self, action: Action) -> bool {
        self.single_use.unwrap_or(action == Action::Deploy)
    }

    /// Whether the rule holds a run in this environment: always when it names none; else
    /// when the trimmed, lower-cased environment, or one of its words (split at every
    /// character but letters and digits, and at all but `-`), matches one of its
    /// (lower-cased) patterns.
    /// An operation without an environment is held too (fail closed: it might be production;
    /// `--action deploy` requires `--environment` anyway).
    pub fn environment_matches(&self, environment: Option<&str>) -> bool {
        if self.environments.is_empty() {
            return true;
        }
        match environment.map(normalise_environment) {
            // Whole, or by any word: `eu/production`, `production.`, `prod_eu` and
            // `production-eu` are production too (a spelling must not slip past the rule).
            Some(env) => std::iter::once(env.as_str())
                .chain(
                    env.split(|c: char| !(c.is_alphanumeric() || c == '-'))
                        .filter(|w| !w.is_empty()),
                )
                .chain(
                    env.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty()),
                )
                .any(|w| {
                    self.environments
                        .iter()
                        .any(|g| betty_core::permission::glob_match(g, w))
                }),
            None => true,
        }
    }

    /// Whether a text value matches one of `globs` (lower-cased): trimmed and lower-cased,
    /// as a whole or by one of its words (runs of letters, digits and `-`, split at everything
    /// else, so `deploy.production` and `db/prod` name `production` and `prod`; `prod-eu` is one
    /// word). Returns the glob that matched.
    pub fn value_matches(globs: &[String], value: &str) -> Option<String> {
        let v = value.trim().to_lowercase();
        let words = std::iter::once(v.as_str()).chain(
            v.split(|c: char| !(c.is_alphanumeric() || c == '-'))
                .filter(|w| !w.is_empty()),
        );
        for w in words {
            if let Some(g) = globs
                .iter()
                .find(|g| betty_core::permission::glob_match(g, w))
            {
                return Some(g.clone());
            }
        }
        None
    }
}

/// An environment name as compared: trimmed and lower-cased, as
/// `betty_core::approval::Subject` normalises it (`Production` is `production`).
pub fn normalise_environment(env: &str) -> String {
    env.trim().to_lowercase()
}

/// What one rule checks.
#[derive(Clone, Debug)]
pub enum Check {
    /// The field is present and not null, empty text or an empty list.
    Required,
    /// The value (each element) matches the regular expression in full.
    Pattern { regex: Regex, source: String },
    /// The value (each element) is one of these.
    AllowedValues(Vec<Value>),
    /// The value (each element) is none of these.
    ForbiddenValues(Vec<Value>),
    /// Length of text (characters) or of a list (items).
    Length { min: Option<u64>, max: Option<u64> },
    /// The value is a Semantic Versioning 2.0.0 version.
    Semver,
    /// Every permission is covered by one of these patterns.
    Allow(Vec<PermissionPattern>),
    /// No permission touches one of these patterns.
    Deny(Vec<PermissionPattern>),
    /// The value (each element) matches one of these globs.
    AllowedGlobs(Vec<String>),
    /// The value (each element) matches none of these globs.
    ForbiddenGlobs(Vec<String>),
    /// Filesystem permission scopes stay inside the workspace (relative, no `..`).
    WithinWorkspace,
    /// No permission beyond the version already registered.
    NoEscalation,
    /// Each value names a registered skill or agent.
    Registered,
    /// Each value names nothing registered with one of these statuses.
    ForbiddenStatus(Vec<String>),
    /// Following this field from target to registry entries never comes back.
    Acyclic,
    /// The value equals the same field of the registered entry (no drift).
    InSync,
    /// The operation needs an approved request (contract section 8).
    RequiresApproval(ApprovalRule),
}

/// Every rule kind a rule may carry (one per rule; `min_length`/`max_length` share one).
pub const RULE_KINDS: &[&str] = &[
    "required",
    "pattern",
    "allowed_values",
    "forbidden_values",
    "min_length",
    "max_length",
    "semver",
    "allow",
    "deny",
    "allowed_globs",
    "forbidden_globs",
    "within_workspace",
    "no_escalation",
    "registered",
    "forbidden_status",
    "acyclic",
    "in_sync",
    "requires_approval",
];

const RULE_COMMON_KEYS: &[&str] = &["id", "field", "message", "severity", "controls"];
const POLICY_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "type",
    "scope",
    "rules",
    "enforcement",
    "controls",
    "waivers",
];

/// What a value rule's problem adds on a permission field, where its values are patterns.
const PERMISSION_VALUE_HINT: &str = "; on a permission field the values are permissions, matched as `allow` (allowed_*) and `deny` (forbidden_*) match them: write `allow: [...]` or `deny: [...]`";

/// Whether a rule's field holds permissions (its last key is `permissions`): its values are
/// permissions, normalised before they are compared.
pub fn is_permission_field(field: &str) -> bool {
    field
        .rsplit('.')
        .next()
        .map(|last| last.split('[').next().unwrap_or(last) == "permissions")
        .unwrap_or(false)
}

fn check_kind_is_length(kind: &str) -> bool {
    matches!(kind, "min_length" | "max_length")
}

/// One rule of a policy.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The kind of check as written in the policy file (`forbidden_values` on a permission
    /// field is checked as a `Check::Deny`, and still reported as `forbidden_values`).
    pub kind: &'static str,
    /// `id`, else `rules[N]`.
    pub id: String,
    pub field: String,
    pub message: String,
    pub severity: Severity,
    /// The rule's own controls plus its policy's.
    pub controls: Vec<String>,
    pub check: Check,
    /// `false` for a boolean rule written `false` (`required: false`): it checks nothing.
    pub enabled: bool,
    /// Whether the field holds permissions (its last key is `permissions`): values are
    /// normalised before they are compared.
    pub permission_field: bool,
    pub pos: Pos,
}

impl Rule {
    /// The kind of check, as written in the policy file.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// One loaded policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `naming`, `permission`, `dependency`, `approval`, `compliance`, upstream's `validation`, `security`.
    pub kind: String,
    pub scope: Scope,
    pub rules: Vec<Rule>,
    pub enforcement: Enforcement,
    pub controls: Vec<String>,
    pub file: PathBuf,
    pub pos: Pos,
}

/// One problem in a policy or waiver file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub source: SourceName,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.pos, self.message)
    }
}

/// Why the policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Input(#[from] betty_core::Error),
    #[error("{} problem(s) in the policies; fix them and run again:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    #[error(
        "no policy files (`*.yaml`) in `{0}`; add one or point `--policies` at a folder that has them"
    )]
    NoPolicies(PathBuf),
    #[error(
        "the policies folder `{0}` does not exist; create it with policy files or point `--policies` at one"
    )]
    MissingDir(PathBuf),
}

/// Every policy of a folder, plus its waivers.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
    pub waivers: Vec<Waiver>,
    pub dir: PathBuf,
}

impl PolicySet {
    /// Loads every `*.yaml`/`*.yml` of `dir` (sorted by name) and `waivers.yaml`.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::MissingDir(dir.to_path_buf()));
        }
        let entries = std::fs::read_dir(dir).map_err(|e| betty_core::Error::Read {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| betty_core::Error::Read {
                path: dir.to_path_buf(),
                source: e,
            })?;
            let path = entry.path();
            let is_yaml = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
            // Not only regular files: a FIFO, a folder or a dangling link named `*.yaml` is
            // refused when read (exit 2), never skipped.
            if is_yaml {
                files.push(path);
            }
        }
        files.sort();
        if files.len() > MAX_POLICY_FILES {
            return Err(LoadError::Invalid(vec![Problem {
                source: SourceName::File(dir.to_path_buf()),
                pos: Pos::START,
                message: format!(
                    "{} policy files, over the limit of {MAX_POLICY_FILES}",
                    files.len()
                ),
            }]));
        }
        let mut docs = Vec::new();
        let mut waiver_doc = None;
        for path in files {
            let doc = Document::read_yaml(&path, &Limits::MANIFEST)?;
            if is_waivers_file(&path) {
                waiver_doc = Some(doc);
            } else {
                docs.push(doc);
            }
        }
        if docs.is_empty() {
            return Err(LoadError::NoPolicies(dir.to_path_buf()));
        }
        let mut set = PolicySet::from_documents(&docs)?;
        set.dir = dir.to_path_buf();
        // Every document made one policy (else `from_documents` failed): they pair up.
        let mut problems = Vec::new();
        for (doc, policy) in docs.iter().zip(&set.policies) {
            match waiver::parse_inline(doc, policy, &set.policies, &set.waivers) {
                Ok(w) => set.waivers.extend(w),
                Err(p) => problems.extend(p),
            }
        }
        if let Some(doc) = waiver_doc {
            match waiver::parse(&doc, &set.policies, &set.waivers) {
                Ok(w) => set.waivers.extend(w),
                Err(p) => problems.extend(p),
            }
        }
        if !problems.is_empty() {
            return Err(LoadError::Invalid(problems));
        }
        Ok(set)
    }

    /// Compiles parsed policy documents; collects every problem of every document.
    pub fn from_documents(docs: &[Document]) -> Result<PolicySet, LoadError> {
        let mut problems = Vec::new();
        let mut policies: Vec<Policy> = Vec::new();
        let mut seen: HashMap<String, (SourceName, Pos)> = HashMap::new();
        for doc in docs {
            // The parser checks everything `schemas/policy.schema.json` says, with better
            // messages; tests keep the two in step (compiling the schema would cost more than
            // checking a manifest).
            let parsed = parse_policy(doc, &mut problems);
            if let Some(policy) = parsed {
                if let Some((other, at)) = seen.get(&policy.name) {
                    problems.push(Problem {
                        source: doc.source.clone(),
                        pos: policy.pos,
                        message: format!(
                            "policy name `{}` is already used by {other}:{at}; policy names must be unique (waivers and reports refer to them)",
                            policy.name
                        ),
                    });
                    continue;
                }
                seen.insert(policy.name.clone(), (doc.source.clone(), policy.pos));
                policies.push(policy);
            }
        }
        if problems.is_empty() {
            Ok(PolicySet {
                policies,
                waivers: Vec::new(),
                dir: PathBuf::new(),
            })
        } else {
            Err(LoadError::Invalid(problems))
        }
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }
}

fn is_waivers_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == WAIVERS_FILE || n == "waivers.yml")
}

/// Collects problems for one document.
struct Ctx<'a> {
    doc: &'a Document,
    problems: &'a mut Vec<Problem>,
}

impl Ctx<'_> {
    fn problem(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            source: self.doc.source.clone(),
            pos: self.doc.pos(pointer),
            message: message.into(),
        });
    }

    fn string(&mut self, map: &Map<String, Value>, ptr: &str, key: &str) -> Option<String> {
        match map.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(
                    &format!("{ptr}/{key}"),
                    format!(
                        "`{key}` must be text, found {} `{}`{}",
                        type_name(other),
                        scalar_text(other),
                        if other.is_number() { "; quote it" } else { "" }
                    ),
                );
                None
            }
        }
    }

    fn required_string(
        &mut self,
        map: &Map<String, Value>,
        ptr: &str,
        key: &str,
    ) -> Option<String> {
        if !map.contains_key(key) {
            self.problem(ptr, format!("missing `{key}`"));
            return None;
        }
        let s = self.string(map, ptr, key)?;
        if s.trim().is_empty() {
            self.problem(&format!("{ptr}/{key}"), format!("`{key}` is empty"));
            return None;
        }
        Some(s)
    }

    fn unknown_keys(&mut self, map: &Map<String, Value>, ptr: &str, known: &[&str], what: &str) {
        for key in map.keys() {
            if key.starts_with("x-") || known.contains(&key.as_str()) {
                continue;
            }
            let hint = closest(key, known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            self.problem(
                &format!("{ptr}/{}", betty_core::source::escape_pointer(key)),
                format!(
                    "unknown key `{key}` in {what}{hint} (known: {}; `x-` keys are free for extensions)",
                    known.join(", ")
                ),
            );
        }
    }

    fn string_list(&mut self, v: &Value, ptr: &str, key: &str) -> Option<Vec<String>> {
        let Value::Array(items) = v else {
            self.problem(
                ptr,
                format!("`{key}` must be a list, found {}", type_name(v)),
            );
            return None;
        };
        if items.is_empty() {
            self.problem(ptr, format!("`{key}` is an empty list"));
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) if !s.is_empty() => out.push(s.clone()),
                other => {
                    self.problem(
                        &format!("{ptr}/{i}"),
                        format!(
                            "`{key}` items must be non-empty text, found {} `{}`",
                            type_name(other),
                            scalar_text(other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn controls(&mut self, map: &Map<String, Value>, ptr: &str) -> Vec<String> {
        let Some(v) = map.get("controls") else {
            return Vec::new();
        };
        let ptr = format!("{ptr}/controls");
        let Some(list) = self.string_list(v, &ptr, "controls") else {
            return Vec::new();
        };
        for (i, c) in list.iter().enumerate() {
            if crate::compliance::Framework::of(c).is_none() {
                self.problem(
                    &format!("{ptr}/{i}"),
                    format!(
                        "`{c}` is not a SOC 2 (`CC6.1`, `A1.2`) or ISO 27001 Annex A (`A.8.2`) control id"
                    ),
                );
            }
        }
        list
    }

    fn bool_check(&mut self, v: &Value, ptr: &str, key: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.problem(
                    ptr,
                    format!(
                        "`{key}` must be true or false, found {} `{}`",
                        type_name(other),
                        scalar_text(other)
                    ),
                );
                None
            }
        }
    }

    /// A list of permission patterns; `hint` (empty or starting with `; `) follows any problem.
    fn permission_patterns(
        &mut self,
        v: &Value,
        ptr: &str,
        key: &str,
        hint: &str,
    ) -> Option<Vec<PermissionPattern>> {
        let list = self.string_list(v, ptr, key)?;
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            match PermissionPattern::parse(s) {
                Ok(p) => out.push(p),
                Err(e) => {
                    self.problem(&format!("{ptr}/{i}"), format!("`{key}`: {e}{hint}"));
                    return None;
                }
            }
        }
        Some(out)
    }

    fn length(&mut self, v: &Value, ptr: &str, key: &str) -> Option<u64> {
        match v.as_u64() {
            Some(n) => Some(n),
            None => {
                self.problem(
                    ptr,
                    format!(
                        "`{key}` must be a non-negative whole number, found {} `{}`",
                        type_name(v),
                        scalar_text(v)
                    ),
                );
                None
            }
        }
    }
}

/// Compiles a full-match regular expression with the size limits.
pub fn compile_pattern(source: &str) -> Result<Regex, String> {
    if source.len() > MAX_REGEX_LEN {
        return Err(format!(
            "the regular expression is {} bytes, over the limit of {MAX_REGEX_LEN}",
            source.len()
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{source})$"))
        .size_limit(MAX_REGEX_COMPILED)
        .dfa_size_limit(MAX_REGEX_COMPILED)
        .nest_limit(64)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            format!("invalid regular expression `{source}`: {last}")
        })
}

fn parse_policy(doc: &Document, problems: &mut Vec<Problem>) -> Option<Policy> {
    let mut cx = Ctx { doc, problems };
    let Some(top) = doc.value.as_object() else {
        cx.problem(
            "",
            format!(
                "a policy file must be a mapping with a `policy:` key, found {}",
                type_name(&doc.value)
            ),
        );
        return None;
    };
    cx.unknown_keys(top, "", &["policy"], "a policy file");
    let Some(body) = top.get("policy") else {
        cx.problem("", "missing `policy:`; a policy file holds `policy: {name, version, rules, enforcement, ...}`");
        return None;
    };
    let Some(map) = body.as_object() else {
        cx.problem(
            "/policy",
            format!("`policy` must be a mapping, found {}", type_name(body)),
        );
        return None;
    };
    let ptr = "/policy";
    cx.unknown_keys(map, ptr, POLICY_KEYS, "`policy`");
    let name = cx.required_string(map, ptr, "name");
    if let Some(n) = &name
        && (n.len() > MAX_NAME_LEN
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || !n.starts_with(|c: char| c.is_ascii_alphanumeric()))
    {
        cx.problem(
            "/policy/name",
            format!("policy name `{}` must be letters, digits, `.`, `_`, `-` (at most {MAX_NAME_LEN}), starting with a letter or digit", scalar_text(&Value::String(n.clone()))),
        );
    }
    let version = cx.required_string(map, ptr, "version");
    let description = cx.string(map, ptr, "description").unwrap_or_default();
    let kind = cx
        .string(map, ptr, "type")
        .unwrap_or_else(|| "validation".into());
    let enforcement = match map.get("enforcement") {
        None => {
            cx.problem(ptr, "missing `enforcement` (blocking, warning or audit)");
            None
        }
        Some(Value::String(s)) => match s.as_str() {
            "blocking" => Some(Enforcement::Blocking),
            "warning" => Some(Enforcement::Warning),
            "audit" => Some(Enforcement::Audit),
            other => {
                cx.problem(
                    "/policy/enforcement",
                    format!("unknown enforcement `{other}`; use blocking, warning or audit"),
                );
                None
            }
        },
        Some(other) => {
            cx.problem(
                "/policy/enforcement",
                format!("`enforcement` must be text, found {}", type_name(other)),
            );
            None
        }
    };
    let mut scope = Scope::default();
    match map.get("scope") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("/policy/scope/{i}");
                match item.as_str() {
                    Some("skills") => scope.skills = true,
                    Some("agents") => scope.agents = true,
                    Some("workflows") => scope.workflows = true,
                    Some("registry") => scope.registry = true,
                    Some(s) if Action::parse(s).is_some() => {
                        if let Some(a) = Action::parse(s)
                            && !scope.points.contains(&a)
                        {
                            scope.points.push(a);
                        }
                    }
                    _ => cx.problem(
                        &p,
                        format!(
                            "unknown scope `{}`; use target kinds (skills, agents, workflows, registry) and/or enforcement points (create, update, register, execute, deploy, audit)",
                            scalar_text(item)
                        ),
                    ),
                }
            }
        }
        Some(other) => cx.problem(
            "/policy/scope",
            format!(
                "`scope` must be a list such as [skills, register], found {}",
                type_name(other)
            ),
        ),
    }
    let controls = cx.controls(map, ptr);
    let mut rules = Vec::new();
    match map.get("rules") {
        None => cx.problem(ptr, "missing `rules` (a list of at least one rule)"),
        Some(Value::Array(items)) if items.is_empty() => cx.problem(
            "/policy/rules",
            "`rules` is empty; a policy needs at least one rule",
        ),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(rule) = parse_rule(&mut cx, item, i, &controls) {
                    if rules.iter().any(|r: &Rule| r.id == rule.id) {
                        cx.problem(
                            &format!("/policy/rules/{i}/id"),
                            format!("rule id `{}` is used twice in this policy", rule.id),
                        );
                    }
                    rules.push(rule);
                }
            }
        }
        Some(other) => cx.problem(
            "/policy/rules",
            format!("`rules` must be a list, found {}", type_name(other)),
        ),
    }
    let file = doc.source.path().map(Path::to_path_buf).unwrap_or_default();
    Some(Policy {
        name: name?,
        version: version?,
        description,
        kind,
        scope,
        rules,
        enforcement: enforcement?,
        controls,
        file,
        pos: doc.pos("/policy/name"),
    })
}

fn parse_rule(
    cx: &mut Ctx<'_>,
    item: &Value,
    index: usize,
    policy_controls: &[String],
) -> Option<Rule> {
    let ptr = format!("/policy/rules/{index}");
    let Some(map) = item.as_object() else {
        cx.problem(
            &ptr,
            format!(
                "a rule must be a mapping `{{field, <check>, message, severity}}`, found {}",
                type_name(item)
            ),
        );
        return None;
    };
    let mut known: Vec<&str> = RULE_COMMON_KEYS.to_vec();
    known.extend_from_slice(RULE_KINDS);
    for key in map.keys() {
        if key.starts_with("x-") || known.contains(&key.as_str()) {
            continue;
        }
        let hint = closest(key, &known)
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        cx.problem(
            &format!("{ptr}/{}", betty_core::source::escape_pointer(key)),
            format!(
                "unknown rule kind `{key}`; {hint}known kinds: {}",
                RULE_KINDS.join(", ")
            ),
        );
    }
    let id = match cx.string(map, &ptr, "id") {
        Some(id) => {
            if id.is_empty()
                || id.len() > MAX_NAME_LEN
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                cx.problem(
                    &format!("{ptr}/id"),
                    format!("rule id `{id}` must be letters, digits, `.`, `_`, `-`"),
                );
            }
            id
        }
        None => format!("rules[{index}]"),
    };
    let field = cx.required_string(map, &ptr, "field");
    if let Some(f) = &field
        && f != "$"
        && let Err(e) = check_path(f)
    {
        cx.problem(
            &format!("{ptr}/field"),
            format!("{e}; write `name`, `permissions`, `entrypoints[*].permissions`, or `$` for the whole document"),
        );
    }
    let message = cx.required_string(map, &ptr, "message");
    let severity = match map.get("severity") {
        None => {
            cx.problem(&ptr, "missing `severity` (error, warning or info)");
            None
        }
        Some(Value::String(s)) => match s.as_str() {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            other => {
                cx.problem(
                    &format!("{ptr}/severity"),
                    format!("unknown severity `{other}`; use error, warning or info"),
                );
                None
            }
        },
        Some(other) => {
            cx.problem(
                &format!("{ptr}/severity"),
                format!("`severity` must be text, found {}", type_name(other)),
            );
            None
        }
    };
    let mut controls: Vec<String> = policy_controls.to_vec();
    for c in cx.controls(map, &ptr) {
        if !controls.contains(&c) {
            controls.push(c);
        }
    }
    let kinds: Vec<&str> = RULE_KINDS
        .iter()
        .copied()
        .filter(|k| map.contains_key(*k))
        .collect();
    let checks = kinds
        .iter()
        .filter(|k| **k != "max_length" || !kinds.contains(&"min_length"))
        .count();
    let unknown = map
        .keys()
        .any(|k| !k.starts_with("x-") && !known.contains(&k.as_str()));
    if checks == 0 && unknown {
        return None;
    }
    if checks == 0 {
        cx.problem(
            &ptr,
            format!(
                "the rule has no check; add one of: {}",
                RULE_KINDS.join(", ")
            ),
        );
        return None;
    }
    if checks > 1 {
        cx.problem(
            &ptr,
            format!(
                "the rule has {checks} checks ({}); write one rule per check",
                kinds.join(", ")
            ),
        );
        return None;
    }
    let kind = kinds[0];
    let vptr = format!("{ptr}/{kind}");
    let v = &map[kind];
    let mut enabled = true;
    let permission_field = field.as_deref().is_some_and(is_permission_field);
    let check = match kind {
        // On a permission field, a value or glob list means what `allow`/`deny` mean: the
        // values are permission patterns, compared after normalisation (`network` covers
        // `network:http`, `filesystem.read` is `filesystem:read`, a scope is a path), never as
        // text, so `forbidden_values: [network]` blocks what `deny: [network]` blocks.
        "allowed_values" | "allowed_globs" if permission_field => {
            Check::Allow(cx.permission_patterns(v, &vptr, kind, PERMISSION_VALUE_HINT)?)
        }
        "forbidden_values" | "forbidden_globs" if permission_field => {
            Check::Deny(cx.permission_patterns(v, &vptr, kind, PERMISSION_VALUE_HINT)?)
        }
        "required" | "semver" | "within_workspace" | "no_escalation" | "registered" | "acyclic"
        | "in_sync" => {
            enabled = cx.bool_check(v, &vptr, kind)?;
            match kind {
                "required" => Check::Required,
                "semver" => Check::Semver,
                "within_workspace" => Check::WithinWorkspace,
                "no_escalation" => Check::NoEscalation,
                "registered" => Check::Registered,
                "acyclic" => Check::Acyclic,
                _ => Check::InSync,
            }
        }
        // A regular expression would match the permission as written, while the same
        // permission has other spellings (`filesystem.read`, `filesystem:read`, a bare
        // domain covering its actions): it would read one way and match another.
        "pattern" if permission_field => {
            cx.problem(
                &vptr,
                "`pattern` on a permission field would match the text as written, not the permission (`filesystem.read` is `filesystem:read`, `network` covers `network:http`); write `allow: [...]` or `deny: [...]` with permission patterns".to_string(),
            );
            return None;
        }
        "pattern" => {
            let Value::String(source) = v else {
                cx.problem(
                    &vptr,
                    format!(
                        "`pattern` must be text (a regular expression), found {}",
                        type_name(v)
                    ),
                );
                return None;
            };
            match compile_pattern(source) {
                Ok(regex) => Check::Pattern {
                    regex,
                    source: source.clone(),
                },
                Err(e) => {
                    cx.problem(&vptr, e);
                    return None;
                }
            }
        }
        "allowed_values" | "forbidden_values" => {
            let Value::Array(items) = v else {
                cx.problem(
                    &vptr,
                    format!("`{kind}` must be a list, found {}", type_name(v)),
                );
                return None;
            };
            if items.is_empty() {
                cx.problem(&vptr, format!("`{kind}` is an empty list"));
                return None;
            }
            for (i, item) in items.iter().enumerate() {
                if item.is_array() || item.is_object() {
                    cx.problem(
                        &format!("{vptr}/{i}"),
                        format!(
                            "`{kind}` items must be plain values, found {}",
                            type_name(item)
                        ),
                    );
                    return None;
                }
            }
            if kind == "allowed_values" {
                Check::AllowedValues(items.clone())
            } else {
                Check::ForbiddenValues(items.clone())
            }
        }
        "min_length" | "max_length" => {
            let min = match map.get("min_length") {
                Some(v) => Some(cx.length(v, &format!("{ptr}/min_length"), "min_length")?),
                None => None,
            };
            let max = match map.get("max_length") {
                Some(v) => Some(cx.length(v, &format!("{ptr}/max_length"), "max_length")?),
                None => None,
            };
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                cx.problem(
                    &format!("{ptr}/min_length"),
                    format!("`min_length` {a} is over `max_length` {b}"),
                );
                return None;
            }
            Check::Length { min, max }
        }
        "allow" => Check::Allow(cx.permission_patterns(v, &vptr, kind, "")?),
        "deny" => Check::Deny(cx.permission_patterns(v, &vptr, kind, "")?),
        "allowed_globs" => Check::AllowedGlobs(cx.string_list(v, &vptr, kind)?),
        "forbidden_globs" => Check::ForbiddenGlobs(cx.string_list(v, &vptr, kind)?),
        "forbidden_status" => Check::ForbiddenStatus(cx.string_list(v, &vptr, kind)?),
        "requires_approval" => Check::RequiresApproval(parse_approval(cx, v, &vptr)?),
        _ => return None,
    };
    let field = field?;
    Some(Rule {
        kind: if check_kind_is_length(kind) {
            "length"
        } else {
            kind
        },
        id,
        pos: cx.doc.pos(&ptr),
        field,
        message: message?,
        severity: severity?,
        controls,
        check,
        enabled,
        permission_field,
    })
}

const APPROVAL_KEYS: &[&str] = &[
    "approvers",
    "required",
    "when",
    "when_values",
    "when_outside_workspace",
    "when_registered",
    "environments",
    "valid_for",
    "single_use",
    "signed",
];

fn parse_approval(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Option<ApprovalRule> {
    let Some(map) = v.as_object() else {
        cx.problem(
            ptr,
            format!("`requires_approval` must be a mapping `{{approvers: GROUP, required: N, when: [...]}}`, found {}", type_name(v)),
        );
        return None;
    };
    cx.unknown_keys(map, ptr, APPROVAL_KEYS, "`requires_approval`");
    let approvers = cx.required_string(map, ptr, "approvers");
    let required = match map.get("required") {
        None => 1,
        Some(n) => match n.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as u32,
            _ => {
                cx.problem(
                    &format!("{ptr}/required"),
                    "`required` must be a whole number from 1 to 100",
                );
                return None;
            }
        },
    };
    let when = match map.get("when") {
        Some(w) => cx.permission_patterns(w, &format!("{ptr}/when"), "when", "")?,
        None => Vec::new(),
    };
    let when_values = match map.get("when_values") {
        Some(w) => lowered_globs(cx, w, &format!("{ptr}/when_values"), "when_values")?,
        None => Vec::new(),
    };
    let when_outside_workspace = match map.get("when_outside_workspace") {
        Some(b) => cx.bool_check(
            b,
            &format!("{ptr}/when_outside_workspace"),
            "when_outside_workspace",
        )?,
        None => false,
    };
    let when_registered = match map.get("when_registered") {
        Some(r) => Some(parse_registered_trigger(
            cx,
            r,
            &format!("{ptr}/when_registered"),
        )?),
        None => None,
    };
    let environments = match map.get("environments") {
        Some(e) => lowered_globs(cx, e, &format!("{ptr}/environments"), "environments")?,
        None => Vec::new(),
    };
    let valid_for = match map.get("valid_for") {
        None => DEFAULT_VALID_FOR,
        Some(Value::String(text)) => {
            let at = format!("{ptr}/valid_for");
            match betty_core::time::parse_duration(text) {
                Ok(d) if d >= VALID_FOR_RANGE.0 && d <= VALID_FOR_RANGE.1 => d,
                Ok(_) => {
                    cx.problem(
                        &at,
                        format!("`valid_for` `{text}` is out of range: an approval counts for 1m at least and 30d at most"),
                    );
                    return None;
                }
                Err(e) => {
                    cx.problem(&at, format!("`valid_for`: {e}"));
                    return None;
                }
            }
        }
        Some(other) => {
            cx.problem(
                &format!("{ptr}/valid_for"),
                format!(
                    "`valid_for` must be a duration such as `24h` or `7d`, found {} `{}`",
                    type_name(other),
                    scalar_text(other)
                ),
            );
            return None;
        }
    };
    let single_use = match map.get("single_use") {
        Some(b) => Some(cx.bool_check(b, &format!("{ptr}/single_use"), "single_use")?),
        None => None,
    };
    let signed = match map.get("signed") {
        Some(b) => cx.bool_check(b, &format!("{ptr}/signed"), "signed")?,
        None => true,
    };
    Some(ApprovalRule {
        approvers: approvers?,
        required,
        when,
        when_values,
        when_outside_workspace,
        when_registered,
        environments,
        valid_for,
        single_use,
        signed,
    })
}

/// A list of globs compared case-insensitively: trimmed and lower-cased once, here. A pattern
/// that is only white space is refused (it would match nothing, silently).
fn lowered_globs(cx: &mut Ctx<'_>, v: &Value, ptr: &str, key: &str) -> Option<Vec<String>> {
    let list = cx.string_list(v, ptr, key)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, g) in list.iter().enumerate() {
        let g = normalise_environment(g);
        if g.is_empty() {
            cx.problem(
                &format!("{ptr}/{i}"),
                format!("`{key}` items must be non-empty text"),
            );
            return None;
        }
        out.push(g);
    }
    Some(out)
}

fn parse_registered_trigger(cx: &mut Ctx<'_>, v: &Value, ptr: &str) -> Option<RegisteredTrigger> {
    let Some(map) = v.as_object() else {
        cx.problem(
            ptr,
            format!(
                "`when_registered` must be a mapping `{{permissions: [...], tags: [...]}}`, found {}",
                type_name(v)
            ),
        );
        return None;
    };
    cx.unknown_keys(map, ptr, &["permissions", "tags"], "`when_registered`");
    let permissions = match map.get("permissions") {
        Some(p) => cx.permission_patterns(p, &format!("{ptr}/permissions"), "permissions", "")?,
        None => Vec::new(),
    };
    let tags = match map.get("tags") {
        Some(t) => lowered_globs(cx, t, &format!("{ptr}/tags"), "tags")?,
        None => Vec::new(),
    };
    if permissions.is_empty() && tags.is_empty() {
        cx.problem(
            ptr,
            "`when_registered` needs `permissions` or `tags`: otherwise it would never trigger",
        );
        return None;
    }
    Some(RegisteredTrigger { permissions, tags })
}

/// Whether a rule's field path names something a target of this kind is documented to have
/// (the manifest schemas in `schemas/`; for workflows, upstream's keys). A path that is known
/// may legitimately reach nothing (an optional field); one that is not, and reaches nothing
/// in any target of a run, is most likely a typo, and is reported.
pub fn known_field(kind: TargetKind, field: &str) -> bool {
    use betty_core::schema::SchemaId;
    use std::sync::OnceLock;
    static SKILL: OnceLock<Value> = OnceLock::new();
    static AGENT: OnceLock<Value> = OnceLock::new();
    if field == "$" {
        return true;
    }
    let root = match kind {
        TargetKind::Skill => SKILL.get_or_init(|| {
            serde_json::from_str(SchemaId::SkillManifest.text()).unwrap_or(Value::Null)
        }),
        TargetKind::Agent => AGENT.get_or_init(|| {
            serde_json::from_str(SchemaId::AgentManifest.text()).unwrap_or(Value::Null)
        }),
        TargetKind::Workflow => {
            const WORKFLOW_KEYS: &[&str] = &[
                "name",
                "version",
                "description",
                "steps",
                "inputs",
                "outputs",
                "tags",
                "created_at",
                "metadata",
            ];
            let first = field.split(['.', '[']).next().unwrap_or_default();
            return WORKFLOW_KEYS.contains(&first);
        }
    };
    let resolve = |mut node: &'static Value| -> &'static Value {
        for _ in 0..8 {
            match node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
            {
                Some(ptr) => node = root.pointer(ptr).unwrap_or(&Value::Null),
                None => break,
            }
        }
        node
    };
    // The schema nodes a node stands for: itself, or its `anyOf`/`oneOf` branches.
    let branches = |node: &'static Value| -> Vec<&'static Value> {
        let node = resolve(node);
        let mut out = vec![node];
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = node.get(key).and_then(Value::as_array) {
                out.extend(list.iter().map(resolve));
            }
        }
        out
    };
    let mut nodes: Vec<&'static Value> = vec![root];
    for segment in field.split('.') {
        let key = segment.split('[').next().unwrap_or_default();
        let indexes = segment.matches('[').count();
        let mut next = Vec::new();
        let mut free_form = false;
        for n in nodes.iter().flat_map(|n| branches(n)) {
            match n.get("properties").and_then(Value::as_object) {
                Some(props) => next.extend(props.get(key)),
                None => free_form |= n.get("type").and_then(Value::as_str) == Some("object"),
            }
        }
        if next.is_empty() {
            return free_form;
        }
        for _ in 0..indexes {
            let items: Vec<&'static Value> = next
                .iter()
                .flat_map(|n| branches(n))
                .filter_map(|n| n.get("items"))
                .collect();
            if items.is_empty() {
                return true;
            }
            next = items;
        }
        nodes = next;
    }
    true
}

/// The known key closest to a misspelt one (edit distance at most 2).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(texts: &[&str]) -> Result<PolicySet, LoadError> {
        let docs: Vec<Document> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Document::parse_yaml(
                    SourceName::Named(format!("p{i}.yaml").into()),
                    t.to_string(),
                    &Limits::MANIFEST,
                )
                .unwrap()
            })
            .collect();
        PolicySet::from_documents(&docs)
    }

    const SEED: &str = "policy:\n  name: skill-naming-convention\n  version: 1.0.0\n  description: d\n  type: validation\n  scope: [create, update]\n  rules:\n    - field: name\n      pattern: \"^[a-z][a-z0-9]*\\\\.[a-z][a-z0-9]*$\"\n      message: m\n      severity: error\n  enforcement: blocking\n";

    #[test]
    fn the_seed_shape_loads() {
        let set = load(&[SEED]).unwrap();
        let p = &set.policies[0];
        assert_eq!(p.name, "skill-naming-convention");
        assert_eq!(p.rules[0].id, "rules[0]");
        assert_eq!(p.rules[0].kind(), "pattern");
        assert!(p.scope.admits_action(Some(Action::Create)));
        assert!(!p.scope.admits_action(Some(Action::Execute)));
        assert!(p.scope.admits_action(Some(Action::Audit)));
    }

    #[test]
    fn problems_point_at_the_policy_line() {
        let cases = [
            (
                SEED.replace("pattern: \"^[a-z]", "pattern: \"^([a-z]"),
                "p0.yaml:9:",
                "invalid regular expression",
            ),
            (
                SEED.replace("pattern:", "patern:"),
                "p0.yaml:9:",
                "unknown rule kind `patern`",
            ),
            (
                SEED.replace("blocking", "blockin"),
                "p0.yaml:12:",
                "unknown enforcement",
            ),
            (
                SEED.replace("version: 1.0.0", "version: 1.0"),
                "p0.yaml:3:",
                "quote it",
            ),
            (
                SEED.replace("[create, update]", "[create, updat]"),
                "p0.yaml:6:",
                "unknown scope `updat`",
            ),
            (
                SEED.replace("      message: m\n", ""),
                "p0.yaml:8:",
                "missing `message`",
            ),
        ];
        for (text, at, what) in cases {
            let err = load(&[&text]).unwrap_err().to_string();
            assert!(err.contains(at) && err.contains(what), "{at} {what}: {err}");
        }
    }

    #[test]
    fn two_policies_with_one_name_are_refused() {
        let err = load(&[SEED, SEED]).unwrap_err().to_string();
        assert!(
            err.contains("p1.yaml:2:") && err.contains("already used by p0.yaml:2"),
            "{err}"
        );
    }

    #[test]
    fn two_checks_in_one_rule_are_refused() {
        let text = SEED.replace(
            "      message: m\n",
            "      message: m\n      required: true\n",
        );
        let err = load(&[&text]).unwrap_err().to_string();
        assert!(err.contains("2 checks"), "{err}");
    }

    #[test]
    fn field_paths_are_known_from_the_manifest_schemas() {
        for (kind, field) in [
            (TargetKind::Skill, "name"),
            (TargetKind::Skill, "permissions"),
            (TargetKind::Skill, "entrypoints[*].permissions"),
            (TargetKind::Skill, "dependencies"),
            (
                TargetKind::Skill,
                "artifact_metadata.produces[*].file_pattern",
            ),
            (TargetKind::Agent, "skills_available"),
            (TargetKind::Workflow, "steps[*].skill"),
        ] {
            assert!(known_field(kind, field), "{kind} {field}");
        }
        for (kind, field) in [
            (TargetKind::Skill, "permisions"),
            (TargetKind::Skill, "entrypoints[*].permisions"),
            (TargetKind::Skill, "skills_available"),
            (TargetKind::Workflow, "stepz[*].skill"),
        ] {
            assert!(!known_field(kind, field), "{kind} {field}");
        }
    }

    fn approval_policy(options: &str) -> String {
        format!(
            "policy:\n  name: a\n  version: 1.0.0\n  description: d\n  type: approval\n  scope: [deploy]\n  rules:\n    - field: name\n      requires_approval:\n        approvers: release-managers\n{options}      message: m\n      severity: error\n  enforcement: blocking\n"
        )
    }

    fn approval_rule(options: &str) -> Result<ApprovalRule, String> {
        let set = load(&[&approval_policy(options)]).map_err(|e| e.to_string())?;
        match &set.policies[0].rules[0].check {
            Check::RequiresApproval(a) => Ok(a.clone()),
            other => Err(format!("not an approval rule: {other:?}")),
        }
    }

    #[test]
    fn approval_options_have_their_defaults() {
        let a = approval_rule("").unwrap();
        assert_eq!(a.valid_for, DEFAULT_VALID_FOR);
        assert_eq!(a.single_use, None);
        assert!(a.single_use_for(Action::Deploy));
        assert!(!a.single_use_for(Action::Register));
        assert!(a.signed);
        assert_eq!(a.required, 1);
        let a = approval_rule(
            "        valid_for: 90m\n        single_use: false\n        signed: false\n",
        )
        .unwrap();
        assert_eq!(a.valid_for, std::time::Duration::from_secs(90 * 60));
        assert!(!a.single_use_for(Action::Deploy));
        assert!(!a.signed);
        let a = approval_rule("        single_use: true\n").unwrap();
        assert!(a.single_use_for(Action::Execute));
    }

    #[test]
    fn bad_approval_options_are_refused_with_the_line() {
        for (options, want) in [
            ("        valid_for: 24\n", "must be a duration"),
            ("        valid_for: \"24\"\n", "is not a duration"),
            ("        valid_for: 2 fortnights\n", "is not a duration"),
            ("        valid_for: 30s\n", "out of range"),
            ("        valid_for: 31d\n", "out of range"),
            ("        valid_for: [1h]\n", "must be a duration"),
            ("        single_use: yes please\n", "true or false"),
            ("        signed: \"false\"\n", "true or false"),
            ("        signd: false\n", "did you mean `signed`"),
            ("        environments: [\"  \"]\n", "non-empty"),
            (
                "        when_registered: {}\n",
                "needs `permissions` or `tags`",
            ),
            (
                "        when_registered: {perms: [x]}\n",
                "unknown key `perms`",
            ),
            ("        when_outside_workspace: 1\n", "true or false"),
            ("        when_values: prod\n", "must be a list"),
        ] {
            let err = approval_rule(options).unwrap_err();
            assert!(err.contains(want), "{options}: {err}");
            assert!(err.contains("p0.yaml:"), "{options}: {err}");
        }
    }

    #[test]
    fn environments_match_trimmed_and_case_insensitively_both_sides() {
        let a = approval_rule("        environments: [\" Production \", PROD, Prod-*]\n").unwrap();
        assert_eq!(a.environments, ["production", "prod", "prod-*"]);
        for env in [
            "production",
            "Production",
            " PRODUCTION ",
            "PROD",
            "prod-eu",
            "PROD-US-1",
            // Spellings found by the attack review: each one is production.
            "production.",
            "production/",
            "./production",
            "prod.eu",
            "prod_eu",
            "eu/production",
            "production-eu",
        ] {
            assert!(a.environment_matches(Some(env)), "{env}");
        }
        for env in ["staging", "preprod", "production2", "eu-staging"] {
            assert!(!a.environment_matches(Some(env)), "{env}");
        }
        // No environment is held (fail closed); a rule naming none holds every environment.
        assert!(a.environment_matches(None));
        assert!(
            approval_rule("")
                .unwrap()
                .environment_matches(Some("staging"))
        );
    }

    #[test]
    fn values_match_whole_or_by_word() {
        let globs: Vec<String> = ["production", "prod", "prod-*"].map(String::from).to_vec();
        for v in [
            "production",
            " Production ",
            "deploy.production",
            "PROD",
            "prod-eu",
            "network:https:db.prod.example.com",
            "db/Prod/main",
        ] {
            assert!(ApprovalRule::value_matches(&globs, v).is_some(), "{v}");
        }
        for v in ["product.catalog", "preprod", "reproduction", "staging", ""] {
            assert!(ApprovalRule::value_matches(&globs, v).is_none(), "{v}");
        }
    }

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        assert_eq!(closest("severty", RULE_COMMON_KEYS), Some("severity"));
        assert_eq!(closest("zzzzzzzz", RULE_COMMON_KEYS), None);
    }
}
