//! Streaming the event stream through a filter, in constant memory.
//!
//! A line is parsed only as far as a query needs ([`Row`]: the seed's scalar fields, borrowed from
//! the line), and only if it can match: a filter on a literal value first looks for that value's
//! bytes in the line (as ripgrep does), which skips most lines of a selective query unparsed.
//! A line that cannot be an event (torn by a killed writer, not JSON, over the size limit, no
//! timestamp) is reported through the `skipped` callback with its file and line, and the scan
//! goes on: one bad line never hides the good ones around it.
//!
//! On a time-ordered segment a `--since` window starts where bisection finds it, and a scan
//! stops once it is past the window (allowing [`SKEW`] for writers racing each other).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use memchr::memmem;

use crate::lines::{ForwardLines, Item, ReverseLines, line_number_at, next_line_start};
use crate::segments::{SKEW, Segment};

/// Longest line read as an event (the writer's limit for one event).
pub const MAX_LINE: usize = betty_core::limits::Limits::EVENT.max_bytes as usize;

/// Outcomes counted as successes in success rates.
pub const SUCCESS_OUTCOMES: &[&str] = &[
    "success",
    "succeeded",
    "ok",
    "passed",
    "pass",
    "approved",
    "allowed",
    "completed",
];

/// Whether an outcome counts as a success.
pub fn is_success(outcome: &str) -> bool {
    SUCCESS_OUTCOMES.contains(&outcome)
}

/// Why a scan could not go on (a file could not be read).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> ScanError + '_ {
    move |source| ScanError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The seed's scalar fields of one event, borrowed from its line where possible.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Row<'a> {
    #[serde(borrow, default)]
    pub event_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub skill_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub outcome: Option<Cow<'a, str>>,
    #[serde(default)]
    pub duration_ms: Option<f64>,
}

impl Row<'_> {
    pub fn event_type(&self) -> &str {
        self.event_type.as_deref().unwrap_or("")
    }
    pub fn skill(&self) -> Option<&str> {
        self.skill_name.as_deref()
    }
    pub fn outcome(&self) -> &str {
        self.outcome.as_deref().unwrap_or("")
    }
    /// The timestamp in the fixed-width form (`2026-11-24T08:14:20.123456Z`).
    pub fn time(&self) -> &str {
        self.timestamp.as_deref().unwrap_or("")
    }
}

/// Parses a line into a [`Row`], or says why it is not an event. The timestamp is normalised to
/// the fixed-width UTC form, so text comparison is time comparison.
pub fn parse_row(line: &[u8]) -> Result<Row<'_>, String> {
    let mut row: Row<'_> = serde_json::from_slice(line).map_err(|e| {
        let msg = e.to_string();
        if e.is_eof() {
            "incomplete JSON (a torn write)".to_string()
        } else if e.is_data() {
            format!(
                "not an event: {}",
                msg.split(" at line ").next().unwrap_or("")
            )
        } else {
            format!(
                "not JSON: {}",
                msg.split(" at line ").next().unwrap_or("invalid JSON")
            )
        }
    })?;
    let Some(ts) = row.timestamp.as_deref() else {
        return Err("not an event: no `timestamp`".into());
    };
    if row.event_type.is_none() {
        return Err("not an event: no `event_type`".into());
    }
    if !is_fixed_width_utc(ts) {
        let parsed = betty_core::time::parse_timestamp(ts)
            .map_err(|_| format!("not an event: `timestamp` `{ts}` is not a time"))?;
        row.timestamp = Some(Cow::Owned(betty_core::time::format(parsed)));
    }
    Ok(row)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the form Betty writes.
fn is_fixed_width_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 27
        && b[26] == b'Z'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[4] == b'-'
        && b[7] == b'-'
        && b[13] == b':'
        && b[16] == b':'
}

/// A glob (`*` any run, `?` one character): `betty_core::permission::glob_match`, which is
/// allocation-free on ASCII.
pub fn glob(pattern: &str, text: &str) -> bool {
    betty_core::permission::glob_match(pattern, text)
}

