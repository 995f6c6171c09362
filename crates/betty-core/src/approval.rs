//! Approval requests: sensitive operations held until enough of the right humans approve.
//!
//! One file per request, `registry/approvals/<id>.json` (schema `approval-request.schema.json`).
//! A request binds to the exact thing approved through `subject_digest`, the canonical digest of
//! its [`Subject`] (operation, target kind/name/digest, environment, every argument): if the
//! thing changes, the approval no longer applies.
//!
//! **Trust comes from keys, not files.** Everyone who can write the working tree can write a
//! request file, so nothing in one is believed because it is there:
//! - the request is signed by its requester, and every decision by its decider, with an SSH key
//!   (SSHSIG, namespace [`crate::sshsig::NAMESPACE`]) whose principal `registry/approvals/allowed_signers`
//!   lists ([`crate::sshsig::AllowedSigners`]);
//! - the state is *derived* ([`ApprovalRequest::derive`]) from the verified evidence: each signer a
//!   member of the group, never the requester (by principal or by key), `required` distinct
//!   principals *and* distinct keys, each decision inside the request's validity, the approval
//!   valid for `valid_for` after its quorum, a single-use approval spent once it is consumed
//!   (recorded in the file and in the audit trail: either counts). The `status` field is a cache
//!   for people; a cache that disagrees with the evidence is reported and never believed;
//! - identities are compared as people: [`crate::principal::normalise`] (NFKC, case-folded,
//!   trimmed; control and zero-width characters refused).
//!
//! A request written with `signed: false` (dev mode, for policies that say
//! `requires_approval: {signed: false}`) is derived the same way on its claimed names, without
//! signatures, and is marked unsigned everywhere; a signed policy never counts it.
//!
//! Decisions are appended under the request's sidecar lock and are idempotent. Signing happens
//! before the lock is taken (a FIDO key may wait for a touch), over bytes that do not depend on
//! other decisions, so concurrent approvers never wait on each other's keys.
//!
//! Groups live in `registry/approvals/groups.yaml`:
//! `groups: {security: [alice@x.com, ...]}` or, with a notification channel,
//! `groups: {security: {members: [...], notify: {slack: [URL], webhooks: [URL], email: [ADDR] | members}}}`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fsx;
use crate::limits::Limits;
use crate::manifest::check_safe_name;
use crate::principal;
use crate::source::{Document, Pos, SourceName};
use crate::sshsig::{self, AllowedSigners};

/// Schema version written into every request. Version 1 requests (before signatures) read as
/// unsigned.
pub const APPROVAL_SCHEMA_VERSION: u32 = 2;

/// How long an approval stays usable after it reached its quorum, unless the request or the
/// rule says otherwise.
pub const DEFAULT_VALID_FOR: &str = "24h";

/// How far in the future a decision's own time may be (clocks differ).
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

/// The audit operation that records a single-use approval being spent.
pub const CONSUMED_OPERATION: &str = "approval.consumed";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
    /// A single-use approval that a gate has used.
    Consumed,
    /// The request's own evidence does not hold (bad signature, unknown group, unreadable
    /// times): it never counts. Never written as a cache.
    Invalid,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
            Status::Consumed => "consumed",
            Status::Invalid => "invalid",
        }
    }
    /// The exit status a command reporting this state ends with.
    pub fn exit_status(self) -> crate::ExitStatus {
        match self {
            Status::Approved => crate::ExitStatus::Success,
            Status::Pending => crate::ExitStatus::Pending,
            Status::Rejected
            | Status::Expired
            | Status::Cancelled
            | Status::Consumed
            | Status::Invalid => crate::ExitStatus::Failure,
        }
    }
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Approved,
        Status::Rejected,
        Status::Expired,
        Status::Cancelled,
        Status::Consumed,
        Status::Invalid,
    ];
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a decision says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Reject,
    /// An approver withdraws their approval (before it is used).
    Revoke,
    /// The requester withdraws the request.
    Cancel,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
            Verdict::Revoke => "revoke",
            Verdict::Cancel => "cancel",
        }
    }
}

/// One signed act on a request, in the order it was appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub by: String,
    pub decision: Verdict,
    #[serde(default)]
    pub comment: Option<String>,
    pub at: String,
    /// The signing key's fingerprint (`SHA256:...`), for people; the signature is the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Armoured SSHSIG over [`Decision::statement`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A single-use approval being spent by a gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Consumption {
    pub at: String,
    /// Who ran the gate (a claim: the gate holds no key).
    pub by: String,
    /// The action that used it (`deploy`, ...).
    pub action: String,
    /// The audit operation id of the use.
    #[serde(default)]
    pub operation_id: Option<String>,
}

/// One request, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    #[serde(default = "legacy_schema_version")]
    pub schema_version: u32,
    pub id: String,
    pub operation: String,
    pub skill: Option<String>,
    pub requested_by: String,
    pub requested_at: String,
    pub reason: String,
    #[serde(default)]
    pub context: Value,
    /// What `subject_digest` is the digest of (absent in version 1 requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    pub subject_digest: String,
    /// The group whose members may decide.
    pub approvers: String,
    pub required: u32,
    pub expires_at: String,
    /// How long the approval is usable after its quorum (`24h`); absent means the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for: Option<String>,
    /// Whether the request and its decisions carry signatures (false: dev mode, or version 1).
    #[serde(default)]
    pub signed: bool,
    /// The requester's key fingerprint, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Armoured SSHSIG by the requester over [`ApprovalRequest::statement`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// A cache of the derived state, for people. Never believed.
    pub status: Status,
    #[serde(default)]
    pub decisions: Vec<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed: Option<Consumption>,
}

fn legacy_schema_version() -> u32 {
    1
}

