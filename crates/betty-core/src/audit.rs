//! The audit trail: one tamper-evident record of every operation and policy decision.
//!
//! `audit_log.json` stays a JSON array that upstream readers load. Each entry we write is one
//! line `{...}` carrying the seed's fields plus `seq` (its index in the array), `prev_hash` and
//! `hash` = SHA-256 of the canonical JSON of the entry without `hash`. Upstream's legacy entries
//! (no hash) are an unverified prefix; the first hashed entry chains to the SHA-256 of the
//! canonical JSON of that whole prefix, so once the chain starts, editing the prefix shows too.
//!
//! Appending is O(1): under the sidecar lock we read only the file's tail to find the last
//! entry, then write `,\n{entry}\n]\n` over the closing bracket in one write. Only the first
//! append to a legacy (pretty-printed) file reads it whole. Verification streams the array.
//!
//! A state change is two entries (see [`crate::record`]): an *intent* (`"phase": "intent"`,
//! a fresh `operation_id`, and in `details.change` what is about to change) appended before
//! anything changes, and a *commit* (`"phase": "commit"`, the same `operation_id`, and
//! `intent_seq`, the intent's `seq`) once it has. An intent no commit follows is an operation
//! that did not finish (the process died or failed half way): [`AuditLog::verify`] lists it in
//! [`VerifyReport::unfinished`]; it is not tampering. A commit without its intent is.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::error::{Error, Result};
use crate::fsx;
use crate::identity::Identity;
use crate::source::SourceName;

/// `prev_hash` of the first entry of a log that has no legacy prefix.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How much of the file's end an append reads to find the last entry.
const TAIL: u64 = 64 * 1024;
/// Largest audit log verified or read (entries are small; this is millions of them).
const MAX_LOG_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The result of one policy inside a decision.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyCheck {
    pub policy: String,
    pub result: String,
}

/// What happened, as the caller knows it; identity and time are added on append.
#[derive(Clone, Debug, Default)]
pub struct AuditRecord {
    /// `policy.enforce`, `registry.rollback`, `approval.decide`, ...
    pub operation: String,
    pub skill: Option<String>,
    /// `passed`, `blocked`, `approved`, `rejected`, `success`, `failure`, ...
    pub outcome: String,
    pub policy_checks: Vec<PolicyCheck>,
    /// Anything else worth keeping (arguments, versions, digests).
    pub details: Option<Value>,
    /// Its place in the intent/commit protocol of a state change; `None` for a one-step
    /// record (a decision, an import of events).
    pub step: Option<Step>,
}

/// Where an entry stands in the intent/commit protocol of a state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Written before the change: `"phase": "intent"` and `operation_id`.
    Intent { operation_id: String },
    /// Written once the change is made: `"phase": "commit"`, `operation_id`, `intent_seq`.
    Commit {
        operation_id: String,
        intent_seq: u64,
    },
}

/// An intent entry no commit follows: a state change that did not finish.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unfinished {
    pub seq: u64,
    pub operation_id: String,
    pub operation: String,
    pub timestamp: String,
}

/// The last entry of the chain: what a user keeps to detect truncation later.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// Where and how the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Break {
    /// Index of the entry in the array (0-based).
    pub index: u64,
    /// `edited`, `link`, `seq`, `unhashed`, `truncated`, `malformed`.
    pub kind: &'static str,
    pub message: String,
}

/// What [`AuditLog::verify`] found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    /// Upstream entries without a hash at the start: present, but unverified.
    pub legacy_entries: u64,
    pub hashed_entries: u64,
    /// Unhashed entries an old writer appended between hashed ones, since adopted into the
    /// chain by the entry after them.
    pub adopted_entries: u64,
    /// Unhashed entries an old (upstream) writer appended after the last hashed entry: present
    /// but unverified, not yet adopted (`telemetry-capture audit adopt`, or any next append).
    pub legacy_appended: Option<Adopts>,
    pub head: Option<Head>,
    pub breaks: Vec<Break>,
    /// State changes whose intent has no commit: they did not finish (not tampering).
    pub unfinished: Vec<Unfinished>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// The audit trail file.
