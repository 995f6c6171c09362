//! The event stream on disk, and the one place events are appended to it.
//!
//! `telemetry/events.jsonl` plus older segments rotated out of it by size. A rotated segment is
//! named `events-<UTC stamp>.jsonl` (`events-20261124T081420.123456Z.jsonl`) in the same
//! folder, so name order is age order, and all segments read as one stream: the rotated ones
//! oldest first, then `events.jsonl`. Rotation renames under the sidecar lock every writer
//! takes, so no append is lost or split across segments.
//!
//! Betty's writers stamp events with the current time, so a segment is time-ordered up to the
//! clock skew between concurrent writers ([`SKEW`]). Queries bisect such a segment for a time
//! window. Anything that appends an event stamped away from "now" (an import of old events, an
//! event on stdin carrying its own timestamp) first creates `<segment>.unordered`; such a
//! segment is always scanned whole.
//!
//! [`append`] is the one appender: under the stream's lock it finishes a batch a killed writer
//! left half-written ([`settle`]), rotates `events.jsonl` once it has grown past the rotation
//! size, marks the segment unordered when needed, starts on a fresh line after a torn one, and
//! appends the batch in one write.
//!
//! **Batches are all or nothing** ([`append_batch`]). One `write` of a large batch can be cut
//! short by `SIGKILL` (the kernel stops between pages), so a batch with an id is journaled:
//! under the lock, its lines go to `events.jsonl.batch` (header line + the lines, written
//! atomically: temporary file, fsync, rename). That rename is the commit point. Then the lines
//! are appended to `events.jsonl`, the batch id to `batches.jsonl` (the ledger), and the
//! journal is removed. Whoever takes the lock next (any writer, and readers through [`settle`])
//! finds a leftover journal and rolls it forward: it appends whatever part of the batch
//! `events.jsonl` lacks, writes the ledger line and removes the journal. So a kill at any
//! instant leaves none of the batch (killed before the commit point) or, once settled, all of
//! it. A batch whose id is already in the ledger's tail (the last [`LEDGER_TAIL`] bytes) is a
//! retry: it adds nothing.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fsx;
use crate::source::SourceName;
use crate::telemetry::EventBatch;

/// The most an event's timestamp may lag behind the one written before it in an ordered segment.
pub const SKEW: Duration = Duration::from_secs(600);
/// How much of the end of `batches.jsonl` a retry check reads (about 20,000 batches).
pub const LEDGER_TAIL: u64 = 4 * 1024 * 1024;
/// Default rotation size of `events.jsonl`.
pub const DEFAULT_ROTATE_BYTES: u64 = 256 * 1024 * 1024;
/// The largest batch journal a reader rolls forward (a batch from standard input).
pub const JOURNAL_MAX_BYTES: u64 = 1 << 40;

/// One file of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// Time-ordered (no `.unordered` marker): time windows may be found by bisection.
    pub ordered: bool,
}

/// `<segment>.unordered`.
pub fn unordered_marker(segment: &Path) -> PathBuf {
    sibling(segment, ".unordered")
}

/// `<events.jsonl>.batch`: the journal of a batch being appended.
pub fn batch_journal(events_jsonl: &Path) -> PathBuf {
    sibling(events_jsonl, ".batch")
}

