//! `telemetry-capture`: record a governance event (flags or stdin), time a command, or import
//! upstream's `telemetry.json`. Thin: parse, complete and check through `betty_core`, record
//! through `betty_core::record::Recorder` (the one stream appender, then alerts; a batch on
//! stdin all or nothing and once), print ids, map the outcome to an exit code.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use betty_cli::Printer;
use betty_core::ExitStatus;
use betty_core::audit::AuditRecord;
use betty_core::record::Recorder;
use betty_core::telemetry::{EventBatch, NewEvent};
use serde_json::{Value, json};
use telemetry_capture::alerts::{self, AlertFiles};
use telemetry_capture::audit_entry::{self, UpstreamAudit};
use telemetry_capture::capture;
use telemetry_capture::cli::{
    AlertsCommand, AuditWrite, CaptureCli, CaptureCommand, CaptureFormat,
};
use telemetry_capture::import;

const TOOL: &str = "telemetry-capture";

fn main() -> ExitCode {
    let cli: CaptureCli = match betty_cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    betty_cli::init_logging(&cli.common);
    if cli.command.is_some() && (cli.event.event_type.is_some() || cli.input.is_some()) {
        return betty_cli::run(|| {
            bail!("event flags (`--event-type`, `-`) cannot be combined with `run` or `import`")
        });
    }
    if let Some(CaptureCommand::Run { .. }) = &cli.command {
        return run_command(cli);
    }
    betty_cli::run(|| run(cli))
}