#[derive(Clone, Debug)]
pub struct AuditLog {
    pub path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
        }
    }

    /// Appends one entry and returns the new head. Safe under concurrent appenders.
    pub fn append(&self, record: &AuditRecord, who: &Identity) -> Result<Head> {
        self.append_at(record, who, crate::time::now())
    }

    pub fn append_at(
        &self,
        record: &AuditRecord,
        who: &Identity,
        now: jiff::Timestamp,
    ) -> Result<Head> {
        let _lock = fsx::LockGuard::exclusive(&self.path)?;
        self.settle_locked()?;
        let tail = self.tail_state()?;
        let seq = tail.count;
        let mut entry = Map::new();
        entry.insert("timestamp".into(), crate::time::format(now).into());
        entry.insert("operation".into(), record.operation.clone().into());
        entry.insert(
            "skill".into(),
            record
                .skill
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        entry.insert("user".into(), who.user.clone().into());
        entry.insert("ip_address".into(), who.ip_address.clone().into());
        entry.insert("outcome".into(), record.outcome.clone().into());
        entry.insert(
            "policy_checks".into(),
            serde_json::to_value(&record.policy_checks).unwrap_or(Value::Array(vec![])),
        );
        entry.insert("session_id".into(), who.session_id.clone().into());
        // `user` and `ip_address` are claims: say where each came from (entries written before
        // this key have none; the hash covers whatever an entry holds, so they verify as before).
        entry.insert(
            "identity_sources".into(),
            serde_json::to_value(who.sources).unwrap_or(Value::Null),
        );
        if let Some(d) = &record.details {
            entry.insert("details".into(), crate::redact::redacted(d));
        }
        match &record.step {
            None => {}
            Some(Step::Intent { operation_id }) => {
                entry.insert("phase".into(), "intent".into());
                entry.insert("operation_id".into(), operation_id.clone().into());
            }
            Some(Step::Commit {
                operation_id,
                intent_seq,
            }) => {
                entry.insert("phase".into(), "commit".into());
                entry.insert("operation_id".into(), operation_id.clone().into());
                entry.insert("intent_seq".into(), (*intent_seq).into());
            }
        }
        if let Some(adopts) = &tail.unadopted {
            entry.insert(
                "adopts".into(),
                serde_json::to_value(adopts).unwrap_or(Value::Null),
            );
        }
        entry.insert("seq".into(), seq.into());
        entry.insert("prev_hash".into(), tail.prev_hash.clone().into());
        let hash = entry_hash(&Value::Object(entry.clone()));
        entry.insert("hash".into(), hash.clone().into());
        let line = serde_json::to_string(&Value::Object(entry)).unwrap_or_default();

        match tail.write_at {
            None => {
                let body = format!("[\n{line}\n]\n");
                fsx::atomic_write(&self.path, body.as_bytes())?;
            }
            Some((offset, empty)) => {
                let sep = if empty { "\n" } else { ",\n" };
                let chunk = format!("{sep}{line}\n]\n");
                // A kill inside the in-place write would tear the array: the chunk goes to a
                // journal first (atomically), the next writer or reader rolls it forward.
                let header = json!({
                    "offset": offset,
                    "bytes": chunk.len(),
                    "sha256": canonical::sha256_hex(chunk.as_bytes()),
                });
                fsx::atomic_write(&self.journal(), format!("{header}\n{chunk}").as_bytes())?;
                fsx::replace_tail(&self.path, offset, chunk.as_bytes())?;
                fsx::remove_file(&self.journal())?;
            }
        }
        Ok(Head { seq, hash })
    }

    /// The current head, read from the tail (O(1) for logs we wrote).
    pub fn head(&self) -> Result<Option<Head>> {
        self.settle()?;
        let _lock = fsx::LockGuard::shared(&self.path)?;
        let tail = self.tail_state()?;
        Ok(tail.last_hashed)
    }

    /// Whether an entry could be appended now: the file is a regular file (or absent) and its
    /// tail is intact. Nothing is written.
    pub fn check_appendable(&self) -> Result<()> {
        let _lock = fsx::LockGuard::exclusive(&self.path)?;
        self.settle_locked()?;
        self.tail_state().map(|_| ())
    }

    /// `audit_log.json.pending`: the append a killed writer may have left half written.
    fn journal(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".pending");
        self.path.with_file_name(name)
    }

    /// Finishes an append a killed writer left in the journal (readers call it first; a
    /// registry we may not write is read as it is, and a torn tail is then reported).
    pub fn settle(&self) -> Result<()> {
        if std::fs::symlink_metadata(self.journal()).is_err() {
            return Ok(());
        }
        match fsx::LockGuard::exclusive(&self.path) {
            Ok(_lock) => self.settle_locked(),
            Err(e) => {
                tracing::warn!("a half-written audit entry could not be finished: {e}");
                Ok(())
            }
        }
    }

    /// Rolls the journaled append forward: the chunk is written at its offset again (the same
    /// bytes, so doing it twice is harmless), then the journal goes. The lock is held.
    fn settle_locked(&self) -> Result<()> {
        let journal = self.journal();
        if fsx::open_regular_if_exists(&journal)?.is_none() {
            return Ok(());
        }
        let bytes = fsx::read_regular(&journal, 64 * 1024 * 1024)?;
        let name = SourceName::from(journal.as_path());
        let corrupt = |message: &str| Error::Corrupt {
            input: name.clone(),
            location: "line 1".into(),
            message: format!("{message}; it was left for inspection"),
        };
        let split = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt("no header line"))?;
        let header = crate::source::json_from_slice(&bytes[..split])
            .map_err(|_| corrupt("the header is not JSON"))?;
        let chunk = &bytes[split + 1..];
        let (Some(offset), Some(len), Some(sha)) = (
            header["offset"].as_u64(),
            header["bytes"].as_u64(),
            header["sha256"].as_str(),
        ) else {
            return Err(corrupt("the header lacks offset, bytes or sha256"));
        };
        if chunk.len() as u64 != len || canonical::sha256_hex(chunk) != sha {
            return Err(corrupt("the journaled entry does not match its header"));
        }
        let have = fsx::open_regular(&self.path)?
            .metadata()
            .map_err(|e| Error::read(&self.path, e))?
            .len();
        if have < offset {
            return Err(corrupt(&format!(
                "`{}` is shorter ({have} bytes) than where the entry goes ({offset})",
                self.path.display()
            )));
        }
        fsx::replace_tail(&self.path, offset, chunk)?;
        fsx::remove_file(&journal)
    }

    /// Where the next entry goes and what it chains to.
    fn tail_state(&self) -> Result<TailState> {
        let Some(mut f) = fsx::open_regular_if_exists(&self.path)? else {
            return Ok(TailState::fresh());
        };
        let len = f.metadata().map_err(|e| Error::read(&self.path, e))?.len();
        if len == 0 {
            // An empty file is not a JSON array: refuse rather than guess.
            return Err(self.corrupt("byte 0", "the file is empty, not a JSON array (`[]`)"));
        }
        let start = len.saturating_sub(TAIL);
        let mut buf = Vec::with_capacity((len - start) as usize);
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.take(TAIL).read_to_end(&mut buf))
            .map_err(|e| Error::read(&self.path, e))?;
        let Some(close) = buf.iter().rposition(|b| !b.is_ascii_whitespace()) else {
            return Err(self.corrupt("byte 0", "the file holds only whitespace"));
        };
        if buf[close] != b']' {
            return Err(self.corrupt(
                &format!("byte {}", start + close as u64),
                "the file does not end with `]` (a torn or foreign write); `telemetry-query audit verify` shows where",
            ));
        }
        let Some(before) = buf[..close].iter().rposition(|b| !b.is_ascii_whitespace()) else {
            return Err(self.corrupt(
                &format!("byte {}", start + close as u64),
                "nothing but whitespace before the closing `]`",
            ));
        };
        let write_at = start + before as u64 + 1;
        if buf[before] == b'[' && start == 0 {
            return Ok(TailState {
                count: 0,
                prev_hash: GENESIS.into(),
                write_at: Some((write_at, true)),
                last_hashed: None,
                unadopted: None,
            });
        }
        // Our entries are one line each: the last line before `]` is the last entry.
        let line_start = buf[..=before]
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|i| i + 1);
        if let Some(ls) = line_start
            && let Ok(Value::Object(last)) = crate::source::json_from_slice(&buf[ls..=before])
            && let (Some(seq), Some(Value::String(hash))) =
                (last.get("seq").and_then(Value::as_u64), last.get("hash"))
        {
            return Ok(TailState {
                count: seq + 1,
                prev_hash: hash.clone(),
                write_at: Some((write_at, false)),
                last_hashed: Some(Head {
                    seq,
                    hash: hash.clone(),
                }),
                unadopted: None,
            });
        }
        // A legacy or foreign tail: read the whole file once.
        let mut state = self.full_state()?;
        state.write_at = Some((write_at, false));
        Ok(state)
    }

    /// Walks the whole array to find the count, the legacy digest and the last hashed entry.
    fn full_state(&self) -> Result<TailState> {
        let mut count = 0u64;
        let mut legacy = LegacyDigest::default();
        let mut last: Option<Head> = None;
        let mut run = Run::default();
        self.for_each_entry_locked(|i, v| {
            count += 1;
            match (v.get("seq").and_then(Value::as_u64), v.get("hash")) {
                (Some(seq), Some(Value::String(h))) => {
                    run = Run::default();
                    last = Some(Head {
                        seq,
                        hash: h.clone(),
                    })
                }
                _ if last.is_none() => legacy.push(&v),
                _ => run.push(i, &v),
            }
        })?;
        let prev_hash = match &last {
            Some(h) => h.hash.clone(),
            None => legacy.finish(),
        };
        Ok(TailState {
            count,
            prev_hash,
            write_at: None,
            last_hashed: last,
            unadopted: run.take(),
        })
    }

    /// Streams every entry of the array, in order, with its index, under the shared lock (a
    /// writer rewrites the tail in place: an unlocked reader could see it half way).
    pub fn for_each_entry(&self, visit: impl FnMut(u64, Value)) -> Result<()> {
        self.settle()?;
        let _lock = fsx::LockGuard::shared(&self.path)?;
        self.for_each_entry_locked(visit)
    }

    /// [`Self::for_each_entry`] for a caller holding the lock.
    fn for_each_entry_locked(&self, mut visit: impl FnMut(u64, Value)) -> Result<()> {
        let Some(f) = fsx::open_regular_if_exists(&self.path)? else {
            return Ok(());
        };
        let len = f.metadata().map_err(|e| Error::read(&self.path, e))?.len();
        if len > MAX_LOG_BYTES {
            return Err(Error::TooLarge {
                input: SourceName::from(self.path.as_path()),
                size: len,
                limit: MAX_LOG_BYTES,
            });
        }
        let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, f));
        let result = ArraySeed { visit: &mut visit }
            .deserialize(&mut de)
            .and_then(|()| de.end());
        result.map_err(|e| {
            self.corrupt(
                &format!("line {} column {}", e.line(), e.column()),
                e.to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or("invalid JSON"),
            )
        })
    }

    /// Checks the whole chain; with `expect_head` (`HASH` or `SEQ:HASH`), also that the log
    /// still contains the head the user kept (catches truncation of the tail).
    pub fn verify(&self, expect_head: Option<&str>) -> Result<VerifyReport> {
        self.settle()?;
        let _lock = fsx::LockGuard::shared(&self.path)?;
        let mut report = VerifyReport::default();
        let mut legacy = LegacyDigest::default();
        let mut prev: Option<String> = None;
        let expected = expect_head.map(|h| match h.split_once(':') {
            Some((_, hash)) => hash.trim().to_ascii_lowercase(),
            None => h.trim().to_ascii_lowercase(),
        });
        // The SEQ of a kept `SEQ:HASH` is checked too: the head must be where it was kept.
        let expected_seq = match expect_head.and_then(|h| h.split_once(':')) {
            Some((seq, _)) => {
                Some(
                    seq.trim()
                        .parse::<u64>()
                        .map_err(|_| Error::InvalidArgument {
                            what: "kept audit head",
                            value: expect_head.unwrap_or_default().to_string(),
                            reason: "expected `SEQ:HASH` (as `audit head` prints it) or `HASH`"
                                .into(),
                        })?,
                )
            }
            None => None,
        };
        let mut head_seen_at: Option<u64> = None;
        if expected.is_some() && self.is_missing_or_blank()? {
            // The kept head names entries and there are none: the log was deleted or emptied.
            report.breaks.push(Break {
                index: 0,
                kind: "truncated",
                message: format!(
                    "the kept head {} names entries, but `{}` is missing or empty: the log was deleted or emptied",
                    expect_head.unwrap_or_default(),
                    self.path.display()
                ),
            });
            return Ok(report);
        }
        let mut open: HashMap<String, Unfinished> = HashMap::new();
        let mut run = Run::default();
        self.for_each_entry_locked(|i, v| {
            report.entries += 1;
            let Some(obj) = v.as_object() else {
                report.breaks.push(Break {
                    index: i,
                    kind: "malformed",
                    message: format!("entry {i} is not a JSON object"),
                });
                return;
            };
            let Some(Value::String(stored)) = obj.get("hash") else {
                if prev.is_none() {
                    report.legacy_entries += 1;
                    legacy.push(&v);
                } else {
                    run.push(i, &v);
                }
                return;
            };
            report.hashed_entries += 1;
            // Unhashed entries between hashed ones are adopted (this entry says so and its
            // hash covers their digest) or inserted.
            let found = run.take();
            let claimed = obj
                .get("adopts")
                .and_then(|a| serde_json::from_value::<Adopts>(a.clone()).ok());
            match (&found, &claimed) {
                (Some(f), Some(c)) if f == c => report.adopted_entries += f.count(),
                (None, None) => {}
                (Some(f), _) => {
                    for index in f.from..=f.to {
                        report.breaks.push(Break {
                            index,
                            kind: "unhashed",
                            message: format!(
                                "entry {index} has no hash, follows hashed entries and no later entry adopts it: it was inserted"
                            ),
                        });
                    }
                }
                (None, Some(c)) => report.breaks.push(Break {
                    index: i,
                    kind: "link",
                    message: format!(
                        "entry {i} adopts entries {}..={} that are not there as they were adopted: entries were deleted or edited",
                        c.from, c.to
                    ),
                }),
            }
            let seq = obj.get("seq").and_then(Value::as_u64);
            let actual = canonical::sha256_hex(&canonical::to_vec_without(&v, "hash"));
            if &actual != stored {
                report.breaks.push(Break {
                    index: i,
                    kind: "edited",
                    message: format!(
                        "entry {i} (seq {}) was edited: its content no longer matches its hash",
                        seq.map_or("?".into(), |s| s.to_string())
                    ),
                });
            }
            let expected_prev = match &prev {
                Some(p) => p.clone(),
                None => legacy.current(),
            };
            let link = obj.get("prev_hash").and_then(Value::as_str).unwrap_or("");
            if link != expected_prev {
                report.breaks.push(Break {
                    index: i,
                    kind: "link",
                    message: format!(
                        "chain broken before entry {i} (seq {}): its prev_hash does not match the entry before it; entries were deleted, inserted or reordered",
                        seq.map_or("?".into(), |s| s.to_string())
                    ),
                });
            }
            if seq != Some(i) {
                report.breaks.push(Break {
                    index: i,
                    kind: "seq",
                    message: format!(
                        "entry {i} carries seq {}: entries before it were deleted, inserted or reordered",
                        seq.map_or("none".into(), |s| s.to_string())
                    ),
                });
            }
            if expected.as_deref() == Some(stored.as_str()) {
                head_seen_at = Some(i);
                if let Some(kept) = expected_seq
                    && seq != Some(kept)
                {
                    report.breaks.push(Break {
                        index: i,
                        kind: "seq",
                        message: format!(
                            "the kept head names seq {kept}, but the entry with its hash carries seq {}",
                            seq.map_or("none".into(), |s| s.to_string())
                        ),
                    });
                }
            }
            let op_id = obj.get("operation_id").and_then(Value::as_str);
            match (obj.get("phase").and_then(Value::as_str), op_id) {
                (Some("intent"), Some(id)) => {
                    open.insert(
                        id.to_string(),
                        Unfinished {
                            seq: seq.unwrap_or(i),
                            operation_id: id.to_string(),
                            operation: obj
                                .get("operation")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            timestamp: obj
                                .get("timestamp")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        },
                    );
                }
                (Some("commit"), Some(id)) => {
                    let intent = open.remove(id);
                    let points_at = obj.get("intent_seq").and_then(Value::as_u64);
                    if intent.as_ref().map(|u| u.seq) != points_at || intent.is_none() {
                        report.breaks.push(Break {
                            index: i,
                            kind: "unmatched",
                            message: format!(
                                "entry {i} commits operation {id}, but no open intent entry{} precedes it: entries were deleted or forged",
                                points_at.map(|s| format!(" at seq {s}")).unwrap_or_default()
                            ),
                        });
                    }
                }
                (Some(phase), _) => report.breaks.push(Break {
                    index: i,
                    kind: "malformed",
                    message: format!("entry {i} has phase `{phase}` without a valid `operation_id`, or an unknown phase"),
                }),
                (None, _) => {}
            }
            report.head = Some(Head {
                seq: seq.unwrap_or(i),
                hash: stored.clone(),
            });
            prev = Some(stored.clone());
        })?;
        if let Some(h) = expected
            && head_seen_at.is_none()
        {
            report.breaks.push(Break {
                index: report.entries,
                kind: "truncated",
                message: format!(
                    "the kept head {h} is not in the log (which ends at entry {}): entries were removed from the end or the log was rewritten",
                    report.entries.saturating_sub(1)
                ),
            });
        }
        report.legacy_appended = run.take();
        let mut unfinished: Vec<Unfinished> = open.into_values().collect();
        unfinished.sort_by_key(|u| u.seq);
        report.unfinished = unfinished;
        Ok(report)
    }

    /// The log does not exist, or holds nothing but whitespace.
    fn is_missing_or_blank(&self) -> Result<bool> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::read(&self.path, e)),
        };
        let mut head = Vec::new();
        (&mut f)
            .take(4096)
            .read_to_end(&mut head)
            .map_err(|e| Error::read(&self.path, e))?;
        Ok(head.len() < 4096 && head.iter().all(u8::is_ascii_whitespace))
    }

    fn corrupt(&self, location: &str, message: &str) -> Error {
        Error::Corrupt {
            input: SourceName::from(self.path.as_path()),
            location: location.to_string(),
            message: message.to_string(),
        }
    }
}