/// Which events a query wants. Values within one field are alternatives; fields combine with
/// "and". Values may be globs (`policy.*`).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub event_types: Vec<String>,
    pub skills: Vec<String>,
    pub outcomes: Vec<String>,
    pub users: Vec<String>,
    pub sessions: Vec<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// A [`Filter`] made ready for the hot loop.
pub struct Compiled {
    filter: Filter,
    since: Option<String>,
    until: Option<String>,
    /// Per filtered field, the literal byte strings one of which a matching line must contain.
    prefilter: Vec<Vec<memmem::Finder<'static>>>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("filter", &self.filter)
            .finish()
    }
}

impl Filter {
    pub fn compile(&self) -> Compiled {
        let mut prefilter = Vec::new();
        for values in [
            &self.event_types,
            &self.skills,
            &self.outcomes,
            &self.users,
            &self.sessions,
        ] {
            if values.is_empty() {
                continue;
            }
            let needles: Option<Vec<_>> = values.iter().map(|v| needle(v)).collect();
            if let Some(needles) = needles {
                prefilter.push(
                    needles
                        .into_iter()
                        .map(|n| memmem::Finder::new(n.as_bytes()).into_owned())
                        .collect(),
                );
            }
        }
        Compiled {
            filter: self.clone(),
            since: self.since.map(betty_core::time::format),
            until: self.until.map(betty_core::time::format),
            prefilter,
        }
    }
}

/// The bytes any line carrying this value must contain: the value's longest literal run,
/// quoted at the ends that are not wildcards. None when that cannot be known cheaply (escapes).
fn needle(value: &str) -> Option<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-@:+ ".contains(c);
    if !value.chars().all(|c| plain(c) || c == '*' || c == '?') {
        return None;
    }
    let runs: Vec<&str> = value.split(['*', '?']).collect();
    let (i, best) = runs.iter().enumerate().max_by_key(|(_, r)| r.len())?;
    if best.len() < 2 {
        return None;
    }
    let mut n = String::new();
    if i == 0 {
        n.push('"');
    }
    n.push_str(best);
    if i == runs.len() - 1 {
        n.push('"');
    }
    Some(n)
}

impl Compiled {
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Whether the line may match (false means it certainly does not).
    pub fn may_match(&self, line: &[u8]) -> bool {
        self.prefilter
            .iter()
            .all(|alts| alts.iter().any(|f| f.find(line).is_some()))
    }

    pub fn matches(&self, row: &Row<'_>) -> bool {
        let f = &self.filter;
        let any = |pats: &[String], v: Option<&str>| {
            pats.is_empty() || v.is_some_and(|v| pats.iter().any(|p| glob(p, v)))
        };
        let ts = row.time();
        self.since.as_deref().is_none_or(|s| ts >= s)
            && self.until.as_deref().is_none_or(|u| ts <= u)
            && any(&f.event_types, row.event_type.as_deref())
            && any(&f.skills, row.skill_name.as_deref())
            && any(&f.outcomes, row.outcome.as_deref())
            && any(&f.users, row.user.as_deref())
            && any(&f.sessions, row.session_id.as_deref())
    }
}

/// Which way a scan walks the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

/// A line that was not read as an event.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub path: PathBuf,
    /// The 1-based line number; `None` when finding it would mean counting lines from the
    /// start of a large file again (after [`LINE_LOOKUPS`] lookups in one scan).
    pub line: Option<u64>,
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{line}: skipped line (byte {}): {}",
                self.path.display(),
                self.offset,
                self.reason
            ),
            None => write!(
                f,
                "{}: skipped line at byte {}: {}",
                self.path.display(),
                self.offset,
                self.reason
            ),
        }
    }
}

/// How many skipped lines of one scan get their line number looked up when the scan does not
/// know it (walking backwards, or after bisection): each lookup counts lines from the start.
pub const LINE_LOOKUPS: u32 = 20;

/// One matching event handed to the visitor.
#[derive(Debug)]
pub struct Hit<'l, 'r> {
    pub line: &'l [u8],
    pub row: &'r Row<'l>,
}