fn run(cli: CaptureCli) -> Result<ExitStatus> {
    if let Some(CaptureCommand::Alerts(_)) = &cli.command {
        cli.common.refuse_user("telemetry-capture alerts")?;
    }
    let registry = cli.common.registry_dir()?;
    let who = cli.common.identity()?;
    let path = registry.events_jsonl();
    let recorder = Recorder::new(&registry, TOOL, &who);
    let writer = recorder.events();
    let mut out = Printer::new();
    if let Some(CaptureCommand::Alerts(AlertsCommand::Watch { interval })) = &cli.command {
        let every = betty_core::time::parse_duration(interval).context("invalid `--interval`")?;
        let files = AlertFiles::beside(&path);
        loop {
            match alerts::deliver(&files, false, betty_core::time::now) {
                Ok(r) if r.sent + r.failed > 0 => tracing::info!(
                    sent = r.sent,
                    failed = r.failed,
                    pending = r.pending,
                    "alerts delivered"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("alerts: {e}"),
            }
            std::thread::sleep(every.max(std::time::Duration::from_millis(200)));
        }
    }
    if let Some(CaptureCommand::Alerts(AlertsCommand::Deliver { force })) = &cli.command {
        let report = alerts::deliver(&AlertFiles::beside(&path), *force, betty_core::time::now)?;
        if report.busy {
            out.line("another deliverer is running; it will send what is queued")?;
        } else {
            out.line(&format!(
                "alerts: {} sent, {} failed ({} pending retry, {} given up)",
                report.sent, report.failed, report.pending, report.given_up
            ))?;
        }
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    if let Some(CaptureCommand::Audit(command)) = &cli.command {
        return audit(&recorder, command, &mut out);
    }
    if let Some(CaptureCommand::Import { file, dry_run }) = &cli.command {
        return import_file(&recorder, file, *dry_run, &mut out);
    }
    let events = match cli.input.as_deref() {
        Some("-") if cli.stream => {
            if cli.event.event_type.is_some() {
                bail!("give the event either as flags or on stdin (`-`), not both");
            }
            return stream(&recorder, cli.format, &mut out);
        }
        Some("-") => {
            if cli.event.event_type.is_some() {
                bail!("give the event either as flags or on stdin (`-`), not both");
            }
            let text = capture::read_stdin()?;
            let batch_id = capture::batch_id(&text, &who);
            let events = capture::complete_batch_as(writer, "stdin", &text, &who, Some(&batch_id))?;
            let appended = recorder
                .emit_batch(&batch_id, &EventBatch::from_values(&events)?)
                .with_context(|| format!("cannot record the events in `{}`", path.display()))?;
            if appended.already_present {
                tracing::warn!(
                    "this batch ({batch_id}) was recorded before (a retry?); nothing was added"
                );
            }
            tracing::info!(count = appended.count, path = %path.display(), "recorded");
            print_events(&mut out, &events, cli.format)?;
            out.flush()?;
            return Ok(ExitStatus::Success);
        }
        Some(other) => bail!(
            "unexpected argument `{other}`: use `-` to read events from stdin, or flags (`--event-type ...`)"
        ),
        None => {
            let Some(event_type) = cli.event.event_type.clone() else {
                bail!(
                    "no event: give `--event-type TYPE` (and `--outcome`, `--skill-name`, ...), or `-` to read events from stdin; see `telemetry-capture --help`"
                );
            };
            let duration_ms = match cli.event.duration_ms.as_deref() {
                None => None,
                Some(text) => Some(parse_duration_ms(text)?),
            };
            let context = capture::parse_context(&cli.event.context)?;
            let event = writer
                .complete(
                    NewEvent {
                        event_type,
                        skill_name: cli.event.skill_name.clone(),
                        outcome: cli.event.outcome.clone(),
                        duration_ms,
                        context,
                        timestamp: None,
                        event_id: None,
                    },
                    &who,
                )
                .context("the event was refused; nothing was written")?;
            vec![event]
        }
    };
    let appended = recorder
        .emit(&EventBatch::from_values(&events)?)
        .with_context(|| format!("cannot record the event in `{}`", path.display()))?;
    tracing::info!(count = appended.count, path = %path.display(), "recorded");
    print_events(&mut out, &events, cli.format)?;
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// `audit append` and `audit adopt`: one entry through the recorder, the new head on stdout.
fn audit(recorder: &Recorder, command: &AuditWrite, out: &mut Printer) -> Result<ExitStatus> {
    let log = recorder.audit_log();
    let entry = match command {
        AuditWrite::Append {
            skill,
            status,
            duration_ms,
            errors_json,
            metadata_json,
        } => audit_entry::record_of(&UpstreamAudit {
            skill,
            status,
            duration_ms: duration_ms.as_deref(),
            errors: errors_json.as_deref(),
            metadata: metadata_json.as_deref(),
        })?,
        AuditWrite::Adopt => {
            let report = log.verify(None)?;
            if !report.ok() {
                tracing::error!(
                    "`{}` is broken ({} problem(s)); nothing was adopted: see `telemetry-query audit verify`",
                    log.path.display(),
                    report.breaks.len()
                );
                return Ok(ExitStatus::Failure);
            }
            let Some(pending) = report.legacy_appended else {
                out.line("nothing to adopt: no unhashed entries follow the chain")?;
                out.flush()?;
                return Ok(ExitStatus::Success);
            };
            // The append itself adopts whatever unhashed entries precede it (`adopts`).
            AuditRecord {
                operation: "audit.adopt".into(),
                outcome: "adopted".into(),
                details: Some(
                    json!({ "count": pending.count(), "from": pending.from, "to": pending.to }),
                ),
                ..AuditRecord::default()
            }
        }
    };
    let head = recorder
        .record(&entry, &EventBatch::new())
        .with_context(|| format!("cannot append to `{}`", log.path.display()))?;
    out.line(&head.to_string())?;
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// `--stream -`: one append per JSON Lines event, as it arrives.
fn stream(recorder: &Recorder, format: CaptureFormat, out: &mut Printer) -> Result<ExitStatus> {
    let (writer, who, path) = (recorder.events(), recorder.who(), &recorder.events().path);
    use std::io::BufRead;
    let stdin = std::io::stdin().lock();
    let mut bad = 0u64;
    let mut line = Vec::new();
    let mut reader = std::io::BufReader::new(stdin);
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = std::io::Read::take(&mut reader, capture::MAX_STREAM_LINE + 1)
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.len() as u64 > capture::MAX_STREAM_LINE {
            bail!(
                "stdin line {line_no} is over {} bytes; stopped",
                capture::MAX_STREAM_LINE
            );
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let event = betty_core::source::json_from_str(text.trim())
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| capture::complete_json(writer, v, who));
        match event {
            Ok(e) => {
                let events = [e];
                recorder
                    .emit(&EventBatch::from_values(&events)?)
                    .with_context(|| format!("cannot record the event in `{}`", path.display()))?;
                print_events(out, &events, format)?;
                out.flush()?;
            }
            Err(why) => {
                bad += 1;
                tracing::error!("stdin line {line_no}: {why}; this event was not written");
            }
        }
    }
    out.flush()?;
    Ok(if bad == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Error
    })
}

fn parse_duration_ms(text: &str) -> Result<f64> {
    let d: f64 = text.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid `--duration-ms {text}`: expected a number of milliseconds, such as 412 or 12.5"
        )
    })?;
    if !d.is_finite() || d < 0.0 {
        bail!(
            "invalid `--duration-ms {text}`: must be a finite, non-negative number of milliseconds; nothing was written"
        );
    }
    Ok(d)
}

fn print_events(out: &mut Printer, events: &[Value], format: CaptureFormat) -> Result<()> {
    for e in events {
        match format {
            CaptureFormat::Text => out.line(e["event_id"].as_str().unwrap_or_default())?,
            CaptureFormat::Json => out.line(&e.to_string())?,
        }
    }
    Ok(())
}