/// Hash of an entry (without its `hash` key).
pub fn entry_hash(entry_without_hash: &Value) -> String {
    canonical::sha256_hex(&canonical::to_vec(entry_without_hash))
}

struct TailState {
    /// Entries in the array (the next entry's seq).
    count: u64,
    prev_hash: String,
    /// Byte offset to write at, and whether the array is empty; `None`: create the file.
    write_at: Option<(u64, bool)>,
    last_hashed: Option<Head>,
    /// Entries an old (upstream) writer appended after the last hashed one: the next entry
    /// adopts them into the chain.
    unadopted: Option<Adopts>,
}

impl TailState {
    fn fresh() -> TailState {
        TailState {
            count: 0,
            prev_hash: GENESIS.into(),
            write_at: None,
            last_hashed: None,
            unadopted: None,
        }
    }
}

/// A run of unhashed entries after hashed ones, taken into the chain by the hashed entry that
/// follows it: that entry's `adopts` is `{from, to, digest}` (indices of the run, inclusive,
/// and the SHA-256 of the canonical JSON of the run as an array), and its hash covers it, so
/// editing an adopted entry afterwards shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Adopts {
    pub from: u64,
    pub to: u64,
    pub digest: String,
}

impl Adopts {
    pub fn count(&self) -> u64 {
        self.to - self.from + 1
    }
}

