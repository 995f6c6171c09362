//! Skill and agent manifests as they really are on disk.
//!
//! A [`Manifest`] keeps the whole document (unknown keys included, in their order) and offers
//! typed views over the parts governance needs: name, version, status, permissions (top level
//! and `entrypoints[].permissions`), inputs and outputs in both upstream forms, dependencies.
//! [`select`] resolves field paths such as `entrypoints[*].permissions` to values and JSON
//! Pointers, so every finding can be traced to `file:line:column`.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::limits::{Limits, MAX_NAME_LEN};
use crate::permission::{Permission, PermissionError};
use crate::source::{Document, Pos, SourceName, escape_pointer};

/// What a manifest describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Skill,
    Agent,
}

impl Kind {
    /// The registry key holding entries of this kind (`skills`, `agents`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Skill => "skills",
            Kind::Agent => "agents",
        }
    }
    /// The manifest file name (`skill.yaml`, `agent.yaml`).
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Skill => "skill.yaml",
            Kind::Agent => "agent.yaml",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Skill => "skill",
            Kind::Agent => "agent",
        })
    }
}

/// A loaded manifest. `name` is checked to be a string; everything else is as written.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub kind: Kind,
    pub doc: Document,
    pub name: String,
}

/// One permission as written, where it was written, and what it means.
#[derive(Clone, Debug)]
pub struct PermissionUse {
    pub text: String,
    /// JSON Pointer of the value (`/entrypoints/0/permissions/1`).
    pub pointer: String,
    pub parsed: Result<Permission, PermissionError>,
}

/// One input or output, normalised from either upstream form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub kind: Option<String>,
    pub required: bool,
    pub description: Option<String>,
    pub has_default: bool,
    pub pointer: String,
}

impl Manifest {
    /// Reads `path` (or stdin for `-`) as a manifest of `kind`.
    pub fn read(path: &Path, kind: Kind) -> Result<Manifest> {
        let doc = if path == Path::new("-") {
            Document::read_yaml_stdin(&Limits::MANIFEST)?
        } else {
            Document::read_yaml(path, &Limits::MANIFEST)?
        };
        Manifest::from_document(doc, kind)
    }

    /// Checks the shape every manifest must have to be governed at all: a mapping with a string
    /// `name` and, if present, a string `version`. Everything else is the policies' business.
    pub fn from_document(doc: Document, kind: Kind) -> Result<Manifest> {
        let name = Manifest::check_shape(&doc, "", kind)?;
        Ok(Manifest { kind, doc, name })
    }