impl ApprovalRequest {
    /// The bytes the requester signs: every field that says what is asked, by whom and until
    /// when (not the status, the decisions or the consumption, which come later).
    pub fn statement(&self) -> Vec<u8> {
        crate::canonical::to_vec(&json!({
            "type": "betty.approval.request/v1",
            "id": self.id,
            "operation": self.operation,
            "skill": self.skill,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "reason": self.reason,
            "context": self.context,
            "subject": self.subject,
            "subject_digest": self.subject_digest,
            "approvers": self.approvers,
            "required": self.required,
            "expires_at": self.expires_at,
            "valid_for": self.valid_for,
        }))
    }

    /// `sha256:` digest of [`Self::statement`]: what every decision is bound to.
    pub fn statement_digest(&self) -> String {
        format!("sha256:{}", crate::canonical::sha256_hex(&self.statement()))
    }

    /// The validity after quorum.
    pub fn valid_for(&self) -> std::result::Result<std::time::Duration, String> {
        let text = self.valid_for.as_deref().unwrap_or(DEFAULT_VALID_FOR);
        crate::time::parse_duration(text).map_err(|e| format!("`valid_for` {text:?}: {e}"))
    }

    /// Claimed approvers, for display only (a request's real approvals come from
    /// [`Self::derive`]).
    pub fn claimed_approvals(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .decisions
            .iter()
            .filter(|d| d.decision == Verdict::Approve)
            .map(|d| d.by.as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

impl Decision {
    /// The bytes the decider signs: the decision, bound to the request's statement.
    pub fn statement(&self, request: &ApprovalRequest) -> Vec<u8> {
        self.statement_bound(&request.id, &request.statement_digest())
    }

    /// [`Self::statement`] for a request whose [`ApprovalRequest::statement_digest`] is known.
    fn statement_bound(&self, request_id: &str, request_digest: &str) -> Vec<u8> {
        crate::canonical::to_vec(&json!({
            "type": "betty.approval.decision/v1",
            "request": request_id,
            "request_digest": request_digest,
            "by": self.by,
            "decision": self.decision.as_str(),
            "comment": self.comment,
            "at": self.at,
        }))
    }
}

/// What an approval is bound to: the operation, the target (its kind, name and canonical
/// digest), the environment and every argument. Two subjects that differ in any of these have
/// different digests, so an approval for staging never covers production.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub operation: String,
    pub target: Option<SubjectTarget>,
    pub environment: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// The thing an operation acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectTarget {
    /// `skill`, `agent` or `workflow`.
    pub kind: String,
    pub name: String,
    /// The target's canonical digest (`sha256:...`).
    pub digest: String,
}

impl Subject {
    /// The environment as compared: trimmed and lower-cased (`Production` is `production`).
    pub fn normalised_environment(&self) -> Option<String> {
        self.environment
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
    }

    /// The canonical value the digest is taken over.
    pub fn canonical_value(&self) -> Value {
        serde_json::json!({
            "operation": self.operation.trim(),
            "target": self.target,
            "environment": self.normalised_environment(),
            "args": self.stored().args,
        })
    }

    /// The subject as stored and digested: an argument whose value is (or looks like) a
    /// secret stands as `sha256:` and its digest, so the stored subject holds no secret and
    /// still reproduces `subject_digest` exactly.
    pub fn stored(&self) -> Subject {
        Subject {
            operation: self.operation.clone(),
            target: self.target.clone(),
            environment: self.environment.clone(),
            args: self
                .args
                .iter()
                .map(|(k, v)| (k.clone(), canonical_arg(k, v)))
                .collect(),
        }
    }

    /// `sha256:` and the hex digest of the canonical subject.
    pub fn digest(&self) -> String {
        crate::canonical::digest(&self.canonical_value())
    }
}

/// An argument value as digested: a secret (by its key or its look) becomes `sha256:HEX`;
/// a value already in that form stays, so digesting a stored subject again gives the same.
fn canonical_arg(key: &str, value: &str) -> String {
    let hashed = value.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if hashed {
        return value.to_string();
    }
    if crate::redact::is_secret_key(key) || crate::redact::redact_text(value) != value {
        format!("sha256:{}", crate::canonical::sha256_hex(value.as_bytes()))
    } else {
        value.to_string()
    }
}

/// Everything a derivation trusts: the keys, the groups, and the uses recorded in the audit
/// trail. Loaded once per command.
#[derive(Debug, Default)]
pub struct Trust {
    pub signers: AllowedSigners,
    pub groups: Groups,
    /// Request ids the audit trail records as consumed (intent entries included: a use that
    /// may have happened counts as one).
    pub consumed: BTreeSet<String>,
    /// Revocations, rejections and cancellations the audit trail records, by request id:
    /// `(by, verdict)`. They count even when the request file lost them.
    pub withdrawn: BTreeMap<String, Vec<(String, Verdict)>>,
}

impl Trust {
    /// Reads `allowed_signers` and `groups.yaml` in `approvals_dir`, and the consumption entries
    /// of the audit log at `audit_log` (when given).
    pub fn load(approvals_dir: &Path, audit_log: Option<&Path>) -> Result<Trust> {
        let signers = AllowedSigners::load(&approvals_dir.join("allowed_signers"))?;
        let groups = Groups::load(&approvals_dir.join("groups.yaml"))?;
        let mut consumed = BTreeSet::new();
        let mut withdrawn: BTreeMap<String, Vec<(String, Verdict)>> = BTreeMap::new();
        if let Some(log) = audit_log
            && log.symlink_metadata().is_ok()
        {
            crate::audit::AuditLog::new(log).for_each_entry(|_, entry| {
                let operation = entry.get("operation").and_then(Value::as_str);
                if !operation.is_some_and(|o| o.starts_with("approval.")) {
                    return;
                }
                // Intent entries count too: a change that may have happened counts as one.
                let field = |name: &str| {
                    entry
                        .pointer(&format!("/details/{name}"))
                        .or_else(|| entry.pointer(&format!("/details/change/{name}")))
                        .and_then(Value::as_str)
                };
                let Some(id) = field("id") else { return };
                if operation == Some(CONSUMED_OPERATION) {
                    consumed.insert(id.to_string());
                    return;
                }
                let verdict = match field("decision") {
                    Some("revoke") => Verdict::Revoke,
                    Some("reject") => Verdict::Reject,
                    Some("cancel") => Verdict::Cancel,
                    _ => return,
                };
                if let Some(by) = field("by") {
                    withdrawn
                        .entry(id.to_string())
                        .or_default()
                        .push((by.to_string(), verdict));
                }
            })?;
        }
        Ok(Trust {
            signers,
            groups,
            consumed,
            withdrawn,
        })
    }
}

/// An approval that counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub principal: String,
    /// The key's fingerprint; `None` for an unsigned request.
    pub key: Option<String>,
    pub at: String,
}

/// A decision that does not count, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub index: usize,
    pub by: String,
    pub reason: String,
}

