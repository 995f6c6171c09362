//! Approval requests: sensitive operations held until enough of the right humans approve.
//!
//! One file per request, `registry/approvals/<id>.json` (schema `approval-request.schema.json`).
//! A request binds to the exact thing approved through `subject_digest` (the canonical digest
//! of the manifest or of the operation's arguments): if the thing changes, the approval no
//! longer applies. Rules: the requester may not approve their own request; N *distinct*
//! approvers from the named group are needed; one rejection rejects; past `expires_at` a pending
//! request is expired (fail closed). Decisions happen under the request's sidecar lock and are
//! idempotent: the same person deciding the same way twice changes nothing.
//!
//! Groups live in `registry/approvals/groups.yaml`: `groups: {security: [alice@x.com, ...]}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fsx;
use crate::limits::Limits;
use crate::manifest::check_safe_name;
use crate::source::{Document, Pos, SourceName};

/// Schema version written into every request.
pub const APPROVAL_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }
    /// The exit status a command reporting this state ends with.
    pub fn exit_status(self) -> crate::ExitStatus {
        match self {
            Status::Approved => crate::ExitStatus::Success,
            Status::Pending => crate::ExitStatus::Pending,
            Status::Rejected | Status::Expired | Status::Cancelled => crate::ExitStatus::Failure,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Reject,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub by: String,
    pub decision: Verdict,
    #[serde(default)]
    pub comment: Option<String>,
    pub at: String,
}

/// One request, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    pub id: String,
    pub operation: String,
    pub skill: Option<String>,
    pub requested_by: String,
    pub requested_at: String,
    pub reason: String,
    #[serde(default)]
    pub context: Value,
    pub subject_digest: String,
    /// The group whose members may decide.
    pub approvers: String,
    pub required: u32,
    pub expires_at: String,
    pub status: Status,
    #[serde(default)]
    pub decisions: Vec<Decision>,
}

fn default_schema_version() -> u32 {
    APPROVAL_SCHEMA_VERSION
}

impl ApprovalRequest {
    /// The status as of `now`: a pending request past its expiry is expired.
    pub fn effective_status(&self, now: jiff::Timestamp) -> Status {
        if self.status == Status::Pending && self.is_past_expiry(now) {
            Status::Expired
        } else {
            self.status
        }
    }

    fn is_past_expiry(&self, now: jiff::Timestamp) -> bool {
        // An unreadable expiry fails closed: treat it as expired.
        crate::time::parse_timestamp(&self.expires_at).map_or(true, |t| now >= t)
    }

    /// Distinct people who approved.
    pub fn approvals(&self) -> Vec<&str> {
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
            "args": self.args,
        })
    }

    /// `sha256:` and the hex digest of the canonical subject.
    pub fn digest(&self) -> String {
        crate::canonical::digest(&self.canonical_value())
    }
}

/// What a caller asks for; the store fills id, requester, times and status.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub operation: String,
    pub skill: Option<String>,
    pub reason: String,
    pub context: Value,
    pub subject_digest: String,
    pub approvers: String,
    pub required: u32,
    pub ttl: std::time::Duration,
}

/// Why a decision was refused. The request is unchanged, except `Expired`, which records
/// the expiry it discovered.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("`{by}` requested `{id}` and may not approve it; another member of `{group}` must")]
    SelfApproval {
        id: String,
        by: String,
        group: String,
    },
    #[error("`{by}` is not a member of the approver group `{group}` of `{id}`")]
    NotInGroup {
        id: String,
        by: String,
        group: String,
    },
    #[error("`{id}` is already {status}; decisions are closed")]
    Closed { id: String, status: Status },
    #[error("`{id}` expired at {expires_at}; request it again")]
    Expired { id: String, expires_at: String },
    #[error("`{by}` already decided `{id}` ({previous:?}); a decision cannot be changed")]
    Conflicting {
        id: String,
        by: String,
        previous: Verdict,
    },
    #[error("only the requester `{requested_by}` may cancel `{id}`")]
    NotRequester { id: String, requested_by: String },
    #[error(transparent)]
    Store(#[from] Error),
}

impl DecideError {
    /// Refusals because of the request's state are findings (1); bad use or I/O is 2.
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            DecideError::Closed { .. } | DecideError::Expired { .. } => crate::ExitStatus::Failure,
            _ => crate::ExitStatus::Error,
        }
    }
}

/// The result of a decision.
#[derive(Clone, Debug)]
pub struct Decided {
    pub request: ApprovalRequest,
    /// Whether anything was written (false for a repeated identical decision).
    pub changed: bool,
    /// The status before this decision.
    pub before: Status,
}

