//! Reading untrusted YAML and JSON: size, depth, alias and node limits, UTF-8 checks, and a
//! source position for every value.
//!
//! A [`Document`] is the parsed value (as `serde_json::Value`, the one data model every tool
//! shares) plus an index from JSON Pointer to `line:column`, so any finding about any value can
//! be reported as `file:line:col` and shown with a snippet of the line.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::limits::Limits;

/// Where an input came from: a file, or standard input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceName {
    File(PathBuf),
    Stdin,
    /// An input made in memory (a flag, a test), named for messages.
    Named(Arc<str>),
}

impl SourceName {
    pub fn path(&self) -> Option<&Path> {
        match self {
            SourceName::File(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceName::File(p) => write!(f, "{}", p.display()),
            SourceName::Stdin => f.write_str("<stdin>"),
            SourceName::Named(n) => f.write_str(n),
        }
    }
}

impl From<&Path> for SourceName {
    fn from(p: &Path) -> Self {
        SourceName::File(p.to_path_buf())
    }
}

/// A 1-based line and column (in characters). `0:0` means "unknown".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, column: 0 };
    pub const START: Pos = Pos { line: 1, column: 1 };

    pub fn new(line: u32, column: u32) -> Self {
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line.max(1), self.column.max(1))
    }
}

/// A parsed input with the position of every value.
#[derive(Clone, Debug)]
pub struct Document {
    pub source: SourceName,
    pub value: Value,
    text: Arc<str>,
    positions: PosTree,
}

/// Positions mirroring the value: a container's children are in the order of its array items
/// or object entries (objects keep insertion order, and duplicate keys are refused), so no
/// per-node string is built while parsing; a lookup walks the pointer.
#[derive(Clone, Debug, Default)]
struct PosTree {
    pos: Pos,
    children: Vec<PosTree>,
}

impl Document {
    /// Reads and parses a YAML (or JSON, which YAML 1.2 contains) file.
    pub fn read_yaml(path: &Path, limits: &Limits) -> Result<Document> {
        let name = SourceName::from(path);
        let text = read_text(&name, limits)?;
        Document::parse_yaml(name, text, limits)
    }

    /// Reads standard input and parses it as YAML (or JSON).
    pub fn read_yaml_stdin(limits: &Limits) -> Result<Document> {
        let bytes = read_limited(&SourceName::Stdin, std::io::stdin().lock(), None, limits)?;
        let text = into_text(&SourceName::Stdin, bytes)?;
        Document::parse_yaml(SourceName::Stdin, text, limits)
    }

