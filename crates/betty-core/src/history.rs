//! Registry history: every version of `skills.json` as `registry/history/<YYYY.MM.DD.NNN>.json`.
//!
//! A version is the seed's record `{version, timestamp, changes}` plus who made it, where it came
//! from (`source`: a `record`, a `rollback`, a git commit) and the whole registry, so the file can
//! be rebuilt byte for byte (`registry_sha256` checks it; `registry_text` keeps the exact text
//! when re-rendering the JSON would not give the same bytes). History is append-only: versions
//! are only ever added, under one exclusive lock ([`History::lock`]) so concurrent writers get
//! distinct, ordered ids, and each file is written atomically. What counts as a change is the
//! caller's business (registry-diff computes it); this module keeps the record format and ids.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::fsx::{self, LockGuard};
use crate::limits::Limits;
use crate::manifest::Kind;
use crate::pyjson::{self, Style};
use crate::registry::Registry;
use crate::source::SourceName;

/// Version of the history record format written into every version.
pub const HISTORY_SCHEMA_VERSION: u32 = 1;
/// Most versions on one UTC day (`NNN` has three digits).
pub const MAX_VERSIONS_PER_DAY: u16 = 999;

/// `YYYY.MM.DD.NNN`: the UTC date and that day's sequence number from 001. Ids sort in time
/// order; a parsed id is digits and dots only, so it is safe as a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionId {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub seq: u16,
}

impl VersionId {
    /// Parses `2025.10.23.001`.
    pub fn parse(text: &str) -> Result<VersionId> {
        let bad = |reason: &str| Error::InvalidArgument {
            what: "registry version",
            value: text.chars().take(64).collect(),
            reason: format!("{reason}; a version looks like `2025.10.23.001` (YYYY.MM.DD.NNN)"),
        };
        let parts: Vec<&str> = text.split('.').collect();
        let widths = [4, 2, 2, 3];
        if parts.len() != 4
            || parts
                .iter()
                .zip(widths)
                .any(|(p, w)| p.len() != w || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad("not of the form YYYY.MM.DD.NNN"));
        }
        let num = |s: &str| s.parse::<u16>().unwrap_or(0);
        let (year, month, day, seq) = (
            num(parts[0]),
            num(parts[1]) as u8,
            num(parts[2]) as u8,
            num(parts[3]),
        );
        if jiff::civil::Date::new(year as i16, month as i8, day as i8).is_err() {
            return Err(bad("not a calendar date"));
        }
        if seq == 0 {
            return Err(bad("the sequence number starts at 001"));
        }
        Ok(VersionId {
            year,
            month,
            day,
            seq,
        })
    }

    /// Whether `text` has the shape of a version id (for telling ids from paths and revisions).
    pub fn looks_like(text: &str) -> bool {
        VersionId::parse(text).is_ok()
    }

    /// The id after `latest` for something made at `at`: that UTC day's next number, never
    /// earlier than `latest` (clocks and git commit dates can go backwards; ids never do).
    pub fn next(latest: Option<VersionId>, at: jiff::Timestamp) -> Result<VersionId> {
        let date = jiff::tz::TimeZone::UTC.to_datetime(at).date();
        let mut id = VersionId {
            year: date.year() as u16,
            month: date.month() as u8,
            day: date.day() as u8,
            seq: 1,
        };
        if let Some(l) = latest {
            let (ld, d) = ((l.year, l.month, l.day), (id.year, id.month, id.day));
            if ld >= d {
                id = VersionId {
                    seq: l.seq.saturating_add(1),
                    ..l
                };
            }
        }
        if id.seq > MAX_VERSIONS_PER_DAY {
            return Err(Error::InvalidArgument {
                what: "registry version",
                value: id.to_string(),
                reason: format!(
                    "more than {MAX_VERSIONS_PER_DAY} versions on {:04}-{:02}-{:02}",
                    id.year, id.month, id.day
                ),
            });
        }
        Ok(id)
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}.{:02}.{:02}.{:03}",
            self.year, self.month, self.day, self.seq
        )
    }
}

impl FromStr for VersionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<VersionId> {
        VersionId::parse(s)
    }
}

/// What happened to a skill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Added,
    Removed,
    Changed,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Added => "added",
            ChangeAction::Removed => "removed",
            ChangeAction::Changed => "changed",
        }
    }
}

