//! What each subcommand does: resolve who is acting (from their key, never from a claim
//! alone), act on `betty_core::approval::ApprovalStore`, record the transition through
//! `betty_core::record::Recorder` (intent before the file changes, commit and event after),
//! record every refusal, notify, and say the request's derived state.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use betty_cli::Printer;
use betty_core::ExitStatus;
use betty_core::approval::{
    ApprovalRequest, ApprovalStore, DecideError, Derived, NewRequest, Status, Subject,
    SubjectTarget, Trust, Verdict,
};
use betty_core::audit::AuditRecord;
use betty_core::discover::RegistryDir;
use betty_core::identity::Identity;
use betty_core::record::{Operation, Recorder};
use betty_core::sshsig::{self, KeyRef};
use betty_core::telemetry::{EventBatch, NewEvent};
use serde_json::{Map, Value, json};

use crate::cli::{Cli, Command, Format, KeyArg, Subject as SubjectArgs};
use crate::notify;

const TOOL: &str = "approval-queue";

struct Ctx {
    registry: RegistryDir,
    store: ApprovalStore,
    who: Identity,
    /// `--user` or `BETTY_USER`: a claim, checked against the key.
    claim: Option<String>,
    recorder: Recorder,
    now: jiff::Timestamp,
}

/// Runs one command line.
pub fn run(cli: Cli) -> Result<ExitStatus> {
    let read_only = match &cli.command {
        Command::Status { .. } => Some("approval-queue status"),
        Command::Wait { .. } => Some("approval-queue wait"),
        Command::Check { .. } => Some("approval-queue check"),
        Command::List { .. } => Some("approval-queue list"),
        _ => None,
    };
    if let Some(command) = read_only {
        cli.common.refuse_user(command)?;
    }
    let registry = cli.common.registry_dir()?;
    let who = cli.common.identity()?;
    let claim = cli
        .common
        .user
        .clone()
        .or_else(|| std::env::var("BETTY_USER").ok().filter(|u| !u.is_empty()));
    let ctx = Ctx {
        store: ApprovalStore::new(&registry.approvals_dir()),
        recorder: Recorder::new(&registry, TOOL, &who),
        who,
        claim,
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
            expires_at,
            valid_for,
            unsigned,
            key,
            format,
        } => {
            let trust = ctx.trust()?;
            let notifications = notify::Notifications::load(&ctx.registry)?;
            let expires_at = match expires_at {
                Some(t) => betty_core::time::parse_timestamp(&t)
                    .with_context(|| format!("invalid `--expires-at {t}`"))?,
                None => {
                    let ttl = betty_core::time::parse_duration(&expires_in)
                        .with_context(|| format!("invalid `--expires-in {expires_in}`"))?;
                    jiff::SignedDuration::try_from(ttl)
                        .ok()
                        .and_then(|d| ctx.now.checked_add(d).ok())
                        .with_context(|| format!("`--expires-in {expires_in}` is too far"))?
                }
            };
            let (skill, subject_value, context) = resolve_subject(&subject, &ctx.registry)?;
            let new = NewRequest {
                operation: subject.operation.clone(),
                skill,
                reason,
                context,
                subject: subject_value,
                approvers,
                required,
                expires_at,
                valid_for,
                signed: !unsigned,
            };
            // A request that can never be met is refused before anyone is asked to sign.
            ctx.store
                .check_new(&new, None, &trust, ctx.now)
                .map_err(anyhow::Error::new)?;
            let signer = if unsigned {
                None
            } else {
                Some(ctx.signer(&key, &trust, "request")?)
            };
            let requester = match &signer {
                Some(s) => s.principal.clone(),
                None => normalise_claim(&ctx.who.user)?,
            };
            let mut req = match ctx.store.draft(new, &requester, &trust, ctx.now) {
                Ok(r) => r,
                Err(e) => return ctx.refused(e, None, &requester),
            };
            if let Some(s) = &signer {
                req.signature = Some(s.key.sign(sshsig::NAMESPACE, &req.statement())?);
                req.key = Some(s.fingerprint.clone());
            }
            let mut op = None;
            let created = ctx.store.create(req, &trust, ctx.now, |req| {
                begin(&ctx, &mut op, "approval.requested", req, None)
            });
            let req = match created {
                Ok(r) => r,
                Err(e) => return ctx.refused(e, None, &requester),
            };
            let derived = req.derive(&trust, ctx.now);
            commit(&ctx, op, "approval.requested", &req, &derived, None)?;
            let t = notify::Transition {
                event: "approval.requested",
                actor: &requester,
                request: &req,
                state: derived.status,
            };
            notifications.send(&ctx.registry, &ctx.who, &t, &trust.groups);
            print_request(&mut out, &req, &derived, format)?;
            Ok(ExitStatus::Pending)
        }
        Command::Approve {
            id,
            comment,
            key,
            format,
        } => decide(&ctx, &mut out, &id, Verdict::Approve, comment, &key, format),
        Command::Reject {
            id,
            comment,
            key,
            format,
        } => decide(&ctx, &mut out, &id, Verdict::Reject, comment, &key, format),
        Command::Revoke {
            id,
            comment,
            key,
            format,
        } => decide(&ctx, &mut out, &id, Verdict::Revoke, comment, &key, format),
        Command::Cancel { id, key } => decide(
            &ctx,
            &mut out,
            &id,
            Verdict::Cancel,
            None,
            &key,
            Format::Text,
        ),
        Command::Status { id, format } => {
            let trust = ctx.trust()?;
            let req = ctx.store.load(&id)?;
            let d = req.derive(&trust, ctx.now);
            print_request(&mut out, &req, &d, format)?;
            Ok(d.status.exit_status())
        }
        Command::Wait {
            id,
            timeout,
            interval,
            format,
        } => {
            let timeout = betty_core::time::parse_duration(&timeout)
                .with_context(|| format!("invalid `--timeout {timeout}`"))?;
            let interval = betty_core::time::parse_duration(&interval)
                .with_context(|| format!("invalid `--interval {interval}`"))?
                .max(std::time::Duration::from_millis(50));
            let start = std::time::Instant::now();
            loop {
                let trust = ctx.trust()?;
                let req = ctx.store.load(&id)?;
                let d = req.derive(&trust, betty_core::time::now());
                if d.status != Status::Pending || start.elapsed() >= timeout {
                    if d.status == Status::Pending {
                        tracing::warn!("`{id}` is still pending after {timeout:?}");
                    }
                    print_request(&mut out, &req, &d, format)?;
                    return Ok(d.status.exit_status());
                }
                std::thread::sleep(interval.min(timeout.saturating_sub(start.elapsed())));
            }
        }
        Command::Check { subject } => {
            let trust = ctx.trust()?;
            let (skill, subject_value, _) = resolve_subject(&subject, &ctx.registry)?;
            let digest = subject_value.digest();
            let found = ctx.store.for_subject(
                &digest,
                Some(&[subject.operation.as_str()]),
                &trust,
                ctx.now,
            )?;
            if let Some((r, d)) = found
                .iter()
                .find(|(_, d)| d.status == Status::Approved && !d.unsigned)
            {
                out.line(&format!(
                    "✅ approved by {} ({})",
                    display(&d.approvers().join(", ")),
                    display(&r.id)
                ))?;
                return Ok(ExitStatus::Success);
            }
            if let Some((r, d)) = found.iter().find(|(_, d)| d.status == Status::Pending) {
                out.line(&format!(
                    "⏳ pending{}: {} ({}/{} approvals from `{}`)",
                    if d.unsigned { " (unsigned)" } else { "" },
                    display(&r.id),
                    d.approvals.len(),
                    r.required,
                    display(&r.approvers)
                ))?;
                return Ok(ExitStatus::Pending);
            }
            for (r, d) in &found {
                if d.status == Status::Approved && d.unsigned {
                    out.line(&format!(
                        "⚠ {} is approved but unsigned: only a policy with `signed: false` counts it",
                        display(&r.id)
                    ))?;
                }
            }
            out.line(&format!(
                "❌ no approval for `{}` on {} (subject {digest}); request one with `approval-queue request`",
                display(&subject.operation),
                display(skill.as_deref().unwrap_or("this subject")),
            ))?;
            Ok(ExitStatus::Failure)
        }
        Command::List { status, format } => {
            let started = std::time::Instant::now();
            let trust = ctx.trust()?;
            let all = ctx.store.list()?;
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                requests = all.len(),
                "requests read"
            );
            let derived = betty_core::approval::derive_all(&all, &trust, ctx.now);
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "derived");
            let shown: Vec<(&ApprovalRequest, &Derived)> = all
                .iter()
                .zip(derived.iter())
                .filter(|(_, d)| status.as_deref().is_none_or(|s| d.status.as_str() == s))
                .collect();
            match format {
                Format::Json => {
                    let items = betty_core::par::map(&shown, 64, |(r, d)| {
                        serde_json::to_string_pretty(&view(r, d))
                    })
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
                    tracing::debug!(ms = started.elapsed().as_millis() as u64, "views built");
                    out.json_with_list(&[("schema_version", json!(2))], "requests", &items)?;
                    tracing::debug!(ms = started.elapsed().as_millis() as u64, "written");
                }
                Format::Text => {
                    if shown.is_empty() {
                        out.line("no approval requests")?;
                    }
                    for (r, d) in shown {
                        out.line(&format!(
                            "{}  {:<9}{} {:<10} {:<24} {}/{} from {:<12} by {}  expires {}{}",
                            display(&r.id),
                            d.status.as_str(),
                            if d.unsigned { " unsigned" } else { "" },
                            display(&r.operation),
                            display(r.skill.as_deref().unwrap_or("-")),
                            d.approvals.len(),
                            r.required,
                            display(&r.approvers),
                            display(&r.requested_by),
                            display(&r.expires_at),
                            if d.cache_disagrees {
                                format!("  (file says {}: not believed)", r.status)
                            } else {
                                String::new()
                            }
                        ))?;
                    }
                }
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// Who signs, as the key and `allowed_signers` say.
struct SignerChoice {
    key: KeyRef,
    principal: String,
    fingerprint: String,
}

impl Ctx {
    fn trust(&self) -> Result<Trust> {
        Ok(self.store.trust(Some(&self.registry.audit_log()))?)
    }

    /// The key to sign with and the principal it is listed for. A claim (`--user`,
    /// `BETTY_USER`) must be one of the key's principals; a mismatch is refused and recorded.
    fn signer(&self, key: &KeyArg, trust: &Trust, what: &str) -> Result<SignerChoice> {
        let key = match &key.key {
            Some(p) => KeyRef::from_path(p),
            None => KeyRef::from_git_config(&std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
                .with_context(|| format!("a signed {what} needs a key: pass `--key PATH` (or set git's `gpg.format ssh` and `user.signingkey`)"))?,
        };
        let public = key.public_key()?;
        let fingerprint = sshsig::fingerprint(&public);
        let listed = trust
            .signers
            .principals_for(&public, sshsig::NAMESPACE, self.now);
        let principal = match &self.claim {
            Some(c) => {
                let c = normalise_claim(c)?;
                if !trust
                    .signers
                    .allows(&public, &c, sshsig::NAMESPACE, self.now)
                {
                    let reason = format!(
                        "the claimed identity `{c}` is not a principal of the key {fingerprint} in `{}`{}",
                        self.store.dir.join("allowed_signers").display(),
                        if listed.is_empty() {
                            String::new()
                        } else {
                            format!(" (it is listed for: {})", listed.join(", "))
                        }
                    );
                    self.record_refusal("claim_mismatch", None, &c, &reason)?;
                    bail!("{reason}");
                }
                c
            }
            None => match listed.as_slice() {
                [one] => one.clone(),
                [] => {
                    let reason = format!(
                        "the key {fingerprint} is not listed in `{}` for namespace `{}`; add `PRINCIPAL namespaces=\"{}\" KEY` there (through code review)",
                        self.store.dir.join("allowed_signers").display(),
                        sshsig::NAMESPACE,
                        sshsig::NAMESPACE
                    );
                    self.record_refusal("unknown_key", None, &self.who.user, &reason)?;
                    bail!("{reason}");
                }
                many => bail!(
                    "the key {fingerprint} is listed for several principals ({}); pass `--user` to say which one you act as",
                    many.join(", ")
                ),
            },
        };
        Ok(SignerChoice {
            key,
            principal,
            fingerprint,
        })
    }

    /// Records a refusal (audit entry and `approval.refused` event), then ends as the error
    /// says. A refusal that cannot be recorded is exit 2 with both reasons.
    fn refused(
        &self,
        e: DecideError,
        req: Option<&ApprovalRequest>,
        by: &str,
    ) -> Result<ExitStatus> {
        if let Some(kind) = e.refusal_kind() {
            self.record_refusal(kind, req, by, &e.to_string())?;
        }
        match e.exit_status() {
            ExitStatus::Failure => {
                tracing::error!("{e}");
                Ok(ExitStatus::Failure)
            }
            _ => Err(anyhow::Error::new(e)),
        }
    }

    fn record_refusal(
        &self,
        kind: &str,
        req: Option<&ApprovalRequest>,
        by: &str,
        reason: &str,
    ) -> Result<()> {
        let details = json!({
            "id": req.map(|r| r.id.clone()),
            "refusal": kind,
            "by": by,
            "reason": reason,
        });
        let mut context = Map::new();
        context.insert("approval".into(), details.clone());
        let mut events = EventBatch::new();
        self.recorder.events().complete_line(
            NewEvent {
                event_type: "approval.refused".into(),
                skill_name: req.and_then(|r| r.skill.clone()),
                outcome: "refused".into(),
                context,
                ..Default::default()
            },
            &self.who,
            &mut events,
        )?;
        self.recorder
            .record(
                &AuditRecord {
                    operation: "approval.refused".into(),
                    skill: req.and_then(|r| r.skill.clone()),
                    outcome: "refused".into(),
                    details: Some(details),
                    ..AuditRecord::default()
                },
                &events,
            )
            .context("the refusal could not be recorded in the audit trail")?;
        Ok(())
    }
}

fn normalise_claim(c: &str) -> Result<String> {
    betty_core::principal::normalise(c).with_context(|| {
        format!(
            "invalid identity {}",
            betty_core::escape::escape(&c.chars().take(80).collect::<String>())
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn decide(
    ctx: &Ctx,
    out: &mut Printer,
    id: &str,
    verdict: Verdict,
    comment: Option<String>,
    key: &KeyArg,
    format: Format,
) -> Result<ExitStatus> {
    let trust = ctx.trust()?;
    let notifications = notify::Notifications::load(&ctx.registry)?;
    let current = ctx.store.load(id)?;
    let signer = if current.signed {
        Some(ctx.signer(key, &trust, "decision")?)
    } else {
        if key.key.is_some() {
            tracing::warn!("`{id}` is unsigned (dev mode): the decision is not signed either");
        }
        None
    };
    let by = match &signer {
        Some(s) => s.principal.clone(),
        None => normalise_claim(&ctx.who.user)?,
    };
    let (req, mut decision) = ctx.store.prepare(id, &by, verdict, comment, ctx.now)?;
    if let Some(s) = &signer {
        decision.signature = Some(s.key.sign(sshsig::NAMESPACE, &decision.statement(&req))?);
    }
    let signed_over = req.statement_digest();
    let mut op = None;
    let event_for = |req: &ApprovalRequest, d: Status| transition(req, d, verdict);
    let decided = ctx
        .store
        .decide(id, decision, &signed_over, &trust, ctx.now, |new| {
            let d = new.derive(&trust, ctx.now);
            begin(ctx, &mut op, event_for(new, d.status), new, Some(verdict))
        });
    match decided {
        Ok(d) => {
            if d.changed {
                let event = event_for(&d.request, d.derived.status);
                commit(ctx, op, event, &d.request, &d.derived, Some(verdict))?;
                let t = notify::Transition {
                    event,
                    actor: &by,
                    request: &d.request,
                    state: d.derived.status,
                };
                notifications.send(&ctx.registry, &ctx.who, &t, &trust.groups);
            } else {
                tracing::info!("{by} already recorded this decision; nothing changed");
            }
            print_request(out, &d.request, &d.derived, format)?;
            Ok(if verdict == Verdict::Cancel {
                ExitStatus::Success
            } else {
                d.derived.status.exit_status()
            })
        }
        Err(e) => ctx.refused(e, Some(&req), &by),
    }
}

/// The skill, the subject and the context an approval binds to. The target is the manifest
/// when `--manifest` is given, else the registered entry `--skill` names (as policy-enforce
/// binds a registered skill), else none (an operation on no target).
fn resolve_subject(
    s: &SubjectArgs,
    registry: &RegistryDir,
) -> Result<(Option<String>, Subject, Value)> {
    let mut args = std::collections::BTreeMap::new();
    for a in &s.args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("invalid `--arg {a}`: expected KEY=VALUE");
        };
        let k = k.trim();
        if k.is_empty() {
            bail!("invalid `--arg {a}`: the key is empty");
        }
        if args.insert(k.to_string(), v.to_string()).is_some() {
            bail!("`--arg {k}=...` is given twice; an approval binds to one value");
        }
    }
    let target = match &s.manifest {
        Some(path) => {
            let kind = s.kind.clone().unwrap_or_else(|| kind_of(path).to_string());
            let (name, digest) = target_digest(path, &kind)?;
            Some(SubjectTarget { kind, name, digest })
        }
        None => match &s.skill {
            Some(name) => Some(registered_target(registry, name, s.kind.as_deref())?),
            None => {
                if s.kind.is_some() {
                    bail!("`--kind` says what `--manifest` or `--skill` is; pass one of them too");
                }
                None
            }
        },
    };
    let skill = s
        .skill
        .clone()
        .or_else(|| target.as_ref().map(|t| t.name.clone()));
    let subject = Subject {
        operation: s.operation.clone(),
        target,
        environment: s.environment.clone(),
        args,
    };
    let context = json!({
        "manifest": s.manifest.as_ref().map(|p| p.display().to_string()),
        "environment": subject.normalised_environment(),
        "args": subject.args,
    });
    Ok((skill, subject, context))
}

/// The registered entry `name` (in `skills.json`, or `agents.json` for `--kind agent`) as an
/// approval target. A name the registry lacks is an error: binding to nothing would let any
/// later entry of that name through.
fn registered_target(
    registry: &RegistryDir,
    name: &str,
    kind: Option<&str>,
) -> Result<SubjectTarget> {
    use betty_core::manifest::Kind;
    let (kind, path) = match kind.unwrap_or("skill") {
        "skill" => (Kind::Skill, registry.skills_json()),
        "agent" => (Kind::Agent, registry.agents_json()),
        other => bail!(
            "`--kind {other} --skill {name}`: only skills and agents are registered; pass `--manifest PATH` for a {other}"
        ),
    };
    let reg = betty_core::registry::Registry::load_or_empty(&path, kind)?;
    let Some(entry) = reg.get(name) else {
        bail!(
            "`{}` is not registered in `{}`; pass `--manifest PATH` to bind the approval to a manifest",
            betty_core::escape::escape(name),
            path.display()
        );
    };
    Ok(SubjectTarget {
        kind: if kind == Kind::Agent {
            "agent"
        } else {
            "skill"
        }
        .to_string(),
        name: name.to_string(),
        digest: betty_core::registry::entry_digest(entry),
    })
}

/// `agent.yaml` is an agent, a file under `workflows/` a workflow, anything else a skill (the
/// same rule as policy-enforce).
fn kind_of(path: &Path) -> &'static str {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name == "agent.yaml" || name == "agent.yml" {
        "agent"
    } else if path
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|p| p == "workflows")
    {
        "workflow"
    } else {
        "skill"
    }
}

/// The target's name and canonical digest, as policy-enforce computes them.
fn target_digest(path: &Path, kind: &str) -> Result<(String, String)> {
    use betty_core::manifest::{Kind, Manifest};
    match kind {
        "skill" | "agent" => {
            let k = if kind == "agent" {
                Kind::Agent
            } else {
                Kind::Skill
            };
            let m = Manifest::read(path, k)?;
            Ok((m.name.clone(), m.digest()))
        }
        _ => {
            let doc = betty_core::Document::read_yaml(path, &betty_core::limits::Limits::MANIFEST)?;
            let name = doc
                .value
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("`{}` has no `name`", path.display()))?;
            Ok((name, betty_core::canonical::digest(&doc.value)))
        }
    }
}