/// `batches.jsonl` beside the stream: the ids of the batches appended.
pub fn batch_ledger(events_jsonl: &Path) -> PathBuf {
    events_jsonl.with_file_name("batches.jsonl")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Whether a file name is a rotated segment's.
pub fn is_rotated_name(name: &str) -> bool {
    name.starts_with("events-")
        && name.ends_with(".jsonl")
        && name.len() > "events-.jsonl".len()
        && !name.contains(['/', '\\'])
}

/// The segments of the stream whose live file is `events_jsonl`, oldest first. Missing files
/// are simply absent (an empty stream).
pub fn list(events_jsonl: &Path) -> std::io::Result<Vec<Segment>> {
    let dir = match events_jsonl.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut rotated: Vec<PathBuf> = Vec::new();
    // Only the default name rotates; a file given by path is read alone.
    if events_jsonl
        .file_name()
        .is_some_and(|n| n == "events.jsonl")
    {
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    // Whatever has a segment's name is one: a link, FIFO or folder is refused
                    // when opened (exit 2 naming it), never skipped, or its events would
                    // silently leave every query and `metrics --rebuild`.
                    if let Some(name) = entry.file_name().to_str()
                        && is_rotated_name(name)
                    {
                        rotated.push(entry.path());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    rotated.sort();
    // Anything at the path is a segment: a FIFO or a link is refused when opened, never skipped.
    if events_jsonl.symlink_metadata().is_ok() {
        rotated.push(events_jsonl.to_path_buf());
    }
    Ok(rotated
        .into_iter()
        .map(|path| Segment {
            ordered: !unordered_marker(&path).exists(),
            path,
        })
        .collect())
}

/// Name of the segment `events.jsonl` becomes when rotated at `now`.
pub fn rotated_name(dir: &Path, now: jiff::Timestamp) -> PathBuf {
    let stamp = now.strftime("%Y%m%dT%H%M%S%.6fZ").to_string();
    let mut path = dir.join(format!("events-{stamp}.jsonl"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("events-{stamp}-{n}.jsonl"));
        n += 1;
    }
    path
}

/// How [`append`] treats the stream.
#[derive(Clone, Debug)]
pub struct AppendOptions {
    /// Rotate `events.jsonl` once it is at least this big (`None`: never).
    pub rotate_bytes: Option<u64>,
    pub now: jiff::Timestamp,
}

impl AppendOptions {
    /// `BETTY_TELEMETRY_ROTATE_BYTES` (default 256 MiB; 0 disables rotation), honoured by every
    /// binary since every binary appends here.
    pub fn from_env(now: jiff::Timestamp) -> AppendOptions {
        let rotate = std::env::var("BETTY_TELEMETRY_ROTATE_BYTES")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_ROTATE_BYTES);
        AppendOptions {
            rotate_bytes: (rotate > 0).then_some(rotate),
            now,
        }
    }
}

/// What an append did.
#[derive(Clone, Debug, Default)]
pub struct Appended {
    /// Events written.
    pub count: usize,
    pub rotated_to: Option<PathBuf>,
    /// The batch was appended before (a retry): nothing was written.
    pub already_present: bool,
}

/// Appends a batch in one write; see the module comment.
pub fn append(path: &Path, batch: &EventBatch, opts: &AppendOptions) -> Result<Appended> {
    append_with(path, opts, |_| Ok::<_, Error>(batch.clone()))
}

/// As [`append`], with the events decided while the lock is held (`decide` sees the segments),
/// so that a check-then-append (an import skipping ids already present) is race-free.
pub fn append_with<E: From<Error>>(
    path: &Path,
    opts: &AppendOptions,
    decide: impl FnOnce(&[Segment]) -> std::result::Result<EventBatch, E>,
) -> std::result::Result<Appended, E> {
    let _lock = lock(path)?;
    settle_locked(path)?;
    let segs = list(path).map_err(|e| Error::read(path, e))?;
    let batch = decide(&segs)?;
    let mut out = Appended::default();
    if batch.is_empty() {
        return Ok(out);
    }
    out.rotated_to = prepare(path, &batch, opts)?;
    fsx::append_locked_nosync(path, batch.bytes())?;
    out.count = batch.len();
    Ok(out)
}

/// Appends a batch all or nothing, once: `batch_id` names it (for `telemetry-capture -`, a
/// digest of the input), and a batch already in the ledger is not appended again. See the
/// module comment for the journal.
pub fn append_batch(
    path: &Path,
    batch_id: &str,
    batch: &EventBatch,
    opts: &AppendOptions,
) -> Result<Appended> {
    let _lock = lock(path)?;
    settle_locked(path)?;
    let mut out = Appended::default();
    if batch.is_empty() {
        return Ok(out);
    }
    if in_ledger(&batch_ledger(path), batch_id)? {
        out.already_present = true;
        return Ok(out);
    }
    out.rotated_to = prepare(path, batch, opts)?;
    let offset = file_len(path)?;
    let header = json!({
        "batch_id": batch_id,
        "segment": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "offset": offset,
        "bytes": batch.bytes().len(),
        "events": batch.len(),
        "sha256": crate::canonical::sha256_hex(batch.bytes()),
    });
    let mut journal = header.to_string().into_bytes();
    journal.push(b'\n');
    journal.extend_from_slice(batch.bytes());
    // The commit point: from here on the batch is in the stream, finished by whoever settles.
    fsx::atomic_write(&batch_journal(path), &journal)?;
    fsx::append_locked_nosync(path, batch.bytes())?;
    finish_journal(path, batch_id, batch.len())?;
    out.count = batch.len();
    Ok(out)
}

/// Finishes a batch a killed writer left in the journal, under the stream's lock. Readers call
/// it before reading (a read-only registry is read as it is).
pub fn settle(path: &Path) -> Result<()> {
    if !batch_journal(path).exists() {
        return Ok(());
    }
    let _lock = lock(path)?;
    settle_locked(path)
}

fn lock(path: &Path) -> Result<fsx::LockGuard> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        fsx::create_dir_checked(dir)?;
    }
    fsx::LockGuard::exclusive(path)
}

