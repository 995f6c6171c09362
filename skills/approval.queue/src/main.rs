//! `approval-queue`: hold sensitive operations until enough of the right humans approve.
//!
//! The binary is thin: parse flags, act on `betty_core::approval::ApprovalStore`, record the
//! transition through `betty_core::record::Recorder` (an intent entry before the request file
//! changes, a commit entry and the event after), notify, and exit with the request's state
//! (0 approved, 1 rejected/expired/cancelled, 3 pending, 2 error: nothing changed).

use anyhow::{Context, Result, bail};
use approval_queue::cli::{Cli, Command, Format, Subject};
use approval_queue::notify;
use betty_cli::Printer;
use betty_core::ExitStatus;
use betty_core::approval::{ApprovalRequest, ApprovalStore, NewRequest, Status, Verdict};
use betty_core::audit::AuditRecord;
use betty_core::discover::RegistryDir;
use betty_core::identity::Identity;
use betty_core::manifest::{Kind, Manifest};
use betty_core::record::{Operation, Recorder};
use betty_core::telemetry::{EventBatch, NewEvent};
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
    recorder: Recorder,
    now: jiff::Timestamp,
}

fn run(cli: Cli) -> Result<ExitStatus> {
    let registry = cli.common.registry_dir()?;
    let who = cli.common.identity()?;
    let ctx = Ctx {
        store: ApprovalStore::new(&registry.approvals_dir()),
        recorder: Recorder::new(&registry, TOOL, &who),
        who,
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
            let mut op = None;
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
                |req| begin(&ctx, &mut op, "approval.requested", req, None),
            )?;
            commit(&ctx, op, "approval.requested", &req, None)?;
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
        Command::Cancel { id } => {
            let mut op = None;
            let cancelled = ctx.store.cancel(&id, &ctx.who.user, ctx.now, |req| {
                begin(&ctx, &mut op, "approval.cancelled", req, None)
            });
            match cancelled {
                Ok(d) => {
                    if d.changed {
                        commit(&ctx, op, "approval.cancelled", &d.request, None)?;
                        notify::send(&ctx.registry, &ctx.who, "approval.cancelled", &d.request);
                    }
                    out.line(&format!("{} cancelled", d.request.id))?;
                    Ok(ExitStatus::Success)
                }
                Err(e) => refusal(e),
            }
        }
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
                    r.approvals().join(", "),
                    r.id
                ))?;
                return Ok(ExitStatus::Success);
            }
            if let Some(r) = ctx.store.find_pending(&digest, op, ctx.now)? {
                out.line(&format!(
                    "⏳ pending: {} ({}/{} approvals from `{}`)",
                    r.id,
                    r.approvals().len(),
                    r.required,
                    r.approvers
                ))?;
                return Ok(ExitStatus::Pending);
            }
            out.line(&format!(
                "❌ no approval for `{}` on {} (subject {digest}); request one with `approval-queue request`",
                subject.operation,
                skill.as_deref().unwrap_or("this subject"),
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
                            r.id,
                            r.effective_status(ctx.now).as_str(),
                            r.operation,
                            r.skill.as_deref().unwrap_or("-"),
                            r.approvals().len(),
                            r.required,
                            r.approvers,
                            r.requested_by,
                            r.expires_at
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
    let mut op = None;
    let decided = ctx.store.decide(
        id,
        &ctx.who.user,
        verdict,
        comment,
        &groups,
        ctx.now,
        |req| begin(ctx, &mut op, transition(req), req, Some(verdict)),
    );
    match decided {
        Ok(d) => {
            if d.changed {
                let event = transition(&d.request);
                commit(ctx, op, event, &d.request, Some(verdict))?;
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
            // The request was marked expired just now (its intent is written): commit it.
            if op.is_some() {
                let req = ctx.store.load(&id)?;
                commit(ctx, op, "approval.expired", &req, None)?;
            }
            tracing::error!("`{id}` expired at {expires_at}; request it again");
            out.line(&format!("❌ {id} expired at {expires_at}"))?;
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

/// The event (and audit operation) of a request's transition to its new status.
fn transition(req: &ApprovalRequest) -> &'static str {
    match req.status {
        Status::Pending if req.decisions.is_empty() => "approval.requested",
        Status::Approved => "approval.approved",
        Status::Rejected => "approval.rejected",
        Status::Expired => "approval.expired",
        Status::Cancelled => "approval.cancelled",
        Status::Pending => "approval.decided",
    }
}

fn details(req: &ApprovalRequest, verdict: Option<Verdict>) -> Value {
    json!({
        "id": req.id,
        "operation": req.operation,
        "subject_digest": req.subject_digest,
        "approvers": req.approvers,
        "required": req.required,
        "approvals": req.approvals(),
        "decision": verdict.map(|v| match v { Verdict::Approve => "approve", Verdict::Reject => "reject" }),
    })
}

/// The intent entry, written under the request's lock just before its file changes; an error
/// (the audit trail cannot be appended) leaves the request as it was.
fn begin(
    ctx: &Ctx,
    op: &mut Option<Operation>,
    event: &str,
    req: &ApprovalRequest,
    verdict: Option<Verdict>,
) -> betty_core::Result<()> {
    let mut change = details(req, verdict);
    change["file"] = format!("approvals/{}.json", req.id).into();
    change["status"] = req.status.as_str().into();
    *op = Some(ctx.recorder.begin(event, req.skill.as_deref(), change)?);
    Ok(())
}

/// The commit entry and the event, once the request file is written.
fn commit(
    ctx: &Ctx,
    op: Option<Operation>,
    event: &str,
    req: &ApprovalRequest,
    verdict: Option<Verdict>,
) -> Result<()> {
    let Some(op) = op else {
        bail!(
            "`{}` changed without its intent entry; this is a bug",
            req.id
        );
    };
    let details = details(req, verdict);
    let mut context = Map::new();
    context.insert("approval".into(), details.clone());
    let mut events = EventBatch::new();
    ctx.recorder.events().complete_line(
        NewEvent {
            event_type: event.to_string(),
            skill_name: req.skill.clone(),
            outcome: req.status.as_str().to_string(),
            context,
            ..Default::default()
        },
        &ctx.who,
        &mut events,
    )?;
    op.commit(
        AuditRecord {
            operation: event.to_string(),
            skill: req.skill.clone(),
            outcome: req.status.as_str().to_string(),
            details: Some(details),
            ..AuditRecord::default()
        },
        &events,
    )
    .with_context(|| {
        format!(
            "`{}` was changed, but its commit entry or event could not be written; `telemetry-query audit verify` shows the operation as not finished",
            req.id
        )
    })?;
    Ok(())
}

fn view(r: &ApprovalRequest, now: jiff::Timestamp) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
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
    out.line(&format!("{mark} {} {status}", r.id))?;
    out.line(&format!(
        "  operation: {} on {}",
        r.operation,
        r.skill.as_deref().unwrap_or("-")
    ))?;
    out.line(&format!(
        "  requested by {} at {}: {}",
        r.requested_by, r.requested_at, r.reason
    ))?;
    out.line(&format!(
        "  approvals: {}/{} from `{}` ({})",
        r.approvals().len(),
        r.required,
        r.approvers,
        r.approvals().join(", ")
    ))?;
    for d in &r.decisions {
        let verb = match d.decision {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        };
        out.line(&format!(
            "  {} {verb} at {}{}",
            d.by,
            d.at,
            d.comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        ))?;
    }
    out.line(&format!("  subject: {}", r.subject_digest))?;
    out.line(&format!("  expires: {}", r.expires_at))
}
