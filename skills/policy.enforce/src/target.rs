//! What policies are checked against: manifests on disk or stdin, registry entries, workflows,
//! and a bare name before anything exists. Each [`Target`] keeps its parsed document so every
//! finding points at `file:line:column`, registry entries included (the registry is read with
//! positions too).
//!
//! Also here: the registered world a check needs ([`RegistryView`]) and the approval requests
//! of `registry/approvals/` ([`Approvals`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use betty_core::approval::{ApprovalRequest, ApprovalStore, Derived, Status, Trust};
use betty_core::discover::RegistryDir;
use betty_core::limits::Limits;
use betty_core::manifest::{Kind, Manifest, type_name};
use betty_core::registry::Registry;
use betty_core::{Document, Error, Pos, SourceName};
use jiff::Timestamp;
use serde_json::Value;

use crate::policy::{Action, ApprovalRule, TargetKind};

/// Where a target came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A manifest or workflow file.
    File,
    Stdin,
    /// An entry of `skills.json` / `agents.json`.
    Registry,
    /// A name given on the command line (`--action create --skill-name X`).
    Argument,
}

/// One thing to check.
#[derive(Clone, Debug)]
pub struct Target {
    pub kind: TargetKind,
    pub name: String,
    pub doc: Arc<Document>,
    /// JSON Pointer of the target inside `doc` (`""`, or `/skills/3` for a registry entry).
    pub base: String,
    pub origin: Origin,
    /// How the target is named in findings: a path relative to the working folder, `<stdin>`,
    /// `--skill-name`.
    pub label: String,
    /// For registry entries: the registry file re-read with positions, only when a finding
    /// needs one (parsing a large registry as YAML costs more than checking one manifest).
    pub positioned: Option<Arc<LazyPositions>>,
}

/// A JSON file whose positions are computed on first use.
#[derive(Debug)]
pub struct LazyPositions {
    name: SourceName,
    text: String,
    doc: std::sync::OnceLock<Option<Document>>,
    /// Byte offset of each line's start: a snippet is found without scanning the file from
    /// its top (one scan per finding made an audit of a large registry quadratic).
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

impl LazyPositions {
    fn get(&self) -> Option<&Document> {
        self.doc
            .get_or_init(|| {
                Document::parse_yaml(self.name.clone(), self.text.clone(), &Limits::REGISTRY).ok()
            })
            .as_ref()
    }

    fn line_text(&self, line: u32) -> Option<&str> {
        let starts = self
            .line_starts
            .get_or_init(|| std::iter::once(0).chain(memchr_lines(&self.text)).collect());
        let start = *starts.get((line as usize).checked_sub(1)?)?;
        let rest = self.text.get(start..)?;
        let end = rest.find('\n').unwrap_or(rest.len());
        Some(rest[..end].trim_end_matches('\r'))
    }
}

fn memchr_lines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i + 1)
        .filter(move |i| *i < text.len())
}

static NULL: Value = Value::Null;

impl Target {
    pub fn value(&self) -> &Value {
        if self.base.is_empty() {
            &self.doc.value
        } else {
            self.doc.value.pointer(&self.base).unwrap_or(&NULL)
        }
    }

    /// Position of a pointer inside the target.
    pub fn pos(&self, pointer: &str) -> Pos {
        let full = format!("{}{pointer}", self.base);
        match self.positioned.as_ref().and_then(|p| p.get()) {
            Some(doc) => doc.pos(&full),
            None => self.doc.pos(&full),
        }
    }

    pub fn line_text(&self, line: u32) -> Option<&str> {
        match &self.positioned {
            Some(p) if line > 0 => p.line_text(line),
            Some(_) => None,
            None => self.doc.line_text(line),
        }
    }

    /// The canonical digest an approval binds to (registry-added keys left out, so a manifest
    /// and its unchanged registry entry have one digest).
    pub fn digest(&self) -> String {
        let value = self.value();
        let has_registry_keys = value.as_object().is_some_and(|m| {
            betty_core::registry::REGISTRY_ADDED_KEYS
                .iter()
                .any(|k| m.contains_key(*k))
        });
        if has_registry_keys {
            betty_core::registry::entry_digest(value)
        } else {
            betty_core::canonical::digest(value)
        }
    }

