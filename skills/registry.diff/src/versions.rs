//! Writing history: `record` (snapshot the live registry), `rollback` (make an old version
//! live again, as a new version) and `import-git` (history from the git log).
//!
//! Every writer holds the history lock from reading the latest version to writing the next,
//! so concurrent callers get distinct, ordered versions and a no-op stays a no-op. The registry
//! file is only ever replaced atomically (temporary file, fsync, rename) under its own lock,
//! always taken after the history lock, so a `kill -9` at any moment leaves the old file or
//! the new one. A rollback first records the live registry if history does not have it yet,
//! so no state is ever lost from history.
//!
//! No state change without its audit entry: each writer appends its intent entry
//! (`betty_core::record::Recorder::begin`) after deciding what will change and before the
//! first write, and returns the [`Operation`] for the caller to commit once it has recorded
//! the outcome. If the intent cannot be appended, nothing is written.

use std::path::Path;

use betty_core::discover::RegistryDir;
use betty_core::fsx::{self, LockGuard};
use betty_core::history::{History, HistoryLock, HistoryVersion, NewVersion, VersionId};
use betty_core::limits::Limits;
use betty_core::manifest::Kind;
use betty_core::record::{Operation, Recorder};
use betty_core::registry::Registry;
use betty_core::source::{SourceName, into_text, read_bytes};
use serde_json::{Map, Value, json};

use crate::diff::{RegistryDiff, diff_registries};
use crate::git;

fn empty_registry() -> Value {
    json!({"registry_version": "1.0.0", "skills": []})
}

/// The live `skills.json`: its bytes and parsed value, read under a shared lock.
pub fn read_live(dir: &RegistryDir) -> betty_core::Result<(Vec<u8>, Value)> {
    let _lock = LockGuard::shared(&dir.skills_json())?;
    read_live_unlocked(dir)
}

/// As [`read_live`], for a caller that already holds the registry's lock.
fn read_live_unlocked(dir: &RegistryDir) -> betty_core::Result<(Vec<u8>, Value)> {
    let path = dir.skills_json();
    let name = SourceName::from(path.as_path());
    let bytes = read_bytes(&name, &Limits::REGISTRY)?;
    let text = into_text(&name, bytes.clone())?;
    let registry = Registry::parse(&path, Kind::Skill, &text)?;
    Ok((bytes, registry.as_value()))
}

fn source(kind: &str) -> Map<String, Value> {
    Map::from_iter([("kind".to_string(), Value::String(kind.to_string()))])
}

/// What `record` did.
#[derive(Debug)]
pub enum Recorded {
    /// A new version, what changed since the previous one, and the operation to commit
    /// (`None` inside a rollback, whose own operation covers it).
    New(Box<HistoryVersion>, RegistryDiff, Option<Box<Operation>>),
    /// Nothing changed since this version.
    Unchanged(String),
}

/// The intent entry of an operation, appended once, before its first write.
struct Intent<'a> {
    recorder: &'a Recorder,
    operation: &'static str,
    begun: Option<Operation>,
}

impl<'a> Intent<'a> {
    fn new(recorder: &'a Recorder, operation: &'static str) -> Intent<'a> {
        Intent {
            recorder,
            operation,
            begun: None,
        }
    }

    /// Appends the intent entry; `skills` are the skills the change touches, when known before
    /// it (the entry names the skill when there is one, and `details.change.skills` lists them
    /// all).
    fn before_change(
        &mut self,
        skills: &[String],
        change: impl FnOnce() -> Value,
    ) -> betty_core::Result<()> {
        if self.begun.is_none() {
            let mut change = change();
            if let Some(obj) = change.as_object_mut()
                && !skills.is_empty()
            {
                obj.insert("skills".into(), json!(skills));
            }
            self.begun = Some(
                self.recorder
                    .begin(self.operation, one_skill(skills), change)?,
            );
        }
        Ok(())
    }
}

/// The skills some changes touch, each once, in order of appearance.
pub fn changed_skills(changes: &[betty_core::history::Change]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in changes {
        if !out.contains(&c.skill) {
            out.push(c.skill.clone());
        }
    }
    out
}