/// What a scan saw.
#[derive(Clone, Debug, Default)]
pub struct ScanSummary {
    pub lines: u64,
    pub matched: u64,
    pub skipped: u64,
}

/// Streams matching events of `segments` to `visit` in the given order; bad lines go to
/// `skipped`. `visit` may stop the scan with `ControlFlow::Break`.
pub fn scan(
    segments: &[Segment],
    filter: &Compiled,
    order: Order,
    mut visit: impl FnMut(Hit<'_, '_>) -> ControlFlow<()>,
    mut skipped: impl FnMut(Skipped),
) -> Result<ScanSummary, ScanError> {
    let mut summary = ScanSummary::default();
    let mut lookups = 0u32;
    let since_bound = filter
        .filter
        .since
        .map(|t| betty_core::time::format(betty_core::time::ago(t, SKEW)));
    let until_bound = filter.filter.until.map(|t| {
        betty_core::time::format(
            t.checked_add(jiff::SignedDuration::try_from(SKEW).unwrap_or_default())
                .unwrap_or(Timestamp::MAX),
        )
    });
    let ordered_segments: Box<dyn Iterator<Item = &Segment>> = match order {
        Order::OldestFirst => Box::new(segments.iter()),
        Order::NewestFirst => Box::new(segments.iter().rev()),
    };
    for seg in ordered_segments {
        let path = seg.path.as_path();
        // Opened, not stat'ed by name: a FIFO or a link in the registry is an error, even empty.
        let len = match betty_core::fsx::open_regular_io(path).and_then(|f| f.metadata()) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(read_err(path)(e)),
        };
        let mut report = |offset: u64, known_line: Option<u64>, reason: String| {
            let line = known_line.or_else(|| {
                (lookups < LINE_LOOKUPS).then(|| {
                    lookups += 1;
                    line_number_at(path, offset).ok()
                })?
            });
            skipped(Skipped {
                path: path.to_path_buf(),
                line,
                offset,
                reason,
            });
        };
        let mut flow = ControlFlow::Continue(());
        match order {
            Order::OldestFirst => {
                let start = match (&since_bound, seg.ordered) {
                    (Some(b), true) => bisect(path, len, b).map_err(read_err(path))?,
                    _ => 0,
                };
                let mut line_no = (start == 0).then_some(0u64);
                let mut r = ForwardLines::open(path, start, MAX_LINE).map_err(read_err(path))?;
                while let Some(item) = r.next().map_err(read_err(path))? {
                    line_no = line_no.map(|n| n + 1);
                    let step = consider(
                        item,
                        filter,
                        &mut summary,
                        &mut visit,
                        &mut |o, why| report(o, line_no, why),
                        seg.ordered && until_bound.is_some(),
                    );
                    if let Some(ts) = step.time
                        && seg.ordered
                        && until_bound.as_deref().is_some_and(|u| ts.as_str() > u)
                    {
                        break;
                    }
                    if step.flow.is_break() {
                        flow = step.flow;
                        break;
                    }
                }
            }
            Order::NewestFirst => {
                let end = match (&until_bound, seg.ordered) {
                    (Some(b), true) => bisect_after(path, len, b).map_err(read_err(path))?,
                    _ => len,
                };
                let mut r = ReverseLines::open(path, end, MAX_LINE).map_err(read_err(path))?;
                while let Some(item) = r.next().map_err(read_err(path))? {
                    let step = consider(
                        item,
                        filter,
                        &mut summary,
                        &mut visit,
                        &mut |o, why| report(o, None, why),
                        seg.ordered && since_bound.is_some(),
                    );
                    if let Some(ts) = step.time
                        && seg.ordered
                        && since_bound.as_deref().is_some_and(|s| ts.as_str() < s)
                    {
                        break;
                    }
                    if step.flow.is_break() {
                        flow = step.flow;
                        break;
                    }
                }
            }
        }
        if flow.is_break() {
            break;
        }
    }
    Ok(summary)
}