/// Unhashed entries after hashed ones being collected (verify and the full tail walk).
#[derive(Default)]
struct Run {
    from: Option<u64>,
    to: u64,
    digest: LegacyDigest,
}

impl Run {
    fn push(&mut self, i: u64, v: &Value) {
        self.from.get_or_insert(i);
        self.to = i;
        self.digest.push(v);
    }
    fn take(&mut self) -> Option<Adopts> {
        let run = std::mem::take(self);
        run.from.map(|from| Adopts {
            from,
            to: run.to,
            digest: run.digest.finish(),
        })
    }
}

/// SHA-256 of the canonical JSON of the legacy prefix array, computed incrementally.
#[derive(Default)]
struct LegacyDigest {
    hasher: Option<Sha256>,
}

// The digest is SHA-256 of `[e0,e1,...]` with each element in canonical JSON: the canonical
// JSON of the prefix array itself.

impl LegacyDigest {
    fn push(&mut self, v: &Value) {
        match &mut self.hasher {
            Some(h) => h.update(b","),
            None => {
                let mut h = Sha256::new();
                h.update(b"[");
                self.hasher = Some(h);
            }
        }
        if let Some(h) = &mut self.hasher {
            h.update(canonical::to_vec(v));
        }
    }
    fn current(&self) -> String {
        match &self.hasher {
            None => GENESIS.into(),
            Some(h) => {
                let mut h = h.clone();
                h.update(b"]");
                canonical::hex(&h.finalize())
            }
        }
    }
    fn finish(self) -> String {
        self.current()
    }
}