    /// Parses YAML text. The top level may be any value; callers check its shape.
    pub fn parse_yaml(source: SourceName, text: String, limits: &Limits) -> Result<Document> {
        if text.len() as u64 > limits.max_bytes {
            return Err(Error::TooLarge {
                input: source,
                size: text.len() as u64,
                limit: limits.max_bytes,
            });
        }
        if text.trim().is_empty() || only_comments(&text) {
            return Err(Error::Empty {
                input: source,
                expected: "a YAML mapping",
            });
        }
        let options = yaml_options(limits);
        let node: Node = serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
            let pos = e
                .location()
                .map(|l| Pos::new(l.line() as u32, l.column() as u32))
                .unwrap_or(Pos::UNKNOWN);
            Error::Syntax {
                input: source.clone(),
                pos,
                message: yaml_message(&e),
            }
        })?;
        let (value, positions) = node.into_value(&source)?;
        Ok(Document {
            source,
            value,
            text: text.into(),
            positions,
        })
    }

    /// Wraps a value that has no text (built in memory); every position is unknown.
    pub fn from_value(source: SourceName, value: Value) -> Document {
        Document {
            source,
            value,
            text: Arc::from(""),
            positions: PosTree::default(),
        }
    }

    /// The position of the value at a JSON Pointer (`/entrypoints/0/permissions/1`), or of its
    /// nearest existing ancestor (a missing key is reported where its parent is).
    pub fn pos(&self, pointer: &str) -> Pos {
        if self.positions.pos == Pos::UNKNOWN && self.positions.children.is_empty() {
            return Pos::START;
        }
        let mut value = &self.value;
        let mut tree = &self.positions;
        let tokens = pointer.strip_prefix('/').unwrap_or(pointer);
        if pointer.is_empty() {
            return tree.pos;
        }
        for raw in tokens.split('/') {
            let token = unescape_pointer(raw);
            // Lookups are rare (a finding's position): a linear search keeps parsing cheap.
            let found = match value {
                Value::Object(m) => m
                    .iter()
                    .enumerate()
                    .find(|(_, (k, _))| k.as_str() == token.as_ref())
                    .map(|(i, (_, v))| (i, v)),
                Value::Array(a) => token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i).map(|v| (i, v))),
                _ => None,
            };
            let Some((i, child_value)) = found else { break };
            let Some(child_tree) = tree.children.get(i) else {
                break;
            };
            tree = child_tree;
            value = child_value;
        }
        tree.pos
    }

    /// The source line `line` (1-based), for snippets.
    pub fn line_text(&self, line: u32) -> Option<&str> {
        if line == 0 {
            return None;
        }
        self.text.lines().nth(line as usize - 1)
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

fn only_comments(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---" || l == "...")
}

fn yaml_options(limits: &Limits) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_aliases = limits.max_aliases;
    budget.max_nodes = limits.max_nodes;
    budget.max_documents = 1;
    budget.max_reader_input_bytes = Some(limits.max_bytes as usize);
    budget.max_total_scalar_bytes = limits.max_bytes as usize;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits.max_nodes;
    options.with_snippet = false;
    // YAML 1.2's core schema: only `true`/`false` are booleans. YAML 1.1 also read `y`, `n`,
    // `yes`, `on`, ... as booleans, which turns a key `y:` into `true:`.
    options.strict_booleans = true;
    options
}

fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.without_snippet().to_string();
    // The library appends its own "at line X, column Y"; we print positions ourselves.
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    // Say it in the user's terms, not the library's.
    if let Some(rest) = first.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`: each key may appear once in a mapping");
    }
    if first.contains("alias") && (first.contains("limit") || first.contains("budget")) {
        return format!(
            "too many alias expansions, as in a YAML alias bomb ({first}); expand the aliases by hand"
        );
    }
    if first.contains("recursion limit") || first.contains("depth") {
        return format!(
            "nesting too deep ({first}); the limit is {} levels",
            limits_depth_hint()
        );
    }
    first.to_string()
}

fn limits_depth_hint() -> usize {
    Limits::MANIFEST.max_depth
}

/// Reads a whole file as UTF-8 text under the size limit.
pub fn read_text(name: &SourceName, limits: &Limits) -> Result<String> {
    let bytes = read_bytes(name, limits)?;
    into_text(name, bytes)
}

/// Reads a whole file under the size limit. The size is checked before reading.
pub fn read_bytes(name: &SourceName, limits: &Limits) -> Result<Vec<u8>> {
    match name {
        SourceName::File(path) => {
            let file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
            let meta = file.metadata().map_err(|e| Error::read(path, e))?;
            if meta.is_dir() {
                return Err(Error::read(
                    path,
                    std::io::Error::other("is a directory, expected a file"),
                ));
            }
            read_limited(name, file, Some(meta.len()), limits)
        }
        SourceName::Stdin => read_limited(name, std::io::stdin().lock(), None, limits),
        SourceName::Named(_) => Ok(Vec::new()),
    }
}

fn read_limited(
    name: &SourceName,
    reader: impl Read,
    known_len: Option<u64>,
    limits: &Limits,
) -> Result<Vec<u8>> {
    if let Some(len) = known_len
        && len > limits.max_bytes
    {
        return Err(Error::TooLarge {
            input: name.clone(),
            size: len,
            limit: limits.max_bytes,
        });
    }
    let mut buf = Vec::with_capacity(known_len.unwrap_or(8192).min(limits.max_bytes) as usize);
    reader
        .take(limits.max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| match name {
            SourceName::File(p) => Error::read(p, e),
            _ => Error::read("<stdin>", e),
        })?;
    if buf.len() as u64 > limits.max_bytes {
        return Err(Error::TooLarge {
            input: name.clone(),
            size: buf.len() as u64,
            limit: limits.max_bytes,
        });
    }
    Ok(buf)
}

/// UTF-8 check with the offset of the first bad byte; a leading BOM is dropped.
pub fn into_text(name: &SourceName, mut bytes: Vec<u8>) -> Result<String> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        input: name.clone(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Parses JSON text into a value, with `line:column` on a syntax error.
pub fn parse_json(name: &SourceName, text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Err(Error::Empty {
            input: name.clone(),
            expected: "a JSON document",
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Value::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    value.map_err(|e| Error::Syntax {
        input: name.clone(),
        pos: Pos::new(e.line() as u32, e.column() as u32),
        message: json_message(&e),
    })
}

fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => format!("invalid JSON: {}", &s[..i]),
        None => format!("invalid JSON: {s}"),
    }
}

/// Reads a JSON file under the limits.
pub fn read_json(path: &Path, limits: &Limits) -> Result<Value> {
    let name = SourceName::from(path);
    let text = read_text(&name, limits)?;
    parse_json(&name, &text)
}

/// One YAML node with its position, as the YAML deserializer sees it.
struct Node {
    value: NodeValue,
    pos: Pos,
}

enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    fn into_value(self, source: &SourceName) -> Result<(Value, PosTree)> {
        let pos = self.pos;
        Ok(match self.value {
            NodeValue::Null => (Value::Null, PosTree::leaf(pos)),
            NodeValue::Bool(b) => (Value::Bool(b), PosTree::leaf(pos)),
            NodeValue::Int(i) => (Value::Number(i.into()), PosTree::leaf(pos)),
            NodeValue::UInt(u) => (Value::Number(u.into()), PosTree::leaf(pos)),
            NodeValue::Float(f) => match Number::from_f64(f) {
                Some(n) => (Value::Number(n), PosTree::leaf(pos)),
                None => {
                    return Err(Error::invalid(
                        source,
                        pos,
                        format!("`{f}` is not a finite number"),
                    ));
                }
            },
            NodeValue::Str(s) => (Value::String(s), PosTree::leaf(pos)),
            NodeValue::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut children = Vec::with_capacity(items.len());
                for item in items {
                    let (v, t) = item.into_value(source)?;
                    out.push(v);
                    children.push(t);
                }
                (Value::Array(out), PosTree { pos, children })
            }
            NodeValue::Map(entries) => {
                let mut out = Map::with_capacity(entries.len());
                let mut children = Vec::with_capacity(entries.len());
                for (key, item) in entries {
                    let (v, t) = item.into_value(source)?;
                    // Duplicate keys are refused by the parser, but a merge key (`<<: *base`)
                    // may set a key twice: the later value replaces the earlier in place.
                    if out.contains_key(&key) {
                        if let Some(i) = out.keys().position(|k| *k == key) {
                            children[i] = t;
                        }
                        out.insert(key, v);
                    } else {
                        out.insert(key, v);
                        children.push(t);
                    }
                }
                (Value::Object(out), PosTree { pos, children })
            }
        })
    }
}

impl PosTree {
    fn leaf(pos: Pos) -> PosTree {
        PosTree {
            pos,
            children: Vec::new(),
        }
    }
}

/// Unescapes one JSON Pointer reference token (RFC 6901).
fn unescape_pointer(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~").into()
    } else {
        token.into()
    }
}

/// Escapes one JSON Pointer reference token (RFC 6901).
pub fn escape_pointer(token: &str) -> String {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1")
    } else {
        token.to_string()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Inner>::deserialize(d)?;
        Ok(Node {
            value: spanned.value.0,
            pos: Pos::new(
                spanned.referenced.line() as u32,
                spanned.referenced.column() as u32,
            ),
        })
    }
}

struct Inner(NodeValue);

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(InnerVisitor).map(Inner)
    }
}

struct InnerVisitor;

impl<'de> Visitor<'de> for InnerVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<NodeValue, E> {
        i64::try_from(v)
            .map(NodeValue::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<NodeValue, E> {
        u64::try_from(v)
            .map(NodeValue::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<NodeValue, D::Error> {
        Inner::deserialize(d).map(|i| i.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(NodeValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<NodeValue, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        while let Some(k) = map.next_key::<Key>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k.0, v));
        }
        Ok(NodeValue::Map(entries))
    }
}

/// A mapping key: any scalar, kept as its text (`1: x` has the key `"1"`).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Key, E> {
                Ok(Key("null".to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Document> {
        Document::parse_yaml(
            SourceName::Named("test.yaml".into()),
            text.to_string(),
            &Limits::MANIFEST,
        )
    }

    #[test]
    fn every_value_has_a_position() {
        let doc = parse("name: a.b\npermissions:\n  - filesystem:read\n  - network:http\nentrypoints:\n  - command: /x\n    permissions: [process:execute]\n").unwrap();
        assert_eq!(doc.value["name"], "a.b");
        assert_eq!(doc.pos("/name"), Pos::new(1, 7));
        assert_eq!(doc.pos("/permissions/1"), Pos::new(4, 5));
        assert_eq!(doc.pos("/entrypoints/0/permissions/0"), Pos::new(7, 19));
        // A missing key is reported where its parent is.
        assert_eq!(doc.pos("/entrypoints/0/nothing"), doc.pos("/entrypoints/0"));
        assert_eq!(doc.line_text(4), Some("  - network:http"));
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let empty = parse("").unwrap_err();
        assert!(matches!(empty, Error::Empty { .. }), "{empty}");
        let comments = parse("# nothing\n---\n").unwrap_err();
        assert!(matches!(comments, Error::Empty { .. }), "{comments}");
        let syntax = parse("name: [unclosed\n").unwrap_err();
        assert!(matches!(syntax, Error::Syntax { .. }), "{syntax}");
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
        let bomb = parse(bomb).unwrap_err();
        assert!(matches!(bomb, Error::Syntax { .. }), "{bomb}");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep = parse(&deep).unwrap_err();
        assert!(matches!(deep, Error::Syntax { .. }), "{deep}");
        let dup = parse("a: 1\na: 2\n").unwrap_err();
        assert!(dup.to_string().contains("test.yaml:2"), "{dup}");
    }

    #[test]
    fn size_and_encoding_are_checked_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(Limits::MANIFEST.max_bytes + 1).unwrap();
        let err = Document::read_yaml(&big, &Limits::MANIFEST).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, b"name: caf\xe9\n").unwrap();
        let err = Document::read_yaml(&bad, &Limits::MANIFEST).unwrap_err();
        assert!(matches!(err, Error::NotUtf8 { offset: 9, .. }), "{err}");
    }

    #[test]
    fn merge_keys_keep_positions_aligned() {
        let doc = parse("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n  z: 4\n").unwrap();
        assert_eq!(doc.value["item"]["y"], 3);
        assert_eq!(doc.value["item"]["z"], 4);
        assert_eq!(doc.pos("/item/z"), Pos::new(5, 6));
        assert_eq!(doc.pos("/item/y"), Pos::new(4, 6));
    }

    #[test]
    fn json_text_gets_positions_too() {
        let doc =
            parse("{\n  \"name\": \"a.b\",\n  \"permissions\": [\"network:http\"]\n}\n").unwrap();
        assert_eq!(doc.value["permissions"][0], "network:http");
        assert_eq!(doc.pos("/permissions/0"), Pos::new(3, 19));
    }

    #[test]
    fn json_errors_name_line_and_column() {
        let err = parse_json(
            &SourceName::Named("r.json".into()),
            "{\n  \"a\": 1\n  \"b\": 2\n}",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.json:3:3: invalid JSON: expected `,` or `}`"
        );
    }
}