/// [`scan`], with matches handed to `visit` in `timestamp` order (ties in the stream's order,
/// the newest-appended first under [`Order::NewestFirst`]), at most `limit` of them.
///
/// When every segment is time-ordered, that is the stream's own order and the scan streams.
/// A segment marked `.unordered` (an import or a caller-given timestamp appended older events)
/// holds events in any order, so the matches are collected and sorted first: memory grows with
/// the matches, or with `limit` when one is given (only the `limit` best are kept).
pub fn scan_in_time_order(
    segments: &[Segment],
    filter: &Compiled,
    order: Order,
    limit: Option<u64>,
    mut visit: impl FnMut(Hit<'_, '_>) -> ControlFlow<()>,
    skipped: impl FnMut(Skipped),
) -> Result<ScanSummary, ScanError> {
    let limit = limit.unwrap_or(u64::MAX);
    if limit == 0 {
        return Ok(ScanSummary::default());
    }
    if segments.iter().all(|s| s.ordered) {
        let mut shown = 0u64;
        return scan(
            segments,
            filter,
            order,
            |hit| {
                let flow = visit(hit);
                shown += 1;
                if flow.is_break() || shown >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
            skipped,
        );
    }
    // (timestamp, position in the stream, line); best first once sorted.
    let mut kept: Vec<(String, u64, Vec<u8>)> = Vec::new();
    let keep = usize::try_from(limit).unwrap_or(usize::MAX);
    let best_first = |a: &(String, u64, Vec<u8>), b: &(String, u64, Vec<u8>)| {
        let by_time = (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1));
        match order {
            Order::OldestFirst => by_time,
            Order::NewestFirst => by_time.reverse(),
        }
    };
    let mut position = 0u64;
    let summary = scan(
        segments,
        filter,
        Order::OldestFirst,
        |hit| {
            kept.push((hit.row.time().to_string(), position, hit.line.to_vec()));
            position += 1;
            if kept.len() >= keep.saturating_mul(2).max(1024) {
                kept.sort_by(best_first);
                kept.truncate(keep);
            }
            ControlFlow::Continue(())
        },
        skipped,
    )?;
    kept.sort_by(best_first);
    kept.truncate(keep);
    for (_, _, line) in &kept {
        // Parsed once already: it parses again.
        let Ok(row) = parse_row(line) else { continue };
        if visit(Hit { line, row: &row }).is_break() {
            break;
        }
    }
    Ok(summary)
}

struct Step {
    flow: ControlFlow<()>,
    /// The line's timestamp, when it was parsed.
    time: Option<String>,
}

fn consider(
    item: Item<'_>,
    filter: &Compiled,
    summary: &mut ScanSummary,
    visit: &mut impl FnMut(Hit<'_, '_>) -> ControlFlow<()>,
    report: &mut impl FnMut(u64, String),
    want_time: bool,
) -> Step {
    let cont = Step {
        flow: ControlFlow::Continue(()),
        time: None,
    };
    summary.lines += 1;
    let (bytes, offset, complete) = match item {
        Item::Line {
            bytes,
            offset,
            complete,
        } => (bytes, offset, complete),
        Item::TooLong { offset, len } => {
            summary.skipped += 1;
            report(
                offset,
                format!(
                    "the line is {len} bytes, over the limit of {MAX_LINE} bytes for one event"
                ),
            );
            return cont;
        }
    };
    let trimmed = trim(bytes);
    if trimmed.is_empty() {
        summary.lines -= 1;
        return cont;
    }
    // A line that cannot match is not parsed, but one that is plainly not a JSON object is
    // still reported.
    if complete && !filter.may_match(trimmed) {
        if trimmed[0] != b'{' || trimmed[trimmed.len() - 1] != b'}' {
            summary.skipped += 1;
            report(offset, "not JSON: not a `{...}` object".into());
            return cont;
        }
        return Step {
            flow: ControlFlow::Continue(()),
            time: if want_time {
                quick_time(trimmed).map(str::to_string)
            } else {
                None
            },
        };
    }
    match parse_row(trimmed) {
        Ok(row) => {
            let time = want_time.then(|| row.time().to_string());
            if filter.matches(&row) {
                summary.matched += 1;
                let flow = visit(Hit {
                    line: trimmed,
                    row: &row,
                });
                return Step { flow, time };
            }
            Step {
                flow: ControlFlow::Continue(()),
                time,
            }
        }
        Err(why) => {
            summary.skipped += 1;
            let why = if complete {
                why
            } else {
                format!("torn last line (no newline: a writer was interrupted): {why}")
            };
            report(offset, why);
            cont
        }
    }
}