    /// Checks the shape of the manifest at `base` inside `doc` (a mapping with a string `name`
    /// of at most [`MAX_NAME_LEN`] bytes and, if present, a string `version`) without copying
    /// it; returns its name. Errors point into `doc`.
    pub fn check_shape(doc: &Document, base: &str, kind: Kind) -> Result<String> {
        static NULL: Value = Value::Null;
        let value = if base.is_empty() {
            &doc.value
        } else {
            doc.value.pointer(base).unwrap_or(&NULL)
        };
        let at = |ptr: &str| doc.pos(&format!("{base}{ptr}"));
        let found = type_name(value);
        let Some(map) = value.as_object() else {
            return Err(Error::invalid(
                &doc.source,
                at(""),
                format!("a {kind} manifest must be a mapping (`name: ...`), found {found}"),
            ));
        };
        let name = match map.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => {
                return Err(Error::invalid(&doc.source, at("/name"), "`name` is empty"));
            }
            Some(other) => {
                return Err(Error::invalid(
                    &doc.source,
                    at("/name"),
                    format!(
                        "`name` must be a string, found {}; quote it: name: \"{}\"",
                        type_name(other),
                        scalar_text(other)
                    ),
                ));
            }
            None => {
                return Err(Error::invalid(
                    &doc.source,
                    at(""),
                    format!("a {kind} manifest needs a `name`"),
                ));
            }
        };
        if name.len() > MAX_NAME_LEN {
            return Err(Error::invalid(
                &doc.source,
                at("/name"),
                format!(
                    "`name` is {} bytes, over the limit of {MAX_NAME_LEN}",
                    name.len()
                ),
            ));
        }
        if let Some(v) = map.get("version")
            && !v.is_string()
        {
            return Err(Error::invalid(
                &doc.source,
                at("/version"),
                format!(
                    "`version` must be a string such as \"1.0.0\", found {} `{}`; YAML reads an unquoted 1.0 as a number: quote it",
                    type_name(v),
                    scalar_text(v)
                ),
            ));
        }
        Ok(name)
    }

    /// A manifest built from a value (a registry entry, a name given on the command line).
    pub fn from_value(kind: Kind, source: SourceName, value: Value) -> Result<Manifest> {
        Manifest::from_document(Document::from_value(source, value), kind)
    }

    pub fn value(&self) -> &Value {
        &self.doc.value
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.doc.value.get(key)
    }
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    pub fn version(&self) -> Option<&str> {
        self.str_field("version")
    }
    pub fn status(&self) -> Option<&str> {
        self.str_field("status")
    }
    pub fn pos(&self, pointer: &str) -> Pos {
        self.doc.pos(pointer)
    }

    /// Every permission, top level then per entrypoint, with its pointer.
    pub fn permissions(&self) -> Vec<PermissionUse> {
        let mut out = Vec::new();
        for (pointer, v) in select(&self.doc.value, "permissions[*]")
            .into_iter()
            .chain(select(&self.doc.value, "entrypoints[*].permissions[*]"))
        {
            let text = scalar_text(v);
            let parsed = match v {
                Value::String(s) => Permission::parse(s),
                _ => Err(PermissionError::BadCharacters(text.clone())),
            };
            out.push(PermissionUse {
                text,
                pointer,
                parsed,
            });
        }
        out
    }

    /// Inputs in either form: objects `{name, type, required, ...}` or strings
    /// `"name (type, required): text"`.
    pub fn inputs(&self) -> Vec<Port> {
        ports(&self.doc.value, "inputs")
    }
    pub fn outputs(&self) -> Vec<Port> {
        ports(&self.doc.value, "outputs")
    }

    /// Dependencies as written (`dependencies: [name, ...]`), with pointers.
    pub fn dependencies(&self) -> Vec<(String, String)> {
        select(&self.doc.value, "dependencies[*]")
            .into_iter()
            .filter_map(|(p, v)| v.as_str().map(|s| (s.to_string(), p)))
            .collect()
    }

    /// The canonical digest of the manifest (what an approval binds to). Registry-added keys
    /// are left out, so a manifest and its unchanged registry entry have one digest.
    pub fn digest(&self) -> String {
        crate::canonical::digest(&crate::registry::without_registry_keys(&self.doc.value))
    }
}

fn ports(value: &Value, key: &str) -> Vec<Port> {
    let mut out = Vec::new();
    for (pointer, v) in select(value, &format!("{key}[*]")) {
        match v {
            Value::Object(m) => out.push(Port {
                name: m.get("name").map(scalar_text).unwrap_or_default(),
                kind: m.get("type").map(scalar_text),
                required: m.get("required").and_then(Value::as_bool).unwrap_or(false),
                description: m
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                has_default: m.contains_key("default"),
                pointer,
            }),
            Value::String(s) => out.push(parse_port_string(s, pointer)),
            _ => {}
        }
    }
    out
}

