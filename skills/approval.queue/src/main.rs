//! `approval-queue`: hold sensitive operations until enough of the right humans approve.
//!
//! The binary is thin: parse flags, act on `betty_core::approval::ApprovalStore`, record the
//! transition in the audit trail and telemetry, notify, and exit with the request's state
//! (0 approved, 1 rejected/expired/cancelled, 3 pending, 2 error).

use anyhow::{Context, Result, bail};
use approval_queue::cli::{Cli, Command, Format, Subject};
use approval_queue::notify;
use betty_cli::Printer;
use betty_core::ExitStatus;
use betty_core::approval::{ApprovalRequest, ApprovalStore, NewRequest, Status, Verdict};
use betty_core::audit::{AuditLog, AuditRecord};
use betty_core::discover::RegistryDir;
use betty_core::identity::Identity;
use betty_core::manifest::{Kind, Manifest};
use betty_core::telemetry::{EventWriter, NewEvent};
use serde_json::{Map, Value, json};

const TOOL: &str = "approval-queue";

fn main() -> std::process::ExitCode {
    let cli: Cli = match betty_cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    betty_cli::init_logging(&cli.common);
    betty_cli::run(|| run(cli))
}

struct Ctx {
    registry: RegistryDir,
    store: ApprovalStore,
    who: Identity,
    now: jiff::Timestamp,
}

fn run(cli: Cli) -> Result<ExitStatus> {
    let registry = cli.common.registry_dir()?;
    let ctx = Ctx {
        store: ApprovalStore::new(&registry.approvals_dir()),
        who: cli.common.identity()?,
        registry,
        now: betty_core::time::now(),
    };
    let mut out = Printer::new();
    match cli.command {
        Command::Request {
            subject,
            approvers,
            required,
            reason,
            expires_in,
            format,
        } => {
            let ttl = betty_core::time::parse_duration(&expires_in)
                .with_context(|| "invalid `--expires-in`".to_string())?;
            let (skill, digest, context) = resolve_subject(&subject)?;
            let req = ctx.store.request(
                NewRequest {
                    operation: subject.operation.clone(),
                    skill,
                    reason,
                    context,
                    subject_digest: digest,
                    approvers,
                    required,
                    ttl,
                },
                &ctx.who.user,
                ctx.now,
            )?;
            record(&ctx, "approval.requested", &req, None)?;
            notify::send(&ctx.registry, &ctx.who, "approval.requested", &req);
            print_request(&mut out, &req, ctx.now, format)?;
            Ok(ExitStatus::Pending)
        }
        Command::Approve {
            id,
            comment,
            format,
        } => decide(&ctx, &mut out, &id, Verdict::Approve, comment, format),
        Command::Reject {
            id,
            comment,
            format,
        } => decide(&ctx, &mut out, &id, Verdict::Reject, comment, format),
        Command::Cancel { id } => match ctx.store.cancel(&id, &ctx.who.user, ctx.now) {
            Ok(d) => {
                if d.changed {
                    record(&ctx, "approval.cancelled", &d.request, None)?;
                    notify::send(&ctx.registry, &ctx.who, "approval.cancelled", &d.request);
                }
                out.line(&format!("{} cancelled", display(&d.request.id)))?;
                Ok(ExitStatus::Success)
            }
            Err(e) => refusal(e),
        },
        Command::Status { id, format } => {
            let req = ctx.store.load(&id)?;
            print_request(&mut out, &req, ctx.now, format)?;
            Ok(req.effective_status(ctx.now).exit_status())
        }
        Command::Check { subject } => {
            let (skill, digest, _) = resolve_subject(&subject)?;
            let op = Some(subject.operation.as_str());
            if let Some(r) = ctx.store.find_approved(&digest, op, ctx.now)? {
                out.line(&format!(
                    "✅ approved by {} ({})",
                    display(&r.approvals().join(", ")),
                    display(&r.id)
                ))?;
                return Ok(ExitStatus::Success);
            }
            if let Some(r) = ctx.store.find_pending(&digest, op, ctx.now)? {
                out.line(&format!(
                    "⏳ pending: {} ({}/{} approvals from `{}`)",
                    display(&r.id),
                    r.approvals().len(),
                    r.required,
                    display(&r.approvers)
                ))?;
                return Ok(ExitStatus::Pending);
            }
            out.line(&format!(
                "❌ no approval for `{}` on {} (subject {digest}); request one with `approval-queue request`",
                display(&subject.operation),
                display(skill.as_deref().unwrap_or("this subject")),
            ))?;
            Ok(ExitStatus::Failure)
        }
        Command::List { status, format } => {
            let all = ctx.store.list()?;
            let shown: Vec<&ApprovalRequest> = all
                .iter()
                .filter(|r| {
                    status
                        .as_deref()
                        .is_none_or(|s| r.effective_status(ctx.now).as_str() == s)
                })
                .collect();
            match format {
                Format::Json => out.json(&json!({
                    "schema_version": 1,
                    "requests": shown.iter().map(|r| view(r, ctx.now)).collect::<Vec<_>>(),
                }))?,
                Format::Text => {
                    if shown.is_empty() {
                        out.line("no approval requests")?;
                    }
                    for r in shown {
                        out.line(&format!(
                            "{}  {:<9}  {:<10} {:<24} {}/{} from {:<12} by {}  expires {}",
                            display(&r.id),
                            r.effective_status(ctx.now).as_str(),
                            display(&r.operation),
                            display(r.skill.as_deref().unwrap_or("-")),
                            r.approvals().len(),
                            r.required,
                            display(&r.approvers),
                            display(&r.requested_by),
                            display(&r.expires_at)
                        ))?;
                    }
                }
            }
            Ok(ExitStatus::Success)
        }
    }
}

