//! `registry-diff`: compare registry versions field by field, keep and read the registry's
//! history, check semver, roll back.
//!
//! The binary is thin: parse flags, resolve what to compare, call the library, print, commit
//! writes through `betty_core::record` (the library appended their intent entries before
//! writing), and map the outcome to an exit code.

use anyhow::{Context, Result, bail};
use betty_cli::{CommonArgs, Printer};
use betty_core::ExitStatus;
use betty_core::audit::AuditRecord;
use betty_core::history::{ChangeAction, History, VersionId};
use betty_core::record::{Operation, Recorder};
use betty_core::telemetry::{EventBatch, NewEvent};
use registry_diff::cli::{Cli, Command, Compare, DiffFormat, Format};
use registry_diff::diff::{RegistryDiff, diff_raw, diff_registries};
use registry_diff::render::{self, Style};
use registry_diff::semver::{self, CheckOptions};
use registry_diff::snapshot::{self, Resolver, Snapshot};
use registry_diff::versions::{self, ImportOutcome, Recorded};
use serde_json::{Map, Value, json};

const TOOL: &str = "registry-diff";

fn main() -> std::process::ExitCode {
    let cli: Cli = match betty_cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    betty_cli::init_logging(&cli.common);
    betty_cli::run(|| run(cli))
}