/// `"name (type, required): text"`, `"name (type): text"`, `"name: text"`, `"name"`.
fn parse_port_string(s: &str, pointer: String) -> Port {
    let (head, description) = match s.split_once("):") {
        Some((h, d)) => (format!("{h})"), Some(d.trim().to_string())),
        None => match s.split_once(':') {
            Some((h, d)) => (h.to_string(), Some(d.trim().to_string())),
            None => (s.to_string(), None),
        },
    };
    let (name, meta) = match head.split_once('(') {
        Some((n, m)) => (n.trim().to_string(), m.trim_end_matches(')').to_string()),
        None => (head.trim().to_string(), String::new()),
    };
    let mut parts = meta.split(',').map(str::trim).filter(|p| !p.is_empty());
    let kind = parts.next().map(str::to_string);
    let required = parts.any(|p| p.eq_ignore_ascii_case("required"));
    Port {
        name,
        kind,
        required,
        description,
        has_default: false,
        pointer,
    }
}

/// The JSON type of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A value as short text: strings bare, everything else as compact JSON (cut at 200 chars).
pub fn scalar_text(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// Why a field path could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path `{path}`: {reason}")]
pub struct FieldPathError {
    pub path: String,
    pub reason: &'static str,
}

/// Checks a field path (`name`, `entrypoints[*].permissions`, `inputs[0].name`, `a.b`).
pub fn check_path(path: &str) -> Result<(), FieldPathError> {
    parse_path(path).map(|_| ())
}

fn parse_path(path: &str) -> Result<Vec<Step>, FieldPathError> {
    let err = |reason| FieldPathError {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() || path.len() > 256 {
        return Err(err("must be 1 to 256 characters"));
    }
    let mut steps = Vec::new();
    for segment in path.split('.') {
        let (key, mut rest) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if key.is_empty() && steps.is_empty() && rest.is_empty() {
            return Err(err("empty segment"));
        }
        if !key.is_empty() {
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err("keys are letters, digits, `_` and `-`"));
            }
            steps.push(Step::Key(key.to_string()));
        } else if rest.is_empty() {
            return Err(err("empty segment"));
        }
        while !rest.is_empty() {
            let Some(end) = rest.find(']') else {
                return Err(err("unclosed `[`"));
            };
            let inner = &rest[1..end];
            if inner == "*" {
                steps.push(Step::All);
            } else {
                let i = inner
                    .parse::<usize>()
                    .map_err(|_| err("an index is a number or `*`"))?;
                steps.push(Step::Index(i));
            }
            rest = &rest[end + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(err("expected `[` or `.` after `]`"));
            }
        }
    }
    Ok(steps)
}