/// Rotation, the unordered marker and the line boundary, before an append (lock held).
fn prepare(path: &Path, batch: &EventBatch, opts: &AppendOptions) -> Result<Option<PathBuf>> {
    let mut rotated_to = None;
    if let Some(limit) = opts.rotate_bytes
        && file_len(path)? >= limit
    {
        let dir = path.parent().unwrap_or(Path::new("."));
        let to = rotated_name(dir, opts.now);
        fsx::rename_synced(path, &to)?;
        let marker = unordered_marker(path);
        if marker.exists() {
            fsx::rename_synced(&marker, &unordered_marker(&to))?;
        }
        rotated_to = Some(to);
    }
    let skew = jiff::SignedDuration::try_from(SKEW / 2).unwrap_or_default();
    let (lo, hi) = (
        opts.now.checked_sub(skew).unwrap_or(opts.now),
        opts.now.checked_add(skew).unwrap_or(opts.now),
    );
    if let Some((earliest, latest)) = batch.given_times()
        && (earliest < lo || latest > hi)
    {
        let marker = unordered_marker(path);
        if !marker.exists() {
            fsx::atomic_write(&marker, b"events in this segment are not in time order\n")?;
        }
    }
    ensure_line_boundary(path)?;
    Ok(rotated_to)
}

/// Rolls a leftover journal forward (lock held).
fn settle_locked(path: &Path) -> Result<()> {
    let journal = batch_journal(path);
    let name = SourceName::from(journal.as_path());
    let bytes = match fsx::open_regular_if_exists(&journal)? {
        None => return Ok(()),
        Some(_) => fsx::read_regular(&journal, JOURNAL_MAX_BYTES)?,
    };
    let corrupt = |message: String| Error::Corrupt {
        input: name.clone(),
        location: "line 1".into(),
        message,
    };
    let split = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt("no header line".into()))?;
    let header: Value = serde_json::from_slice(&bytes[..split])
        .map_err(|e| corrupt(format!("the header is not JSON: {e}")))?;
    let body = &bytes[split + 1..];
    let (Some(batch_id), Some(offset), Some(len), Some(events), Some(sha)) = (
        header["batch_id"].as_str(),
        header["offset"].as_u64(),
        header["bytes"].as_u64(),
        header["events"].as_u64(),
        header["sha256"].as_str(),
    ) else {
        return Err(corrupt(
            "the header lacks batch_id, offset, bytes, events or sha256".into(),
        ));
    };
    if body.len() as u64 != len || crate::canonical::sha256_hex(body) != sha {
        return Err(corrupt(
            "the journaled lines do not match their header".into(),
        ));
    }
    let have = file_len(path)?;
    if have < offset {
        return Err(corrupt(format!(
            "`{}` is shorter ({have} bytes) than where the batch began ({offset}); it was truncated or replaced",
            path.display()
        )));
    }
    let present = (have - offset).min(len) as usize;
    let mut written = vec![0u8; present];
    let mut f = fsx::open_regular(path)?;
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut written))
        .map_err(|e| Error::read(path, e))?;
    if written != body[..present] {
        return Err(corrupt(format!(
            "`{}` holds other bytes where the batch began (byte {offset}); the journal was left for inspection",
            path.display()
        )));
    }
    // Nothing but this batch can follow its start while its journal exists (every writer
    // settles first), so the file ends inside the batch or right after it.
    if present < body.len() {
        fsx::append_locked_nosync(path, &body[present..])?;
    }
    finish_journal(path, batch_id, events as usize)
}

/// Ledger line, then the journal goes (lock held).
fn finish_journal(path: &Path, batch_id: &str, events: usize) -> Result<()> {
    let ledger = batch_ledger(path);
    if !in_ledger(&ledger, batch_id)? {
        ensure_line_boundary(&ledger)?;
        let line = json!({
            "batch_id": batch_id,
            "events": events,
            "at": crate::time::now_rfc3339(),
        });
        fsx::append_locked(&ledger, format!("{line}\n").as_bytes())?;
    }
    fsx::remove_file(&batch_journal(path))
}

/// Whether `batches.jsonl`'s tail names `batch_id`.
fn in_ledger(ledger: &Path, batch_id: &str) -> Result<bool> {
    let Some(mut f) = fsx::open_regular_if_exists(ledger)? else {
        return Ok(false);
    };
    let len = f.metadata().map_err(|e| Error::read(ledger, e))?.len();
    let start = len.saturating_sub(LEDGER_TAIL);
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.take(LEDGER_TAIL).read_to_end(&mut buf))
        .map_err(|e| Error::read(ledger, e))?;
    let needle = format!("\"batch_id\":{}", Value::String(batch_id.to_string()));
    Ok(buf
        .split(|b| *b == b'\n')
        .any(|line| line.windows(needle.len()).any(|w| w == needle.as_bytes())))
}

/// Whether events could be appended to `path` now: a regular file or nothing, reached through
/// no link. A state change checks this before its intent entry, so a stream it could not
/// write never leaves a change behind (nothing is written).
pub fn check_appendable(path: &Path) -> Result<()> {
    file_len(path).map(|_| ())
}