    pub fn is_registered_entry(&self) -> bool {
        self.origin == Origin::Registry
    }

    /// A target for a name alone: the pre-creation check.
    pub fn from_name(kind: TargetKind, name: &str, flag: &str) -> Target {
        let value = serde_json::json!({ "name": name });
        Target {
            kind,
            name: name.to_string(),
            doc: Arc::new(Document::from_value(SourceName::Named(flag.into()), value)),
            base: String::new(),
            origin: Origin::Argument,
            label: flag.to_string(),
            positioned: None,
        }
    }

    /// A manifest already parsed (a fixture's `manifest:` block is at `base`).
    pub fn from_document(
        doc: Arc<Document>,
        base: &str,
        kind: TargetKind,
    ) -> Result<Target, Error> {
        let value = doc.value.pointer(base).unwrap_or(&NULL);
        let (name, origin) = match kind {
            TargetKind::Workflow => (workflow_name(&doc, value), Origin::File),
            TargetKind::Skill | TargetKind::Agent => {
                let core_kind = if kind == TargetKind::Agent {
                    Kind::Agent
                } else {
                    Kind::Skill
                };
                if lacks_name(value) {
                    // A manifest without a name is the naming policy's finding (with its
                    // location), not an input error: a batch goes on with the others.
                    check_version_type(&doc, base, value)?;
                    (String::new(), Origin::File)
                } else {
                    (Manifest::check_shape(&doc, base, core_kind)?, Origin::File)
                }
            }
        };
        let origin = match doc.source {
            SourceName::Stdin => Origin::Stdin,
            _ => origin,
        };
        Ok(Target {
            kind,
            name,
            label: label_of(&doc.source),
            doc,
            base: base.to_string(),
            origin,
            positioned: None,
        })
    }
}

/// A mapping whose `name` is absent or empty text (other shapes stay input errors).
fn lacks_name(value: &Value) -> bool {
    value.as_object().is_some_and(|m| match m.get("name") {
        None => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    })
}

/// The one shape check `Manifest::check_shape` makes after the name (it stops at a missing
/// name): an unquoted `version: 1.0` is a number, never silently a version.
fn check_version_type(doc: &Document, base: &str, value: &Value) -> Result<(), Error> {
    match value.get("version") {
        Some(v) if !v.is_string() => Err(Error::Invalid {
            input: doc.source.clone(),
            pos: doc.pos(&format!("{base}/version")),
            message: format!(
                "`version` must be a string such as \"1.0.0\", found {} `{}`; YAML reads an unquoted 1.0 as a number: quote it",
                type_name(v),
                betty_core::manifest::scalar_text(v)
            ),
        }),
        _ => Ok(()),
    }
}

fn workflow_name(doc: &Document, value: &Value) -> String {
    match value.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => n.to_string(),
        _ => doc
            .source
            .path()
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workflow".into()),
    }
}

/// A path as shown in findings: relative to the working folder when under it.
pub fn label_of(source: &SourceName) -> String {
    match source {
        SourceName::File(p) => display_path(p),
        other => other.to_string(),
    }
}

pub fn display_path(p: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = p.strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    p.display().to_string()
}

/// Reads a manifest file (or `-` for stdin) as a skill or agent.
pub fn read_manifest(path: &Path, kind: TargetKind) -> Result<Target, Error> {
    let doc = if path == Path::new("-") {
        Document::read_yaml_stdin(&Limits::MANIFEST)?
    } else {
        Document::read_yaml(path, &Limits::MANIFEST)?
    };
    Target::from_document(Arc::new(doc), "", kind)
}