struct ArraySeed<'a, F> {
    visit: &'a mut F,
}

impl<'de, F: FnMut(u64, Value)> DeserializeSeed<'de> for ArraySeed<'_, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(u64, Value)> Visitor<'de> for ArraySeed<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of audit entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0u64;
        while let Some(crate::source::StrictValue(v)) = seq.next_element()? {
            (self.visit)(i, v);
            i += 1;
        }
        Ok(())
    }
}

/// A one-line summary of an entry for views (`seq time user operation skill outcome`).
pub fn summary(entry: &Value) -> Value {
    json!({
        "seq": entry.get("seq"),
        "timestamp": entry.get("timestamp"),
        "user": entry.get("user"),
        "operation": entry.get("operation"),
        "skill": entry.get("skill"),
        "outcome": entry.get("outcome"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_killed_half_way_is_rolled_forward_from_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit_log.json"));
        log.append(&record(0), &who()).unwrap();
        let before = std::fs::read(&log.path).unwrap();
        log.append(&record(1), &who()).unwrap();
        let after = std::fs::read(&log.path).unwrap();
        let offset = before
            .iter()
            .zip(&after)
            .take_while(|(a, b)| a == b)
            .count();
        let chunk = &after[offset..];
        // What a kill inside the in-place write leaves: the journal, and a torn array.
        let header =
            json!({"offset": offset, "bytes": chunk.len(), "sha256": canonical::sha256_hex(chunk)});
        let mut journal = format!("{header}\n").into_bytes();
        journal.extend_from_slice(chunk);
        std::fs::write(log.journal(), journal).unwrap();
        let mut torn = before[..offset].to_vec();
        torn.extend_from_slice(&chunk[..chunk.len() / 2]);
        std::fs::write(&log.path, &torn).unwrap();
        assert!(log.verify(None).unwrap().ok());
        assert_eq!(std::fs::read(&log.path).unwrap(), after);
        assert!(!log.journal().exists());
        // A journal that does not match its header is refused, never applied.
        std::fs::write(
            log.journal(),
            b"{\"offset\":1,\"bytes\":1,\"sha256\":\"00\"}\nxx",
        )
        .unwrap();
        assert!(log.append(&record(2), &who()).is_err());
        assert_eq!(std::fs::read(&log.path).unwrap(), after);
    }

    #[test]
    fn a_kept_head_is_checked_by_its_seq_too() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit_log.json"));
        log.append(&record(0), &who()).unwrap();
        let h = log.append(&record(1), &who()).unwrap();
        assert!(
            log.verify(Some(&format!("{}:{}", h.seq, h.hash)))
                .unwrap()
                .ok()
        );
        let wrong = format!("{}:{}", h.seq + 5, h.hash);
        assert!(!log.verify(Some(&wrong)).unwrap().ok());
        assert!(log.verify(Some(&format!("x:{}", h.hash))).is_err());
    }

    fn who() -> Identity {
        Identity {
            sources: Default::default(),
            user: "ada@example.com".into(),
            session_id: "s-1".into(),
            ip_address: "10.0.0.1".into(),
        }
    }

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            operation: "policy.enforce".into(),
            skill: Some(format!("skill.n{i}")),
            outcome: "passed".into(),
            policy_checks: vec![PolicyCheck {
                policy: "skill-naming-convention".into(),
                result: "pass".into(),
            }],
            details: None,
            step: None,
        }
    }

    fn log_with(n: usize) -> (tempfile::TempDir, AuditLog, Vec<Head>) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit_log.json"));
        let heads = (0..n)
            .map(|i| log.append(&record(i), &who()).unwrap())
            .collect();
        (dir, log, heads)
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(&log.path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_lines(log: &AuditLog, lines: &[String]) {
        std::fs::write(&log.path, lines.join("\n") + "\n").unwrap();
    }

    /// Makes the entry lines well-formed again (commas) after a test moved them around.
    fn rejoin(mut entries: Vec<String>) -> Vec<String> {
        let n = entries.len();
        for (i, e) in entries.iter_mut().enumerate() {
            let body = e.trim_end_matches(',').to_string();
            *e = if i + 1 < n { format!("{body},") } else { body };
        }
        let mut out = vec!["[".to_string()];
        out.extend(entries);
        out.push("]".into());
        out
    }

    #[test]
    fn entries_say_where_their_claims_came_from_and_older_entries_still_verify() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("audit_log.json"));
        // An entry as the previous version wrote it: no `identity_sources`.
        let mut old = serde_json::json!({
            "timestamp": "2026-11-24T08:14:20.123456Z", "operation": "policy.enforce",
            "skill": "a.b", "user": "ada@example.com", "ip_address": "127.0.0.1",
            "outcome": "passed", "policy_checks": [], "session_id": "s-0",
            "seq": 0, "prev_hash": GENESIS,
        });
        old["hash"] = entry_hash(&old).into();
        std::fs::write(&log.path, format!("[\n{old}\n]\n")).unwrap();
        let mut flagged = who();
        flagged.sources = crate::identity::Sources {
            user: crate::identity::Source::Flag,
            ip_address: crate::identity::Source::Environment,
        };
        let head = log.append(&record(1), &flagged).unwrap();
        log.append(&record(2), &who()).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&log.path).unwrap()).unwrap();
        assert!(v[0].get("identity_sources").is_none());
        assert_eq!(
            v[1]["identity_sources"],
            serde_json::json!({"user": "flag", "ip_address": "environment"})
        );
        assert_eq!(
            v[2]["identity_sources"],
            serde_json::json!({"user": "default", "ip_address": "default"})
        );
        let report = log.verify(Some(&head.to_string())).unwrap();
        assert!(report.ok(), "{:?}", report.breaks);
        assert_eq!(report.hashed_entries, 3);
        // The source is covered by the hash like any other key.
        let text = std::fs::read_to_string(&log.path).unwrap().replacen(
            "\"user\":\"flag\"",
            "\"user\":\"git\"",
            1,
        );
        std::fs::write(&log.path, text).unwrap();
        assert!(!log.verify(None).unwrap().ok());
    }

    #[test]
    fn entries_an_old_writer_appended_are_reported_then_adopted_and_covered() {
        let (_d, log, _) = log_with(2);
        // Upstream's audit.log: load the array, append, dump it whole with indent 2.
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(&log.path).unwrap()).unwrap();
        for skill in ["a.one", "a.two"] {
            v.as_array_mut().unwrap().push(
                json!({"timestamp": "2025-11-02T10:00:00Z", "skill": skill, "status": "success"}),
            );
        }
        std::fs::write(&log.path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let r = log.verify(None).unwrap();
        assert!(r.ok(), "{:?}", r.breaks);
        let pending = r.legacy_appended.clone().unwrap();
        assert_eq!((pending.from, pending.to, r.adopted_entries), (2, 3, 0));
        let head = log.append(&record(9), &who()).unwrap();
        assert_eq!(head.seq, 4);
        let r = log.verify(Some(&head.to_string())).unwrap();
        assert!(r.ok(), "{:?}", r.breaks);
        assert_eq!((r.adopted_entries, r.legacy_appended.clone()), (2, None));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&log.path).unwrap()).unwrap();
        assert_eq!(v[4]["adopts"]["from"], 2);
        crate::schema::validate(crate::schema::SchemaId::AuditEntry, &v[4]).unwrap();
        // Once adopted, editing an adopted entry shows; the next append adopts nothing more.
        let again = log.append(&record(10), &who()).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&log.path).unwrap()).unwrap();
        assert!(v[5].get("adopts").is_none(), "{}", v[5]);
        assert!(log.verify(Some(&again.to_string())).unwrap().ok());
        let text = std::fs::read_to_string(&log.path)
            .unwrap()
            .replacen("a.two", "a.evil", 1);
        std::fs::write(&log.path, text).unwrap();
        let r = log.verify(None).unwrap();
        assert!(!r.ok());
        assert!(
            r.breaks
                .iter()
                .all(|b| b.kind == "unhashed" || b.kind == "link"),
            "{:?}",
            r.breaks
        );
    }

    #[test]
    fn appended_log_is_a_json_array_and_verifies() {
        let (_d, log, heads) = log_with(5);
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&log.path).unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 5);
        assert_eq!(v[0]["prev_hash"], GENESIS);
        assert_eq!(v[4]["seq"], 4);
        assert_eq!(v[4]["prev_hash"], v[3]["hash"]);
        assert_eq!(v[2]["user"], "ada@example.com");
        assert_eq!(v[2]["policy_checks"][0]["result"], "pass");
        let report = log.verify(Some(&heads[4].to_string())).unwrap();
        assert!(report.ok(), "{:?}", report.breaks);
        assert_eq!(report.hashed_entries, 5);
        assert_eq!(log.head().unwrap(), Some(heads[4].clone()));
    }

    #[test]
    fn one_changed_byte_is_found() {
        let (_d, log, _) = log_with(4);
        let text = std::fs::read_to_string(&log.path).unwrap();
        let tampered = text.replacen("skill.n2", "skill.m2", 1);
        std::fs::write(&log.path, tampered).unwrap();
        let r = log.verify(None).unwrap();
        assert_eq!(r.breaks.len(), 1, "{:?}", r.breaks);
        assert_eq!((r.breaks[0].index, r.breaks[0].kind), (2, "edited"));
    }

    #[test]
    fn a_deleted_entry_is_found() {
        let (_d, log, _) = log_with(4);
        let l = lines(&log);
        let entries: Vec<String> = l[1..l.len() - 1]
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, s)| s.clone())
            .collect();
        write_lines(&log, &rejoin(entries));
        let r = log.verify(None).unwrap();
        assert!(!r.ok());
        assert_eq!(r.breaks[0].index, 1);
        assert!(r.breaks.iter().any(|b| b.kind == "link"), "{:?}", r.breaks);
    }

    #[test]
    fn swapped_entries_are_found() {
        let (_d, log, _) = log_with(4);
        let l = lines(&log);
        let mut entries: Vec<String> = l[1..l.len() - 1].to_vec();
        entries.swap(1, 2);
        write_lines(&log, &rejoin(entries));
        let r = log.verify(None).unwrap();
        assert!(!r.ok());
        assert_eq!(r.breaks[0].index, 1);
    }

    #[test]
    fn a_truncated_tail_is_found_against_the_kept_head() {
        let (_d, log, heads) = log_with(5);
        let l = lines(&log);
        let entries: Vec<String> = l[1..l.len() - 2].to_vec();
        write_lines(&log, &rejoin(entries));
        // Without the head, a clean truncation is indistinguishable from a shorter log.
        assert!(log.verify(None).unwrap().ok());
        let r = log.verify(Some(&heads[4].to_string())).unwrap();
        assert_eq!(r.breaks.len(), 1);
        assert_eq!(r.breaks[0].kind, "truncated");
        assert!(
            r.breaks[0].message.contains("ends at entry 3"),
            "{}",
            r.breaks[0].message
        );
        // An older head is fine: the log grew since.
        assert!(log.verify(Some(&heads[2].hash)).unwrap().ok());
    }

    #[test]
    fn legacy_prefix_is_unverified_but_chained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit_log.json");
        std::fs::write(
            &path,
            "[\n  {\n    \"skill\": \"a\",\n    \"status\": \"ok\"\n  },\n  {\n    \"skill\": \"b\",\n    \"status\": \"ok\"\n  }\n]",
        )
        .unwrap();
        let log = AuditLog::new(&path);
        let h = log.append(&record(0), &who()).unwrap();
        assert_eq!(h.seq, 2);
        log.append(&record(1), &who()).unwrap();
        let r = log.verify(None).unwrap();
        assert!(r.ok(), "{:?}", r.breaks);
        assert_eq!((r.legacy_entries, r.hashed_entries), (2, 2));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v[0]["skill"], "a");
        // Editing the legacy prefix after the chain started breaks the first link.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"a\"", "\"z\"", 1);
        std::fs::write(&path, text).unwrap();
        let r = log.verify(None).unwrap();
        assert_eq!(r.breaks[0].index, 2);
    }

    #[test]
    fn a_torn_or_empty_file_is_refused_and_left_alone() {
        let (_d, log, _) = log_with(2);
        let mut text = std::fs::read_to_string(&log.path).unwrap();
        text.truncate(text.len() - 10);
        std::fs::write(&log.path, &text).unwrap();
        let err = log.append(&record(9), &who()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&log.path).unwrap(), text);
        let err = log.verify(None).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        std::fs::write(&log.path, "").unwrap();
        assert!(log.append(&record(9), &who()).is_err());
        assert_eq!(std::fs::read(&log.path).unwrap(), b"");
    }

    #[test]
    fn an_empty_array_file_accepts_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit_log.json");
        std::fs::write(&path, "[\n]\n").unwrap();
        let log = AuditLog::new(&path);
        log.append(&record(0), &who()).unwrap();
        log.append(&record(1), &who()).unwrap();
        assert!(log.verify(None).unwrap().ok());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_commit_without_its_intent_is_a_break_and_an_open_intent_is_unfinished() {
        let (_d, log, _) = log_with(1);
        let intent = |id: &str| AuditRecord {
            step: Some(Step::Intent {
                operation_id: id.into(),
            }),
            ..record(1)
        };
        let commit = |id: &str, intent_seq| AuditRecord {
            step: Some(Step::Commit {
                operation_id: id.into(),
                intent_seq,
            }),
            ..record(2)
        };
        let open = log.append(&intent("op-a"), &who()).unwrap();
        log.append(&intent("op-b"), &who()).unwrap();
        log.append(&commit("op-b", open.seq + 1), &who()).unwrap();
        let r = log.verify(None).unwrap();
        assert!(r.ok(), "{:?}", r.breaks);
        assert_eq!(r.unfinished.len(), 1);
        assert_eq!(
            (r.unfinished[0].seq, r.unfinished[0].operation_id.as_str()),
            (1, "op-a")
        );
        // A commit pointing at the wrong intent, or at none.
        log.append(&commit("op-a", 0), &who()).unwrap();
        log.append(&commit("op-z", 1), &who()).unwrap();
        let r = log.verify(None).unwrap();
        let kinds: Vec<_> = r.breaks.iter().map(|b| (b.index, b.kind)).collect();
        assert_eq!(kinds, [(4, "unmatched"), (5, "unmatched")]);
    }
}
