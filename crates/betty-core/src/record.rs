//! The recorder: the one way a Betty binary says "an operation happened".
//!
//! Every binary records through a [`Recorder`]: first the audit entry, then its events through
//! the one stream appender ([`crate::stream`], so every binary's events rotate and mark
//! unordered segments), then alerts ([`start_alert_deliverer`], the one place the detached
//! deliverer is started, honouring the same settings for every binary).
//!
//! **No state change without its audit entry.** A state change (an approval request, decision
//! or cancellation, a registry record, rollback or import) is an [`Operation`]:
//! 1. [`Recorder::begin`] appends an *intent* entry (`"phase": "intent"`, a fresh
//!    `operation_id`, `outcome: "intended"`, and `details.change`: what is about to change).
//!    Appending first checks that the audit trail can be appended (a regular file whose tail
//!    is intact); if it cannot, the caller gets an error, changes nothing and exits 2.
//! 2. The caller makes the change.
//! 3. [`Operation::commit`] appends the *commit* entry (`"phase": "commit"`, the same
//!    `operation_id`, `intent_seq`: the intent's `seq`, and the real outcome), then the events,
//!    then alerts.
//!
//! A `kill -9` at any instant leaves nothing, or an intent without the change, or the change
//! with its intent entry. `telemetry-query audit verify` reports an intent without its commit
//! as an operation that did not finish (never hidden, never tampering). A pure decision
//! (`policy-enforce`) is one entry: [`Recorder::record`].

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::audit::{AuditLog, AuditRecord, Head, Step};
use crate::discover::RegistryDir;
use crate::error::Result;
use crate::identity::Identity;
use crate::stream::{self, AppendOptions, Appended};
use crate::telemetry::{EventBatch, EventWriter};

/// `outcome` of an intent entry.
pub const INTENDED: &str = "intended";

/// Records operations of one binary (`tool`) acting as one identity in one registry.
#[derive(Clone, Debug)]
pub struct Recorder {
    root: PathBuf,
    audit: AuditLog,
    writer: EventWriter,
    who: Identity,
}

impl Recorder {
    pub fn new(registry: &RegistryDir, tool: &str, who: &Identity) -> Recorder {
        Recorder {
            root: registry.root.clone(),
            audit: AuditLog::new(&registry.audit_log()),
            writer: EventWriter::new(&registry.events_jsonl(), tool),
            who: who.clone(),
        }
    }

    pub fn who(&self) -> &Identity {
        &self.who
    }

    /// Completes events for this recorder's stream (`event_id`, time, identity, redaction).
    pub fn events(&self) -> &EventWriter {
        &self.writer
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// A one-step record (a decision): the audit entry, then the events, then alerts.
    /// If the audit entry cannot be written, or the stream could not take the events after it,
    /// nothing is written.
    pub fn record(&self, entry: &AuditRecord, events: &EventBatch) -> Result<Head> {
        crate::stream::check_appendable(&self.writer.path)?;
        let head = self.audit.append(entry, &self.who)?;
        self.emit(events)?;
        Ok(head)
    }

    /// Events that report without changing state (a semver check, a captured event): through
    /// the stream appender, then alerts.
    pub fn emit(&self, events: &EventBatch) -> Result<Appended> {
        if events.is_empty() {
            return Ok(Appended::default());
        }
        let appended = stream::append(
            &self.writer.path,
            events,
            &AppendOptions::from_env(crate::time::now()),
        )?;
        start_alert_deliverer(&self.root);
        Ok(appended)
    }

    /// A batch appended all or nothing, once (see [`stream::append_batch`]), then alerts.
    pub fn emit_batch(&self, batch_id: &str, events: &EventBatch) -> Result<Appended> {
        let appended = stream::append_batch(
            &self.writer.path,
            batch_id,
            events,
            &AppendOptions::from_env(crate::time::now()),
        )?;
        if appended.count > 0 {
            start_alert_deliverer(&self.root);
        }
        Ok(appended)
    }

    /// The events stream's appender with the events decided under its lock (imports).
    pub fn emit_with<E: From<crate::Error>>(
        &self,
        decide: impl FnOnce(&[stream::Segment]) -> std::result::Result<EventBatch, E>,
    ) -> std::result::Result<Appended, E> {
        let appended = stream::append_with(
            &self.writer.path,
            &AppendOptions::from_env(crate::time::now()),
            decide,
        )?;
        if appended.count > 0 {
            start_alert_deliverer(&self.root);
        }
        Ok(appended)
    }

    /// Begins a state change: appends its intent entry. `change` says what is about to change
    /// (kept as `details.change`). An error means the audit trail cannot be appended: change
    /// nothing.
    pub fn begin(&self, operation: &str, skill: Option<&str>, change: Value) -> Result<Operation> {
        // The events follow the change: if the stream cannot take them (a link, a FIFO), stop
        // before anything is written.
        crate::stream::check_appendable(&self.writer.path)?;
        let operation_id = format!("op-{}", uuid::Uuid::now_v7().simple());
        let intent = self.audit.append(
            &AuditRecord {
                operation: operation.to_string(),
                skill: skill.map(str::to_string),
                outcome: INTENDED.into(),
                policy_checks: vec![],
                details: Some(json!({ "change": change })),
                step: Some(Step::Intent {
                    operation_id: operation_id.clone(),
                }),
            },
            &self.who,
        )?;
        Ok(Operation {
            recorder: self.clone(),
            operation_id,
            operation: operation.to_string(),
            intent,
        })
    }
}

/// A state change whose intent entry is written; [`Operation::commit`] once the change is made.
/// Dropped without a commit (an error half way), it stays "did not finish" in the audit trail,
/// which is the truth: part of the change may have happened.
#[derive(Debug)]
#[must_use = "a state change's intent needs its commit once the change is made"]
pub struct Operation {
    recorder: Recorder,
    operation_id: String,
    operation: String,
    intent: Head,
}

impl Operation {
    pub fn id(&self) -> &str {
        &self.operation_id
    }