/// Members of approver groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups(pub BTreeMap<String, Vec<String>>);

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
        for (name, members) in groups {
            let ptr = format!("/groups/{}", crate::source::escape_pointer(name));
            let Some(list) = members.as_array() else {
                return Err(Error::invalid(
                    &doc.source,
                    doc.pos(&ptr),
                    format!("group `{name}` must be a list of members"),
                ));
            };
            let mut v = Vec::new();
            for (i, m) in list.iter().enumerate() {
                match m.as_str() {
                    Some(s) if !s.trim().is_empty() => v.push(s.trim().to_string()),
                    _ => {
                        return Err(Error::invalid(
                            &doc.source,
                            doc.pos(&format!("{ptr}/{i}")),
                            format!("member {i} of group `{name}` must be a non-empty string"),
                        ));
                    }
                }
            }
            out.insert(name.clone(), v);
        }
        Ok(Groups(out))
    }

    pub fn members(&self, group: &str) -> Option<&[String]> {
        self.0.get(group).map(Vec::as_slice)
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

    fn path(&self, id: &str) -> Result<PathBuf> {
        check_safe_name("approval id", id)?;
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Creates a pending request; its id is `apr-<uuid v7>`. `intent` is called with the request
    /// just before it is written (the recorder's intent entry); an error there writes nothing.
    pub fn request(
        &self,
        new: NewRequest,
        requested_by: &str,
        now: jiff::Timestamp,
        intent: impl FnOnce(&ApprovalRequest) -> Result<()>,
    ) -> Result<ApprovalRequest> {
        if new.required == 0 {
            return Err(Error::InvalidArgument {
                what: "required approvals",
                value: "0".into(),
                reason: "at least one approval is required".into(),
            });
        }
        if !new.subject_digest.starts_with("sha256:") || new.subject_digest.len() != 71 {
            return Err(Error::InvalidArgument {
                what: "subject digest",
                value: new.subject_digest.clone(),
                reason: "must be `sha256:` and 64 hex digits".into(),
            });
        }
        check_safe_name("approver group", &new.approvers)?;
        let expires = now
            .checked_add(
                jiff::SignedDuration::try_from(new.ttl).unwrap_or(jiff::SignedDuration::MAX),
            )
            .map_err(|_| Error::InvalidArgument {
                what: "expiry",
                value: format!("{:?}", new.ttl),
                reason: "too far in the future".into(),
            })?;
        let req = ApprovalRequest {
            schema_version: APPROVAL_SCHEMA_VERSION,
            id: format!("apr-{}", uuid::Uuid::now_v7().simple()),
            operation: new.operation,
            skill: new.skill,
            requested_by: requested_by.to_string(),
            requested_at: crate::time::format(now),
            // Stored redacted; `subject_digest` was computed by the caller on the original subject.
            reason: crate::redact::redact_text(&new.reason).into_owned(),
            context: crate::redact::redacted(&new.context),
            subject_digest: new.subject_digest,
            approvers: new.approvers,
            required: new.required,
            expires_at: crate::time::format(expires),
            status: Status::Pending,
            decisions: Vec::new(),
        };
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
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::read(&self.dir, e))?.path();
            let is_request = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'));
            if is_request {
                out.push(read_request(&path)?);
            }
        }
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// An approved request for this exact subject, if one exists and has not expired.
    /// `operation` narrows the match when given.
    pub fn find_approved(
        &self,
        subject_digest: &str,
        operation: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<Option<ApprovalRequest>> {
        self.find(Status::Approved, subject_digest, operation, now)
    }

    /// A pending request for this exact subject, if any (so callers do not request twice).
    pub fn find_pending(
        &self,
        subject_digest: &str,
        operation: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<Option<ApprovalRequest>> {
        self.find(Status::Pending, subject_digest, operation, now)
    }

    fn find(
        &self,
        status: Status,
        subject_digest: &str,
        operation: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<Option<ApprovalRequest>> {
        Ok(self.list()?.into_iter().find(|r| {
            r.subject_digest == subject_digest
                && r.effective_status(now) == status
                && operation.is_none_or(|op| r.operation == op)
        }))
    }

    /// Records a decision by `by`, under the request's lock. `intent` is called with the request
    /// as it is about to be written (after every check passed, before the write, still under
    /// the lock); an error there writes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        id: &str,
        by: &str,
        verdict: Verdict,
        comment: Option<String>,
        groups: &Groups,
        now: jiff::Timestamp,
        intent: impl FnOnce(&ApprovalRequest) -> Result<()>,
    ) -> std::result::Result<Decided, DecideError> {
        let path = self.path(id)?;
        let _lock = fsx::LockGuard::exclusive(&path)?;
        let mut req = read_request(&path)?;
        let before = req.status;
        // Idempotent: the same person deciding the same way again changes nothing.
        if let Some(prev) = req.decisions.iter().find(|d| d.by == by) {
            if prev.decision == verdict {
                return Ok(Decided {
                    request: req,
                    changed: false,
                    before,
                });
            }
            return Err(DecideError::Conflicting {
                id: id.into(),
                by: by.into(),
                previous: prev.decision,
            });
        }
        match req.effective_status(now) {
            Status::Pending => {}
            Status::Expired => {
                if req.status == Status::Pending {
                    req.status = Status::Expired;
                    intent(&req)?;
                    self.write(&path, &req)?;
                }
                return Err(DecideError::Expired {
                    id: id.into(),
                    expires_at: req.expires_at,
                });
            }
            status => {
                return Err(DecideError::Closed {
                    id: id.into(),
                    status,
                });
            }
        }
        if by == req.requested_by && verdict == Verdict::Approve {
            return Err(DecideError::SelfApproval {
                id: id.into(),
                by: by.into(),
                group: req.approvers,
            });
        }
        let members = groups.members(&req.approvers).ok_or_else(|| {
            DecideError::Store(Error::InvalidArgument {
                what: "approver group",
                value: req.approvers.clone(),
                reason: format!(
                    "is not defined in `{}`; add it under `groups:`",
                    self.dir.join("groups.yaml").display()
                ),
            })
        })?;
        if !members.iter().any(|m| m == by) {
            return Err(DecideError::NotInGroup {
                id: id.into(),
                by: by.into(),
                group: req.approvers,
            });
        }
        req.decisions.push(Decision {
            by: by.to_string(),
            decision: verdict,
            comment: comment.map(|c| crate::redact::redact_text(&c).into_owned()),
            at: crate::time::format(now),
        });
        req.status = match verdict {
            Verdict::Reject => Status::Rejected,
            Verdict::Approve if req.approvals().len() as u32 >= req.required => Status::Approved,
            Verdict::Approve => Status::Pending,
        };
        intent(&req)?;
        self.write(&path, &req)?;
        Ok(Decided {
            request: req,
            changed: true,
            before,
        })
    }

    /// Cancels a pending request; only its requester may. `intent` as for [`Self::decide`].
    pub fn cancel(
        &self,
        id: &str,
        by: &str,
        now: jiff::Timestamp,
        intent: impl FnOnce(&ApprovalRequest) -> Result<()>,
    ) -> std::result::Result<Decided, DecideError> {
        let path = self.path(id)?;
        let _lock = fsx::LockGuard::exclusive(&path)?;
        let mut req = read_request(&path)?;
        let before = req.status;
        if req.requested_by != by {
            return Err(DecideError::NotRequester {
                id: id.into(),
                requested_by: req.requested_by,
            });
        }
        match req.effective_status(now) {
            Status::Pending => {}
            Status::Cancelled => {
                return Ok(Decided {
                    request: req,
                    changed: false,
                    before,
                });
            }
            status => {
                return Err(DecideError::Closed {
                    id: id.into(),
                    status,
                });
            }
        }
        req.status = Status::Cancelled;
        intent(&req)?;
        self.write(&path, &req)?;
        Ok(Decided {
            request: req,
            changed: true,
            before,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setup() -> (tempfile::TempDir, ApprovalStore, Groups, jiff::Timestamp) {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::new(&dir.path().join("approvals"));
        std::fs::create_dir_all(&store.dir).unwrap();
        std::fs::write(
            store.dir.join("groups.yaml"),
            "groups:\n  security: [alice@x.com, bob@x.com, carol@x.com]\n",
        )
        .unwrap();
        let groups = store.groups().unwrap();
        (dir, store, groups, "2026-11-24T08:00:00Z".parse().unwrap())
    }

    fn new_request(required: u32) -> NewRequest {
        NewRequest {
            operation: "deploy".into(),
            skill: Some("deploy.release".into()),
            reason: "ship it".into(),
            context: json!({"environment": "production"}),
            subject_digest: crate::canonical::digest(&json!({"name": "deploy.release"})),
            approvers: "security".into(),
            required,
            ttl: std::time::Duration::from_secs(3600),
        }
    }

    #[test]
    fn two_distinct_approvers_approve() {
        let (_d, store, groups, now) = setup();
        let req = store
            .request(new_request(2), "dev@x.com", now, |_| Ok(()))
            .unwrap();
        let a = store
            .decide(
                &req.id,
                "alice@x.com",
                Verdict::Approve,
                None,
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap();
        assert_eq!(a.request.status, Status::Pending);
        // The same approver twice is idempotent and does not count twice.
        let again = store
            .decide(
                &req.id,
                "alice@x.com",
                Verdict::Approve,
                None,
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap();
        assert!(!again.changed);
        assert_eq!(again.request.status, Status::Pending);
        let b = store
            .decide(
                &req.id,
                "bob@x.com",
                Verdict::Approve,
                Some("ok".into()),
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap();
        assert_eq!(b.request.status, Status::Approved);
        let found = store
            .find_approved(&req.subject_digest, Some("deploy"), now)
            .unwrap()
            .unwrap();
        assert_eq!(found.id, req.id);
        // A different subject is not covered.
        let other = crate::canonical::digest(&json!({"name": "deploy.release", "version": "2"}));
        assert!(store.find_approved(&other, None, now).unwrap().is_none());
    }

    #[test]
    fn refusals() {
        let (_d, store, groups, now) = setup();
        let req = store
            .request(new_request(1), "alice@x.com", now, |_| Ok(()))
            .unwrap();
        let e = store
            .decide(
                &req.id,
                "alice@x.com",
                Verdict::Approve,
                None,
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap_err();
        assert!(matches!(e, DecideError::SelfApproval { .. }), "{e}");
        let e = store
            .decide(
                &req.id,
                "mallory@x.com",
                Verdict::Approve,
                None,
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap_err();
        assert!(matches!(e, DecideError::NotInGroup { .. }), "{e}");
        let r = store
            .decide(
                &req.id,
                "bob@x.com",
                Verdict::Reject,
                None,
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap();
        assert_eq!(r.request.status, Status::Rejected);
        let e = store
            .decide(
                &req.id,
                "carol@x.com",
                Verdict::Approve,
                None,
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                DecideError::Closed {
                    status: Status::Rejected,
                    ..
                }
            ),
            "{e}"
        );
        let e = store
            .decide(
                &req.id,
                "bob@x.com",
                Verdict::Approve,
                None,
                &groups,
                now,
                |_| Ok(()),
            )
            .unwrap_err();
        assert!(matches!(e, DecideError::Conflicting { .. }), "{e}");
        assert!(store.load("../etc/passwd").is_err());
    }

    #[test]
    fn expiry_fails_closed() {
        let (_d, store, groups, now) = setup();
        let req = store
            .request(new_request(1), "dev@x.com", now, |_| Ok(()))
            .unwrap();
        let later = now
            .checked_add(jiff::SignedDuration::from_hours(2))
            .unwrap();
        assert_eq!(
            store.load(&req.id).unwrap().effective_status(later),
            Status::Expired
        );
        let e = store
            .decide(
                &req.id,
                "bob@x.com",
                Verdict::Approve,
                None,
                &groups,
                later,
                |_| Ok(()),
            )
            .unwrap_err();
        assert!(matches!(e, DecideError::Expired { .. }), "{e}");
        assert_eq!(store.load(&req.id).unwrap().status, Status::Expired);
    }

    #[test]
    fn concurrent_decisions_are_race_free() {
        let (_d, store, groups, now) = setup();
        let req = store
            .request(new_request(3), "dev@x.com", now, |_| Ok(()))
            .unwrap();
        std::thread::scope(|s| {
            for who in ["alice@x.com", "bob@x.com", "carol@x.com"] {
                let (store, groups, id) = (&store, &groups, &req.id);
                s.spawn(move || {
                    store
                        .decide(id, who, Verdict::Approve, None, groups, now, |_| Ok(()))
                        .unwrap();
                });
            }
        });
        let r = store.load(&req.id).unwrap();
        assert_eq!(r.approvals().len(), 3);
        assert_eq!(r.status, Status::Approved);
    }

    #[test]
    fn cancel_only_by_requester() {
        let (_d, store, _groups, now) = setup();
        let req = store
            .request(new_request(1), "dev@x.com", now, |_| Ok(()))
            .unwrap();
        assert!(matches!(
            store
                .cancel(&req.id, "bob@x.com", now, |_| Ok(()))
                .unwrap_err(),
            DecideError::NotRequester { .. }
        ));
        assert_eq!(
            store
                .cancel(&req.id, "dev@x.com", now, |_| Ok(()))
                .unwrap()
                .request
                .status,
            Status::Cancelled
        );
    }

    #[test]
    fn corrupt_files_are_named() {
        let (_d, store, _groups, _now) = setup();
        std::fs::write(store.dir.join("apr-bad.json"), "{\"id\": ").unwrap();
        let e = store.list().unwrap_err();
        assert!(e.to_string().contains("apr-bad.json:1:"), "{e}");
    }
}
