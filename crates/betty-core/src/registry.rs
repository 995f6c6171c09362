//! The registry files `skills.json` and `agents.json`, kept byte-compatible with upstream.
//!
//! Shape: `{registry_version, generated_at, skills|agents: [entry...], content_hash?}`; unknown
//! keys anywhere are kept in their order. Rewriting follows upstream's conventions exactly
//! (Python `json.dump(indent=2)`, ASCII escapes, no trailing newline) and its `content_hash`
//! rule: SHA-256 of `json.dumps(obj, sort_keys=True)` computed after `generated_at` is set and
//! while the object still holds the *previous* hash, if any.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::fsx;
use crate::limits::Limits;
use crate::manifest::{Kind, type_name};
use crate::pyjson::{self, Style};
use crate::source::{Pos, SourceName};

/// Keys the registry adds itself; they are never changes to a skill.
pub const REGISTRY_ADDED_KEYS: &[&str] = &["updated_at", "generated_at", "content_hash"];

/// Why a registry with two entries of one name is refused: upstream's readers take the first
/// (`registry_update.py`, `agent_run.py`), an updater appends, and a checker that reads the
/// other copy would vouch for a skill that never runs as checked (an escalation hidden in the
/// first entry would pass every diff, check and audit).
pub fn duplicate_entry_message(kind: Kind, name: &str, first: usize, second: usize) -> String {
    format!(
        "entries {first} and {second} of `{}` both name `{}`: a registry holds one entry per name, and readers disagree on which copy counts (upstream reads the first), so neither can be checked; remove one of them",
        kind.plural(),
        crate::escape::Escaped(name)
    )
}

/// The first name that repeats, with the indices of its two entries.
pub fn repeated_name<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Option<(&'a str, usize, usize)> {
    let mut seen = std::collections::HashMap::new();
    names
        .into_iter()
        .enumerate()
        .find_map(|(i, n)| seen.insert(n, i).map(|first| (n, first, i)))
}

/// A loaded registry file.
#[derive(Clone, Debug)]
pub struct Registry {
    pub path: PathBuf,
    pub kind: Kind,
    object: Map<String, Value>,
}

impl Registry {
    /// Loads `skills.json` or `agents.json`. A missing file is an error; see [`Registry::load_or_empty`].
    pub fn load(path: &Path, kind: Kind) -> Result<Registry> {
        let name = SourceName::from(path);
        let text = crate::source::read_text(&name, &Limits::REGISTRY)?;
        Registry::parse(path, kind, &text)
    }

    /// Loads the registry, or an empty one if the file does not exist yet.
    pub fn load_or_empty(path: &Path, kind: Kind) -> Result<Registry> {
        if path.exists() {
            Registry::load(path, kind)
        } else {
            Ok(Registry::empty(path, kind))
        }
    }

    /// A new empty registry in upstream's shape.
    pub fn empty(path: &Path, kind: Kind) -> Registry {
        let mut object = Map::new();
        object.insert("registry_version".into(), "1.0.0".into());
        object.insert(
            "generated_at".into(),
            python_isoformat(crate::time::now()).into(),
        );
        object.insert(kind.plural().into(), Value::Array(Vec::new()));
        Registry {
            path: path.to_path_buf(),
            kind,
            object,
        }
    }

    /// Parses registry text (from a file, a history version or a git revision).
    pub fn parse(path: &Path, kind: Kind, text: &str) -> Result<Registry> {
        let name = SourceName::from(path);
        let value = crate::source::parse_json(&name, text)?;
        Registry::from_value(path, kind, value)
    }

