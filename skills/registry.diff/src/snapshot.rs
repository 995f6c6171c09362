//! What can be compared: a registry as it was somewhere. A spec names one of
//! - a history version (`2025.10.23.004`),
//! - `current`: the live registry file,
//! - a file: a registry (`old/skills.json`) or a history version file,
//! - a git revision (`HEAD~1`, `main`, a hash), read with `git show REV:registry/skills.json`
//!   in the repository holding the registry.
//!
//! Tried in that order; the first that exists wins, so a file named like a branch is the file.

use std::path::{Path, PathBuf};

use betty_core::discover::RegistryDir;
use betty_core::history::{History, VersionId};
use betty_core::limits::Limits;
use betty_core::manifest::Kind;
use betty_core::registry::Registry;
use betty_core::source::{SourceName, into_text, parse_json, read_text};
use serde_json::Value;

use crate::diff::RawRegistry;
use crate::git;

/// A registry at one point, ready to compare.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// How the user named it (`HEAD~1`, `2025.10.23.004`, a path).
    pub label: String,
    /// `version`, `current`, `file`, `git`.
    pub origin: &'static str,
    pub kind: Kind,
    pub body: Body,
    /// Which version it is, when and by whom, for a side that has them: a history version
    /// (its id, time and `changed_by`) or a git revision (its commit, commit time and author).
    pub provenance: Option<Provenance>,
}

/// Which version a compared side is, when it was made and by whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The history version (`2025.10.24.001`) or the full commit hash.
    pub version: String,
    /// RFC 3339.
    pub timestamp: String,
    /// The history version's `changed_by`, or the commit's author (email, else name).
    pub author: String,
}

/// A registry as parsed, or as text that is known to be a well-formed registry (compared
/// entry by entry without parsing the unchanged ones, see [`crate::diff::RawRegistry`]).
#[derive(Clone, Debug)]
pub enum Body {
    Value(Value),
    Text(String),
}

impl Snapshot {
    /// The registry as a value (parsing the text, if that is what is held).
    pub fn to_value(&self) -> Value {
        match &self.body {
            Body::Value(v) => v.clone(),
            Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        }
    }

    /// The registry read entry by entry, when held as text.
    pub fn raw(&self) -> Option<RawRegistry<'_>> {
        match &self.body {
            Body::Text(t) => RawRegistry::parse(t),
            Body::Value(_) => None,
        }
    }

    /// Whether an entry is called `name`.
    pub fn has(&self, name: &str) -> bool {
        match (&self.body, self.raw()) {
            (_, Some(raw)) => raw.has(name),
            (Body::Value(v), None) => crate::diff::entries(v, self.kind)
                .iter()
                .any(|e| e.get("name").and_then(Value::as_str) == Some(name)),
            _ => false,
        }
    }
}

/// Why a spec could not be turned into a registry.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Core(#[from] betty_core::Error),
    #[error(transparent)]
    Git(#[from] git::GitError),
    #[error(
        "`{spec}` is not a history version, a file, or a git revision{why}\nhint: use a version from `registry-diff log`, `current`, a path to a registry file, or a git revision such as `HEAD~1`"
    )]
    Unknown { spec: String, why: String },
}

/// Where specs are looked up.
#[derive(Clone, Debug)]
pub struct Resolver {
    /// The registry folder, when one was found.
    pub registry: Option<RegistryDir>,
    /// Why no registry was found (for messages).
    pub registry_error: Option<String>,
}

impl Resolver {
    fn registry(&self, spec: &str) -> Result<&RegistryDir, SpecError> {
        self.registry.as_ref().ok_or_else(|| SpecError::Unknown {
            spec: spec.to_string(),
            why: format!(
                " here: `{spec}` needs a registry, and {}",
                self.registry_error.as_deref().unwrap_or("none was found")
            ),
        })
    }