/// Reads a workflow file (or `-` for stdin): a mapping with `steps: [{skill, ...}]`, where a
/// step runs a skill (`skill: NAME`) or an agent (`agent: NAME`, which upstream's
/// `workflow.compose` runs through `run.agent`), and may hold nested `steps` instead of (or
/// besides) either. Returns every step's skill or agent with its pointer, nested ones included.
pub fn read_workflow(path: &Path) -> Result<(Target, Vec<Step>), Error> {
    let doc = if path == Path::new("-") {
        Document::read_yaml_stdin(&Limits::MANIFEST)?
    } else {
        Document::read_yaml(path, &Limits::MANIFEST)?
    };
    let invalid = |ptr: &str, message: String| Error::Invalid {
        input: doc.source.clone(),
        pos: doc.pos(ptr),
        message,
    };
    let Some(map) = doc.value.as_object() else {
        return Err(invalid(
            "",
            format!(
                "a workflow must be a mapping with `steps:`, found {}",
                type_name(&doc.value)
            ),
        ));
    };
    if !map.contains_key("steps") {
        return Err(invalid(
            "",
            "a workflow needs `steps: [{skill: NAME, ...}]`".into(),
        ));
    }
    let mut work = vec![(String::new(), &doc.value)];
    while let Some((ptr, node)) = work.pop() {
        let steps = match node.get("steps") {
            Some(Value::Array(steps)) => steps,
            Some(other) => {
                return Err(invalid(
                    &format!("{ptr}/steps"),
                    format!("`steps` must be a list, found {}", type_name(other)),
                ));
            }
            None => continue,
        };
        for (i, step) in steps.iter().enumerate().rev() {
            let at = format!("{ptr}/steps/{i}");
            let mut runs = 0;
            for key in ["skill", "agent"] {
                match step.get(key) {
                    Some(Value::String(_)) => runs += 1,
                    Some(other) => {
                        return Err(invalid(
                            &format!("{at}/{key}"),
                            format!(
                                "a step's `{key}` must be a name, found {}",
                                type_name(other)
                            ),
                        ));
                    }
                    None => {}
                }
            }
            if runs == 2 {
                return Err(invalid(
                    &at,
                    "a step runs a `skill` or an `agent`, not both (upstream's `workflow.compose` refuses it too)".into(),
                ));
            }
            if runs == 0 && step.get("steps").is_none() {
                return Err(invalid(
                    &at,
                    "a step needs `skill: NAME` or `agent: NAME` (or nested `steps:`)".into(),
                ));
            }
            work.push((at, step));
        }
    }
    let steps = workflow_steps(&doc.value);
    let target = Target::from_document(Arc::new(doc), "", TargetKind::Workflow)?;
    Ok((target, steps))
}

/// What one workflow step runs: a skill or an agent, by name, with the pointer of that name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub kind: TargetKind,
    pub name: String,
    pub pointer: String,
}

/// Every step of a workflow that runs a skill (`skill:`) or an agent (`agent:`), nested
/// `steps` included, in file order. Depth is bounded by the reader's nesting limit.
pub fn workflow_steps(workflow: &Value) -> Vec<Step> {
    let mut out = Vec::new();
    let mut work = vec![(String::new(), workflow)];
    while let Some((ptr, node)) = work.pop() {
        // A step's own skill or agent comes before its nested steps: file order.
        if !ptr.is_empty() {
            for (key, kind) in [("skill", TargetKind::Skill), ("agent", TargetKind::Agent)] {
                if let Some(Value::String(s)) = node.get(key) {
                    out.push(Step {
                        kind,
                        name: s.clone(),
                        pointer: format!("{ptr}/{key}"),
                    });
                }
            }
        }
        if let Some(Value::Array(steps)) = node.get("steps") {
            // Pushed in reverse so steps come out in file order.
            for (i, step) in steps.iter().enumerate().rev() {
                work.push((format!("{ptr}/steps/{i}"), step));
            }
        }
    }
    out
}