    pub fn from_value(path: &Path, kind: Kind, value: Value) -> Result<Registry> {
        let name = SourceName::from(path);
        let found = type_name(&value);
        let Value::Object(object) = value else {
            return Err(Error::invalid(
                &name,
                Pos::START,
                format!("a registry must be a JSON object, found {found}"),
            ));
        };
        match object.get(kind.plural()) {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.get("name") {
                        Some(Value::String(_)) => {}
                        _ => {
                            return Err(Error::invalid(
                                &name,
                                Pos::UNKNOWN,
                                format!(
                                    "entry {i} of `{}` has no string `name` (found {})",
                                    kind.plural(),
                                    item.get("name").map(type_name).unwrap_or("nothing")
                                ),
                            ));
                        }
                    }
                }
                if let Some((n, first, second)) =
                    repeated_name(items.iter().filter_map(|i| i["name"].as_str()))
                {
                    return Err(Error::invalid(
                        &name,
                        Pos::UNKNOWN,
                        duplicate_entry_message(kind, n, first, second),
                    ));
                }
            }
            Some(other) => {
                return Err(Error::invalid(
                    &name,
                    Pos::UNKNOWN,
                    format!(
                        "`{}` must be a list, found {}",
                        kind.plural(),
                        type_name(other)
                    ),
                ));
            }
            None => {
                return Err(Error::invalid(
                    &name,
                    Pos::START,
                    format!("a {kind} registry needs a `{}` list", kind.plural()),
                ));
            }
        }
        Ok(Registry {
            path: path.to_path_buf(),
            kind,
            object,
        })
    }

    /// The entries in file order (order carries no meaning; updates append).
    pub fn entries(&self) -> &[Value] {
        self.object
            .get(self.kind.plural())
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn entries_mut(&mut self) -> &mut Vec<Value> {
        let key = self.kind.plural();
        if !matches!(self.object.get(key), Some(Value::Array(_))) {
            self.object.insert(key.into(), Value::Array(Vec::new()));
        }
        match self.object.get_mut(key) {
            Some(Value::Array(a)) => a,
            _ => unreachable!("just inserted"),
        }
    }

    /// The entry named `name` (the last one, if upstream appended duplicates).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries()
            .iter()
            .rev()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
    }

    /// Names in file order.
    pub fn names(&self) -> Vec<&str> {
        self.entries()
            .iter()
            .filter_map(|e| e.get("name").and_then(Value::as_str))
            .collect()
    }

    /// Adds or replaces the entry with the manifest's name, stamping `updated_at`.
    pub fn upsert(&mut self, manifest: &Value, now: jiff::Timestamp) {
        let mut entry = manifest.clone();
        if let Value::Object(m) = &mut entry {
            m.insert("updated_at".into(), python_isoformat(now).into());
        }
        let name = manifest
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let entries = self.entries_mut();
        match entries
            .iter()
            .position(|e| e.get("name").and_then(Value::as_str) == name.as_deref())
        {
            Some(i) => entries[i] = entry,
            None => entries.push(entry),
        }
    }

    /// Removes the entry named `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let entries = self.entries_mut();
        let before = entries.len();
        entries.retain(|e| e.get("name").and_then(Value::as_str) != Some(name));
        entries.len() != before
    }

    pub fn stored_content_hash(&self) -> Option<&str> {
        self.object.get("content_hash").and_then(Value::as_str)
    }

    /// Upstream's hash of the object as it is now (including any previous `content_hash`).
    pub fn compute_content_hash(&self) -> String {
        let text = pyjson::to_string(&Value::Object(self.object.clone()), Style::HASH);
        crate::canonical::sha256_hex(text.as_bytes())
    }

    /// Sets `generated_at` to `now`, then `content_hash` by upstream's rule.
    pub fn stamp(&mut self, now: jiff::Timestamp) {
        self.object
            .insert("generated_at".into(), python_isoformat(now).into());
        let hash = self.compute_content_hash();
        self.object.insert("content_hash".into(), hash.into());
    }

    /// The file's bytes as upstream writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        pyjson::to_string(&Value::Object(self.object.clone()), Style::REGISTRY).into_bytes()
    }

    /// The whole object (for history snapshots and diffs).
    pub fn as_value(&self) -> Value {
        Value::Object(self.object.clone())
    }

    /// The whole object, without a copy (for readers that only needed the shape checked).
    pub fn into_value(self) -> Value {
        Value::Object(self.object)
    }

    /// Writes the registry atomically under its sidecar lock. Call [`Registry::stamp`] first
    /// when the content changed.
    pub fn save(&self) -> Result<()> {
        let _lock = fsx::LockGuard::exclusive(&self.path)?;
        fsx::atomic_write(&self.path, &self.to_bytes())
    }
}

