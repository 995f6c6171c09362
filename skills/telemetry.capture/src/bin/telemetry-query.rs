//! `telemetry-query`: list, count, aggregate and export events; update `metrics.json`; view and
//! verify the audit trail. Thin: build the filter once, stream through
//! `telemetry_capture::scan`, render with `telemetry_capture::output`.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use betty_cli::Printer;
use betty_core::ExitStatus;
use betty_core::audit::AuditLog;
use betty_core::escape::Escaped;
use serde_json::{Value, json};
use telemetry_capture::cli::{
    AuditArgs, AuditCommand, FilterArgs, ListArgs, OrderArg, QueryCli, QueryCommand,
};
use telemetry_capture::output::{self, DocFormat, Format, OUTPUT_SCHEMA_VERSION};
use telemetry_capture::scan::{self, Filter, Order, Skipped, glob};
use telemetry_capture::segments::{self, Segment};
use telemetry_capture::stats::{Counts, Field, GroupedStats};

fn main() -> ExitCode {
    let cli: QueryCli = match betty_cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    betty_cli::init_logging(&cli.globals.common());
    betty_cli::run(|| {
        let result = run(cli);
        warn_skip_total();
        result
    })
}

/// Where the events are: the registry's stream (with rotated segments) or one given file.
struct Source {
    live: PathBuf,
    registry: Option<betty_core::discover::RegistryDir>,
}

impl Source {
    fn resolve(cli: &QueryCli) -> Result<Source> {
        if let Some(file) = &cli.globals.events {
            if !file.is_file() {
                bail!("cannot read `{}`: no such file", file.display());
            }
            let registry = cli.globals.common().registry_dir().ok();
            return Ok(Source {
                live: file.clone(),
                registry,
            });
        }
        let registry = cli.globals.common().registry_dir()?;
        Ok(Source {
            live: registry.events_jsonl(),
            registry: Some(registry),
        })
    }

    fn segments(&self, alone: bool) -> Result<Vec<Segment>> {
        if alone {
            return Ok(vec![Segment {
                ordered: !segments::unordered_marker(&self.live).exists(),
                path: self.live.clone(),
            }]);
        }
        segments::list(&self.live).with_context(|| {
            format!(
                "cannot list the event segments beside `{}`",
                self.live.display()
            )
        })
    }
}

fn run(cli: QueryCli) -> Result<ExitStatus> {
    let source = Source::resolve(&cli)?;
    let alone = cli.globals.events.is_some();
    let mut out = Printer::new();
    match &cli.command {
        None => list(&source.segments(alone)?, &cli.filter, &cli.list, &mut out),
        Some(QueryCommand::Stats { by, filter, format }) => {
            stats(&source.segments(alone)?, by, filter, *format, &mut out)
        }
        Some(QueryCommand::Metrics { rebuild, format }) => {
            let metrics_path = match &source.registry {
                Some(r) if !alone => r.path("telemetry/metrics.json"),
                _ => source.live.with_file_name("metrics.json"),
            };
            metrics(&source, &metrics_path, *rebuild, *format, &mut out)
        }
        Some(QueryCommand::Audit(args)) => {
            if alone {
                bail!(
                    "`--events` names an events file, and `audit` reads the registry's `audit_log.json`; leave `--events` out (or pick the registry with `--registry`)"
                );
            }
            let registry = match source.registry {
                Some(r) => r,
                None => cli.globals.common().registry_dir()?,
            };
            audit(&AuditLog::new(&registry.audit_log()), args, &mut out)
        }
    }
}

/// Warnings shown for skipped lines before they are only counted.
const SHOWN_SKIPS: u64 = 20;

thread_local! {
    static SKIPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Reports a skipped line on stderr: the first [`SHOWN_SKIPS`], then only a count at the end.
fn warn_skipped(s: Skipped) {
    let n = SKIPS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    if n <= SHOWN_SKIPS {
        tracing::warn!("{s}");
    }
}

fn warn_skip_total() {
    let n = SKIPS.with(std::cell::Cell::get);
    if n > SHOWN_SKIPS {
        tracing::warn!(
            "{n} lines were skipped in all ({} more than shown)",
            n - SHOWN_SKIPS
        );
    }
}

/// Builds the filter from flags; a bad time or duration is a usage error.
fn filter_of(args: &FilterArgs) -> Result<Filter> {
    let now = betty_core::time::now();
    let since = match (&args.last, &args.since) {
        (Some(last), _) => {
            let d = betty_core::time::parse_duration(last).context("invalid `--last`")?;
            Some(betty_core::time::ago(now, d))
        }
        (None, Some(s)) => Some(betty_core::time::parse_timestamp(s).context("invalid `--since`")?),
        (None, None) => None,
    };
    let until = match &args.until {
        Some(u) => Some(betty_core::time::parse_timestamp(u).context("invalid `--until`")?),
        None => None,
    };
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        bail!("`--since`/`--last` is after `--until`: no event can match");
    }
    let clean = |v: &[String], what: &str| -> Result<Vec<String>> {
        v.iter()
            .map(|s| s.trim().to_string())
            .map(|s| {
                if s.is_empty() || s.len() > 256 {
                    bail!("invalid `--{what}` value: must be 1 to 256 characters")
                } else {
                    Ok(s)
                }
            })
            .collect()
    };
    Ok(Filter {
        event_types: clean(&args.event_type, "event-type")?,
        skills: clean(&args.skill, "skill")?,
        outcomes: clean(&args.outcome, "outcome")?,
        users: clean(&args.user, "user")?,
        sessions: clean(&args.session, "session")?,
        since,
        until,
    })
}