fn run(cli: Cli) -> Result<ExitStatus> {
    let mut out = Printer::new();
    let style = Style {
        colour: betty_cli::use_colour_on_stdout(),
    };
    let common = &cli.common;
    match cli.command {
        None => {
            common.refuse_user("registry-diff --compare")?;
            let (from, to, diff) = compare(common, &cli.diff.compare)?;
            let by = changed_by(common, &from, &to)?;
            match cli.diff.format {
                DiffFormat::Text => {
                    out.write_str(&render::compare_text(&diff, &from, &to, &by, style))?
                }
                DiffFormat::Json => out.json(&render::compare_json(&diff, &from, &to, &by))?,
                DiffFormat::Patch => out.json(&diff.to_patch(from.kind))?,
            }
            out.flush()?;
            let differs = !diff.is_empty();
            // Freeing two large registries piece by piece costs more than the diff; the
            // process ends right after this.
            std::mem::forget((from, to, diff));
            Ok(if cli.diff.exit_code && differs {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            })
        }
        Some(Command::Check {
            compare: spec,
            allow_escalation,
            allow_removals,
            format,
        }) => {
            let (from, to, diff) = compare(common, &spec)?;
            let (verdicts, problems) = semver::check(
                &diff,
                from.kind,
                CheckOptions {
                    allow_escalation,
                    allow_removals,
                },
            );
            match format {
                Format::Text => out.write_str(&render::check_text(&verdicts, &problems, style))?,
                Format::Json => out.json(&json!({
                    "schema_version": render::OUTPUT_SCHEMA_VERSION,
                    "kind": "check",
                    "from": from.label,
                    "to": to.label,
                    "passed": problems.is_empty(),
                    "problems": problems,
                    "skills": verdicts,
                }))?,
            }
            out.flush()?;
            note_check(common, &from.label, &to.label, &problems);
            Ok(if problems.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            })
        }
        Some(Command::Record { format }) => {
            let dir = common.registry_dir()?;
            let recorder = Recorder::new(&dir, TOOL, &common.identity()?);
            match versions::record(&dir, &recorder, betty_core::time::now())? {
                Recorded::Unchanged(latest) => {
                    tracing::info!("the registry equals {latest}; nothing recorded");
                    match format {
                        Format::Text => {
                            out.line(&format!("No changes since {latest}; nothing recorded."))?
                        }
                        Format::Json => out.json(&json!({
                            "schema_version": render::OUTPUT_SCHEMA_VERSION,
                            "kind": "record",
                            "recorded": false,
                            "version": latest,
                        }))?,
                    }
                }
                Recorded::New(version, diff, op) => {
                    commit(
                        &recorder,
                        op.map(|o| *o),
                        "registry.record",
                        "registry.recorded",
                        &versions::changed_skills(&version.changes),
                        json!({"version": version.version, "changes": version.changes.len(), "registry_sha256": version.registry_sha256}),
                    )?;
                    match format {
                        Format::Text => {
                            out.line(&format!(
                                "Recorded {} ({})",
                                version.version,
                                render::counts(&diff)
                            ))?;
                            if !diff.is_empty() {
                                out.write_str(&render::diff_text(&diff, style))?;
                            }
                        }
                        Format::Json => out.json(&json!({
                            "schema_version": render::OUTPUT_SCHEMA_VERSION,
                            "kind": "record",
                            "recorded": true,
                            "version": version.version,
                            "changes": version.changes,
                        }))?,
                    }
                }
            }
            out.flush()?;
            Ok(ExitStatus::Success)
        }
        Some(Command::Log {
            skill,
            max_count,
            format,
        }) => {
            common.refuse_user("registry-diff log")?;
            log(common, skill.as_deref(), max_count, format, &mut out)
        }
        Some(Command::Rollback {
            version,
            dry_run,
            allow_escalation,
            format,
        }) => {
            let id = VersionId::parse(&version)?;
            let dir = common.registry_dir()?;
            let recorder = Recorder::new(&dir, TOOL, &common.identity()?);
            let now = betty_core::time::now();
            let mut refused = None;
            let mut done = versions::rollback(&dir, id, &recorder, now, dry_run, |diff, to| {
                let verdict = registry_diff::gate::check(&dir, diff, to, allow_escalation, now)?;
                Ok(verdict.map_err(|r| refused = Some(r)).is_ok())
            })?;
            if let Some(r) = refused {
                // A failed check (exit 1), nothing written: like `check` on an escalation.
                tracing::error!("rollback to {version} refused: it widens permissions\n{r}");
                return Ok(ExitStatus::Failure);
            }
            if let Some(v) = &done.version {
                commit(
                    &recorder,
                    done.operation.take(),
                    "registry.rollback",
                    "registry.rolled_back",
                    &versions::changed_skills(&v.changes),
                    json!({"rollback_of": done.target, "version": v.version, "recorded_before": done.recorded_before, "registry_sha256": v.registry_sha256, "changes": v.changes.len()}),
                )?;
            }
            match format {
                Format::Json => out.json(&json!({
                    "schema_version": render::OUTPUT_SCHEMA_VERSION,
                    "kind": "rollback",
                    "target": done.target,
                    "dry_run": dry_run,
                    "recorded_before": done.recorded_before,
                    "version": done.version.as_ref().map(|v| v.version.clone()),
                    "diff": render::diff_json(&done.diff, betty_core::manifest::Kind::Skill, "current", &done.target),
                }))?,
                Format::Text => {
                    if dry_run {
                        out.line(&format!(
                            "Dry run: rolling back to {} would change the live registry like this (nothing written):",
                            render::shown(&done.target)
                        ))?;
                        out.write_str(&render::diff_text(&done.diff, style))?;
                    } else if let Some(v) = &done.version {
                        if let Some(b) = &done.recorded_before {
                            out.line(&format!(
                                "Recorded the live registry as {b} first (it was not in history)"
                            ))?;
                        }
                        out.line(&format!(
                            "Rolled back to {} as new version {} ({})",
                            render::shown(&done.target),
                            v.version,
                            render::counts(&done.diff)
                        ))?;
                        out.write_str(&render::diff_text(&done.diff, style))?;
                    } else {
                        out.line(&format!(
                            "The live registry already equals {}; nothing to do.",
                            render::shown(&done.target)
                        ))?;
                    }
                }
            }
            out.flush()?;
            Ok(ExitStatus::Success)
        }
        Some(Command::ImportGit { range, format }) => {
            let dir = common.registry_dir()?;
            let recorder = Recorder::new(&dir, TOOL, &common.identity()?);
            let (results, op) = versions::import_git(&dir, &recorder, range.as_deref())?;
            let recorded = results
                .iter()
                .filter(|r| matches!(r.outcome, ImportOutcome::Recorded(..)))
                .count();
            let unreadable: Vec<&versions::Imported> = results
                .iter()
                .filter(|r| matches!(r.outcome, ImportOutcome::Unreadable(_)))
                .collect();
            if recorded > 0 {
                commit(
                    &recorder,
                    op,
                    "registry.import_git",
                    "registry.imported",
                    &imported_skills(&results),
                    json!({"range": range, "commits": results.len(), "recorded": recorded, "unreadable": unreadable.iter().map(|r| r.commit.hash.clone()).collect::<Vec<_>>()}),
                )?;
            }
            match format {
                Format::Json => {
                    let items: Vec<Value> = results
                        .iter()
                        .map(|r| {
                            let (status, version, message) = match &r.outcome {
                                ImportOutcome::Recorded(v, _) => {
                                    ("recorded", Some(v.version.clone()), None)
                                }
                                ImportOutcome::AlreadyImported(v) => {
                                    ("already-imported", Some(v.clone()), None)
                                }
                                ImportOutcome::Unreadable(m) => {
                                    ("unreadable", None, Some(m.clone()))
                                }
                                ImportOutcome::Older(v) => (
                                    "older-than-history",
                                    None,
                                    Some(format!("committed before the latest version {v}")),
                                ),
                            };
                            json!({"commit": r.commit.hash, "date": r.commit.date, "committer": r.commit.committer_email,
                                   "status": status, "version": version, "message": message})
                        })
                        .collect();
                    out.json(&json!({
                        "schema_version": render::OUTPUT_SCHEMA_VERSION,
                        "kind": "import-git",
                        "commits": items,
                        "recorded": recorded,
                        "unreadable": unreadable.len(),
                    }))?;
                }
                Format::Text => {
                    for r in &results {
                        let short = render::shown(r.commit.hash.get(..7).unwrap_or(&r.commit.hash));
                        match &r.outcome {
                            ImportOutcome::Recorded(v, _) => {
                                out.line(&render::version_line(&render::summary_of(v)))?
                            }
                            ImportOutcome::AlreadyImported(v) => {
                                out.line(&format!("{v}  (git {short}, already imported)"))?
                            }
                            ImportOutcome::Older(v) => out.line(&format!(
                                "skipped  git {short} ({}): committed before the latest version {v}; history is append-only",
                                r.commit.date
                            ))?,
                            ImportOutcome::Unreadable(m) => out.line(&format!(
                                "{}  git {short} by {}: NOT IMPORTED: {}",
                                style.paint("33", "unreadable"),
                                render::shown(&r.commit.committer_email),
                                render::shown(m)
                            ))?,
                        }
                    }
                    out.line(&format!(
                        "Imported {recorded} version(s) from {} commit(s); {} could not be read.",
                        results.len(),
                        unreadable.len()
                    ))?;
                }
            }
            for r in &unreadable {
                if let ImportOutcome::Unreadable(m) = &r.outcome {
                    tracing::warn!("git {} not imported: {m}", r.commit.hash);
                }
            }
            out.flush()?;
            Ok(if unreadable.is_empty() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            })
        }
    }
}