/// Python's `datetime.now(timezone.utc).isoformat()`: `2025-11-02T14:03:17.571516+00:00`.
pub fn python_isoformat(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// An entry without the keys the registry adds itself, for comparisons.
pub fn without_registry_keys(entry: &Value) -> Value {
    match entry {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !REGISTRY_ADDED_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The canonical digest an approval of a registered entry binds to (registry-added keys left
/// out, so a manifest and its unchanged registry entry have one digest). Used by
/// `policy-enforce`, `approval-queue request --skill` and `registry-diff`'s escalation gate.
pub fn entry_digest(entry: &Value) -> String {
    crate::canonical::digest(&without_registry_keys(entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Registry {
        Registry::from_value(
            Path::new("skills.json"),
            Kind::Skill,
            json!({"registry_version": "1.0.0", "generated_at": "x", "skills": [
                {"name": "a.b", "version": "0.1.0", "zzz": "kept", "updated_at": "t"}
            ], "extra": 1}),
        )
        .unwrap()
    }

    #[test]
    fn upsert_replaces_in_place_and_keeps_unknown_keys() {
        let mut r = sample();
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        r.upsert(
            &json!({"name": "a.b", "version": "0.2.0", "zzz": "kept"}),
            now,
        );
        r.upsert(&json!({"name": "c.d", "version": "1.0.0"}), now);
        assert_eq!(r.names(), vec!["a.b", "c.d"]);
        assert_eq!(
            r.get("a.b").unwrap()["updated_at"],
            "2026-01-01T00:00:00.000000+00:00"
        );
        assert_eq!(r.get("a.b").unwrap()["zzz"], "kept");
        assert!(r.remove("c.d"));
        assert!(!r.remove("c.d"));
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.ends_with("\"extra\": 1\n}"), "{text}");
    }

    #[test]
    fn stamp_hashes_after_setting_generated_at() {
        let mut r = sample();
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        r.stamp(now);
        let stored = r.stored_content_hash().unwrap().to_string();
        // Recompute as upstream would: over the object without the new hash.
        let mut check = r.as_value();
        check.as_object_mut().unwrap().remove("content_hash");
        let text = pyjson::to_string(&check, Style::HASH);
        assert_eq!(stored, crate::canonical::sha256_hex(text.as_bytes()));
    }

    #[test]
    fn a_manifest_registered_from_yaml_keeps_its_unknown_keys_in_order() {
        let doc = crate::source::Document::parse_yaml(
            SourceName::Named("skill.yaml".into()),
            "name: x.y\nversion: 0.1.0\nartifact_metadata:\n  produces: [{type: report}]\nexit_codes: {0: ok}\n".into(),
            &Limits::MANIFEST,
        )
        .unwrap();
        let mut r = sample();
        r.upsert(&doc.value, "2026-01-01T00:00:00Z".parse().unwrap());
        let saved = String::from_utf8(r.to_bytes()).unwrap();
        let back = Registry::parse(Path::new("skills.json"), Kind::Skill, &saved).unwrap();
        let entry = back.get("x.y").unwrap();
        let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "name",
                "version",
                "artifact_metadata",
                "exit_codes",
                "updated_at"
            ]
        );
        assert_eq!(entry["artifact_metadata"]["produces"][0]["type"], "report");
        assert_eq!(without_registry_keys(entry), doc.value);
    }

    #[test]
    fn shape_errors() {
        let p = Path::new("r.json");
        assert!(
            Registry::parse(p, Kind::Skill, "[]")
                .unwrap_err()
                .to_string()
                .contains("found a list")
        );
        assert!(
            Registry::parse(p, Kind::Skill, "{}")
                .unwrap_err()
                .to_string()
                .contains("needs a `skills` list")
        );
        assert!(Registry::parse(p, Kind::Skill, r#"{"skills": [{"name": 1}]}"#).is_err());
        assert!(
            Registry::parse(p, Kind::Skill, "")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }
}