    /// The intent entry's head.
    pub fn intent(&self) -> &Head {
        &self.intent
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The change is made: the commit entry (its `operation` is the intent's unless `entry`
    /// names one), then the events, then alerts.
    pub fn commit(self, mut entry: AuditRecord, events: &EventBatch) -> Result<Head> {
        if entry.operation.is_empty() {
            entry.operation = self.operation.clone();
        }
        entry.step = Some(Step::Commit {
            operation_id: self.operation_id.clone(),
            intent_seq: self.intent.seq,
        });
        self.recorder.record(&entry, events)
    }
}

/// Starts a detached `telemetry-capture alerts deliver` (the binary beside the running one)
/// when `telemetry/alerts.yaml` exists, so an event any Betty binary writes alerts when it is
/// captured and the command never waits for a webhook. `BETTY_ALERTS_INLINE=1` runs the
/// deliverer and waits for it instead (tests, cron). Problems are logged, never fatal: the
/// events are in the stream and `telemetry-capture alerts deliver` sends them later.
pub fn start_alert_deliverer(registry_root: &Path) {
    if !registry_root
        .join("telemetry")
        .join("alerts.yaml")
        .is_file()
    {
        return;
    }
    let deliverer = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("telemetry-capture")))
        .filter(|p| p.is_file());
    let Some(deliverer) = deliverer else {
        tracing::warn!(
            "`telemetry/alerts.yaml` exists but `telemetry-capture` is not installed beside this binary; run `telemetry-capture alerts deliver`"
        );
        return;
    };
    let inline = std::env::var("BETTY_ALERTS_INLINE").is_ok_and(|v| v == "1");
    let mut command = std::process::Command::new(&deliverer);
    command
        .arg("--registry")
        .arg(registry_root)
        .stdin(std::process::Stdio::null());
    let started = if inline {
        // In the foreground its report and warnings go to our stderr (stdout is for results).
        command
            .args(["alerts", "deliver"])
            .stdout(std::io::stderr());
        command.status().map(|s| {
            if !s.success() {
                tracing::warn!("alerts skipped: the alert deliverer exited with {s}");
            }
        })
    } else {
        command
            .args(["--quiet", "alerts", "deliver"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(|_| ())
    };
    if let Err(e) = started {
        tracing::warn!(
            "the alert deliverer could not be started (run `telemetry-capture alerts deliver`): {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Recorder) {
        let dir = tempfile::tempdir().unwrap();
        let registry = RegistryDir {
            root: dir.path().to_path_buf(),
            origin: crate::discover::Origin::Flag,
        };
        let who = Identity {
            sources: Default::default(),
            user: "ada@example.com".into(),
            session_id: "s-1".into(),
            ip_address: "127.0.0.1".into(),
        };
        let rec = Recorder::new(&registry, "test", &who);
        (dir, rec)
    }

    fn commit_record() -> AuditRecord {
        AuditRecord {
            outcome: "success".into(),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn intent_then_commit_and_an_unfinished_intent_is_reported() {
        let (_d, rec) = setup();
        let op = rec
            .begin("registry.record", None, json!({"version": "x"}))
            .unwrap();
        let intent_seq = op.intent().seq;
        let id = op.id().to_string();
        op.commit(commit_record(), &EventBatch::new()).unwrap();
        let unfinished = rec.begin("registry.rollback", None, json!({})).unwrap();
        let unfinished_id = unfinished.id().to_string();
        drop(unfinished);
        let mut entries = Vec::new();
        rec.audit_log()
            .for_each_entry(|_, v| entries.push(v))
            .unwrap();
        assert_eq!(entries[0]["phase"], "intent");
        assert_eq!(entries[0]["outcome"], INTENDED);
        assert_eq!(entries[0]["details"]["change"]["version"], "x");
        assert_eq!(entries[1]["phase"], "commit");
        assert_eq!(entries[1]["operation_id"], id.as_str());
        assert_eq!(entries[1]["intent_seq"], intent_seq);
        assert_eq!(entries[1]["operation"], "registry.record");
        // Intent and commit entries match the published schema, and it tells them apart.
        for e in &entries {
            crate::schema::validate(crate::schema::SchemaId::AuditEntry, e).unwrap();
        }
        let mut forged = entries[1].clone();
        forged.as_object_mut().unwrap().remove("intent_seq");
        assert!(crate::schema::validate(crate::schema::SchemaId::AuditEntry, &forged).is_err());
        let mut forged = entries[0].clone();
        forged["outcome"] = "success".into();
        assert!(crate::schema::validate(crate::schema::SchemaId::AuditEntry, &forged).is_err());
        let report = rec.audit_log().verify(None).unwrap();
        assert!(report.ok(), "{:?}", report.breaks);
        assert_eq!(report.unfinished.len(), 1);
        assert_eq!(report.unfinished[0].operation_id, unfinished_id);
        assert_eq!(report.unfinished[0].operation, "registry.rollback");
    }

    #[test]
    fn an_audit_trail_that_cannot_be_appended_refuses_the_intent() {
        let (d, rec) = setup();
        std::fs::create_dir(d.path().join("audit_log.json")).unwrap();
        assert!(rec.begin("approval.approved", None, json!({})).is_err());
        std::fs::remove_dir(d.path().join("audit_log.json")).unwrap();
        std::os::unix::fs::symlink(d.path().join("nowhere"), d.path().join("audit_log.json"))
            .unwrap();
        assert!(rec.begin("approval.approved", None, json!({})).is_err());
        assert!(!d.path().join("nowhere").exists());
    }
}