/// Resolves `--compare` (default: the latest history version against the live registry) and
/// computes the diff, narrowed to `--skill`.
/// Who made the changes from `from` to `to`, when both are history versions (history knows
/// nothing of changes made outside it).
fn changed_by(common: &CommonArgs, from: &Snapshot, to: &Snapshot) -> Result<versions::ChangedBy> {
    let (Some(a), Some(b)) = (&from.provenance, &to.provenance) else {
        return Ok(versions::ChangedBy::default());
    };
    if from.origin != "version" || to.origin != "version" {
        return Ok(versions::ChangedBy::default());
    }
    let dir = common.registry_dir()?;
    let history = History::new(&dir.history_dir());
    Ok(versions::ChangedBy::between(
        &history,
        VersionId::parse(&a.version)?,
        VersionId::parse(&b.version)?,
    )?)
}

fn compare(common: &CommonArgs, spec: &Compare) -> Result<(Snapshot, Snapshot, RegistryDiff)> {
    let (registry, registry_error) = match common.registry_dir() {
        Ok(d) => (Some(d), None),
        Err(e) => (
            None,
            Some(e.to_string().lines().next().unwrap_or("").to_string()),
        ),
    };
    let resolver = Resolver {
        registry,
        registry_error,
    };
    let (from_spec, to_spec) = match spec.compare.as_slice() {
        [] => {
            let Some(dir) = &resolver.registry else {
                bail!(
                    "nothing to compare: {}\nhint: pass `--compare FROM TO` (history versions, registry files or git revisions)",
                    resolver
                        .registry_error
                        .as_deref()
                        .unwrap_or("no registry found")
                );
            };
            let latest = History::new(&dir.history_dir()).list()?.last().copied();
            let Some(latest) = latest else {
                bail!(
                    "`{}` has no history yet, so there is nothing to compare the live registry with\nhint: run `registry-diff record` (or `registry-diff import-git`), or pass `--compare FROM TO`",
                    dir.history_dir().display()
                );
            };
            (latest.to_string(), "current".to_string())
        }
        [a] if snapshot::is_manifest(a) => ("current".to_string(), a.clone()),
        [a] => (a.clone(), "current".to_string()),
        [a, b, ..] => (a.clone(), b.clone()),
    };
    if snapshot::is_manifest(&from_spec) {
        bail!(
            "invalid `--compare {from_spec} ...`: a manifest can only be the TO side (what the registry would be with it registered)\nhint: `registry-diff --compare current {from_spec}`"
        );
    }
    let (from, to) = if snapshot::is_manifest(&to_spec) {
        let from = resolver
            .resolve(&from_spec)
            .with_context(|| format!("cannot read FROM `{from_spec}`"))?;
        let to = snapshot::with_manifest(&from, &to_spec)
            .with_context(|| format!("cannot read TO `{to_spec}`"))?;
        (from, to)
    } else {
        // Two large registries parse in about half the time side by side.
        let (from, to) = std::thread::scope(|s| {
            let to = s.spawn(|| resolver.resolve(&to_spec));
            let from = resolver.resolve(&from_spec);
            (from, to.join())
        });
        let from = from.with_context(|| format!("cannot read FROM `{from_spec}`"))?;
        let to = to
            .map_err(|_| anyhow::anyhow!("reading TO `{to_spec}` failed unexpectedly"))?
            .with_context(|| format!("cannot read TO `{to_spec}`"))?;
        (from, to)
    };
    if from.kind != to.kind {
        bail!(
            "`{}` is a {} registry and `{}` a {} registry; compare registries of one kind",
            from.label,
            from.kind,
            to.label,
            to.kind
        );
    }
    let mut diff = match (from.raw(), to.raw()) {
        (Some(a), Some(b)) => diff_raw(&a, &b).map_err(|e| {
            anyhow::anyhow!("cannot compare `{}` with `{}`: {e}", from.label, to.label)
        })?,
        _ => diff_registries(&from.to_value(), &to.to_value(), from.kind),
    };
    if let Some(name) = &spec.skill {
        if !from.has(name) && !to.has(name) {
            bail!(
                "invalid `--skill {name}`: no skill of that name in `{}` or `{}`",
                from.label,
                to.label
            );
        }
        diff = diff.only_skill(name);
    }
    Ok((from, to, diff))
}