/// A request's state as its evidence shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Derived {
    pub status: Status,
    /// The request carries no signatures (dev mode or a version 1 file).
    pub unsigned: bool,
    /// The approvals that count, in order.
    pub approvals: Vec<Counted>,
    /// When the quorum was reached.
    pub quorum_at: Option<String>,
    /// Until when the approval is usable (quorum plus `valid_for`).
    pub valid_until: Option<String>,
    /// Why the request itself does not hold (non-empty only when `invalid`).
    pub problems: Vec<String>,
    /// Decisions that do not count.
    pub ignored: Vec<Ignored>,
    /// The file's `status` says something its evidence does not.
    pub cache_disagrees: bool,
}

impl Derived {
    fn invalid(unsigned: bool, problem: String) -> Derived {
        Derived {
            status: Status::Invalid,
            unsigned,
            approvals: Vec::new(),
            quorum_at: None,
            valid_until: None,
            problems: vec![problem],
            ignored: Vec::new(),
            cache_disagrees: true,
        }
    }

    /// Distinct principals whose approvals count.
    pub fn approvers(&self) -> Vec<&str> {
        self.approvals
            .iter()
            .map(|c| c.principal.as_str())
            .collect()
    }

    /// The moment the approval stops being usable, with `cap` (a rule's `valid_for`) applied.
    pub fn usable_until(&self, cap: Option<std::time::Duration>) -> Option<jiff::Timestamp> {
        let quorum = crate::time::parse_timestamp(self.quorum_at.as_deref()?).ok()?;
        let until = crate::time::parse_timestamp(self.valid_until.as_deref()?).ok()?;
        match cap.and_then(|c| jiff::SignedDuration::try_from(c).ok()) {
            Some(c) => Some(until.min(quorum.checked_add(c).unwrap_or(until))),
            None => Some(until),
        }
    }
}

fn parse_time(what: &str, text: &str) -> std::result::Result<jiff::Timestamp, String> {
    crate::time::parse_timestamp(text).map_err(|e| format!("`{what}` {text:?}: {e}"))
}

impl ApprovalRequest {
    /// Derives the state from the evidence, as of `now`. Never reads `status` except to say
    /// whether it disagrees.
    pub fn derive(&self, trust: &Trust, now: jiff::Timestamp) -> Derived {
        let unsigned = !self.signed;
        let mut d = match self.derive_inner(trust, now, unsigned) {
            Ok(d) => d,
            Err(problem) => Derived::invalid(unsigned, problem),
        };
        d.cache_disagrees = cache_disagrees(self.status, d.status);
        d
    }