/// One entry of a version's `changes`: the seed's `{skill, action, field, old_value,
/// new_value, changed_by}`; `field` is a path (`entrypoints[0].permissions`) for `changed`
/// and null for a whole skill added or removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub skill: String,
    pub action: ChangeAction,
    pub field: Option<String>,
    pub old_value: Value,
    pub new_value: Value,
    pub changed_by: String,
    /// Anything else a writer added (kept on read).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One stored version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryVersion {
    pub schema_version: u32,
    pub version: String,
    pub timestamp: String,
    pub changed_by: String,
    pub changes: Vec<Change>,
    /// Where the version came from: `{"kind": "record" | "rollback" | "import-git", ...}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub source: Map<String, Value>,
    pub registry: Value,
    pub registry_sha256: String,
    /// The exact text, kept only when rendering `registry` would not give the same bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_text: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HistoryVersion {
    pub fn id(&self) -> Result<VersionId> {
        VersionId::parse(&self.version)
    }

    /// The registry file's bytes at this version, checked against `registry_sha256`.
    pub fn registry_bytes(&self, file: &Path) -> Result<Vec<u8>> {
        let bytes = match &self.registry_text {
            Some(t) => t.clone().into_bytes(),
            None => pyjson::to_string(&self.registry, Style::REGISTRY).into_bytes(),
        };
        if crate::canonical::sha256_hex(&bytes) != self.registry_sha256 {
            return Err(Error::Corrupt {
                input: SourceName::from(file),
                location: "`registry`".into(),
                message: format!(
                    "the stored registry does not match `registry_sha256` {} (the version was edited)",
                    self.registry_sha256
                ),
            });
        }
        Ok(bytes)
    }

    /// The registry at this version.
    pub fn registry(&self, file: &Path, kind: Kind) -> Result<Registry> {
        Registry::from_value(file, kind, self.registry.clone())
    }
}

/// What a writer knows about a new version; the id is assigned under the lock.
#[derive(Clone, Debug)]
pub struct NewVersion {
    pub timestamp: jiff::Timestamp,
    pub changed_by: String,
    pub changes: Vec<Change>,
    pub source: Map<String, Value>,
    /// The registry file's exact bytes.
    pub registry_bytes: Vec<u8>,
    /// The same bytes, parsed.
    pub registry: Value,
}

/// Proof that the history lock is held; writes need one.
#[derive(Debug)]
pub struct HistoryLock {
    _guard: LockGuard,
}

/// The `history/` folder of a registry.
#[derive(Clone, Debug)]
pub struct History {
    pub dir: PathBuf,
}

impl History {
    pub fn new(dir: &Path) -> History {
        History {
            dir: dir.to_path_buf(),
        }
    }

    /// Takes the exclusive history lock (`history.lock` beside the folder). Hold it from
    /// reading the latest version to writing the next one.
    pub fn lock(&self) -> Result<HistoryLock> {
        Ok(HistoryLock {
            _guard: LockGuard::exclusive(&self.dir)?,
        })
    }