fn log(
    common: &CommonArgs,
    skill: Option<&str>,
    max_count: Option<usize>,
    format: Format,
    out: &mut Printer,
) -> Result<ExitStatus> {
    let dir = common.registry_dir()?;
    let history = History::new(&dir.history_dir());
    let ids = history.list()?;
    let mut shown = Vec::new();
    for id in ids.iter().rev() {
        if max_count.is_some_and(|n| shown.len() >= n) {
            break;
        }
        let v = versions::load_summary(&history, *id)?;
        let changes: Vec<_> = v
            .changes
            .iter()
            .filter(|c| skill.is_none_or(|s| c.skill == s))
            .cloned()
            .collect();
        if skill.is_some() && changes.is_empty() {
            continue;
        }
        shown.push((v, changes));
    }
    match format {
        Format::Json => {
            let versions: Vec<Value> = shown
                .iter()
                .map(|(v, c)| render::version_json(v, &c.iter().collect::<Vec<_>>()))
                .collect();
            out.json(&json!({
                "schema_version": render::OUTPUT_SCHEMA_VERSION,
                "kind": "log",
                "skill": skill,
                "versions": versions,
            }))?;
        }
        Format::Text => {
            if ids.is_empty() {
                out.line("No history yet: `registry-diff record` snapshots the live registry, `registry-diff import-git` imports the git log.")?;
            } else if shown.is_empty() {
                out.line(&format!(
                    "No version changed `{}`.",
                    render::shown(skill.unwrap_or_default())
                ))?;
            }
            for (v, changes) in &shown {
                out.line(&render::version_line(v))?;
                if skill.is_some() {
                    for c in changes {
                        match c.action {
                            ChangeAction::Changed => out.line(&format!(
                                "    {}: {} → {}",
                                render::shown(c.field.as_deref().unwrap_or("?")),
                                render::show_value(Some(&c.old_value).filter(|v| !v.is_null())),
                                render::show_value(Some(&c.new_value).filter(|v| !v.is_null())),
                            ))?,
                            ChangeAction::Added => out.line(&format!(
                                "    added{}",
                                c.new_value
                                    .get("version")
                                    .and_then(Value::as_str)
                                    .map(|v| format!(" at {}", render::shown(v)))
                                    .unwrap_or_default()
                            ))?,
                            ChangeAction::Removed => out.line("    removed")?,
                        }
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// A semver check is a governance decision: it is recorded as a telemetry event
/// (`registry.checked`) when there is a registry to record it in. Recording never changes
/// the outcome: a read-only registry only costs a warning.
fn note_check(common: &CommonArgs, from: &str, to: &str, problems: &[semver::Problem]) {
    let (Ok(dir), Ok(who)) = (common.registry_dir(), common.identity()) else {
        return;
    };
    let mut context = Map::new();
    context.insert("from".into(), from.into());
    context.insert("to".into(), to.into());
    context.insert(
        "problems".into(),
        json!(
            problems
                .iter()
                .map(|p| json!({"skill": p.skill, "rule": p.rule}))
                .collect::<Vec<_>>()
        ),
    );
    let recorder = Recorder::new(&dir, TOOL, &who);
    let event = NewEvent {
        event_type: "registry.checked".into(),
        skill_name: None,
        outcome: if problems.is_empty() {
            "passed"
        } else {
            "failed"
        }
        .into(),
        context,
        ..Default::default()
    };
    let mut events = EventBatch::new();
    let emitted = recorder
        .events()
        .complete_line(event, &who, &mut events)
        .and_then(|()| recorder.emit(&events));
    if let Err(e) = emitted {
        tracing::warn!("the check was not recorded in telemetry: {e}");
    }
}

/// The skills the versions an import recorded touch, each once.
fn imported_skills(results: &[versions::Imported]) -> Vec<String> {
    let mut changes = Vec::new();
    for r in results {
        if let ImportOutcome::Recorded(v, _) = &r.outcome {
            changes.extend(v.changes.iter().cloned());
        }
    }
    versions::changed_skills(&changes)
}

/// The commit entry and the telemetry event of a write whose intent the library appended.
fn commit(
    recorder: &Recorder,
    op: Option<Operation>,
    operation: &str,
    event: &str,
    skills: &[String],
    mut details: Value,
) -> Result<()> {
    if let Some(obj) = details.as_object_mut()
        && !skills.is_empty()
    {
        obj.insert("skills".into(), json!(skills));
    }
    let skill = versions::one_skill(skills).map(str::to_string);
    let Some(op) = op else {
        bail!("`{operation}` changed the registry without its intent entry; this is a bug");
    };
    let mut context = Map::new();
    context.insert("registry".into(), details.clone());
    let mut events = EventBatch::new();
    recorder.events().complete_line(
        NewEvent {
            event_type: event.to_string(),
            skill_name: skill.clone(),
            outcome: "success".to_string(),
            context,
            ..Default::default()
        },
        recorder.who(),
        &mut events,
    )?;
    op.commit(
        AuditRecord {
            operation: operation.to_string(),
            skill,
            outcome: "success".to_string(),
            details: Some(details),
            ..AuditRecord::default()
        },
        &events,
    )
    .context("the registry was updated, but its commit entry or event could not be written; `telemetry-query audit verify` shows the operation as not finished")?;
    Ok(())
}