    fn derive_inner(
        &self,
        trust: &Trust,
        now: jiff::Timestamp,
        unsigned: bool,
    ) -> std::result::Result<Derived, String> {
        let requester =
            principal::normalise(&self.requested_by).map_err(|e| format!("requester: {e}"))?;
        // The request's own signature: the requester asked for exactly this.
        let statement = self.statement();
        let digest = format!("sha256:{}", crate::canonical::sha256_hex(&statement));
        let requester_key = if unsigned {
            None
        } else {
            let sig = self
                .signature
                .as_deref()
                .ok_or("the request is marked signed but carries no signature")?;
            let signer = trust
                .signers
                .verify(&statement, sig, sshsig::NAMESPACE, &requester, now)
                .map_err(|e| format!("the request's signature does not hold: {e}"))?;
            Some(signer.fingerprint)
        };
        let requested_at = parse_time("requested_at", &self.requested_at)?;
        let expires_at = parse_time("expires_at", &self.expires_at)?;
        let valid_for = self.valid_for()?;
        let valid_for = jiff::SignedDuration::try_from(valid_for)
            .map_err(|_| "`valid_for` is too long".to_string())?;
        if self.required == 0 {
            return Err("`required` is 0".into());
        }
        // What the approvers read is what binds: a signed request states its subject, which
        // must reproduce `subject_digest` and name the request's own operation.
        match &self.subject {
            Some(subject) => {
                if subject.digest() != self.subject_digest {
                    return Err("`subject_digest` is not the digest of `subject`".into());
                }
                if subject.operation.trim() != self.operation {
                    return Err(format!(
                        "the subject's operation `{}` is not the request's `{}`",
                        subject.operation, self.operation
                    ));
                }
            }
            None if !unsigned => {
                return Err("a signed request must state its `subject`".into());
            }
            None => {}
        }
        let members = trust
            .groups
            .members(&self.approvers)
            .ok_or_else(|| format!("the approver group `{}` is not defined", self.approvers))?;
        // Pass 1: each decision on its own (signature, time, who may make it). The file's
        // order is not evidence (anyone can reorder or drop entries), so nothing below depends
        // on it: decisions are taken in the order of their signed times.
        let mut ignored = Vec::new();
        let mut valid: Vec<(jiff::Timestamp, usize, String, Option<String>, Verdict)> = Vec::new();
        for (index, dec) in self.decisions.iter().enumerate() {
            let mut ignore = |reason: String| {
                ignored.push(Ignored {
                    index,
                    by: dec.by.clone(),
                    reason,
                })
            };
            let who = match principal::normalise(&dec.by) {
                Ok(p) => p,
                Err(e) => {
                    ignore(e.to_string());
                    continue;
                }
            };
            let key = if unsigned {
                None
            } else {
                let Some(sig) = dec.signature.as_deref() else {
                    ignore("unsigned decision on a signed request".into());
                    continue;
                };
                match trust.signers.verify(
                    &dec.statement_bound(&self.id, &digest),
                    sig,
                    sshsig::NAMESPACE,
                    &who,
                    now,
                ) {
                    Ok(s) => Some(s.fingerprint),
                    Err(e) => {
                        ignore(format!("signature does not hold: {e}"));
                        continue;
                    }
                }
            };
            let at = match parse_time("at", &dec.at) {
                Ok(t) => t,
                Err(e) => {
                    ignore(e);
                    continue;
                }
            };
            if at < requested_at || at > now + CLOCK_SKEW {
                ignore(format!(
                    "made at {} outside the request's life ({} to now)",
                    dec.at, self.requested_at
                ));
                continue;
            }
            let is_requester =
                who == requester || (key.is_some() && key.as_deref() == requester_key.as_deref());
            if dec.decision == Verdict::Cancel {
                if who != requester {
                    ignore("only the requester may cancel".into());
                    continue;
                }
            } else if is_requester {
                ignore("the requester may not decide their own request".into());
                continue;
            } else if !members.contains(&who) {
                ignore(format!("not a member of `{}`", self.approvers));
                continue;
            }
            valid.push((at, index, who, key, dec.decision));
        }
        valid.sort_by_key(|v| (v.0, v.1));
        // Withdrawals count wherever they are recorded: in the file, or in the audit trail
        // (deleting a revoke or a rejection from the file does not bring an approval back).
        let audited = trust.withdrawn.get(&self.id);
        let withdrawn_by = |verdict: Verdict| -> BTreeSet<String> {
            valid
                .iter()
                .filter(|v| v.4 == verdict)
                .map(|v| v.2.clone())
                .chain(
                    audited
                        .into_iter()
                        .flatten()
                        .filter(|(_, v)| *v == verdict)
                        .filter_map(|(by, _)| principal::normalise(by).ok()),
                )
                .collect()
        };
        let revoked = withdrawn_by(Verdict::Revoke);
        let rejected = !withdrawn_by(Verdict::Reject).is_empty();
        // Pass 2: approvals in time order; distinct principals and distinct keys; the quorum
        // is reached at the signed time of the `required`-th.
        let mut counted: Vec<Counted> = Vec::new();
        let mut quorum_at: Option<jiff::Timestamp> = None;
        for (at, index, who, key, verdict) in &valid {
            if *verdict != Verdict::Approve {
                continue;
            }
            let mut ignore = |reason: String| {
                ignored.push(Ignored {
                    index: *index,
                    by: self.decisions[*index].by.clone(),
                    reason,
                })
            };
            if revoked.contains(who) {
                ignore("revoked by its approver".into());
            } else if counted.iter().any(|c| &c.principal == who) {
                ignore("already approved".into());
            } else if key.is_some() && counted.iter().any(|c| &c.key == key) {
                ignore("a key that already approved, under another principal".into());
            } else if *at > expires_at && quorum_at.is_none() {
                ignore(format!(
                    "made after the request expired at {}",
                    self.expires_at
                ));
            } else {
                counted.push(Counted {
                    principal: who.clone(),
                    key: key.clone(),
                    at: self.decisions[*index].at.clone(),
                });
                if quorum_at.is_none() && counted.len() as u32 >= self.required {
                    quorum_at = Some(*at);
                }
            }
        }
        // A cancel counts if the requester made it before any quorum (or the audit trail
        // records one).
        let cancelled = valid
            .iter()
            .any(|v| v.4 == Verdict::Cancel && quorum_at.is_none_or(|q| v.0 < q))
            || audited
                .into_iter()
                .flatten()
                .any(|(_, v)| *v == Verdict::Cancel);
        ignored.sort_by_key(|i| i.index);
        let valid_until = quorum_at.and_then(|q| q.checked_add(valid_for).ok());
        let consumed = self.consumed.is_some() || trust.consumed.contains(&self.id);
        let status = if cancelled {
            Status::Cancelled
        } else if rejected {
            Status::Rejected
        } else if let Some(until) = valid_until {
            if consumed {
                Status::Consumed
            } else if now >= until {
                Status::Expired
            } else {
                Status::Approved
            }
        } else if quorum_at.is_some() {
            // A quorum whose validity overflows the calendar: fail closed.
            Status::Expired
        } else if now >= expires_at {
            Status::Expired
        } else {
            Status::Pending
        };
        Ok(Derived {
            status,
            unsigned,
            approvals: counted,
            quorum_at: quorum_at.map(crate::time::format),
            valid_until: valid_until.map(crate::time::format),
            problems: Vec::new(),
            ignored,
            cache_disagrees: false,
        })
    }
}

/// Whether a cached status claims something the derived one does not. Time moves a request
/// on (pending or approved to expired) without anyone rewriting its cache, so those are not
/// disagreements.
fn cache_disagrees(cache: Status, derived: Status) -> bool {
    if cache == derived {
        return false;
    }
    !matches!(
        (cache, derived),
        (Status::Pending, Status::Expired)
            | (Status::Approved, Status::Expired)
            | (Status::Approved, Status::Consumed)
    )
}