fn list(
    segs: &[Segment],
    args: &FilterArgs,
    list: &ListArgs,
    out: &mut Printer,
) -> Result<ExitStatus> {
    let filter = filter_of(args)?.compile();
    let order = match list.order {
        OrderArg::Newest => Order::NewestFirst,
        OrderArg::Oldest => Order::OldestFirst,
    };
    if list.count {
        let summary = scan::scan(
            segs,
            &filter,
            order,
            |_| ControlFlow::Continue(()),
            warn_skipped,
        )?;
        match list.format {
            Format::Json | Format::Jsonl => out.line(
                &json!({"schema_version": OUTPUT_SCHEMA_VERSION, "count": summary.matched})
                    .to_string(),
            )?,
            Format::Table | Format::Csv => out.line(&summary.matched.to_string())?,
        }
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    if let Some(field) = &list.count_by {
        let field = Field::parse(field).map_err(anyhow::Error::msg)?;
        let mut counts = Counts::default();
        scan::scan(
            segs,
            &filter,
            order,
            |hit| {
                counts.add(field.key(hit.row, hit.line));
                ControlFlow::Continue(())
            },
            warn_skipped,
        )?;
        match list.format {
            Format::Json => out.json(&output::counts_json(&field.name(), &counts))?,
            f => {
                for l in output::counts_lines(&field.name(), &counts, f) {
                    out.line(&l)?;
                }
            }
        }
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    let colour = list.format == Format::Table && betty_cli::use_colour_on_stdout();
    let limit = list.limit.unwrap_or(u64::MAX);
    let mut shown = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    match list.format {
        Format::Table => out.line(&output::event_table_header())?,
        Format::Csv => out.line(output::CSV_COLUMNS)?,
        Format::Json => out.write_str(&format!(
            "{{\"schema_version\":{OUTPUT_SCHEMA_VERSION},\"events\":["
        ))?,
        Format::Jsonl => {}
    }
    if limit > 0 {
        scan::scan_in_time_order(
            segs,
            &filter,
            order,
            list.limit,
            |hit| {
                let written = match list.format {
                    Format::Table => out.line(&output::event_table_row(hit.row, colour)),
                    Format::Csv => out.line(&output::event_csv(hit.line, hit.row)),
                    Format::Jsonl => out.line(&output::event_json_line(hit.line)),
                    Format::Json => out
                        .write_str(if shown == 0 { "\n" } else { ",\n" })
                        .and_then(|()| out.write_str(&output::event_json_line(hit.line))),
                };
                if let Err(e) = written {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
                shown += 1;
                ControlFlow::Continue(())
            },
            warn_skipped,
        )?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if list.format == Format::Json {
        out.write_str("\n]}\n")?;
    }
    if shown == 0 {
        tracing::info!("no events match");
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

fn stats(
    segs: &[Segment],
    by: &str,
    args: &FilterArgs,
    format: Format,
    out: &mut Printer,
) -> Result<ExitStatus> {
    let field = Field::parse(by).map_err(anyhow::Error::msg)?;
    let filter = filter_of(args)?.compile();
    let mut stats = GroupedStats::new(field);
    scan::scan(
        segs,
        &filter,
        Order::OldestFirst,
        |hit| {
            stats.add(hit.row, hit.line);
            ControlFlow::Continue(())
        },
        warn_skipped,
    )?;
    match format {
        Format::Json => out.json(&output::stats_json(&stats))?,
        f => {
            for l in output::stats_lines(&stats, f) {
                out.line(&l)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

fn metrics(
    source: &Source,
    metrics_path: &std::path::Path,
    rebuild: bool,
    format: DocFormat,
    out: &mut Printer,
) -> Result<ExitStatus> {
    let (value, report) =
        telemetry_capture::metrics::update(&source.live, metrics_path, rebuild, warn_skipped)
            .with_context(|| format!("cannot update `{}`", metrics_path.display()))?;
    match format {
        DocFormat::Json => out.json(&value)?,
        DocFormat::Table => out.line(&format!(
            "{}: {} events, {} skipped lines ({}{} new events)",
            metrics_path.display(),
            value["events"],
            value["skipped_lines"],
            if report.rebuilt { "rebuilt; " } else { "" },
            report.new_events
        ))?,
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

fn audit(log: &AuditLog, args: &AuditArgs, out: &mut Printer) -> Result<ExitStatus> {
    match &args.command {
        Some(AuditCommand::Head { format }) => {
            let head = log.head()?;
            let Some(head) = head else {
                tracing::warn!(
                    "`{}` has no hashed entries yet: there is no head to keep",
                    log.path.display()
                );
                return Ok(ExitStatus::Failure);
            };
            match format {
                DocFormat::Json => out.line(
                    &json!({"schema_version": OUTPUT_SCHEMA_VERSION, "seq": head.seq, "hash": head.hash})
                        .to_string(),
                )?,
                DocFormat::Table => out.line(&head.to_string())?,
            }
            out.flush()?;
            Ok(ExitStatus::Success)
        }
        Some(AuditCommand::Verify {
            expect_head,
            format,
        }) => {
            if let Some(h) = expect_head {
                let hash = h.rsplit(':').next().unwrap_or("");
                if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                    bail!(
                        "invalid `--expect-head {h}`: expected `SEQ:HASH` or a 64-digit hex hash, as `telemetry-query audit head` prints"
                    );
                }
            }
            let report = log.verify(expect_head.as_deref())?;
            // The breaking entries themselves, so the reader sees what changed.
            let mut broken: Vec<(u64, Value)> = Vec::new();
            // (An emptied log has no entries to show, and may not even parse.)
            if !report.ok() && report.entries > 0 {
                let wanted: Vec<u64> = report.breaks.iter().map(|b| b.index).collect();
                log.for_each_entry(|i, v| {
                    if wanted.contains(&i) && broken.len() < 20 {
                        broken.push((i, v));
                    }
                })?;
            }
            match format {
                DocFormat::Json => {
                    let mut v = serde_json::to_value(&report)?;
                    if let Value::Object(m) = &mut v {
                        m.insert("schema_version".into(), OUTPUT_SCHEMA_VERSION.into());
                        m.insert("ok".into(), report.ok().into());
                        m.insert(
                            "breaking_entries".into(),
                            broken
                                .iter()
                                .map(|(i, e)| json!({"index": i, "entry": e}))
                                .collect(),
                        );
                    }
                    out.json(&v)?;
                }
                DocFormat::Table => {
                    if report.ok() {
                        out.line(&format!(
                            "✅ audit trail intact: {} entries ({} hashed, {} legacy entries unverified){}",
                            report.entries,
                            report.hashed_entries,
                            report.legacy_entries,
                            report
                                .head
                                .as_ref()
                                .map(|h| format!(", head {h}"))
                                .unwrap_or_default()
                        ))?;
                    } else {
                        out.line(&format!(
                            "❌ audit trail broken: {} problem(s) in `{}`",
                            report.breaks.len(),
                            log.path.display()
                        ))?;
                        for b in &report.breaks {
                            out.line(&format!("  [{}] {}", b.kind, Escaped(&b.message)))?;
                            if let Some((_, e)) = broken.iter().find(|(i, _)| *i == b.index) {
                                let e = betty_core::redact::redacted(e).to_string();
                                out.line(&format!("      entry {}: {}", b.index, Escaped(&e)))?;
                            }
                        }
                    }
                    if report.adopted_entries > 0 {
                        out.line(&format!(
                            "ℹ️  {} entries appended by a legacy (unhashed) writer were adopted into the chain",
                            report.adopted_entries
                        ))?;
                    }
                    if let Some(a) = &report.legacy_appended {
                        out.line(&format!(
                            "⚠️  {} entries (index {}..={}) were appended after the chain by a legacy (unhashed) writer: present but unverified; `telemetry-capture audit adopt` takes them into the chain",
                            a.count(),
                            a.from,
                            a.to
                        ))?;
                    }
                    if !report.unfinished.is_empty() {
                        out.line(&format!(
                            "⚠️  {} operation(s) did not finish: an intent entry without its commit (the process stopped half way; check the state it names):",
                            report.unfinished.len()
                        ))?;
                        for u in &report.unfinished {
                            out.line(&format!(
                                "  [operation did not finish] seq {} {} {} at {}",
                                u.seq, u.operation_id, u.operation, u.timestamp
                            ))?;
                        }
                    }
                }
            }
            out.flush()?;
            Ok(if report.ok() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            })
        }
        None => audit_list(log, args, out),
    }
}

fn audit_list(log: &AuditLog, args: &AuditArgs, out: &mut Printer) -> Result<ExitStatus> {
    let filter = filter_of(&FilterArgs {
        last: args.last.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        ..Default::default()
    })?;
    let since = filter.since.map(betty_core::time::format);
    let until = filter.until.map(betty_core::time::format);
    let any = |pats: &[String], v: Option<&str>| {
        pats.is_empty() || v.is_some_and(|v| pats.iter().any(|p| glob(p, v)))
    };
    let limit = args.limit.unwrap_or(u64::MAX) as usize;
    let newest = args.order == OrderArg::Newest;
    let format = args.format;
    match format {
        Format::Table => out.line(&format!(
            "{:>6}  {:<19}  {:<24}  {:<28}  {:<10}  {}",
            "SEQ", "TIME (UTC)", "OPERATION", "SKILL", "OUTCOME", "USER"
        ))?,
        Format::Csv => {
            out.line("seq,timestamp,operation,skill,outcome,user,session_id,policy_checks")?
        }
        Format::Json => out.write_str(&format!(
            "{{\"schema_version\":{OUTPUT_SCHEMA_VERSION},\"entries\":["
        ))?,
        Format::Jsonl => {}
    }
    let mut kept: VecDeque<Value> = VecDeque::new();
    let mut emitted = 0usize;
    let mut failed: Option<anyhow::Error> = None;
    log.for_each_entry(|_, e| {
        if failed.is_some() {
            return;
        }
        let ts = e["timestamp"]
            .as_str()
            .and_then(|t| betty_core::time::parse_timestamp(t).ok())
            .map(betty_core::time::format)
            .unwrap_or_default();
        let ok = since.as_deref().is_none_or(|s| ts.as_str() >= s)
            && until.as_deref().is_none_or(|u| ts.as_str() <= u)
            && any(&args.operation, e["operation"].as_str())
            && any(&args.skill, e["skill"].as_str())
            && any(&args.outcome, e["outcome"].as_str())
            && any(&args.user, e["user"].as_str())
            && any(&args.session, e["session_id"].as_str());
        if !ok {
            return;
        }
        if newest {
            // Only the newest `limit` are kept: memory is bounded by the limit.
            kept.push_back(e);
            if kept.len() > limit {
                kept.pop_front();
            }
        } else if emitted < limit
            && let Err(err) = emit_audit(&e, format, &mut emitted, out)
        {
            failed = Some(err);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    for e in kept.iter().rev() {
        emit_audit(e, format, &mut emitted, out)?;
    }
    if format == Format::Json {
        out.write_str("\n]}\n")?;
    }
    if emitted == 0 {
        tracing::info!("no audit entries match");
    }
    out.flush()?;
    Ok(ExitStatus::Success)
}

fn emit_audit(e: &Value, format: Format, emitted: &mut usize, out: &mut Printer) -> Result<()> {
    if format == Format::Json {
        out.write_str(if *emitted == 0 { "\n" } else { ",\n" })?;
        *emitted += 1;
        return out.write_str(&render_audit(e, format));
    }
    *emitted += 1;
    out.line(&render_audit(e, format))
}

/// One audit entry as a listing shows it: secrets redacted in every format (entries written
/// before redaction caught them), text escaped in the table, CSV cells neutralised.
fn render_audit(e: &Value, format: Format) -> String {
    let redacted;
    let e = if betty_core::redact::needs_redaction(e) {
        redacted = betty_core::redact::redacted(e);
        &redacted
    } else {
        e
    };
    let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
    let seq = e["seq"].as_u64().map(|n| n.to_string());
    match format {
        Format::Table => format!(
            "{:>6}  {:<19}  {}  {}  {}  {}",
            seq.unwrap_or("-".into()),
            Escaped(&s("timestamp").get(..19).unwrap_or("-").replace('T', " ")),
            output::fit(&s("operation"), 24),
            output::fit(&s("skill"), 28),
            output::fit(&s("outcome"), 10),
            Escaped(&s("user"))
        )
        .trim_end()
        .to_string(),
        Format::Csv => [
            seq.unwrap_or_default(),
            output::csv_field(&s("timestamp")),
            output::csv_field(&s("operation")),
            output::csv_field(&s("skill")),
            output::csv_field(&s("outcome")),
            output::csv_field(&s("user")),
            output::csv_field(&s("session_id")),
            output::csv_json_field(&e["policy_checks"]),
        ]
        .join(","),
        Format::Json | Format::Jsonl => e.to_string(),
    }
}