/// What an audit entry's `skill` says of a registry write: the skill, when it touches one.
pub fn one_skill(skills: &[String]) -> Option<&str> {
    match skills {
        [one] => Some(one.as_str()),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn record_locked(
    history: &History,
    lock: &HistoryLock,
    bytes: Vec<u8>,
    value: Value,
    who: &str,
    now: jiff::Timestamp,
    src: Map<String, Value>,
    intent: &mut Intent<'_>,
) -> betty_core::Result<Recorded> {
    let latest = history.latest()?;
    let previous = latest
        .as_ref()
        .map(|v| v.registry.clone())
        .unwrap_or_else(empty_registry);
    let diff = diff_registries(&previous, &value, Kind::Skill);
    if let Some(l) = &latest
        && diff.is_empty()
    {
        return Ok(Recorded::Unchanged(l.version.clone()));
    }
    let changes = diff.to_changes(who);
    intent.before_change(&changed_skills(&changes), || {
        json!({
            "history": "append a version",
            "registry_sha256": betty_core::canonical::sha256_hex(&bytes),
            "changes": changes.len(),
        })
    })?;
    let version = history.append(
        lock,
        NewVersion {
            timestamp: now,
            changed_by: who.to_string(),
            changes,
            source: src,
            registry_bytes: bytes,
            registry: value,
        },
    )?;
    Ok(Recorded::New(Box::new(version), diff, None))
}

/// Snapshots the live registry as a new version, unless it equals the latest one.
pub fn record(
    dir: &RegistryDir,
    recorder: &Recorder,
    now: jiff::Timestamp,
) -> betty_core::Result<Recorded> {
    let history = History::new(&dir.history_dir());
    let lock = history.lock()?;
    let (bytes, value) = read_live(dir)?;
    let who = recorder.who().user.clone();
    let mut intent = Intent::new(recorder, "registry.record");
    let recorded = record_locked(
        &history,
        &lock,
        bytes,
        value,
        &who,
        now,
        source("record"),
        &mut intent,
    )?;
    Ok(match recorded {
        Recorded::New(v, diff, _) => Recorded::New(v, diff, intent.begun.map(Box::new)),
        unchanged => unchanged,
    })
}

/// What `rollback` did or would do.
#[derive(Debug)]
pub struct RolledBack {
    pub target: String,
    /// From the live registry to the target.
    pub diff: RegistryDiff,
    /// The version recorded for the live registry first, if history lacked it.
    pub recorded_before: Option<String>,
    /// The new version (None for a dry run or when the registry already was the target).
    pub version: Option<HistoryVersion>,
    /// The operation to commit once recorded (with `version`).
    pub operation: Option<Operation>,
}

/// Makes `target`'s registry live again, byte for byte, and records it as a new version.
pub fn rollback(
    dir: &RegistryDir,
    target: VersionId,
    recorder: &Recorder,
    now: jiff::Timestamp,
    dry_run: bool,
    gate: impl FnOnce(&RegistryDiff, &Value) -> betty_core::Result<bool>,
) -> betty_core::Result<RolledBack> {
    let who = recorder.who().user.as_str();
    let history = History::new(&dir.history_dir());
    let lock = history.lock()?;
    let old = history.load(target)?;
    let path = dir.skills_json();
    let bytes = old.registry_bytes(&history.path_of(target))?;
    // Held from reading the live registry to replacing it: a registry update in between
    // would otherwise be overwritten without ever reaching history.
    let registry_lock = LockGuard::exclusive(&path)?;
    let (live_bytes, live) = read_live_unlocked(dir)?;
    let diff = diff_registries(&live, &old.registry, Kind::Skill);
    let mut out = RolledBack {
        target: target.to_string(),
        diff,
        recorded_before: None,
        version: None,
        operation: None,
    };
    if dry_run || live_bytes == bytes {
        return Ok(out);
    }
    // The escalation and approval checks of an update (`crate::gate`), under the locks.
    if !gate(&out.diff, &old.registry)? {
        return Ok(out);
    }
    // The intent entry, before anything is written (if it cannot be appended: nothing is).
    let mut intent = Intent::new(recorder, "registry.rollback");
    let changes = out.diff.to_changes(who);
    intent.before_change(&changed_skills(&changes), || {
        json!({
            "rollback_of": target.to_string(),
            "file": "skills.json",
            "from_sha256": betty_core::canonical::sha256_hex(&live_bytes),
            "to_sha256": betty_core::canonical::sha256_hex(&bytes),
            "changes": changes.len(),
        })
    })?;
    // Keep the live state in history before replacing it.
    if let Recorded::New(v, _, _) = record_locked(
        &history,
        &lock,
        live_bytes,
        live,
        who,
        now,
        source("record"),
        &mut intent,
    )? {
        out.recorded_before = Some(v.version.clone());
    }
    fsx::atomic_write(&path, &bytes)?;
    drop(registry_lock);
    let mut src = source("rollback");
    src.insert("rollback_of".into(), target.to_string().into());
    let version = history.append(
        &lock,
        NewVersion {
            timestamp: now,
            changed_by: who.to_string(),
            changes,
            source: src,
            registry_bytes: bytes,
            registry: old.registry.clone(),
        },
    )?;
    out.version = Some(version);
    out.operation = intent.begun;
    Ok(out)
}

/// Who made each change of a comparison, as history records it: for each skill and field
/// path, the `changed_by` of the last change to it in the versions after FROM up to TO.
#[derive(Debug, Default)]
pub struct ChangedBy {
    fields: std::collections::HashMap<(String, String), String>,
    skills: std::collections::HashMap<String, String>,
}

impl ChangedBy {
    /// The changes recorded in the versions after `from` up to and including `to` (none when
    /// `to` is not after `from`: a comparison backwards undoes changes, it makes none).
    pub fn between(
        history: &History,
        from: VersionId,
        to: VersionId,
    ) -> betty_core::Result<ChangedBy> {
        let mut out = ChangedBy::default();
        for id in history.list()? {
            if id <= from || id > to {
                continue;
            }
            for c in history.load(id)?.changes {
                if let Some(field) = &c.field {
                    out.fields
                        .insert((c.skill.clone(), field.clone()), c.changed_by.clone());
                }
                out.skills.insert(c.skill, c.changed_by);
            }
        }
        Ok(out)
    }

    /// Who last changed `field` of `skill` (or, without a field or a record of it, the skill).
    pub fn of(&self, skill: &str, field: Option<&str>) -> Option<&str> {
        field
            .and_then(|f| self.fields.get(&(skill.to_string(), f.to_string())))
            .or_else(|| self.skills.get(skill))
            .map(String::as_str)
    }
}

/// One commit `import-git` looked at.
#[derive(Debug)]
pub struct Imported {
    pub commit: git::Commit,
    pub outcome: ImportOutcome,
}

#[derive(Debug)]
pub enum ImportOutcome {
    /// Recorded as this version, with what changed since the previous readable commit.
    Recorded(Box<HistoryVersion>, RegistryDiff),
    /// Already in history (imported before).
    AlreadyImported(String),
    /// The registry at this commit could not be read (the message has its line:column).
    Unreadable(String),
    /// Committed before the latest version already in history: appending it would make an
    /// old state the latest, and history is never rewritten.
    Older(String),
}

/// Builds history from the git log of `registry/skills.json`: one version per commit that
/// reads, dated by the commit, `changed_by` its committer. Commits already imported, and
/// commits older than the latest version in history, are skipped, so importing again only
/// adds what is new and the latest version stays the newest state.
///
/// The operation (begun before the first version is appended) comes back for the caller to
/// commit.
pub fn import_git(
    dir: &RegistryDir,
    recorder: &Recorder,
    range: Option<&str>,
) -> anyhow::Result<(Vec<Imported>, Option<Operation>)> {
    let commits = git::log(&dir.root, "skills.json", range)?;
    let blobs = git::show_many(&dir.root, &commits, "skills.json")?;
    let history = History::new(&dir.history_dir());
    let lock = history.lock()?;
    let mut imported_commits = std::collections::HashMap::new();
    for id in history.list()? {
        let v = history.load(id)?;
        if let Some(c) = v.source.get("commit").and_then(Value::as_str) {
            imported_commits.insert(c.to_string(), v.version.clone());
        }
    }
    let latest = history.latest()?;
    let history_ends = latest.as_ref().and_then(|v| {
        betty_core::time::parse_timestamp(&v.timestamp)
            .ok()
            .map(|t| (t, v.version.clone()))
    });
    let mut previous = latest.map(|v| v.registry).unwrap_or_else(empty_registry);
    // Commits listed before one already imported are older than it, whatever their dates say.
    let last_imported = commits
        .iter()
        .rposition(|c| imported_commits.contains_key(&c.hash));
    let mut out = Vec::with_capacity(commits.len());
    let mut intent = Intent::new(recorder, "registry.import_git");
    let listed = commits.len();
    for (i, (commit, blob)) in commits.into_iter().zip(blobs).enumerate() {
        if let Some(v) = imported_commits.get(&commit.hash) {
            out.push(Imported {
                outcome: ImportOutcome::AlreadyImported(v.clone()),
                commit,
            });
            continue;
        }
        let at = betty_core::time::parse_timestamp(&commit.date)
            .map_err(|e| anyhow::anyhow!("commit {}: {e}", commit.hash))?;
        let before_imported = last_imported.is_some_and(|last| i < last);
        if let Some((end, version)) = &history_ends
            && (at < *end || before_imported)
        {
            out.push(Imported {
                commit,
                outcome: ImportOutcome::Older(version.clone()),
            });
            continue;
        }
        let short = &commit.hash[..commit.hash.len().min(7)];
        let label = format!("{short}:registry/skills.json");
        let parsed = match blob {
            None => Err(format!(
                "{label}: the file does not exist at this commit (deleted)"
            )),
            Some(bytes) => into_text(&SourceName::Named(label.as_str().into()), bytes.clone())
                .and_then(|text| Registry::parse(Path::new(&label), Kind::Skill, &text))
                .map(|r| (bytes, r.as_value()))
                .map_err(|e| e.to_string()),
        };
        let (bytes, value) = match parsed {
            Ok(p) => p,
            Err(message) => {
                out.push(Imported {
                    commit,
                    outcome: ImportOutcome::Unreadable(message),
                });
                continue;
            }
        };
        let who = if commit.committer_email.is_empty() {
            commit.committer_name.clone()
        } else {
            commit.committer_email.clone()
        };
        let diff = diff_registries(&previous, &value, Kind::Skill);
        let mut src = source("import-git");
        src.insert("commit".into(), commit.hash.clone().into());
        src.insert("subject".into(), commit.subject.clone().into());
        // Which skills the later commits touch is not known yet: the versions list them.
        intent.before_change(
            &[],
            || json!({"history": "append versions from git", "range": range, "commits": listed}),
        )?;
        let version = history.append(
            &lock,
            NewVersion {
                timestamp: at,
                changed_by: who.clone(),
                changes: diff.to_changes(&who),
                source: src,
                registry_bytes: bytes,
                registry: value.clone(),
            },
        )?;
        previous = value;
        out.push(Imported {
            commit,
            outcome: ImportOutcome::Recorded(Box::new(version), diff),
        });
    }
    Ok((out, intent.begun))
}

/// A version without its registry snapshot: what `log` shows.
#[derive(Debug)]
pub struct VersionSummary {
    pub version: String,
    pub timestamp: String,
    pub changed_by: String,
    pub changes: Vec<betty_core::history::Change>,
    pub source: Map<String, Value>,
    pub registry_sha256: String,
    /// Entries in the registry at this version.
    pub skills: usize,
}

// No `flatten` here: serde buffers flattened maps, and a raw value cannot come from a buffer.
#[derive(serde::Deserialize)]
struct SummaryFile<'a> {
    version: String,
    timestamp: String,
    changed_by: String,
    changes: Vec<betty_core::history::Change>,
    #[serde(default)]
    source: Map<String, Value>,
    registry_sha256: String,
    #[serde(borrow)]
    registry: &'a serde_json::value::RawValue,
}

fn summary_from_text(text: &str, id: VersionId) -> Option<VersionSummary> {
    let f: SummaryFile<'_> = serde_json::from_str(text).ok()?;
    let skills = crate::diff::RawRegistry::parse(f.registry.get())?
        .entries
        .len();
    (f.version == id.to_string()).then_some(VersionSummary {
        version: f.version,
        timestamp: f.timestamp,
        changed_by: f.changed_by,
        changes: f.changes,
        source: f.source,
        registry_sha256: f.registry_sha256,
        skills,
    })
}

/// Reads a version's record and counts its entries without building the registry, so `log`
/// over many large versions stays fast. A file that does not read this way is loaded the
/// full way, which reports exactly what is wrong with it.
pub fn load_summary(history: &History, id: VersionId) -> betty_core::Result<VersionSummary> {
    let path = history.path_of(id);
    let name = SourceName::from(path.as_path());
    let light = betty_core::source::read_text(&name, &Limits::REGISTRY)
        .ok()
        .and_then(|text| summary_from_text(&text, id));
    match light {
        Some(s) => Ok(s),
        None => {
            let v = history.load(id)?;
            Ok(VersionSummary {
                skills: crate::diff::entries(&v.registry, Kind::Skill).len(),
                version: v.version,
                timestamp: v.timestamp,
                changed_by: v.changed_by,
                changes: v.changes,
                source: v.source,
                registry_sha256: v.registry_sha256,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_read_without_building_the_registry() {
        let t = tempfile::tempdir().unwrap();
        let history = History::new(&t.path().join("history"));
        let lock = history.lock().unwrap();
        let text =
            "{\"registry_version\": \"1.0.0\", \"skills\": [{\"name\": \"a\"}, {\"name\": \"b\"}]}";
        let v = history
            .append(
                &lock,
                NewVersion {
                    timestamp: "2025-10-23T00:00:00Z".parse().unwrap(),
                    changed_by: "me".into(),
                    changes: Vec::new(),
                    source: source("record"),
                    registry_bytes: text.as_bytes().to_vec(),
                    registry: serde_json::from_str(text).unwrap(),
                },
            )
            .unwrap();
        let id = v.id().unwrap();
        let file = std::fs::read_to_string(history.path_of(id)).unwrap();
        let s = summary_from_text(&file, id).expect("the fast path reads it");
        assert_eq!((s.skills, s.changed_by.as_str()), (2, "me"));
        assert_eq!(load_summary(&history, id).unwrap().skills, 2);
    }
}