/// Derives many requests, on every core (a listing of 10,000 signed requests is mostly
/// signature checks).
pub fn derive_all(
    requests: &[ApprovalRequest],
    trust: &Trust,
    now: jiff::Timestamp,
) -> Vec<Derived> {
    crate::par::map(requests, 64, |r| {
        // A derivation that panicked proves nothing: the request counts as invalid.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.derive(trust, now)))
            .unwrap_or_else(|_| Derived::invalid(!r.signed, "could not be checked".into()))
    })
}

/// What a caller asks for; the store fills id, requester, times and status.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub operation: String,
    pub skill: Option<String>,
    pub reason: String,
    pub context: Value,
    pub subject: Subject,
    pub approvers: String,
    pub required: u32,
    pub expires_at: jiff::Timestamp,
    /// `24h`-style; `None` is [`DEFAULT_VALID_FOR`].
    pub valid_for: Option<String>,
    /// False only in dev mode (`--unsigned`).
    pub signed: bool,
}

/// Why a request or a decision was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("`{by}` requested `{id}` and may not decide it{how}; another member of `{group}` must")]
    SelfApproval {
        id: String,
        by: String,
        group: String,
        /// Empty, or " (the same key signed the request)".
        how: String,
    },
    #[error("`{by}` is not a member of the approver group `{group}` of `{id}`")]
    NotInGroup {
        id: String,
        by: String,
        group: String,
    },
    #[error("`{id}` is {status}; decisions are closed")]
    Closed { id: String, status: Status },
    #[error("`{id}` expired at {expires_at}; request it again")]
    Expired { id: String, expires_at: String },
    #[error(
        "`{by}` already decided `{id}` ({previous}); a decision cannot be changed (an approver may `revoke` an approval before it is used)"
    )]
    Conflicting {
        id: String,
        by: String,
        previous: &'static str,
    },
    #[error("only the requester `{requested_by}` may cancel `{id}`")]
    NotRequester { id: String, requested_by: String },
    #[error("`{by}` has no approval of `{id}` to revoke")]
    NothingToRevoke { id: String, by: String },
    #[error("the signature of `{by}` does not hold: {reason}")]
    BadSignature { by: String, reason: String },
    #[error("`{id}` cannot be decided: its own evidence does not hold ({reason})")]
    InvalidRequest { id: String, reason: String },
    #[error("`{id}` changed while this decision was being signed; run the command again")]
    Changed { id: String },
    #[error("cannot request approval: {0}")]
    Unmeetable(String),
    #[error(transparent)]
    Store(#[from] Error),
}

impl DecideError {
    /// Refusals because of the request's state are findings (1); bad use, a forged or
    /// mismatched identity and I/O are 2.
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            DecideError::Closed { .. } | DecideError::Expired { .. } => crate::ExitStatus::Failure,
            _ => crate::ExitStatus::Error,
        }
    }

    /// The short kind recorded with an `approval.refused` event (`self_approval`, ...); `None`
    /// for errors that are not refusals (I/O, a request that cannot be met).
    pub fn refusal_kind(&self) -> Option<&'static str> {
        Some(match self {
            DecideError::SelfApproval { .. } => "self_approval",
            DecideError::NotInGroup { .. } => "not_in_group",
            DecideError::Closed { .. } => "closed",
            DecideError::Expired { .. } => "expired",
            DecideError::Conflicting { .. } => "conflicting",
            DecideError::NotRequester { .. } => "not_requester",
            DecideError::NothingToRevoke { .. } => "nothing_to_revoke",
            DecideError::BadSignature { .. } => "bad_signature",
            DecideError::InvalidRequest { .. } => "invalid_request",
            DecideError::Changed { .. } => return None,
            // Bad input (exit 2, nothing written, not even a refusal): no identity was at stake.
            DecideError::Unmeetable(_) | DecideError::Store(_) => return None,
        })
    }
}

/// The result of a decision.
#[derive(Clone, Debug)]
pub struct Decided {
    pub request: ApprovalRequest,
    /// The state after the decision.
    pub derived: Derived,
    /// Whether anything was written (false for a repeated identical decision).
    pub changed: bool,
    /// The state before this decision.
    pub before: Status,
}

/// One approver group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    /// Normalised principals ([`principal::normalise`]), distinct.
    pub members: Vec<String>,
    /// Where the group is told about requests: `{slack: [URL], webhooks: [URL], email: [ADDR] |
    /// members}`.
    pub notify: Option<crate::deliver::Channel>,
}

/// Members of approver groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups(pub BTreeMap<String, Group>);