    /// The file of one version.
    pub fn path_of(&self, id: VersionId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every version id, oldest first. A missing folder is an empty history; files that are
    /// not `<version>.json` (temporary files, notes) are ignored.
    pub fn list(&self) -> Result<Vec<VersionId>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::read(&self.dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::read(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".json")
                && let Ok(id) = VersionId::parse(stem)
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Loads one version; a file that does not read as a version is reported as corrupt.
    pub fn load(&self, id: VersionId) -> Result<HistoryVersion> {
        let path = self.path_of(id);
        if !path.exists() {
            return Err(Error::InvalidArgument {
                what: "registry version",
                value: id.to_string(),
                reason: format!(
                    "there is no such version in `{}`; `registry-diff log` lists them",
                    self.dir.display()
                ),
            });
        }
        let name = SourceName::from(path.as_path());
        let text = crate::source::read_text(&name, &Limits::REGISTRY)?;
        let value = crate::source::parse_json(&name, &text)?;
        let version: HistoryVersion =
            serde_json::from_value(value).map_err(|e| Error::Corrupt {
                input: name.clone(),
                location: "the top level".into(),
                message: format!("not a history version ({e})"),
            })?;
        if version.schema_version > HISTORY_SCHEMA_VERSION {
            return Err(Error::Corrupt {
                input: name,
                location: "`schema_version`".into(),
                message: format!(
                    "format {} is newer than this tool reads ({HISTORY_SCHEMA_VERSION}); upgrade",
                    version.schema_version
                ),
            });
        }
        if version.version != id.to_string() {
            return Err(Error::Corrupt {
                input: name,
                location: "`version`".into(),
                message: format!(
                    "says `{}` but the file is named for `{id}`",
                    version.version
                ),
            });
        }
        // Diffs read `registry`, a rollback restores `registry_text`: the two must be one
        // registry, or an edited version could show one thing and restore another.
        if let Some(text) = &version.registry_text {
            let same = crate::source::json_from_str(text).is_ok_and(|v| v == version.registry);
            if !same {
                return Err(Error::Corrupt {
                    input: name,
                    location: "`registry_text`".into(),
                    message: "is not the same registry as `registry` (the version was edited)"
                        .into(),
                });
            }
        }
        Ok(version)
    }

    /// The newest version, if any.
    pub fn latest(&self) -> Result<Option<HistoryVersion>> {
        match self.list()?.last() {
            Some(id) => self.load(*id).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the next version (id from [`VersionId::next`]) atomically. The caller holds the
    /// lock, so no other writer can take the same id or interleave.
    pub fn append(&self, _lock: &HistoryLock, new: NewVersion) -> Result<HistoryVersion> {
        let latest = self.list()?.last().copied();
        let id = VersionId::next(latest, new.timestamp)?;
        let rendered = pyjson::to_string(&new.registry, Style::REGISTRY);
        let registry_text = (rendered.as_bytes() != new.registry_bytes.as_slice()).then(|| {
            String::from_utf8(new.registry_bytes.clone())
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        });
        let version = HistoryVersion {
            schema_version: HISTORY_SCHEMA_VERSION,
            version: id.to_string(),
            timestamp: crate::time::format(new.timestamp),
            changed_by: new.changed_by,
            changes: new.changes,
            source: new.source,
            registry: new.registry,
            registry_sha256: crate::canonical::sha256_hex(&new.registry_bytes),
            registry_text,
            extra: Map::new(),
        };
        let path = self.path_of(id);
        let mut bytes = serde_json::to_vec_pretty(&version)
            .map_err(|e| Error::write(&path, std::io::Error::other(e)))?;
        bytes.push(b'\n');
        fsx::atomic_write(&path, &bytes)?;
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ids_parse_print_and_sort() {
        let id = VersionId::parse("2025.10.23.007").unwrap();
        assert_eq!(id.to_string(), "2025.10.23.007");
        assert!(id < VersionId::parse("2025.10.23.010").unwrap());
        assert!(id < VersionId::parse("2025.11.01.001").unwrap());
        for bad in [
            "",
            "2025.10.23",
            "2025.10.23.1",
            "2025.13.01.001",
            "2025.02.30.001",
            "2025.10.23.000",
            "../../etc.001",
            "2025.10.23.001.json",
            "２０２５.10.23.001",
        ] {
            assert!(VersionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_ids_count_per_day_and_never_go_back() {
        let first = VersionId::next(None, ts("2025-10-23T02:00:00Z")).unwrap();
        assert_eq!(first.to_string(), "2025.10.23.001");
        let second = VersionId::next(Some(first), ts("2025-10-23T05:00:00Z")).unwrap();
        assert_eq!(second.to_string(), "2025.10.23.002");
        let next_day = VersionId::next(Some(second), ts("2025-10-24T00:00:00Z")).unwrap();
        assert_eq!(next_day.to_string(), "2025.10.24.001");
        // A commit dated earlier than the latest version still gets a later id.
        let back = VersionId::next(Some(next_day), ts("2025-10-01T00:00:00Z")).unwrap();
        assert_eq!(back.to_string(), "2025.10.24.002");
        let full = VersionId::parse("2025.10.24.999").unwrap();
        assert!(VersionId::next(Some(full), ts("2025-10-24T01:00:00Z")).is_err());
    }

    fn new_version(text: &str, at: &str) -> NewVersion {
        NewVersion {
            timestamp: ts(at),
            changed_by: "alice@example.com".into(),
            changes: vec![Change {
                skill: "a.b".into(),
                action: ChangeAction::Added,
                field: None,
                old_value: Value::Null,
                new_value: json!({"name": "a.b"}),
                changed_by: "alice@example.com".into(),
                extra: Map::new(),
            }],
            source: Map::from_iter([("kind".to_string(), json!("record"))]),
            registry_bytes: text.as_bytes().to_vec(),
            registry: serde_json::from_str(text).unwrap(),
        }
    }

    #[test]
    fn versions_round_trip_byte_for_byte_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(&dir.path().join("history"));
        assert!(h.list().unwrap().is_empty());
        assert!(h.latest().unwrap().is_none());
        let lock = h.lock().unwrap();
        // Written like upstream (renders identically) and hand-formatted (kept as text).
        let upstream = "{\n  \"registry_version\": \"1.0.0\",\n  \"generated_at\": \"2025-10-23T00:00:00.000000+00:00\",\n  \"skills\": [\n    {\n      \"name\": \"a.b\",\n      \"version\": \"0.1.0\",\n      \"description\": \"d\"\n    }\n  ]\n}";
        let odd = "{\"registry_version\":\"1.0.0\",\"generated_at\":\"2025-10-23T00:00:00Z\",\"skills\":[{\"name\":\"a.b\",\"version\":\"0.1.0\",\"description\":\"d\",\"n\":1.50}]}\n";
        let v1 = h
            .append(&lock, new_version(upstream, "2025-10-23T02:00:00Z"))
            .unwrap();
        let v2 = h
            .append(&lock, new_version(odd, "2025-10-23T03:00:00Z"))
            .unwrap();
        drop(lock);
        assert!(v1.registry_text.is_none());
        assert!(v2.registry_text.is_some());
        let ids = h.list().unwrap();
        assert_eq!(
            ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["2025.10.23.001", "2025.10.23.002"]
        );
        let file = Path::new("skills.json");
        assert_eq!(
            h.load(ids[0]).unwrap().registry_bytes(file).unwrap(),
            upstream.as_bytes()
        );
        assert_eq!(
            h.latest().unwrap().unwrap().registry_bytes(file).unwrap(),
            odd.as_bytes()
        );
        for id in ids {
            let raw: Value =
                serde_json::from_slice(&std::fs::read(h.path_of(id)).unwrap()).unwrap();
            crate::schema::validate(crate::schema::SchemaId::HistoryVersion, &raw).unwrap();
        }
    }

    #[test]
    fn edited_or_misnamed_versions_are_corrupt_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(&dir.path().join("history"));
        let lock = h.lock().unwrap();
        let text = "{\n  \"skills\": []\n}";
        let v = h
            .append(&lock, new_version(text, "2025-10-23T02:00:00Z"))
            .unwrap();
        let id = v.id().unwrap();
        let path = h.path_of(id);
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"skills\": []", "\"skills\": [{\"name\": \"x.y\"}]");
        std::fs::write(&path, edited).unwrap();
        let err = h
            .load(id)
            .unwrap()
            .registry_bytes(Path::new("s"))
            .unwrap_err();
        assert!(err.to_string().contains("registry_sha256"), "{err}");
        let other = VersionId::parse("2025.10.23.002").unwrap();
        std::fs::copy(&path, h.path_of(other)).unwrap();
        assert!(h.load(other).unwrap_err().to_string().contains("named for"));
        std::fs::write(h.path_of(other), "{ not json").unwrap();
        assert!(h.load(other).unwrap_err().to_string().contains(":1:"));
        let missing = VersionId::parse("2030.01.01.001").unwrap();
        assert!(
            h.load(missing)
                .unwrap_err()
                .to_string()
                .contains("no such version")
        );
    }

    #[test]
    fn concurrent_writers_get_distinct_ordered_ids() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(&dir.path().join("history"));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let h = &h;
                s.spawn(move || {
                    for _ in 0..5 {
                        let lock = h.lock().unwrap();
                        h.append(
                            &lock,
                            new_version("{\"skills\": []}", "2025-10-23T02:00:00Z"),
                        )
                        .unwrap();
                    }
                });
            }
        });
        let ids = h.list().unwrap();
        assert_eq!(ids.len(), 40);
        assert_eq!(ids[39].to_string(), "2025.10.23.040");
    }
}