fn decide(
    ctx: &Ctx,
    out: &mut Printer,
    id: &str,
    verdict: Verdict,
    comment: Option<String>,
    format: Format,
) -> Result<ExitStatus> {
    let groups = ctx.store.groups()?;
    match ctx
        .store
        .decide(id, &ctx.who.user, verdict, comment, &groups, ctx.now)
    {
        Ok(d) => {
            if d.changed {
                let event = match d.request.status {
                    Status::Approved => "approval.approved",
                    Status::Rejected => "approval.rejected",
                    _ => "approval.decided",
                };
                record(ctx, event, &d.request, Some(verdict))?;
                notify::send(&ctx.registry, &ctx.who, event, &d.request);
            } else {
                tracing::info!(
                    "{} already recorded this decision; nothing changed",
                    ctx.who.user
                );
            }
            print_request(out, &d.request, ctx.now, format)?;
            Ok(d.request.effective_status(ctx.now).exit_status())
        }
        Err(betty_core::approval::DecideError::Expired { id, expires_at }) => {
            if let Ok(req) = ctx.store.load(&id) {
                record(ctx, "approval.expired", &req, None)?;
            }
            tracing::error!("`{id}` expired at {expires_at}; request it again");
            out.line(&format!(
                "❌ {} expired at {}",
                display(&id),
                display(&expires_at)
            ))?;
            Ok(ExitStatus::Failure)
        }
        Err(e) => refusal(e),
    }
}

fn refusal(e: betty_core::approval::DecideError) -> Result<ExitStatus> {
    match e.exit_status() {
        ExitStatus::Failure => {
            tracing::error!("{e}");
            Ok(ExitStatus::Failure)
        }
        _ => Err(anyhow::Error::new(e)),
    }
}

/// The skill, the digest and the context an approval binds to.
fn resolve_subject(s: &Subject) -> Result<(Option<String>, String, Value)> {
    let mut args = Map::new();
    for a in &s.args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("invalid `--arg {a}`: expected KEY=VALUE");
        };
        args.insert(k.trim().to_string(), Value::String(v.to_string()));
    }
    if let Some(path) = &s.manifest {
        let m = Manifest::read(path, Kind::Skill)?;
        let skill = s.skill.clone().unwrap_or_else(|| m.name.clone());
        let context =
            json!({"manifest": path.display().to_string(), "version": m.version(), "args": args});
        return Ok((Some(skill), m.digest(), context));
    }
    let subject = json!({"operation": s.operation, "skill": s.skill, "args": args});
    Ok((
        s.skill.clone(),
        betty_core::canonical::digest(&subject),
        json!({ "args": args }),
    ))
}

fn record(ctx: &Ctx, event: &str, req: &ApprovalRequest, verdict: Option<Verdict>) -> Result<()> {
    let details = json!({
        "id": req.id,
        "operation": req.operation,
        "subject_digest": req.subject_digest,
        "approvers": req.approvers,
        "required": req.required,
        "approvals": req.approvals(),
        "decision": verdict.map(|v| match v { Verdict::Approve => "approve", Verdict::Reject => "reject" }),
    });
    AuditLog::new(&ctx.registry.audit_log()).append(
        &AuditRecord {
            operation: event.to_string(),
            skill: req.skill.clone(),
            outcome: req.status.as_str().to_string(),
            policy_checks: vec![],
            details: Some(details.clone()),
        },
        &ctx.who,
    )?;
    let mut context = Map::new();
    context.insert("approval".into(), details);
    EventWriter::new(&ctx.registry.events_jsonl(), TOOL).record(
        NewEvent {
            event_type: event.to_string(),
            skill_name: req.skill.clone(),
            outcome: req.status.as_str().to_string(),
            context,
            ..Default::default()
        },
        &ctx.who,
    )?;
    betty_cli::fire_alerts(&ctx.registry);
    Ok(())
}

/// User text as the text output shows it: secrets redacted (a request file may predate
/// redaction or come from elsewhere), control characters escaped.
fn display(s: &str) -> String {
    betty_core::escape::escape(&betty_core::redact::redact_text(s)).into_owned()
}

fn view(r: &ApprovalRequest, now: jiff::Timestamp) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    betty_core::redact::redact_value(&mut v);
    v["effective_status"] = r.effective_status(now).as_str().into();
    v["approvals"] = json!(r.approvals());
    v
}

fn print_request(
    out: &mut Printer,
    r: &ApprovalRequest,
    now: jiff::Timestamp,
    format: Format,
) -> Result<()> {
    if format == Format::Json {
        return out.json(&view(r, now));
    }
    let status = r.effective_status(now);
    let mark = match status {
        Status::Approved => "✅",
        Status::Pending => "⏳",
        _ => "❌",
    };
    out.line(&format!("{mark} {} {status}", display(&r.id)))?;
    out.line(&format!(
        "  operation: {} on {}",
        display(&r.operation),
        display(r.skill.as_deref().unwrap_or("-"))
    ))?;
    out.line(&format!(
        "  requested by {} at {}: {}",
        display(&r.requested_by),
        display(&r.requested_at),
        display(&r.reason)
    ))?;
    out.line(&format!(
        "  approvals: {}/{} from `{}` ({})",
        r.approvals().len(),
        r.required,
        display(&r.approvers),
        display(&r.approvals().join(", "))
    ))?;
    for d in &r.decisions {
        let verb = match d.decision {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        };
        out.line(&format!(
            "  {} {verb} at {}{}",
            display(&d.by),
            display(&d.at),
            d.comment
                .as_deref()
                .map(|c| format!(": {}", display(c)))
                .unwrap_or_default()
        ))?;
    }
    out.line(&format!("  subject: {}", display(&r.subject_digest)))?;
    out.line(&format!("  expires: {}", display(&r.expires_at)))
}