fn file_len(path: &Path) -> Result<u64> {
    // Through the regular-file open: a FIFO, a folder or a link is refused, naming what it is.
    match fsx::open_regular_if_exists(path)? {
        Some(f) => Ok(f.metadata().map_err(|e| Error::read(path, e))?.len()),
        None => Ok(0),
    }
}

/// If the file's last byte is not a newline (a writer was killed mid-line), start on a new line
/// so the torn record stays one bad line instead of corrupting the next good one. The caller
/// holds the lock.
pub fn ensure_line_boundary(path: &Path) -> Result<()> {
    let Some(mut f) = fsx::open_regular_if_exists(path)? else {
        return Ok(());
    };
    let len = f.metadata().map_err(|e| Error::read(path, e))?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1))
        .and_then(|_| f.read_exact(&mut last))
        .map_err(|e| Error::read(path, e))?;
    if last[0] != b'\n' {
        fsx::append_locked(path, b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, tag: &str) -> EventBatch {
        let mut b = EventBatch::new();
        for i in 0..n {
            let e =
                json!({"event_id": format!("{tag}-{i}"), "timestamp": crate::time::now_rfc3339()});
            b.extend(EventBatch::from_values(&[e]).unwrap());
        }
        b
    }

    #[test]
    fn rotated_first_then_live() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("events.jsonl");
        for name in [
            "events.jsonl",
            "events-20261124T000000Z.jsonl",
            "events-20251124T000000Z.jsonl",
            "metrics.json",
            "events.jsonl.lock",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::write(unordered_marker(&live), "").unwrap();
        let segs = list(&live).unwrap();
        let names: Vec<_> = segs
            .iter()
            .map(|s| s.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "events-20251124T000000Z.jsonl",
                "events-20261124T000000Z.jsonl",
                "events.jsonl"
            ]
        );
        assert!(segs[0].ordered && !segs[2].ordered);
        assert!(
            list(&dir.path().join("none/events.jsonl"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn every_append_rotates_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("events.jsonl");
        let opts = AppendOptions {
            rotate_bytes: Some(10),
            now: crate::time::now(),
        };
        append(&live, &batch(2, "a"), &opts).unwrap();
        let second = append(&live, &batch(1, "b"), &opts).unwrap();
        assert!(second.rotated_to.is_some());
        assert_eq!(list(&live).unwrap().len(), 2);
        assert_eq!(std::fs::read_to_string(&live).unwrap().lines().count(), 1);
    }

    #[test]
    fn a_batch_is_appended_once_and_a_journal_is_rolled_forward() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("events.jsonl");
        let opts = AppendOptions::from_env(crate::time::now());
        let b = batch(3, "x");
        assert_eq!(append_batch(&live, "id-1", &b, &opts).unwrap().count, 3);
        let again = append_batch(&live, "id-1", &b, &opts).unwrap();
        assert!(again.already_present && again.count == 0);
        assert_eq!(std::fs::read(&live).unwrap(), b.bytes());
        // A writer killed after the commit point, half way through the append.
        let c = batch(4, "y");
        let offset = file_len(&live).unwrap();
        let header = json!({"batch_id": "id-2", "segment": "events.jsonl", "offset": offset,
            "bytes": c.bytes().len(), "events": 4, "sha256": crate::canonical::sha256_hex(c.bytes())});
        let mut j = header.to_string().into_bytes();
        j.push(b'\n');
        j.extend_from_slice(c.bytes());
        std::fs::write(batch_journal(&live), j).unwrap();
        let half = &c.bytes()[..c.bytes().len() / 2];
        fsx::append_record(&live, half).unwrap();
        settle(&live).unwrap();
        let mut want = b.bytes().to_vec();
        want.extend_from_slice(c.bytes());
        assert_eq!(std::fs::read(&live).unwrap(), want);
        assert!(!batch_journal(&live).exists());
        // And the retry adds nothing.
        assert!(
            append_batch(&live, "id-2", &c, &opts)
                .unwrap()
                .already_present
        );
        assert_eq!(std::fs::read(&live).unwrap(), want);
    }

    #[test]
    fn a_journal_that_does_not_match_the_stream_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("events.jsonl");
        let c = batch(2, "z");
        std::fs::write(&live, b"{\"other\":1}\n{\"other\":2}\n").unwrap();
        let header = json!({"batch_id": "id-3", "offset": 0, "bytes": c.bytes().len(),
            "events": 2, "sha256": crate::canonical::sha256_hex(c.bytes())});
        let mut j = header.to_string().into_bytes();
        j.push(b'\n');
        j.extend_from_slice(c.bytes());
        std::fs::write(batch_journal(&live), &j).unwrap();
        let err = settle(&live).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(batch_journal(&live)).unwrap(), j);
    }
}