/// The event (and audit operation) of a request's transition.
fn transition(req: &ApprovalRequest, status: Status, verdict: Verdict) -> &'static str {
    match (verdict, status) {
        (Verdict::Cancel, _) => "approval.cancelled",
        (Verdict::Revoke, _) => "approval.revoked",
        (_, Status::Pending) if req.decisions.is_empty() => "approval.requested",
        (_, Status::Approved) => "approval.approved",
        (_, Status::Rejected) => "approval.rejected",
        (_, Status::Expired) => "approval.expired",
        _ => "approval.decided",
    }
}

fn details(req: &ApprovalRequest, d: &Derived, verdict: Option<Verdict>) -> Value {
    // `by`: the principal of this transition's decision (a withdrawal recorded here counts
    // even if the file later loses it).
    let by = verdict.and_then(|_| req.decisions.last().map(|d| d.by.clone()));
    json!({
        "id": req.id,
        "by": by,
        "operation": req.operation,
        "subject_digest": req.subject_digest,
        "approvers": req.approvers,
        "required": req.required,
        "approvals": d.approvers(),
        "signed": req.signed,
        "decision": verdict.map(Verdict::as_str),
    })
}

/// The intent entry, written under the request's lock just before its file changes.
fn begin(
    ctx: &Ctx,
    op: &mut Option<Operation>,
    event: &str,
    req: &ApprovalRequest,
    verdict: Option<Verdict>,
) -> betty_core::Result<()> {
    let trust_free = Derived {
        status: req.status,
        unsigned: !req.signed,
        approvals: Vec::new(),
        quorum_at: None,
        valid_until: None,
        problems: Vec::new(),
        ignored: Vec::new(),
        cache_disagrees: false,
    };
    let mut change = details(req, &trust_free, verdict);
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
    d: &Derived,
    verdict: Option<Verdict>,
) -> Result<()> {
    let Some(op) = op else {
        bail!(
            "`{}` changed without its intent entry; this is a bug",
            req.id
        );
    };
    let details = details(req, d, verdict);
    let mut context = Map::new();
    context.insert("approval".into(), details.clone());
    let mut events = EventBatch::new();
    ctx.recorder.events().complete_line(
        NewEvent {
            event_type: event.to_string(),
            skill_name: req.skill.clone(),
            outcome: d.status.as_str().to_string(),
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
            outcome: d.status.as_str().to_string(),
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

/// User text as the text output shows it: secrets redacted, control characters escaped.
fn display(s: &str) -> String {
    betty_core::escape::escape(&betty_core::redact::redact_text(s)).into_owned()
}

fn view(r: &ApprovalRequest, d: &Derived) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    betty_core::redact::redact_value(&mut v);
    v["effective_status"] = d.status.as_str().into();
    v["derived"] = serde_json::to_value(d).unwrap_or(Value::Null);
    v["approvals"] = json!(d.approvers());
    v
}

fn print_request(
    out: &mut Printer,
    r: &ApprovalRequest,
    d: &Derived,
    format: Format,
) -> Result<()> {
    if format == Format::Json {
        return out.json(&view(r, d));
    }
    let mark = match d.status {
        Status::Approved => "✅",
        Status::Pending => "⏳",
        _ => "❌",
    };
    out.line(&format!(
        "{mark} {} {}{}",
        display(&r.id),
        d.status,
        if d.unsigned { " (unsigned)" } else { "" }
    ))?;
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
        d.approvals.len(),
        r.required,
        display(&r.approvers),
        display(&d.approvers().join(", "))
    ))?;
    for (i, dec) in r.decisions.iter().enumerate() {
        let ignored = d.ignored.iter().find(|x| x.index == i);
        out.line(&format!(
            "  {} {} at {}{}{}",
            display(&dec.by),
            dec.decision.as_str(),
            display(&dec.at),
            dec.comment
                .as_deref()
                .map(|c| format!(": {}", display(c)))
                .unwrap_or_default(),
            ignored
                .map(|x| format!("  [does not count: {}]", display(&x.reason)))
                .unwrap_or_default()
        ))?;
    }
    for p in &d.problems {
        out.line(&format!("  invalid: {}", display(p)))?;
    }
    if d.cache_disagrees {
        out.line(&format!(
            "  the file's status says `{}`; its evidence does not: not believed",
            r.status
        ))?;
    }
    if let Some(until) = &d.valid_until {
        out.line(&format!("  usable until: {}", display(until)))?;
    }
    out.line(&format!("  subject: {}", display(&r.subject_digest)))?;
    out.line(&format!("  expires: {}", display(&r.expires_at)))
}