/// An import changes the stream: its intent entry first, then the events (ids already
/// present are skipped under the stream's lock), then the commit entry.
fn import_file(
    recorder: &Recorder,
    file: &std::path::Path,
    dry_run: bool,
    out: &mut Printer,
) -> Result<ExitStatus> {
    let entries = import::read_upstream(file)?;
    let source = file.display().to_string();
    let events = import::to_events(recorder.events(), &entries, &source, recorder.who())?;
    let total = events.len();
    let path = recorder.events().path.clone();
    let mut already = 0usize;
    let added = if dry_run {
        let present = import::derived_ids_present(
            &telemetry_capture::segments::list(&path).unwrap_or_default(),
        )?;
        events
            .iter()
            .filter(|e| !present.contains(e["event_id"].as_str().unwrap_or_default()))
            .count()
    } else {
        let op = recorder
            .begin(
                "telemetry.import",
                None,
                json!({"source": source, "entries": total, "stream": "telemetry/events.jsonl"}),
            )
            .context("cannot append the audit trail; nothing was imported")?;
        let appended = recorder
            .emit_with(|segs| {
                let present = import::derived_ids_present(segs)?;
                let fresh: Vec<Value> = events
                    .into_iter()
                    .filter(|e| !present.contains(e["event_id"].as_str().unwrap_or_default()))
                    .collect();
                already = total - fresh.len();
                Ok::<_, capture::CaptureError>(EventBatch::from_values(&fresh)?)
            })
            .with_context(|| format!("cannot import into `{}`", path.display()))?;
        let added = appended.count;
        op.commit(
            AuditRecord {
                operation: "telemetry.import".into(),
                outcome: "success".into(),
                details: Some(json!({
                    "source": source,
                    "entries": total,
                    "added": added,
                    "already_present": already,
                })),
                ..AuditRecord::default()
            },
            &EventBatch::new(),
        )
        .context("the events were imported, but the commit entry could not be written")?;
        added
    };
    let verb = if dry_run { "would import" } else { "imported" };
    out.line(&format!(
        "{verb} {added} of {total} entries from `{source}` ({} already present)",
        total - added
    ))?;
    out.flush()?;
    Ok(ExitStatus::Success)
}

/// `run -- CMD ...`: the command's own exit code always wins; a failure to record is logged,
/// never turned into a different exit.
fn run_command(cli: CaptureCli) -> ExitCode {
    let Some(CaptureCommand::Run {
        skill_name,
        event_type,
        context,
        command,
    }) = cli.command
    else {
        return ExitStatus::Error.into();
    };
    // Check everything we can before running, so a typo does not run the command unrecorded.
    let prepared = (|| -> Result<_> {
        let registry = cli.common.registry_dir()?;
        let who = cli.common.identity()?;
        let context = capture::parse_context(&context)?;
        if !betty_core::telemetry::is_event_type(&event_type) {
            bail!(
                "invalid `--event-type {event_type}`: not `domain.action[.detail]` in lowercase (e.g. `skill.executed`)"
            );
        }
        Ok((registry, who, context))
    })();
    let (registry, who, mut ctx) = match prepared {
        Ok(p) => p,
        Err(e) => return betty_cli::run(|| Err(e)),
    };
    let program = command[0].clone();
    let started = std::time::Instant::now();
    let status = std::process::Command::new(&program)
        .args(&command[1..])
        .status();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return betty_cli::run(|| {
                Err(anyhow::Error::new(e).context(format!(
                    "cannot run `{}`; nothing was recorded",
                    program.to_string_lossy()
                )))
            });
        }
    };
    let code = exit_code_of(&status);
    ctx.insert(
        "command".into(),
        std::path::Path::new(&program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .into(),
    );
    ctx.insert("arg_count".into(), (command.len() - 1).into());
    ctx.insert("exit_code".into(), code.into());
    let recorder = Recorder::new(&registry, TOOL, &who);
    let recorded = recorder
        .events()
        .complete(
            NewEvent {
                event_type,
                skill_name: Some(skill_name),
                outcome: if code == 0 { "success" } else { "failure" }.into(),
                duration_ms: Some((duration_ms * 1000.0).round() / 1000.0),
                context: ctx,
                timestamp: None,
                event_id: None,
            },
            &who,
        )
        .map_err(anyhow::Error::from)
        .and_then(|e| {
            recorder
                .emit(&EventBatch::from_values(&[e])?)
                .map_err(anyhow::Error::from)
        });
    if let Err(e) = recorded {
        tracing::error!("the command ran, but its event could not be recorded: {e:#}");
    }
    ExitCode::from(code)
}

/// The command's exit code; a signal `n` is `128 + n`, as shells report it.
fn exit_code_of(status: &std::process::ExitStatus) -> u8 {
    if let Some(c) = status.code() {
        return u8::try_from(c & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + sig).unwrap_or(1);
        }
    }
    1
}
