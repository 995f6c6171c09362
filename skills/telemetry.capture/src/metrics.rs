//! `registry/telemetry/metrics.json`: aggregates derived from the event stream, updated
//! incrementally and rebuildable.
//!
//! The file records, per segment, how far it was read (the offset after the last whole line),
//! how many lines that was, and a hash of the segment's first line: that hash recognises a
//! segment after rotation renamed it. An update reads only what was appended since; a torn last
//! line is left for later (it is not consumed). The aggregates are sums, counts and sketch
//! buckets, and lines are folded in the same order either way, so an incremental update and
//! `--rebuild` write byte-identical files. No wall-clock time is written, for the same reason.
//! If a segment it counted is gone or shorter than its offset, the update rebuilds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use betty_core::fsx;
use serde_json::{Map, Value, json};

use crate::lines::{ForwardLines, Item};
use crate::scan::{MAX_LINE, Skipped, parse_row};
use crate::segments::{self, Segment};
use crate::stats::Group;

/// Version of the `metrics.json` format.
pub const METRICS_SCHEMA_VERSION: u64 = 1;

/// Why metrics could not be updated. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Core(#[from] betty_core::Error),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not a metrics file this version reads ({reason}); it was left untouched; run `telemetry-query metrics --rebuild` to recompute it from the events"
    )]
    Unreadable { path: PathBuf, reason: String },
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetricsError + '_ {
    move |source| MetricsError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// How far one segment was read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SegmentState {
    name: String,
    offset: u64,
    lines: u64,
    head: String,
}

/// The aggregates and where they stopped reading.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub all: Group,
    pub by_event_type: BTreeMap<String, Group>,
    pub by_skill: BTreeMap<String, Group>,
    pub skipped_lines: u64,
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    segments: Vec<SegmentState>,
}

/// What an update did.
#[derive(Clone, Debug, Default)]
pub struct UpdateReport {
    pub rebuilt: bool,
    pub new_events: u64,
    pub new_skipped: u64,
}

impl Metrics {
    pub fn to_json(&self) -> Value {
        let groups = |m: &BTreeMap<String, Group>| -> Value {
            Value::Object(
                m.iter()
                    .map(|(k, g)| (k.clone(), g.to_json(true)))
                    .collect::<Map<String, Value>>(),
            )
        };
        json!({
            "schema_version": METRICS_SCHEMA_VERSION,
            "events": self.all.count,
            "skipped_lines": self.skipped_lines,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "all": self.all.to_json(true),
            "by_event_type": groups(&self.by_event_type),
            "by_skill": groups(&self.by_skill),
            "source": {
                "segments": self.segments.iter().map(|s| json!({
                    "name": s.name, "offset": s.offset, "lines": s.lines, "head": s.head,
                })).collect::<Vec<_>>(),
            },
        })
    }

    fn from_json(v: &Value) -> Result<Metrics, String> {
        if v.get("schema_version").and_then(Value::as_u64) != Some(METRICS_SCHEMA_VERSION) {
            return Err(format!("`schema_version` is not {METRICS_SCHEMA_VERSION}"));
        }
        let groups = |key: &str| -> Result<BTreeMap<String, Group>, String> {
            let mut out = BTreeMap::new();
            for (k, g) in v
                .get(key)
                .and_then(Value::as_object)
                .ok_or(format!("no `{key}`"))?
            {
                out.insert(
                    k.clone(),
                    Group::from_json(g).ok_or(format!("`{key}.{k}` is malformed"))?,
                );
            }
            Ok(out)
        };
        let mut segments = Vec::new();
        for s in v
            .pointer("/source/segments")
            .and_then(Value::as_array)
            .ok_or("no `source.segments`")?
        {
            segments.push(SegmentState {
                name: s["name"].as_str().ok_or("a segment has no name")?.into(),
                offset: s["offset"].as_u64().ok_or("a segment has no offset")?,
                lines: s["lines"].as_u64().ok_or("a segment has no line count")?,
                head: s["head"].as_str().ok_or("a segment has no head")?.into(),
            });
        }
        Ok(Metrics {
            all: Group::from_json(&v["all"]).ok_or("`all` is malformed")?,
            by_event_type: groups("by_event_type")?,
            by_skill: groups("by_skill")?,
            skipped_lines: v["skipped_lines"].as_u64().ok_or("no `skipped_lines`")?,
            first_timestamp: v["first_timestamp"].as_str().map(str::to_string),
            last_timestamp: v["last_timestamp"].as_str().map(str::to_string),
            segments,
        })
    }
}

/// SHA-256 of a segment's first line (up to 4 KiB): recognises the segment after a rename.
pub(crate) fn head_of(path: &Path) -> Result<String, MetricsError> {
    let mut buf = Vec::with_capacity(4096);
    betty_core::fsx::open_regular_io(path)
        .and_then(|f| f.take(4096).read_to_end(&mut buf))
        .map_err(read_err(path))?;
    match memchr::memchr(b'\n', &buf) {
        Some(i) => Ok(betty_core::canonical::sha256_hex(&buf[..i])),
        None if buf.len() == 4096 => Ok(betty_core::canonical::sha256_hex(&buf)),
        None => Ok(String::new()),
    }
}