/// Every `skills/*/skill.yaml` and `agents/*/agent.yaml` under the project root, sorted.
///
/// A missing `skills/` or `agents/` folder holds nothing; one that is there but cannot be
/// listed (not a folder, no permission, an entry that cannot be read) is an error: `--all`
/// and the audit never pass over manifests they could not see.
pub fn discover_manifests(project_root: &Path) -> Result<Vec<(PathBuf, TargetKind)>, Vec<Error>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (folder, file, kind) in [
        ("skills", "skill.yaml", TargetKind::Skill),
        ("agents", "agent.yaml", TargetKind::Agent),
    ] {
        let dir = project_root.join(folder);
        match list_folder(&dir) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .into_iter()
                    .map(|p| p.join(file))
                    // Anything there is read: a FIFO or a dangling link is refused, never skipped.
                    .filter(|p| p.symlink_metadata().is_ok())
                    .collect();
                found.sort();
                out.extend(found.into_iter().map(|p| (p, kind)));
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Every `workflows/*.yaml` (and `.yml`) under the project root, sorted; a `workflows/` that is
/// there but cannot be listed is an error, as for [`discover_manifests`].
pub fn discover_workflows(project_root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found: Vec<PathBuf> = list_folder(&project_root.join("workflows"))?
        .into_iter()
        // Not only regular files: a FIFO, a link or a folder named `*.yaml` is refused when
        // read (exit 2), never skipped.
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The entries of a folder; none when it does not exist, an error when it cannot be listed.
fn list_folder(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source: e,
            });
        }
    };
    entries
        .map(|e| {
            e.map(|e| e.path()).map_err(|source| Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// Reads many manifests, spread over the available cores; every error is kept.
pub fn read_manifests(paths: &[(PathBuf, TargetKind)]) -> Result<Vec<Target>, Vec<Error>> {
    let results = betty_core::par::map(paths, 8, |(p, k)| read_manifest(p, *k));
    let mut targets = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(t) => targets.push(t),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(targets)
    } else {
        Err(errors)
    }
}

/// The registered skills and agents, as targets with positions in the registry files.
#[derive(Clone, Debug, Default)]
pub struct RegistryView {
    pub entries: Vec<Target>,
    by_name: HashMap<(TargetKind, String), usize>,
    /// `agents.json` when the registry has none (no agent is registered).
    pub agents_absent: Option<PathBuf>,
}

impl RegistryView {
    /// Loads `skills.json` and `agents.json` of a registry. With `require_skills`, a missing
    /// `skills.json` is an error: the checks that need it (escalation, drift, registration)
    /// cannot run, and "nothing registered" would pass them all. A path that exists but
    /// cannot be read (a dangling link, a folder, no permission) is always an error.
    pub fn load(dir: &RegistryDir, require_skills: bool) -> Result<RegistryView, Error> {
        let mut view = RegistryView::default();
        for (path, kind, tkind) in [
            (dir.skills_json(), Kind::Skill, TargetKind::Skill),
            (dir.agents_json(), Kind::Agent, TargetKind::Agent),
        ] {
            // `symlink_metadata`: a dangling link exists (and fails to read below), where
            // `Path::exists` would call it absent.
            match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if tkind == TargetKind::Skill && require_skills {
                        return Err(Error::Read {
                            path,
                            source: std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                "it does not exist, and this check compares with the registered versions (escalation, drift, registration), so it cannot run; restore it, or start an empty registry with `{\"registry_version\": \"1.0.0\", \"skills\": []}`",
                            ),
                        });
                    }
                    if tkind == TargetKind::Agent {
                        view.agents_absent = Some(path);
                    }
                    continue;
                }
                Err(e) => return Err(Error::Read { path, source: e }),
                Ok(_) => {}
            }
            let name = SourceName::from(path.as_path());
            let text = betty_core::source::read_text(&name, &Limits::REGISTRY)?;
            let registry = Registry::parse(&path, kind, &text)?;
            let doc = Arc::new(Document::from_value(name.clone(), registry.into_value()));
            let positioned = Arc::new(LazyPositions {
                name,
                text,
                doc: std::sync::OnceLock::new(),
                line_starts: std::sync::OnceLock::new(),
            });
            let entries = doc
                .value
                .get(kind.plural())
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let label = label_of(&doc.source);
            view.entries.reserve(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                let entry_name = entry
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let target = Target {
                    kind: tkind,
                    name: entry_name.clone(),
                    doc: doc.clone(),
                    base: format!("/{}/{i}", kind.plural()),
                    origin: Origin::Registry,
                    label: label.clone(),
                    positioned: Some(positioned.clone()),
                };
                // Names are unique (`Registry::parse` refuses a repeated one).
                view.by_name.insert((tkind, entry_name), view.entries.len());
                view.entries.push(target);
            }
        }
        Ok(view)
    }

    pub fn get(&self, kind: TargetKind, name: &str) -> Option<&Target> {
        self.by_name
            .get(&(kind, name.to_string()))
            .map(|i| &self.entries[*i])
    }

    /// A skill, else an agent, of this name.
    pub fn find(&self, name: &str) -> Option<&Target> {
        self.get(TargetKind::Skill, name)
            .or_else(|| self.get(TargetKind::Agent, name))
    }

    /// The current entries (one per name), in file order.
    pub fn current(&self) -> impl Iterator<Item = &Target> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, t)| self.by_name.get(&(t.kind, t.name.clone())) == Some(i))
            .map(|(_, t)| t)
    }
}