/// The timestamp of a line Betty wrote, found without parsing the line.
fn quick_time(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"timestamp\":\"";
    let i = memmem::find(line, KEY)? + KEY.len();
    let ts = std::str::from_utf8(line.get(i..i + 27)?).ok()?;
    is_fixed_width_utc(ts).then_some(ts)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// The timestamp of the first parsable line at or after `offset`, before `limit`, and where
/// that line starts.
fn time_at(file: &mut File, offset: u64, limit: u64) -> std::io::Result<Option<(u64, String)>> {
    let mut pos = next_line_start(file, offset)?;
    file.seek(SeekFrom::Start(pos))?;
    let mut r = BufReader::with_capacity(16 * 1024, file);
    let mut line = Vec::new();
    // A few unreadable lines in a row are skipped; then give up and let the scan decide.
    for _ in 0..16 {
        if pos >= limit {
            return Ok(None);
        }
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        if let Ok(row) = parse_row(trim(&line)) {
            return Ok(Some((pos, row.time().to_string())));
        }
        pos += n as u64;
    }
    Ok(None)
}

/// A line start such that every line before it is older than `bound` (in a time-ordered file).
pub fn bisect(path: &Path, len: u64, bound: &str) -> std::io::Result<u64> {
    let mut file = betty_core::fsx::open_regular_io(path)?;
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > 64 * 1024 {
        let mid = lo + (hi - lo) / 2;
        match time_at(&mut file, mid, hi)? {
            Some((start, ts)) if ts.as_str() < bound => lo = start,
            Some(_) => hi = mid,
            None => hi = mid,
        }
    }
    Ok(lo)
}

/// A line start (or the file length) such that every line from it on is newer than `bound`.
pub fn bisect_after(path: &Path, len: u64, bound: &str) -> std::io::Result<u64> {
    let mut file = betty_core::fsx::open_regular_io(path)?;
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > 64 * 1024 {
        let mid = lo + (hi - lo) / 2;
        match time_at(&mut file, mid, hi)? {
            Some((start, ts)) if ts.as_str() > bound => hi = start,
            Some((start, _)) => lo = start.max(mid),
            None => lo = mid,
        }
    }
    next_line_start(&mut file, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_needles() {
        assert!(glob("policy.*", "policy.violated"));
        assert!(!glob("policy.*", "skill.created"));
        assert!(glob("*.created", "skill.created"));
        assert!(glob("skill.create?", "skill.created"));
        assert_eq!(needle("policy.*").as_deref(), Some("\"policy."));
        assert_eq!(
            needle("skill.created").as_deref(),
            Some("\"skill.created\"")
        );
        assert_eq!(needle("*.created").as_deref(), Some(".created\""));
        assert_eq!(needle("a\"b"), None);
    }

    #[test]
    fn rows() {
        let r = parse_row(br#"{"event_type":"a.b","timestamp":"2025-10-23T18:08:55.963188+00:00","duration_ms":3}"#).unwrap();
        assert_eq!(r.time(), "2025-10-23T18:08:55.963188Z");
        assert!(
            parse_row(b"{\"event_type\":\"a.b\"")
                .unwrap_err()
                .contains("torn")
        );
        assert!(parse_row(b"hello").unwrap_err().contains("not JSON"));
        assert!(
            parse_row(b"{\"event_type\":\"a.b\"}")
                .unwrap_err()
                .contains("timestamp")
        );
        assert!(
            parse_row(b"{\"event_type\":5,\"timestamp\":\"x\"}")
                .unwrap_err()
                .contains("not an event")
        );
    }
}
