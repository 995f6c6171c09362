//! The event stream on disk: `events.jsonl` plus older segments rotated out of it by size.
//!
//! A rotated segment is named `events-<UTC stamp>.jsonl` (`events-20261124T081420Z.jsonl`) in
//! the same folder, so name order is age order, and all segments read as one stream: the rotated
//! ones oldest first, then `events.jsonl`. Rotation renames under the sidecar lock every writer
//! takes, so no append is lost or split across segments.
//!
//! Betty's writers stamp events with the current time, so a segment is time-ordered up to the
//! clock skew between concurrent writers ([`SKEW`]). Queries bisect such a segment for a time
//! window. Anything that appends an event stamped away from "now" (an import of old events, an
//! event on stdin carrying its own timestamp) first creates `<segment>.unordered`; such a segment
//! is always scanned whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most an event's timestamp may lag behind the one written before it in an ordered segment.
pub const SKEW: Duration = Duration::from_secs(600);

/// One file of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// Time-ordered (no `.unordered` marker): time windows may be found by bisection.
    pub ordered: bool,
}

/// `<segment>.unordered`.
pub fn unordered_marker(segment: &Path) -> PathBuf {
    let mut name = segment.file_name().unwrap_or_default().to_os_string();
    name.push(".unordered");
    segment.with_file_name(name)
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
                    if let Some(name) = entry.file_name().to_str()
                        && is_rotated_name(name)
                        && entry.file_type()?.is_file()
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