impl Groups {
    /// Reads `groups.yaml`; a missing file means no groups are defined.
    pub fn load(path: &Path) -> Result<Groups> {
        // Not `exists()`, which follows links: a dangling link is an error, never "no groups".
        if path.symlink_metadata().is_err() {
            return Ok(Groups::default());
        }
        let doc = Document::read_yaml(path, &Limits::MANIFEST)?;
        let Some(groups) = doc.value.get("groups").and_then(Value::as_object) else {
            return Err(Error::invalid(
                &doc.source,
                doc.pos(""),
                "expected `groups:` mapping group names to lists of members",
            ));
        };
        let mut out = BTreeMap::new();
        for (name, spec) in groups {
            let ptr = format!("/groups/{}", crate::source::escape_pointer(name));
            let (list, list_ptr, notify) = match spec {
                Value::Array(list) => (list, ptr.clone(), None),
                Value::Object(map) => {
                    if let Some(k) = map
                        .keys()
                        .find(|k| !["members", "notify"].contains(&k.as_str()))
                    {
                        return Err(Error::invalid(
                            &doc.source,
                            doc.pos(&format!("{ptr}/{}", crate::source::escape_pointer(k))),
                            format!(
                                "group `{name}` has an unknown key `{k}`; expected `members` and `notify`"
                            ),
                        ));
                    }
                    let Some(list) = map.get("members").and_then(Value::as_array) else {
                        return Err(Error::invalid(
                            &doc.source,
                            doc.pos(&ptr),
                            format!("group `{name}` needs `members:`, a list of principals"),
                        ));
                    };
                    let notify = match map.get("notify") {
                        None => None,
                        Some(n) => {
                            Some(crate::deliver::Channel::from_value(n, true).map_err(|e| {
                                Error::invalid(
                                    &doc.source,
                                    doc.pos(&format!("{ptr}/notify")),
                                    format!("`notify` of group `{name}`: {e}"),
                                )
                            })?)
                        }
                    };
                    (list, format!("{ptr}/members"), notify)
                }
                _ => {
                    return Err(Error::invalid(
                        &doc.source,
                        doc.pos(&ptr),
                        format!(
                            "group `{name}` must be a list of members, or a mapping with `members:`"
                        ),
                    ));
                }
            };
            let mut members: Vec<String> = Vec::new();
            for (i, m) in list.iter().enumerate() {
                let at = doc.pos(&format!("{list_ptr}/{i}"));
                let Some(s) = m.as_str() else {
                    return Err(Error::invalid(
                        &doc.source,
                        at,
                        format!("member {i} of group `{name}` must be a string"),
                    ));
                };
                let p = principal::normalise(s).map_err(|e| {
                    Error::invalid(
                        &doc.source,
                        at,
                        format!("member {i} of group `{name}`: {e}"),
                    )
                })?;
                if !members.contains(&p) {
                    members.push(p);
                }
            }
            out.insert(name.clone(), Group { members, notify });
        }
        Ok(Groups(out))
    }

    /// The normalised members of a group.
    pub fn members(&self, group: &str) -> Option<&[String]> {
        self.0.get(group).map(|g| g.members.as_slice())
    }

    pub fn group(&self, group: &str) -> Option<&Group> {
        self.0.get(group)
    }
}

/// The folder of approval requests.
#[derive(Clone, Debug)]
pub struct ApprovalStore {
    pub dir: PathBuf,
}