/// Updates (or with `rebuild`, recomputes) the metrics file for the stream at `events_jsonl`.
/// Returns the new file's content.
pub fn update(
    events_jsonl: &Path,
    metrics_path: &Path,
    rebuild: bool,
    mut skipped: impl FnMut(Skipped),
) -> Result<(Value, UpdateReport), MetricsError> {
    let _lock = fsx::LockGuard::exclusive(metrics_path)?;
    let mut report = UpdateReport {
        rebuilt: rebuild,
        ..Default::default()
    };
    let mut metrics = if rebuild || !metrics_path.exists() {
        report.rebuilt = true;
        Metrics::default()
    } else {
        let v = betty_core::source::read_json(metrics_path, &betty_core::limits::Limits::REGISTRY)?;
        Metrics::from_json(&v).map_err(|reason| MetricsError::Unreadable {
            path: metrics_path.to_path_buf(),
            reason,
        })?
    };
    let segs = segments::list(events_jsonl).map_err(read_err(events_jsonl))?;
    let mut current: Vec<(Segment, String, u64)> = Vec::new();
    for seg in segs {
        let len = std::fs::metadata(&seg.path)
            .map_err(read_err(&seg.path))?
            .len();
        let head = head_of(&seg.path)?;
        current.push((seg, head, len));
    }
    // Every segment counted before must still be there, at least as long.
    let intact = metrics.segments.iter().all(|old| {
        old.offset == 0
            || current
                .iter()
                .any(|(_, head, len)| *head == old.head && *len >= old.offset)
    });
    if !intact {
        tracing::info!("a segment counted before is gone or shorter; rebuilding the metrics");
        metrics = Metrics::default();
        report.rebuilt = true;
    }
    let previous = std::mem::take(&mut metrics.segments);
    for (seg, head, _) in &current {
        let name = seg
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (mut offset, mut lines) = previous
            .iter()
            .find(|old| !old.head.is_empty() && old.head == *head)
            .map_or((0, 0), |old| (old.offset, old.lines));
        let mut r = ForwardLines::open(&seg.path, offset, MAX_LINE).map_err(read_err(&seg.path))?;
        while let Some(item) = r.next().map_err(read_err(&seg.path))? {
            let (bytes, at, complete, next) = match item {
                Item::Line {
                    bytes,
                    offset,
                    complete,
                } => (
                    Some(bytes),
                    offset,
                    complete,
                    offset + bytes.len() as u64 + 1,
                ),
                Item::TooLong { offset, len } => (None, offset, true, offset + len + 1),
            };
            if !complete {
                // A torn or still-being-written last line: counted once it is whole.
                break;
            }
            lines += 1;
            let line_no = lines;
            offset = next;
            let Some(bytes) = bytes else {
                metrics.skipped_lines += 1;
                report.new_skipped += 1;
                skipped(Skipped {
                    path: seg.path.clone(),
                    line: Some(line_no),
                    offset: at,
                    reason: format!("the line is over the limit of {MAX_LINE} bytes for one event"),
                });
                continue;
            };
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_row(bytes) {
                Ok(row) => {
                    report.new_events += 1;
                    metrics.all.add(&row);
                    metrics
                        .by_event_type
                        .entry(row.event_type().to_string())
                        .or_default()
                        .add(&row);
                    metrics
                        .by_skill
                        .entry(row.skill().unwrap_or(crate::stats::NONE_KEY).to_string())
                        .or_default()
                        .add(&row);
                    let ts = row.time();
                    if metrics.first_timestamp.as_deref().is_none_or(|f| ts < f) {
                        metrics.first_timestamp = Some(ts.to_string());
                    }
                    if metrics.last_timestamp.as_deref().is_none_or(|l| ts > l) {
                        metrics.last_timestamp = Some(ts.to_string());
                    }
                }
                Err(reason) => {
                    metrics.skipped_lines += 1;
                    report.new_skipped += 1;
                    skipped(Skipped {
                        path: seg.path.clone(),
                        line: Some(line_no),
                        offset: at,
                        reason,
                    });
                }
            }
        }
        // A segment whose first line is not whole yet has no head: read again from 0 later.
        let head = if head.is_empty() {
            head_of(&seg.path)?
        } else {
            head.clone()
        };
        if head.is_empty() {
            offset = 0;
            lines = 0;
        }
        metrics.segments.push(SegmentState {
            name,
            offset,
            lines,
            head,
        });
    }
    let value = metrics.to_json();
    let mut bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
    bytes.push(b'\n');
    fsx::atomic_write(metrics_path, &bytes)?;
    Ok((value, report))
}