/// What the approvals folder says about one operation, derived from its evidence.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ApprovalState {
    Approved {
        request: String,
    },
    Pending {
        request: Option<String>,
    },
    Rejected {
        request: String,
    },
    Expired {
        request: String,
    },
    /// A request for this subject exists but cannot count: consumed (a single-use approval
    /// already used), unsigned under a signed rule, or its evidence does not hold.
    Unusable {
        request: String,
        why: String,
    },
}

/// The approval requests of `registry/approvals/*.json`, each with its state derived by
/// `betty_core::approval` from its verified signatures (never from its `status` field).
#[derive(Debug, Default)]
pub struct Approvals {
    requests: Vec<ApprovalRequest>,
    derived: Vec<Derived>,
    trust: Trust,
    /// Request indexes by subject name: an operation looks only at its own subject's
    /// requests (a scan of all of them per finding is quadratic over a batch).
    by_skill: HashMap<String, Vec<usize>>,
    /// Single-use approvals this run relied on: spent once the run passes.
    relied_on: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Approvals {
    /// Reads every request, the keys, the groups and the uses recorded in the audit log; a
    /// corrupt file is an error naming it (never skipped).
    pub fn load(dir: &Path, audit_log: &Path) -> Result<Approvals, Error> {
        let store = ApprovalStore::new(dir);
        let trust = store.trust(Some(audit_log))?;
        Ok(Approvals::new(
            store.list()?,
            trust,
            betty_core::time::now(),
        ))
    }

    pub fn new(requests: Vec<ApprovalRequest>, trust: Trust, now: Timestamp) -> Approvals {
        let mut by_skill: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in requests.iter().enumerate() {
            if let Some(s) = &r.skill {
                by_skill.entry(s.clone()).or_default().push(i);
            }
        }
        let derived = betty_core::approval::derive_all(&requests, &trust, now);
        Approvals {
            requests,
            derived,
            trust,
            by_skill,
            relied_on: Default::default(),
        }
    }

    /// Whether `groups.yaml` defines the group.
    pub fn defines_group(&self, group: &str) -> bool {
        self.trust.groups.members(group).is_some()
    }

    /// Single-use approvals the run relied on (to be consumed when it passes).
    pub fn relied_on(&self) -> Vec<String> {
        self.relied_on
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The state of the approval an operation on `subject` needs: a request for the same
    /// operation, subject name and subject digest, for the rule's group, whose derived state
    /// is approved with at least the rule's number of distinct approvers, still inside the
    /// rule's `valid_for`, signed unless the rule is in dev mode.
    pub fn state(
        &self,
        action: Action,
        subject: &str,
        digest: &str,
        rule: &ApprovalRule,
        now: Timestamp,
    ) -> ApprovalState {
        let mut pending = None;
        let mut rejected = None;
        let mut expired = None;
        let mut unusable = None;
        let mine = self
            .by_skill
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for i in mine {
            let (r, d) = (&self.requests[*i], &self.derived[*i]);
            // The exact operation: `no.deploy` is not `deploy`.
            if r.operation != action.as_str()
                || r.skill.as_deref() != Some(subject)
                || r.subject_digest != digest
                || r.approvers != rule.approvers
            {
                continue;
            }
            let id = r.id.clone();
            if rule.signed && d.unsigned {
                unusable = Some((id, "it is unsigned and this policy requires signed approvals (`signed: false` is dev mode)".to_string()));
                continue;
            }
            match d.status {
                Status::Approved => {
                    let usable = d
                        .usable_until(Some(rule.valid_for))
                        .is_some_and(|until| now < until);
                    if d.approvals.len() as u32 >= rule.required && usable {
                        if rule.single_use_for(action)
                            && let Ok(mut set) = self.relied_on.lock()
                        {
                            set.insert(id.clone());
                        }
                        return ApprovalState::Approved { request: id };
                    }
                    if !usable {
                        expired = Some(id);
                    } else {
                        pending = Some(id);
                    }
                }
                Status::Pending => pending = Some(id),
                Status::Expired => expired = Some(id),
                Status::Rejected => rejected = Some(id),
                Status::Consumed => {
                    unusable = Some((
                        id,
                        "it was already used (single-use): request a new approval".into(),
                    ))
                }
                Status::Invalid => {
                    unusable = Some((
                        id,
                        format!("its evidence does not hold: {}", d.problems.join("; ")),
                    ))
                }
                Status::Cancelled => {}
            }
        }
        if let Some(id) = pending {
            ApprovalState::Pending { request: Some(id) }
        } else if let Some(id) = rejected {
            ApprovalState::Rejected { request: id }
        } else if let Some((request, why)) = unusable {
            ApprovalState::Unusable { request, why }
        } else if let Some(id) = expired {
            ApprovalState::Expired { request: id }
        } else {
            ApprovalState::Pending { request: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(status: &str, decisions: &[(&str, &str)]) -> ApprovalRequest {
        // Recent times: an approval is usable for 24h after its quorum.
        let at = (Timestamp::now() - jiff::SignedDuration::from_secs(3600)).to_string();
        serde_json::from_value(serde_json::json!({
            "id": "apr-1", "operation": "register", "skill": "a.b", "requested_by": "dev",
            "requested_at": at, "reason": "r", "context": {},
            "subject_digest": "sha256:d", "approvers": "security", "required": 2,
            "expires_at": "2099-01-01T00:00:00Z", "status": status, "signed": false,
            "decisions": decisions.iter().map(|(by, d)| serde_json::json!({"by": by, "decision": d, "at": at})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn approvals_need_distinct_approvers_other_than_the_requester() {
        let rule = ApprovalRule {
            approvers: "security".into(),
            required: 2,
            when: Vec::new(),
            environments: Vec::new(),
            ..ApprovalRule::default()
        };
        let now = Timestamp::now();
        // Dev mode (unsigned requests, an unsigned rule): the counting rules are the same as
        // for signed ones; the signed paths are tested end to end with real keys.
        let rule = ApprovalRule {
            signed: false,
            ..rule
        };
        let group = betty_core::approval::Group {
            members: vec!["x".into(), "y".into(), "dev".into()],
            notify: None,
        };
        let trust = || Trust {
            groups: betty_core::approval::Groups(
                [("security".to_string(), group.clone())]
                    .into_iter()
                    .collect(),
            ),
            ..Trust::default()
        };
        let state = |requests: Vec<ApprovalRequest>, digest: &str| {
            Approvals::new(requests, trust(), now).state(
                Action::Register,
                "a.b",
                digest,
                &rule,
                now,
            )
        };
        let two = request("approved", &[("x", "approve"), ("y", "approve")]);
        assert!(matches!(
            state(vec![two.clone()], "sha256:d"),
            ApprovalState::Approved { .. }
        ));
        // Bound to the digest: another subject is not approved.
        assert_eq!(
            state(vec![two], "sha256:e"),
            ApprovalState::Pending { request: None }
        );
        // The same approver twice, or the requester, does not count: one approval of two, so
        // the request (whose file claims `approved`) is still pending.
        let weak = request(
            "approved",
            &[("x", "approve"), ("x", "approve"), ("dev", "approve")],
        );
        assert_eq!(
            state(vec![weak], "sha256:d"),
            ApprovalState::Pending {
                request: Some("apr-1".into())
            }
        );
        let rejected = request("rejected", &[("x", "reject")]);
        assert!(matches!(
            state(vec![rejected], "sha256:d"),
            ApprovalState::Rejected { .. }
        ));
        let mut old = request("pending", &[]);
        old.expires_at = "2000-01-01T00:00:00Z".into();
        assert!(matches!(
            state(vec![old], "sha256:d"),
            ApprovalState::Expired { .. }
        ));
        let pending = request("pending", &[]);
        assert_eq!(
            state(vec![pending], "sha256:d"),
            ApprovalState::Pending {
                request: Some("apr-1".into())
            }
        );
    }
}