impl ApprovalStore {
    pub fn new(dir: &Path) -> ApprovalStore {
        ApprovalStore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn groups(&self) -> Result<Groups> {
        Groups::load(&self.dir.join("groups.yaml"))
    }

    /// Keys, groups and (with `audit_log`) recorded uses.
    pub fn trust(&self, audit_log: Option<&Path>) -> Result<Trust> {
        Trust::load(&self.dir, audit_log)
    }

    fn path(&self, id: &str) -> Result<PathBuf> {
        check_safe_name("approval id", id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Whether a request can be met, before anyone signs it: at least one approval, a defined
    /// group with enough members other than the requester (all members when the requester is
    /// not known yet), an expiry in the future and a readable `valid_for`.
    pub fn check_new(
        &self,
        new: &NewRequest,
        requester: Option<&str>,
        trust: &Trust,
        now: jiff::Timestamp,
    ) -> std::result::Result<(), DecideError> {
        if new.required == 0 {
            return Err(DecideError::Unmeetable(
                "`--required` must be at least 1".into(),
            ));
        }
        check_safe_name("approver group", &new.approvers)?;
        let Some(members) = trust.groups.members(&new.approvers) else {
            return Err(DecideError::Unmeetable(format!(
                "the approver group `{}` is not defined in `{}`; add it under `groups:` (defined: {})",
                new.approvers,
                self.dir.join("groups.yaml").display(),
                if trust.groups.0.is_empty() {
                    "none".to_string()
                } else {
                    trust
                        .groups
                        .0
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        };
        let others = members
            .iter()
            .filter(|m| Some(m.as_str()) != requester)
            .count();
        if new.required as usize > others {
            return Err(DecideError::Unmeetable(format!(
                "`--required {}` approvals from `{}`, which has {} member(s) other than the requester{}; lower `--required` or add members",
                new.required,
                new.approvers,
                others,
                requester.map(|r| format!(" `{r}`")).unwrap_or_default()
            )));
        }
        if new.expires_at <= now {
            return Err(DecideError::Unmeetable(format!(
                "the expiry {} is not in the future",
                crate::time::format(new.expires_at)
            )));
        }
        if let Some(v) = &new.valid_for {
            crate::time::parse_duration(v)
                .map_err(|e| DecideError::Unmeetable(format!("`--valid-for {v}`: {e}")))?;
        }
        Ok(())
    }

    /// A new pending request by `requester` (already normalised), to be signed over
    /// [`ApprovalRequest::statement`] and then [`Self::create`]d. Refuses a request that can
    /// never be met: an unknown group, more approvals than the group has members other than
    /// the requester, an expiry that is not in the future.
    pub fn draft(
        &self,
        new: NewRequest,
        requester: &str,
        trust: &Trust,
        now: jiff::Timestamp,
    ) -> std::result::Result<ApprovalRequest, DecideError> {
        self.check_new(&new, Some(requester), trust, now)?;
        let subject_digest = new.subject.digest();
        Ok(ApprovalRequest {
            schema_version: APPROVAL_SCHEMA_VERSION,
            id: format!("apr-{}", uuid::Uuid::now_v7().simple()),
            operation: new.operation,
            skill: new.skill,
            requested_by: requester.to_string(),
            requested_at: crate::time::format(now),
            // Stored redacted; `subject_digest` was computed on the original subject.
            reason: crate::redact::redact_text(&new.reason).into_owned(),
            context: crate::redact::redacted(&new.context),
            subject: Some(new.subject.stored()),
            subject_digest,
            approvers: new.approvers,
            required: new.required,
            expires_at: crate::time::format(new.expires_at),
            valid_for: new.valid_for,
            signed: new.signed,
            key: None,
            signature: None,
            status: Status::Pending,
            decisions: Vec::new(),
            consumed: None,
        })
    }

    /// Writes a drafted (and, unless unsigned, signed) request. Its signature must hold for
    /// its requester. `intent` is called just before the write (the recorder's intent entry);
    /// an error there writes nothing.
    pub fn create(
        &self,
        req: ApprovalRequest,
        trust: &Trust,
        now: jiff::Timestamp,
        intent: impl FnOnce(&ApprovalRequest) -> Result<()>,
    ) -> std::result::Result<ApprovalRequest, DecideError> {
        let d = req.derive(trust, now);
        if d.status == Status::Invalid {
            let reason = d.problems.join("; ");
            return Err(if req.signature.is_some() {
                DecideError::BadSignature {
                    by: req.requested_by.clone(),
                    reason,
                }
            } else {
                DecideError::InvalidRequest { id: req.id, reason }
            });
        }
        let path = self.path(&req.id)?;
        let _lock = fsx::LockGuard::exclusive(&path)?;
        intent(&req)?;
        self.write(&path, &req)?;
        Ok(req)
    }

    fn write(&self, path: &Path, req: &ApprovalRequest) -> Result<()> {
        let value = serde_json::to_value(req).map_err(|e| Error::write(path, e.into()))?;
        if let Err(errors) =
            crate::schema::validate(crate::schema::SchemaId::ApprovalRequest, &value)
        {
            return Err(Error::Schema {
                what: "approval request",
                value: req.id.clone(),
                schema: "schemas/approval-request.schema.json",
                reason: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        let mut text =
            serde_json::to_string_pretty(&value).map_err(|e| Error::write(path, e.into()))?;
        text.push('\n');
        fsx::atomic_write(path, text.as_bytes())
    }

    /// Loads one request by id.
    pub fn load(&self, id: &str) -> Result<ApprovalRequest> {
        let path = self.path(id)?;
        read_request(&path)
    }

    /// Every request in the folder, oldest first. A corrupt file stops the listing, named.
    pub fn list(&self) -> Result<Vec<ApprovalRequest>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::read(&self.dir, e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::read(&self.dir, e))?.path();
            let is_request = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'));
            if is_request {
                paths.push(path);
            }
        }
        // Read on every core; the first bad file in name order is the one reported.
        paths.sort();
        let mut out = crate::par::map(&paths, 64, |p| read_request(p))
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Requests for this exact subject digest (and, when given, one of these operations),
    /// each with its derived state, oldest first.
    pub fn for_subject(
        &self,
        subject_digest: &str,
        operations: Option<&[&str]>,
        trust: &Trust,
        now: jiff::Timestamp,
    ) -> Result<Vec<(ApprovalRequest, Derived)>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| {
                r.subject_digest == subject_digest
                    && operations.is_none_or(|ops| ops.contains(&r.operation.as_str()))
            })
            .map(|r| {
                let d = r.derive(trust, now);
                (r, d)
            })
            .collect())
    }

    /// A signed request for this subject whose evidence shows it approved now.
    pub fn find_approved(
        &self,
        subject_digest: &str,
        operations: Option<&[&str]>,
        trust: &Trust,
        now: jiff::Timestamp,
    ) -> Result<Option<(ApprovalRequest, Derived)>> {
        Ok(self
            .for_subject(subject_digest, operations, trust, now)?
            .into_iter()
            .find(|(_, d)| d.status == Status::Approved && !d.unsigned))
    }

    /// The request and an unsigned decision by `by` (normalised), to be signed over
    /// [`Decision::statement`] and passed to [`Self::decide`]. Nothing is locked: signing
    /// may wait for a person.
    pub fn prepare(
        &self,
        id: &str,
        by: &str,
        verdict: Verdict,
        comment: Option<String>,
        now: jiff::Timestamp,
    ) -> Result<(ApprovalRequest, Decision)> {
        let req = self.load(id)?;
        let decision = Decision {
            by: by.to_string(),
            decision: verdict,
            comment: comment.map(|c| crate::redact::redact_text(&c).into_owned()),
            at: crate::time::format(now),
            key: None,
            signature: None,
        };
        Ok((req, decision))
    }

    /// Appends a (signed) decision, under the request's lock, after every check: the request
    /// is the one that was signed over, its evidence holds, the signature holds for the
    /// decider, who is a member, not the requester (by name or by key), and the request is
    /// open. A repeated identical decision changes nothing. `intent` as for [`Self::create`].
    pub fn decide(
        &self,
        id: &str,
        decision: Decision,
        signed_over: &str,
        trust: &Trust,
        now: jiff::Timestamp,
        intent: impl FnOnce(&ApprovalRequest) -> Result<()>,
    ) -> std::result::Result<Decided, DecideError> {
        let path = self.path(id)?;
        let _lock = fsx::LockGuard::exclusive(&path)?;
        let mut req = read_request(&path)?;
        if req.statement_digest() != signed_over {
            return Err(DecideError::Changed { id: id.into() });
        }
        let before = req.derive(trust, now);
        if before.status == Status::Invalid {
            return Err(DecideError::InvalidRequest {
                id: id.into(),
                reason: before.problems.join("; "),
            });
        }
        let who = principal::normalise(&decision.by).map_err(|e| DecideError::BadSignature {
            by: decision.by.clone(),
            reason: e.to_string(),
        })?;
        let key = if req.signed {
            let sig = decision
                .signature
                .as_deref()
                .ok_or_else(|| DecideError::BadSignature {
                    by: who.clone(),
                    reason: "the request is signed, so its decisions must be (pass `--key`)".into(),
                })?;
            let signer = trust
                .signers
                .verify(&decision.statement(&req), sig, sshsig::NAMESPACE, &who, now)
                .map_err(|e| DecideError::BadSignature {
                    by: who.clone(),
                    reason: e.to_string(),
                })?;
            Some(signer.fingerprint)
        } else {
            None
        };
        let requester = principal::normalise(&req.requested_by).unwrap_or_default();
        let group = req.approvers.clone();
        // Idempotent: the same person making the same decision again changes nothing.
        // Only decisions that count are theirs: one that was ignored (a bad signature, say)
        // does not stop a good one.
        let ignored: BTreeSet<usize> = before.ignored.iter().map(|i| i.index).collect();
        let previous = req
            .decisions
            .iter()
            .enumerate()
            .filter(|(i, d)| {
                !ignored.contains(i) && principal::normalise(&d.by).is_ok_and(|p| p == who)
            })
            .map(|(_, d)| d.decision)
            .collect::<Vec<_>>();
        if previous.contains(&Verdict::Revoke) && decision.decision != Verdict::Revoke {
            return Err(DecideError::Conflicting {
                id: id.into(),
                by: who,
                previous: Verdict::Revoke.as_str(),
            });
        }
        if previous.contains(&decision.decision) {
            return Ok(Decided {
                request: req,
                derived: before.clone(),
                changed: false,
                before: before.status,
            });
        }
        let closed = |status: Status| match status {
            Status::Expired => DecideError::Expired {
                id: id.into(),
                expires_at: req.expires_at.clone(),
            },
            status => DecideError::Closed {
                id: id.into(),
                status,
            },
        };
        if decision.decision == Verdict::Cancel {
            if who != requester {
                return Err(DecideError::NotRequester {
                    id: id.into(),
                    requested_by: req.requested_by.clone(),
                });
            }
            if before.status != Status::Pending {
                return Err(closed(before.status));
            }
        } else {
            let by_key = key.is_some() && key == req_key(&req, trust, now);
            if who == requester || by_key {
                return Err(DecideError::SelfApproval {
                    id: id.into(),
                    by: who,
                    group,
                    how: if by_key {
                        " (the same key signed the request)".into()
                    } else {
                        String::new()
                    },
                });
            }
            if !trust
                .groups
                .members(&req.approvers)
                .is_some_and(|m| m.contains(&who))
            {
                return Err(DecideError::NotInGroup {
                    id: id.into(),
                    by: who,
                    group,
                });
            }
            match decision.decision {
                Verdict::Approve | Verdict::Reject => {
                    if !matches!(before.status, Status::Pending | Status::Approved) {
                        return Err(closed(before.status));
                    }
                    if let Some(p) = previous.iter().find(|p| **p != Verdict::Cancel) {
                        return Err(DecideError::Conflicting {
                            id: id.into(),
                            by: who,
                            previous: p.as_str(),
                        });
                    }
                }
                Verdict::Revoke => {
                    if !matches!(before.status, Status::Pending | Status::Approved) {
                        return Err(closed(before.status));
                    }
                    if !before.approvals.iter().any(|c| c.principal == who) {
                        return Err(DecideError::NothingToRevoke {
                            id: id.into(),
                            by: who,
                        });
                    }
                }
                Verdict::Cancel => {}
            }
        }
        let mut decision = decision;
        decision.key = key;
        req.decisions.push(decision);
        let mut after = req.derive(trust, now);
        req.status = cacheable(after.status);
        // The cache is written from this very derivation.
        after.cache_disagrees = false;
        intent(&req)?;
        self.write(&path, &req)?;
        Ok(Decided {
            request: req,
            derived: after,
            changed: true,
            before: before.status,
        })
    }

    /// Spends a single-use approval: under the lock, the request must be approved now; its
    /// `consumed` is set. `intent` as for [`Self::create`] (the `approval.consumed` entry: the
    /// audit trail keeps the use even if the file is rewritten).
    pub fn consume(
        &self,
        id: &str,
        consumption: Consumption,
        trust: &Trust,
        now: jiff::Timestamp,
        intent: impl FnOnce(&ApprovalRequest) -> Result<()>,
    ) -> std::result::Result<ApprovalRequest, DecideError> {
        let path = self.path(id)?;
        let _lock = fsx::LockGuard::exclusive(&path)?;
        let mut req = read_request(&path)?;
        let d = req.derive(trust, now);
        if d.status != Status::Approved {
            return Err(DecideError::Closed {
                id: id.into(),
                status: d.status,
            });
        }
        req.consumed = Some(consumption);
        req.status = Status::Consumed;
        intent(&req)?;
        self.write(&path, &req)?;
        Ok(req)
    }
}

/// The requester's key fingerprint, from the request's verified signature.
fn req_key(req: &ApprovalRequest, trust: &Trust, now: jiff::Timestamp) -> Option<String> {
    let requester = principal::normalise(&req.requested_by).ok()?;
    trust
        .signers
        .verify(
            &req.statement(),
            req.signature.as_deref()?,
            sshsig::NAMESPACE,
            &requester,
            now,
        )
        .ok()
        .map(|s| s.fingerprint)
}

/// The status a file may cache (never `invalid`: the evidence says that, not the cache).
fn cacheable(status: Status) -> Status {
    if status == Status::Invalid {
        Status::Pending
    } else {
        status
    }
}

fn read_request(path: &Path) -> Result<ApprovalRequest> {
    let name = SourceName::from(path);
    let text = crate::source::read_text(&name, &Limits::MANIFEST)?;
    let value = crate::source::parse_json(&name, &text)?;
    if let Err(errors) = crate::schema::validate(crate::schema::SchemaId::ApprovalRequest, &value) {
        return Err(Error::Invalid {
            input: name,
            pos: Pos::START,
            message: format!(
                "not a valid approval request: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    let req: ApprovalRequest = serde_json::from_value(value).map_err(|e| Error::Invalid {
        input: name.clone(),
        pos: Pos::START,
        message: format!("not a valid approval request: {e}"),
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if req.id != stem {
        return Err(Error::Invalid {
            input: name,
            pos: Pos::START,
            message: format!(
                "the id `{}` does not match the file name `{stem}.json`",
                req.id
            ),
        });
    }
    Ok(req)
}