/// Every value a field path reaches, with its JSON Pointer. A path that reaches nothing gives
/// an empty list. A list at the end of the path is returned as one value (rules decide whether
/// to look element-wise); `[*]` expands explicitly.
pub fn select<'a>(root: &'a Value, path: &str) -> Vec<(String, &'a Value)> {
    let Ok(steps) = parse_path(path) else {
        return Vec::new();
    };
    let mut current = vec![(String::new(), root)];
    for step in &steps {
        let mut next = Vec::new();
        for (ptr, v) in current {
            match (step, v) {
                (Step::Key(k), Value::Object(m)) => {
                    if let Some(child) = m.get(k) {
                        next.push((format!("{ptr}/{}", escape_pointer(k)), child));
                    }
                }
                // `entrypoints.permissions` on a list means each element's field, as people expect.
                (Step::Key(k), Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(child) = item.get(k) {
                            next.push((format!("{ptr}/{i}/{}", escape_pointer(k)), child));
                        }
                    }
                }
                (Step::Index(i), Value::Array(items)) => {
                    if let Some(child) = items.get(*i) {
                        next.push((format!("{ptr}/{i}"), child));
                    }
                }
                (Step::All, Value::Array(items)) => {
                    for (i, child) in items.iter().enumerate() {
                        next.push((format!("{ptr}/{i}"), child));
                    }
                }
                (Step::All, Value::Object(m)) => {
                    for (k, child) in m {
                        next.push((format!("{ptr}/{}", escape_pointer(k)), child));
                    }
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// Validates a skill, agent or policy name before it is used in a path: non-empty, at most
/// [`MAX_NAME_LEN`] bytes, no `..`, no separators, no leading dot, printable ASCII.
pub fn check_safe_name(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            what,
            value: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("is too long (128 bytes at most)");
    }
    if name.contains("..") || name.starts_with('.') {
        return bad("may not start with `.` or contain `..`");
    }
    if name.contains(['/', '\\']) || Path::new(name).is_absolute() {
        return bad("may not contain path separators");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return bad("may contain only letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Result<Manifest> {
        let doc = Document::parse_yaml(
            SourceName::Named("skill.yaml".into()),
            text.into(),
            &Limits::MANIFEST,
        )?;
        Manifest::from_document(doc, Kind::Skill)
    }

    #[test]
    fn both_port_forms_and_both_permission_places() {
        let m = manifest(
            "name: code.format\nversion: 0.1.0\ninputs:\n  - \"path (string, required): File to format\"\n  - name: check_only\n    type: boolean\n    default: false\noutputs: [report]\npermissions: [filesystem:read, process:execute]\nentrypoints:\n  - command: /x\n    permissions: [network.http]\nx-custom: {keep: me}\n",
        )
        .unwrap();
        let inputs = m.inputs();
        assert_eq!(inputs[0].name, "path");
        assert_eq!(inputs[0].kind.as_deref(), Some("string"));
        assert!(inputs[0].required);
        assert_eq!(inputs[0].description.as_deref(), Some("File to format"));
        assert_eq!(inputs[1].name, "check_only");
        assert!(!inputs[1].required && inputs[1].has_default);
        assert_eq!(m.outputs()[0].name, "report");
        let perms: Vec<_> = m
            .permissions()
            .into_iter()
            .map(|p| (p.parsed.unwrap().canonical(), p.pointer))
            .collect();
        assert_eq!(
            perms,
            vec![
                ("filesystem.read".to_string(), "/permissions/0".to_string()),
                ("process.execute".to_string(), "/permissions/1".to_string()),
                (
                    "network.http".to_string(),
                    "/entrypoints/0/permissions/0".to_string()
                ),
            ]
        );
        assert_eq!(m.pos("/entrypoints/0/permissions/0"), Pos::new(12, 19));
        assert_eq!(m.get("x-custom").unwrap()["keep"], "me");
    }

    #[test]
    fn shape_errors_are_clear() {
        let list = manifest("- a\n- b\n").unwrap_err().to_string();
        assert!(
            list.contains("must be a mapping") && list.contains("found a list"),
            "{list}"
        );
        let float = manifest("name: a.b\nversion: 1.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            float.contains("skill.yaml:2:10") && float.contains("quote it"),
            "{float}"
        );
        let int = manifest("name: 42\n").unwrap_err().to_string();
        assert!(
            int.contains("`name` must be a string, found an integer"),
            "{int}"
        );
        assert!(manifest("version: \"1\"\n").is_err());
    }

    #[test]
    fn field_paths() {
        let v: Value =
            serde_json::json!({"a": {"b": [1, {"c": 2}]}, "e": [{"p": [1]}, {"p": [2, 3]}]});
        let got = |p| {
            select(&v, p)
                .into_iter()
                .map(|(ptr, v)| format!("{ptr}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(got("a.b[1].c"), vec!["/a/b/1/c=2"]);
        assert_eq!(got("e[*].p"), vec!["/e/0/p=[1]", "/e/1/p=[2,3]"]);
        assert_eq!(
            got("e[*].p[*]"),
            vec!["/e/0/p/0=1", "/e/1/p/0=2", "/e/1/p/1=3"]
        );
        assert_eq!(got("e.p"), vec!["/e/0/p=[1]", "/e/1/p=[2,3]"]);
        assert!(got("missing.x").is_empty());
        for bad in ["", "a..b", "a[", "a[x]", "a]b", "a b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn safe_names() {
        for ok in ["data.transform", "a-b_c.1"] {
            assert!(check_safe_name("skill name", ok).is_ok());
        }
        for bad in [
            "",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "a b",
            "a\\b",
        ] {
            assert!(check_safe_name("skill name", bad).is_err(), "{bad}");
        }
    }
}
