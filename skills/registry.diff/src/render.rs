//! Presentation: the seed's text style (`Changed: NAME` / `  field: old → new`, `Added: NAME`,
//! `Removed: NAME`), JSON documents described by `schemas/registry-diff-output.schema.json`,
//! and one-line version summaries for `log` and `import-git`.

use betty_core::escape::Escaped;
use betty_core::history::{Change, ChangeAction, HistoryVersion};

use crate::snapshot::{Provenance, Snapshot};
use crate::versions::{ChangedBy, VersionSummary};
use betty_core::manifest::Kind;
use serde_json::{Value, json};

use crate::diff::{RegistryDiff, SkillDiff};
use crate::semver::{self, Bump};

/// Version of the JSON output documents.
pub const OUTPUT_SCHEMA_VERSION: u32 = 1;
/// Longest value shown in text before it is cut (JSON output is never cut).
const MAX_SHOWN: usize = 160;

/// ANSI colours, or none.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// A value as text: strings bare, everything else compact JSON, long values cut; control
/// characters escaped (`\n`, `\x1b`, bidi overrides), secrets redacted.
pub fn show_value(v: Option<&Value>) -> String {
    let s = match v {
        None => return "(none)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let s = shown(&s);
    if s.chars().count() > MAX_SHOWN {
        let cut: String = s.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// The seed's text style, one skill after another.
pub fn diff_text(diff: &RegistryDiff, style: Style) -> String {
    let mut out = String::new();
    if diff.is_empty() {
        out.push_str("No differences.\n");
        return out;
    }
    for s in &diff.skills {
        skill_text(s, style, None, &mut out);
    }
    out
}

/// A comparison as text: a line for each side that is a history version or a git commit
/// (`From: 2025.10.23.001 at TIME by AUTHOR`), then the seed's lines, each change followed by
/// who made it when history knows (`(by AUTHOR)`).
pub fn compare_text(
    diff: &RegistryDiff,
    from: &Snapshot,
    to: &Snapshot,
    by: &ChangedBy,
    style: Style,
) -> String {
    let mut out = String::new();
    for (side, snap) in [("From", from), ("To", to)] {
        if let Some(p) = &snap.provenance {
            out.push_str(&format!("{side}: {}\n", provenance_text(snap, p)));
        }
    }
    if diff.is_empty() {
        out.push_str("No differences.\n");
        return out;
    }
    for s in &diff.skills {
        skill_text(s, style, Some(by), &mut out);
    }
    out
}

/// `2025.10.23.001 at 2025-10-23T08:00:00Z by alice@example.com`, or for a git revision
/// `HEAD~1: commit 1a2b3c4d5e6f at ... by ...`.
fn provenance_text(snap: &Snapshot, p: &Provenance) -> String {
    let what = if snap.origin == "git" {
        let short: String = p.version.chars().take(12).collect();
        format!("{}: commit {}", shown(&snap.label), shown(&short))
    } else {
        shown(&p.version)
    };
    format!("{what} at {} by {}", shown(&p.timestamp), shown(&p.author))
}

/// A compared side in JSON: how it was named, where it came from, and its version, time and
/// author when it has them (null otherwise).
fn side_json(snap: &Snapshot) -> Value {
    let p = snap.provenance.as_ref();
    json!({
        "spec": snap.label,
        "origin": snap.origin,
        "version": p.map(|p| &p.version),
        "timestamp": p.map(|p| &p.timestamp),
        "author": p.map(|p| &p.author),
    })
}

/// The JSON document of a comparison ([`diff_json`]) with its two sides (`from_side`,
/// `to_side`) and each change's `changed_by` (null where history does not know it).
pub fn compare_json(diff: &RegistryDiff, from: &Snapshot, to: &Snapshot, by: &ChangedBy) -> Value {
    let mut doc = diff_json(diff, from.kind, &from.label, &to.label);
    doc["from_side"] = side_json(from);
    doc["to_side"] = side_json(to);
    if let Some(skills) = doc["skills"].as_array_mut() {
        for (s, j) in diff.skills.iter().zip(skills.iter_mut()) {
            j["changed_by"] = json!(by.of(&s.name, None));
            if let Some(fields) = j["fields"].as_array_mut() {
                for (f, jf) in s.fields.iter().zip(fields.iter_mut()) {
                    jf["changed_by"] = json!(by.of(&s.name, Some(&f.path)));
                }
            }
        }
    }
    doc
}

/// User text (names, field paths, messages) as text output shows it: secrets redacted,
/// control characters escaped.
pub fn shown(s: &str) -> String {
    Escaped(&betty_core::redact::redact_text(s)).to_string()
}

fn skill_text(s: &SkillDiff, style: Style, by: Option<&ChangedBy>, out: &mut String) {
    let name = Escaped(&s.name);
    let who = |field: Option<&str>| {
        by.and_then(|b| b.of(&s.name, field))
            .map(|w| format!("  (by {})", shown(w)))
            .unwrap_or_default()
    };
    match s.action {
        ChangeAction::Changed => {
            out.push_str(&format!("{} {name}\n", style.paint("33", "Changed:")));
            for f in &s.fields {
                out.push_str(&format!(
                    "  {}: {} → {}{}\n",
                    Escaped(&f.path),
                    show_value(f.old.as_ref()),
                    show_value(f.new.as_ref()),
                    who(Some(&f.path))
                ));
            }
        }
        ChangeAction::Added => out.push_str(&format!(
            "{} {name}{}\n",
            style.paint("32", "Added:"),
            who(None)
        )),
        ChangeAction::Removed => out.push_str(&format!(
            "{} {name}{}\n",
            style.paint("31", "Removed:"),
            who(None)
        )),
    }
}

/// `2 changed, 1 added, 6 removed`.
pub fn counts(diff: &RegistryDiff) -> String {
    counts_of(
        diff.count(ChangeAction::Changed),
        diff.count(ChangeAction::Added),
        diff.count(ChangeAction::Removed),
    )
}

fn counts_of(changed: usize, added: usize, removed: usize) -> String {
    let mut parts = Vec::new();
    for (n, what) in [(changed, "changed"), (added, "added"), (removed, "removed")] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        "no changes".to_string()
    } else {
        parts.join(", ")
    }
}

/// The JSON document of a comparison.
pub fn diff_json(diff: &RegistryDiff, kind: Kind, from: &str, to: &str) -> Value {
    let skills: Vec<Value> = diff
        .skills
        .iter()
        .map(|s| {
            let v = semver::verdict(s, kind);
            let fields: Vec<Value> = s
                .fields
                .iter()
                .map(|f| {
                    let bump = v
                        .changes
                        .iter()
                        .filter(|c| c.field == f.top_field())
                        .map(|c| c.bump)
                        .max()
                        .unwrap_or(if f.top_field() == "version" {
                            Bump::None
                        } else {
                            Bump::Patch
                        });
                    json!({
                        "field": f.path,
                        "action": f.action.as_str(),
                        "old_value": f.old,
                        "new_value": f.new,
                        "bump": bump,
                    })
                })
                .collect();
            let mut o = json!({
                "name": s.name,
                "action": s.action.as_str(),
                "old_version": v.old_version,
                "new_version": v.new_version,
                "required_bump": v.required_bump,
                "fields": fields,
                "reasons": v.changes,
            });
            if s.action != ChangeAction::Changed {
                o["entry"] = s
                    .new
                    .clone()
                    .or_else(|| s.old.clone())
                    .unwrap_or(Value::Null);
            }
            o
        })
        .collect();
    json!({
        "schema_version": OUTPUT_SCHEMA_VERSION,
        "kind": "diff",
        "from": from,
        "to": to,
        "summary": {
            "changed": diff.count(ChangeAction::Changed),
            "added": diff.count(ChangeAction::Added),
            "removed": diff.count(ChangeAction::Removed),
            "unchanged": diff.unchanged,
        },
        "skills": skills,
    })
}

/// The summary of a version just written.
pub fn summary_of(v: &HistoryVersion) -> VersionSummary {
    VersionSummary {
        version: v.version.clone(),
        timestamp: v.timestamp.clone(),
        changed_by: v.changed_by.clone(),
        changes: v.changes.clone(),
        source: v.source.clone(),
        registry_sha256: v.registry_sha256.clone(),
        skills: crate::diff::entries(&v.registry, Kind::Skill).len(),
    }
}

/// One line about a version: `2025.10.23.010  2025-10-23T02:30:49Z  dev@x  11 skills  6 removed (a, b, …)`.
pub fn version_line(v: &VersionSummary) -> String {
    let skill_count = v.skills;
    let (mut changed, mut added, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for c in &v.changes {
        let list = match c.action {
            ChangeAction::Changed => &mut changed,
            ChangeAction::Added => &mut added,
            ChangeAction::Removed => &mut removed,
        };
        if !list.contains(&c.skill.as_str()) {
            list.push(c.skill.as_str());
        }
    }
    let mut summary = counts_of(changed.len(), added.len(), removed.len());
    if !removed.is_empty() {
        let mut names: Vec<&str> = removed.iter().take(5).copied().collect();
        if removed.len() > 5 {
            names.push("…");
        }
        summary.push_str(&format!("; removed: {}", Escaped(&names.join(", "))));
    }
    let origin = match v.source.get("kind").and_then(Value::as_str) {
        Some("rollback") => format!(
            "  [rollback to {}]",
            Escaped(
                v.source
                    .get("rollback_of")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            )
        ),
        Some("import-git") => format!(
            "  [git {}]",
            Escaped(
                v.source
                    .get("commit")
                    .and_then(Value::as_str)
                    .map(|c| c.char_indices().nth(7).map_or(c, |(i, _)| &c[..i]))
                    .unwrap_or("?")
            )
        ),
        _ => String::new(),
    };
    format!(
        "{}  {}  {}  {} skills  {summary}{origin}",
        Escaped(&v.version),
        Escaped(&v.timestamp),
        shown(&v.changed_by),
        skill_count
    )
}

/// A version as JSON for `log` (without the registry snapshot).
pub fn version_json(v: &VersionSummary, changes: &[&Change]) -> Value {
    json!({
        "version": v.version,
        "timestamp": v.timestamp,
        "changed_by": v.changed_by,
        "source": v.source,
        "skills": v.skills,
        "registry_sha256": v.registry_sha256,
        "changes": changes,
    })
}

/// `check`'s report.
pub fn check_text(
    verdicts: &[semver::SkillVerdict],
    problems: &[semver::Problem],
    style: Style,
) -> String {
    let mut out = String::new();
    for v in verdicts {
        let mine: Vec<&semver::Problem> = problems.iter().filter(|p| p.skill == v.skill).collect();
        let mark = if mine.is_empty() { "✅" } else { "❌" };
        let versions = match v.action {
            ChangeAction::Added => format!(
                "added at {}",
                Escaped(v.new_version.as_deref().unwrap_or("(no version)"))
            ),
            ChangeAction::Removed => "removed".to_string(),
            ChangeAction::Changed => format!(
                "{} → {}, needs {}",
                Escaped(v.old_version.as_deref().unwrap_or("(none)")),
                Escaped(v.new_version.as_deref().unwrap_or("(none)")),
                v.required_bump
            ),
        };
        out.push_str(&format!("{mark} {} ({versions})\n", Escaped(&v.skill)));
        for p in &mine {
            out.push_str(&format!(
                "   {} {}: {}\n",
                style.paint("31", "error"),
                p.rule,
                shown(&p.message)
            ));
        }
        for c in &v.changes {
            out.push_str(&format!("   - {} ({})\n", shown(&c.reason), c.bump));
        }
    }
    if problems.is_empty() {
        out.push_str(&format!(
            "✅ {} skill(s) checked: every version bump covers its changes\n",
            verdicts.len()
        ));
    } else {
        out.push_str(&format!(
            "❌ {} problem(s) in {} skill(s)\n",
            problems.len(),
            verdicts
                .iter()
                .filter(|v| problems.iter().any(|p| p.skill == v.skill))
                .count()
        ));
    }
    out
}

/// The rules table (Markdown), as the README shows it.
pub fn rules_markdown() -> String {
    let mut out = String::from("| change | bump | why |\n|---|---|---|\n");
    for (change, bump, why) in semver::RULES {
        out.push_str(&format!("| {change} | {bump} | {why} |\n"));
    }
    out
}