    pub fn resolve(&self, spec: &str) -> Result<Snapshot, SpecError> {
        if VersionId::looks_like(spec) {
            let dir = self.registry(spec)?;
            let id = VersionId::parse(spec)?;
            let history = History::new(&dir.history_dir());
            let version = history.load(id)?;
            return Ok(Snapshot {
                label: spec.to_string(),
                origin: "version",
                kind: Kind::Skill,
                provenance: Some(Provenance {
                    version: version.version,
                    timestamp: version.timestamp,
                    author: version.changed_by,
                }),
                body: Body::Value(version.registry),
            });
        }
        if spec == "current" {
            let dir = self.registry(spec)?;
            return read_file(&dir.skills_json(), spec, "current");
        }
        let path = PathBuf::from(spec);
        // Anything but a folder is read as a file: a FIFO or a device is refused by name.
        if path.exists() && !path.is_dir() {
            return read_file(&path, spec, "file");
        }
        if let Some(dir) = &self.registry
            && git::check_revision(spec).is_ok()
            && git::is_revision(&dir.root, spec)
        {
            let bytes = git::show(&dir.root, spec, "skills.json")?;
            let label = format!("{spec}:registry/skills.json");
            let text = into_text(&SourceName::Named(label.as_str().into()), bytes)?;
            let mut snap = parse_registry(text, &label, spec, "git")?;
            let commit = git::commit(&dir.root, spec)?;
            snap.provenance = Some(Provenance {
                version: commit.hash,
                timestamp: commit.date,
                author: commit.author,
            });
            return Ok(snap);
        }
        let why = if path.exists() {
            " (it is a folder; name the registry file inside it)".to_string()
        } else if self.registry.is_none() {
            format!(
                " (no registry to look in: {})",
                self.registry_error.as_deref().unwrap_or("none found")
            )
        } else {
            String::new()
        };
        Err(SpecError::Unknown {
            spec: spec.to_string(),
            why,
        })
    }
}

fn read_file(path: &Path, label: &str, origin: &'static str) -> Result<Snapshot, SpecError> {
    let text = read_text(&SourceName::from(path), &Limits::REGISTRY)?;
    let name = path.display().to_string();
    let mut snap = parse_registry(text, &name, label, origin)?;
    snap.label = label.to_string();
    Ok(snap)
}

/// Parses registry text (or a history version file) named `name` in messages.
pub fn parse_registry(
    text: String,
    name: &str,
    label: &str,
    origin: &'static str,
) -> Result<Snapshot, SpecError> {
    if let Some(kind) = RawRegistry::parse(&text).map(|raw| raw.kind) {
        return Ok(Snapshot {
            label: label.to_string(),
            origin,
            kind,
            body: Body::Text(text),
            provenance: None,
        });
    }
    let mut value = parse_json(&SourceName::Named(name.into()), &text)?;
    // A history version file: compare the registry it holds.
    if value.get("registry_sha256").is_some()
        && let Some(Value::Object(_)) = value.get("registry")
    {
        value = value["registry"].take();
    }
    let kind = if value.get("skills").is_none() && value.get("agents").is_some() {
        Kind::Agent
    } else {
        Kind::Skill
    };
    check_shape(&value, kind, name)?;
    Ok(Snapshot {
        label: label.to_string(),
        origin,
        kind,
        body: Body::Value(value),
        provenance: None,
    })
}

/// The shape checks of `Registry::from_value`, without taking (and copying) the value: a
/// 10,000-skill registry is compared without one extra copy.
fn check_shape(value: &Value, kind: Kind, name: &str) -> Result<(), SpecError> {
    let list = value.get(kind.plural());
    let plain = value.is_object()
        && matches!(list, Some(Value::Array(items))
            if items.iter().all(|i| matches!(i.get("name"), Some(Value::String(_))))
                && betty_core::registry::repeated_name(items.iter().filter_map(|i| i["name"].as_str())).is_none());
    if plain {
        return Ok(());
    }
    // Not a well-formed registry: let the registry model say exactly what is wrong.
    Registry::from_value(Path::new(name), kind, value.clone())?;
    Ok(())
}

/// Whether a spec names a manifest file (`skills/x/skill.yaml`) rather than a registry.
pub fn is_manifest(spec: &str) -> bool {
    let p = Path::new(spec);
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
        && p.is_file()
}

/// `base` with the manifest at `path` registered in it (replacing the entry of that name):
/// what the registry would be if this manifest were registered now.
pub fn with_manifest(base: &Snapshot, path: &str) -> Result<Snapshot, SpecError> {
    let m = betty_core::manifest::Manifest::read(Path::new(path), base.kind)?;
    let mut value = base.to_value();
    let list = value
        .get_mut(base.kind.plural())
        .and_then(Value::as_array_mut)
        .ok_or_else(|| SpecError::Unknown {
            spec: base.label.clone(),
            why: " (it holds no list of entries)".into(),
        })?;
    let slot = list
        .iter()
        .rposition(|e| e.get("name").and_then(Value::as_str) == Some(m.name.as_str()));
    match slot {
        Some(i) => list[i] = m.doc.value.clone(),
        None => list.push(m.doc.value.clone()),
    }
    Ok(Snapshot {
        label: path.to_string(),
        origin: "manifest",
        kind: base.kind,
        body: Body::Value(value),
        provenance: None,
    })
}
