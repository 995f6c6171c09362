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

use serde::Deserialize;
use serde_json::Value;

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
            // A path names files an attacker may have named (`skills/x\n✅ passed/`): shown on
            // one line, its control characters escaped.
            SourceName::File(p) => write!(f, "{}", crate::escape::Escaped(&p.to_string_lossy())),
            SourceName::Stdin => f.write_str("<stdin>"),
            SourceName::Named(n) => write!(f, "{}", crate::escape::Escaped(n)),
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

/// The line and column (in characters, both from 1) of byte `at` of `text`.
pub fn pos_at(text: &str, at: usize) -> Pos {
    let before = &text[..at];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Pos::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
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
        if let Some(at) = text.find(['\u{85}', '\u{2028}', '\u{2029}']) {
            let c = text[at..].chars().next().unwrap_or_default();
            let what = match c {
                '\u{85}' => "NEXT LINE",
                '\u{2028}' => "LINE SEPARATOR",
                _ => "PARAGRAPH SEPARATOR",
            };
            return Err(Error::Syntax {
                input: source,
                pos: pos_at(&text, at),
                message: format!(
                    "U+{code:04X} ({what}) is a line break to upstream Betty's YAML reader (PyYAML) and not to this one, so the two would read different documents (a comment could hide a key from the check): remove it, or write it as `\\u{code:04X}` inside a double-quoted string",
                    code = c as u32
                ),
            });
        }
        let (value, positions) = yaml::load(&text, limits).map_err(|f| Error::Syntax {
            input: source.clone(),
            pos: f.pos,
            message: f.message,
        })?;
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

/// Reads a whole file as UTF-8 text under the size limit.
pub fn read_text(name: &SourceName, limits: &Limits) -> Result<String> {
    let bytes = read_bytes(name, limits)?;
    into_text(name, bytes)
}

/// Reads a whole file under the size limit. The size is checked before reading; anything but
/// a regular file (a FIFO, a device, a folder; inside a registry, a symbolic link) is refused
/// before a byte is read ([`crate::fsx::read_regular`]).
pub fn read_bytes(name: &SourceName, limits: &Limits) -> Result<Vec<u8>> {
    match name {
        SourceName::File(path) => crate::fsx::read_regular(path, limits.max_bytes),
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

/// Parses JSON text into a value, with `line:column` on a syntax error. A key repeated in one
/// object is an error too (serde_json alone keeps the last one silently).
pub fn parse_json(name: &SourceName, text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Err(Error::Empty {
            input: name.clone(),
            expected: "a JSON document",
        });
    }
    json_from_str(text).map_err(|e| Error::Syntax {
        input: name.clone(),
        pos: Pos::new(e.line() as u32, e.column() as u32),
        message: json_message(&e),
    })
}

/// `serde_json::from_str::<Value>` that refuses a key repeated in one object, with the
/// position just after the repeated entry.
pub fn json_from_str(text: &str) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let StrictValue(v) = StrictValue::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// As [`json_from_str`], for bytes (which must be UTF-8 JSON).
pub fn json_from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let StrictValue(v) = StrictValue::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// A JSON value whose objects never repeat a key: deserialize this instead of `Value` wherever
/// untrusted JSON is read. It costs what `Value` costs (the map insert that would overwrite is
/// the one that detects the repeat).
#[derive(Debug, Clone, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        use serde::de::Error as _;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            match out.entry(key) {
                serde_json::map::Entry::Occupied(o) => {
                    return Err(A::Error::custom(format_args!(
                        "duplicate key `{}`: each key may appear once in an object",
                        o.key()
                    )));
                }
                serde_json::map::Entry::Vacant(v) => {
                    v.insert(value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Checks that no object in JSON `text` repeats a key, without building the value: for readers
/// that keep JSON as raw text and parse only parts of it (`registry-diff`'s entry-by-entry
/// comparison). Keys are borrowed from the text where they have no escapes.
pub fn check_unique_keys(text: &str) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    UniqueKeys::deserialize(&mut de)?;
    de.end()
}

struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

/// An object key, borrowed from the text when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(v.to_owned().into()))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<UniqueKeys, A::Error> {
        use serde::de::Error as _;
        // Objects are small in practice: a linear search, then a set past a few dozen keys.
        let mut keys: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        let mut set: std::collections::HashSet<std::borrow::Cow<'de, str>> = Default::default();
        while let Some(Key(key)) = map.next_key()? {
            map.next_value::<UniqueKeys>()?;
            let repeated = if set.is_empty() && keys.len() < 32 {
                let seen = keys.contains(&key);
                keys.push(key.clone());
                if keys.len() == 32 {
                    set.extend(keys.drain(..));
                }
                seen
            } else {
                !set.insert(key.clone())
            };
            if repeated {
                return Err(A::Error::custom(format_args!(
                    "duplicate key `{key}`: each key may appear once in an object"
                )));
            }
        }
        Ok(UniqueKeys)
    }
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

impl PosTree {
    fn leaf(pos: Pos) -> PosTree {
        PosTree {
            pos,
            children: Vec::new(),
        }
    }

    /// The same shape with every position at `pos`.
    fn relocated(&self, pos: Pos) -> PosTree {
        PosTree {
            pos,
            children: self.children.iter().map(|c| c.relocated(pos)).collect(),
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

/// Builds a value and its positions straight from the YAML parser's events, in one pass
/// (serde-saphyr's own parser, `granit_parser`, without the serde layer: positions come with
/// every event, so no per-node span wrapper is needed). YAML 1.2 core schema: only `true`/`false`
/// (and their capitalised forms) are booleans, `012` stays text, `.inf`/`.nan` are refused.
mod yaml {
    use std::borrow::Cow;
    use std::collections::HashMap;

    use serde_json::{Map, Number, Value};
    use serde_saphyr::granit_parser::{Event, Marker, Options, Parser, ScalarStyle, Span, Tag};

    use super::{Pos, PosTree};
    use crate::limits::Limits;

    /// Why a document could not be loaded, and where.
    pub(super) struct Failure {
        pub pos: Pos,
        pub message: String,
    }

    type Loaded = (Value, PosTree);

    pub(super) fn load(text: &str, limits: &Limits) -> Result<Loaded, Failure> {
        let mut options = Options::default();
        options.set_emit_comments(false);
        // The parser refuses deeper nesting itself, before our recursion could.
        options.flow_nesting_limit = limits.max_depth;
        options.block_nesting_limit = limits.max_depth;
        let mut loader = Loader {
            parser: Parser::new_from_str_with_options(text, options),
            limits,
            anchors: HashMap::new(),
            nodes: 0,
            aliases: 0,
            bytes: 0,
            kept_nodes: 0,
            kept_bytes: 0,
            deepest: 0,
        };
        loader.document()
    }

    struct Anchored {
        /// The anchored value, kept for its aliases; `None` when keeping it would pass the
        /// budget for kept copies (nested anchors each keep their own), or no alias may follow.
        copy: Option<Loaded>,
        nodes: usize,
        bytes: usize,
        /// Levels of nesting inside the anchored value (0 for a scalar).
        height: usize,
    }

    struct Loader<'t, 'l> {
        parser: Parser<'t, serde_saphyr::granit_parser::StrInput<'t>>,
        limits: &'l Limits,
        anchors: HashMap<usize, Anchored>,
        nodes: usize,
        aliases: usize,
        /// Scalar bytes produced, aliases' copies included.
        bytes: usize,
        /// Nodes and bytes held in anchors' kept copies.
        kept_nodes: usize,
        kept_bytes: usize,
        /// The deepest level reached below the node being built.
        deepest: usize,
    }

    fn pos(m: &Marker) -> Pos {
        Pos::new(m.line() as u32, m.col() as u32 + 1)
    }

    fn fail(at: &Marker, message: impl Into<String>) -> Failure {
        Failure {
            pos: pos(at),
            message: message.into(),
        }
    }

    impl<'t> Loader<'t, '_> {
        fn next(&mut self) -> Result<(Event<'t>, Span), Failure> {
            match self.parser.next_event() {
                Some(Ok(ev)) => Ok(ev),
                Some(Err(e)) => {
                    let info = e.info();
                    let message = if info.contains("recursion limit") || info.contains("nesting") {
                        format!(
                            "nesting too deep ({info}); the limit is {} levels",
                            self.limits.max_depth
                        )
                    } else {
                        info
                    };
                    Err(Failure {
                        pos: pos(e.marker()),
                        message,
                    })
                }
                None => Err(Failure {
                    pos: Pos::UNKNOWN,
                    message: "unexpected end of the document".into(),
                }),
            }
        }

        fn document(&mut self) -> Result<Loaded, Failure> {
            let mut root = None;
            loop {
                let (ev, span) = self.next()?;
                match ev {
                    Event::StreamStart | Event::DocumentEnd => {}
                    Event::DocumentStart(..) if root.is_some() => {
                        return Err(fail(
                            &span.start,
                            "a second YAML document (after `---`): one file holds one document",
                        ));
                    }
                    Event::DocumentStart(..) => {
                        let (ev, span) = self.next()?;
                        root = Some(self.node(ev, span, 0)?);
                    }
                    Event::StreamEnd => {
                        return root.ok_or_else(|| fail(&span.start, "no YAML document"));
                    }
                    _ => return Err(fail(&span.start, "unexpected YAML event")),
                }
            }
        }

        fn count(&mut self, nodes: usize, bytes: usize, at: &Marker) -> Result<(), Failure> {
            self.nodes += nodes;
            self.bytes += bytes;
            if self.nodes > self.limits.max_nodes {
                return Err(fail(
                    at,
                    format!(
                        "more than {} values in one document; split the file",
                        self.limits.max_nodes
                    ),
                ));
            }
            if self.bytes as u64 > self.limits.max_bytes {
                return Err(fail(
                    at,
                    format!(
                        "the document expands to more than {} bytes of text (aliases included)",
                        self.limits.max_bytes
                    ),
                ));
            }
            Ok(())
        }

        fn node(&mut self, ev: Event<'t>, span: Span, depth: usize) -> Result<Loaded, Failure> {
            if depth > self.limits.max_depth {
                return Err(fail(
                    &span.start,
                    format!(
                        "nesting too deep; the limit is {} levels",
                        self.limits.max_depth
                    ),
                ));
            }
            let at = pos(&span.start);
            let (start_nodes, start_bytes) = (self.nodes, self.bytes);
            let deepest_outside = std::mem::replace(&mut self.deepest, depth);
            let (loaded, anchor) = match ev {
                Event::Scalar(text, style, anchor, tag) => {
                    self.count(1, text.len(), &span.start)?;
                    let value = scalar(text, style, tag.as_deref(), &span.start)?;
                    ((value, PosTree::leaf(at)), anchor)
                }
                Event::SequenceStart(_, anchor, _) => {
                    self.count(1, 0, &span.start)?;
                    let mut items = Vec::new();
                    let mut children = Vec::new();
                    loop {
                        let (ev, span) = self.next()?;
                        if matches!(ev, Event::SequenceEnd) {
                            break;
                        }
                        let (v, t) = self.node(ev, span, depth + 1)?;
                        items.push(v);
                        children.push(t);
                    }
                    ((Value::Array(items), PosTree { pos: at, children }), anchor)
                }
                Event::MappingStart(_, anchor, _) => {
                    self.count(1, 0, &span.start)?;
                    (self.mapping(at, depth)?, anchor)
                }
                Event::Alias(id) => {
                    self.deepest = deepest_outside;
                    return self.alias(id, &span.start, depth);
                }
                _ => return Err(fail(&span.start, "unexpected YAML event")),
            };
            let height = self.deepest - depth;
            self.deepest = self.deepest.max(deepest_outside);
            if anchor != 0 {
                let (nodes, bytes) = (self.nodes - start_nodes, self.bytes - start_bytes);
                self.keep(anchor, &loaded, nodes, bytes, height);
            }
            Ok(loaded)
        }

        /// Remembers an anchored value for its aliases, within the budget for kept copies.
        fn keep(
            &mut self,
            anchor: usize,
            loaded: &Loaded,
            nodes: usize,
            bytes: usize,
            height: usize,
        ) {
            let fits = self.limits.max_aliases > 0
                && self.kept_nodes + nodes <= self.limits.max_nodes
                && (self.kept_bytes + bytes) as u64 <= self.limits.max_bytes;
            let copy = fits.then(|| {
                self.kept_nodes += nodes;
                self.kept_bytes += bytes;
                loaded.clone()
            });
            self.anchors.insert(
                anchor,
                Anchored {
                    copy,
                    nodes,
                    bytes,
                    height,
                },
            );
        }

        fn alias(&mut self, id: usize, at: &Marker, depth: usize) -> Result<Loaded, Failure> {
            self.aliases += 1;
            if self.aliases > self.limits.max_aliases {
                return Err(fail(
                    at,
                    format!(
                        "too many alias expansions (over {}), as in a YAML alias bomb; expand the aliases by hand",
                        self.limits.max_aliases
                    ),
                ));
            }
            let Some(a) = self.anchors.get(&id) else {
                return Err(fail(at, "an alias names no anchor defined before it"));
            };
            let (nodes, bytes, height) = (a.nodes, a.bytes, a.height);
            // What an alias brings in is nested where the alias is: the depth limit holds for it.
            if depth + height > self.limits.max_depth {
                return Err(fail(
                    at,
                    format!(
                        "nesting too deep once the alias is expanded; the limit is {} levels",
                        self.limits.max_depth
                    ),
                ));
            }
            self.deepest = self.deepest.max(depth + height);
            // Counted before copying: an alias bomb stops here, not after filling memory.
            self.count(nodes, bytes, at).map_err(|e| Failure {
                message: format!("too many alias expansions, as in a YAML alias bomb ({}); expand the aliases by hand", e.message),
                ..e
            })?;
            let Some((value, tree)) = &self.anchors[&id].copy else {
                return Err(fail(
                    at,
                    "the alias names an anchor too large to copy again (nested anchors each keep a copy); expand it by hand",
                ));
            };
            // Every value an alias brings in is reported where the alias is: that is the line
            // that put it there.
            Ok((value.clone(), tree.relocated(pos(at))))
        }

        fn mapping(&mut self, at: Pos, depth: usize) -> Result<Loaded, Failure> {
            let mut map = Map::new();
            let mut children: Vec<PosTree> = Vec::new();
            // Keys a merge (`<<: *base`) brought in, with their place: an explicit key may
            // replace each once.
            let mut merged: HashMap<String, usize> = HashMap::new();
            let mut merge_seen = false;
            loop {
                let (ev, span) = self.next()?;
                let key = match ev {
                    Event::MappingEnd => break,
                    Event::Scalar(text, style, anchor, tag) => {
                        self.count(1, text.len(), &span.start)?;
                        if anchor != 0 {
                            // A key may be anchored and its alias used as a value elsewhere.
                            let value = scalar(text.clone(), style, tag.as_deref(), &span.start)?;
                            let loaded = (value, PosTree::leaf(pos(&span.start)));
                            self.keep(anchor, &loaded, 1, text.len(), 0);
                        }
                        if style == ScalarStyle::Plain && tag.is_none() && text == "<<" {
                            if std::mem::replace(&mut merge_seen, true) {
                                return Err(fail(
                                    &span.start,
                                    "duplicate key `<<`: merge several mappings with `<<: [*a, *b]`",
                                ));
                            }
                            let (ev, vspan) = self.next()?;
                            let (value, tree) = self.node(ev, vspan, depth + 1)?;
                            merge(
                                &mut map,
                                &mut children,
                                &mut merged,
                                value,
                                tree,
                                &vspan.start,
                            )?;
                            continue;
                        }
                        text.into_owned()
                    }
                    Event::Alias(id) => match self.alias(id, &span.start, depth + 1)? {
                        (Value::String(s), _) => s,
                        (v @ (Value::Number(_) | Value::Bool(_)), _) => v.to_string(),
                        (Value::Null, _) => "null".to_string(),
                        _ => {
                            return Err(fail(
                                &span.start,
                                "a mapping key must be text, not a list or mapping",
                            ));
                        }
                    },
                    _ => {
                        return Err(fail(
                            &span.start,
                            "a mapping key must be text, not a list or mapping",
                        ));
                    }
                };
                let (ev, vspan) = self.next()?;
                let (value, tree) = self.node(ev, vspan, depth + 1)?;
                match map.contains_key(&key) {
                    true => {
                        let Some(i) = merged.remove(&key) else {
                            return Err(fail(
                                &span.start,
                                format!(
                                    "duplicate key `{key}`: each key may appear once in a mapping"
                                ),
                            ));
                        };
                        children[i] = tree;
                        map.insert(key, value);
                    }
                    false => {
                        map.insert(key, value);
                        children.push(tree);
                    }
                }
            }
            Ok((Value::Object(map), PosTree { pos: at, children }))
        }
    }

    /// `<<: *base` or `<<: [*a, *b]`: keys not yet set are taken from each mapping in turn.
    fn merge(
        map: &mut Map<String, Value>,
        children: &mut Vec<PosTree>,
        merged: &mut HashMap<String, usize>,
        value: Value,
        tree: PosTree,
        at: &Marker,
    ) -> Result<(), Failure> {
        let sources: Vec<(Value, PosTree)> = match value {
            Value::Object(_) => vec![(value, tree)],
            Value::Array(items) => items.into_iter().zip(tree.children).collect(),
            _ => {
                return Err(fail(
                    at,
                    "a merge key `<<` takes a mapping or a list of mappings",
                ));
            }
        };
        for (source, tree) in sources {
            let Value::Object(source) = source else {
                return Err(fail(
                    at,
                    "a merge key `<<` takes a mapping or a list of mappings",
                ));
            };
            for ((k, v), t) in source.into_iter().zip(tree.children) {
                if !map.contains_key(&k) {
                    merged.insert(k.clone(), children.len());
                    map.insert(k, v);
                    children.push(t);
                }
            }
        }
        Ok(())
    }

    fn scalar(
        text: Cow<'_, str>,
        style: ScalarStyle,
        tag: Option<&Tag>,
        at: &Marker,
    ) -> Result<Value, Failure> {
        let core = tag.and_then(Tag::core_suffix);
        // `! text` (the non-specific tag), `!!str` and the YAML tags outside the core schema
        // (`!!binary`, `!!timestamp`) keep the text as written; other tags (`!custom`) are
        // ignored.
        let yaml_tag = tag.is_some_and(|t| t.suffix_in_namespace(YAML_TAGS).is_some());
        let as_text = matches!(core, Some("str"))
            || tag.is_some_and(|t| t.original() == "!")
            || (yaml_tag && core.is_none())
            || (style != ScalarStyle::Plain && core.is_none());
        if as_text {
            return Ok(Value::String(text.into_owned()));
        }
        let t = text.as_ref();
        let typed = |what: &str, v: Option<Value>| {
            v.ok_or_else(|| fail(at, format!("`{t}` is tagged `!!{what}` but is not one")))
        };
        match core {
            Some("null") => return typed("null", is_null(t).then_some(Value::Null)),
            Some("bool") => return typed("bool", bool_of(t).map(Value::Bool)),
            Some("int") => return typed("int", int_of(t)),
            Some("float") => {
                let whole = || {
                    int_of(t)
                        .and_then(|n| n.as_f64())
                        .and_then(Number::from_f64)
                };
                return typed(
                    "float",
                    float_of(t, at)?.or_else(|| whole().map(Value::Number)),
                );
            }
            Some(other @ ("map" | "seq")) => {
                return Err(fail(at, format!("`{t}` is tagged `!!{other}` but is text")));
            }
            _ => {}
        }
        if is_null(t) {
            return Ok(Value::Null);
        }
        if let Some(b) = bool_of(t) {
            return Ok(Value::Bool(b));
        }
        if let Some(n) = int_of(t) {
            return Ok(n);
        }
        if let Some(f) = float_of(t, at)? {
            return Ok(f);
        }
        Ok(Value::String(text.into_owned()))
    }

    const YAML_TAGS: &str = "tag:yaml.org,2002:";

    fn is_null(t: &str) -> bool {
        matches!(t, "" | "~" | "null" | "Null" | "NULL")
    }

    fn bool_of(t: &str) -> Option<bool> {
        match t {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// YAML 1.2 core integers: `[-+]?[0-9]+` (no leading zero), `0o17`, `0x1F`. Too large for
    /// 64 bits: `None` (it is read as a float).
    fn int_of(t: &str) -> Option<Value> {
        let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
        if let Some(h) = t.strip_prefix("0x") {
            return digits(h, 16)
                .then(|| u64::from_str_radix(h, 16).ok())
                .flatten()
                .map(Value::from);
        }
        if let Some(o) = t.strip_prefix("0o") {
            return digits(o, 8)
                .then(|| u64::from_str_radix(o, 8).ok())
                .flatten()
                .map(Value::from);
        }
        let (neg, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        if !digits(body, 10) || (body.len() > 1 && body.starts_with('0')) {
            return None;
        }
        if neg {
            t.parse::<i64>().ok().map(Value::from)
        } else {
            body.parse::<u64>().ok().map(Value::from)
        }
    }

    /// YAML 1.2 core floats. `.inf`, `.nan` and literals too large for 64 bits are refused:
    /// every number we keep must be finite.
    fn float_of(t: &str, at: &Marker) -> Result<Option<Value>, Failure> {
        let body = t.strip_prefix(['-', '+']).unwrap_or(t);
        if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
            return Err(fail(at, format!("`{t}` is not a finite number")));
        }
        let b = body.as_bytes();
        let mut i = 0;
        let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        i += int_digits;
        let mut frac_digits = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            i += frac_digits;
        }
        if int_digits + frac_digits == 0 {
            return Ok(None);
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'-' | b'+')) {
                i += 1;
            }
            let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if exp == 0 {
                return Ok(None);
            }
            i += exp;
        }
        // `012` is not a number in YAML 1.2's core schema (nor octal): it stays text.
        let leading_zero = int_digits > 1 && body.starts_with('0') && i == int_digits;
        if i != b.len() || leading_zero {
            return Ok(None);
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Number::from_f64(f).map(Value::Number)),
            Ok(_) => Err(fail(at, format!("`{t}` is not a finite number"))),
            Err(_) => Ok(None),
        }
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
        assert!(deep.to_string().contains("nesting too deep"), "{deep}");
        let block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let block = parse(&block).unwrap_err().to_string();
        assert!(block.contains("nesting too deep"), "{block}");
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
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let doc = parse(concat!(
            "a: 012\nb: 0x1F\nc: 0o17\nd: 1e5\ne: .5\nf: -0\ng: +12\nh: 99999999999999999999\n",
            "i: True\nj: yes\nk: ~\nl: Null\nm: ''\nn: !!str 12\no: ! 12\np: !!int '7'\n",
            "q: 1_000\nr: -1.5e-3\ns: \"true\"\nt:\nu: on\nv: 1.0\nw: -7\nx: !!float 3\n",
        ))
        .unwrap();
        let v = &doc.value;
        // Leading zeros and underscores are not YAML 1.2 numbers: the text is kept as written.
        assert_eq!(v["a"], "012");
        assert_eq!(v["q"], "1_000");
        assert_eq!(v["b"], 31);
        assert_eq!(v["c"], 15);
        assert_eq!(v["d"], 100000.0);
        assert_eq!(v["e"], 0.5);
        assert_eq!(v["f"], 0);
        assert_eq!(v["g"], 12);
        assert_eq!(v["h"], 1e20);
        assert_eq!(v["i"], true);
        assert_eq!(v["j"], "yes");
        assert_eq!(v["u"], "on");
        assert!(v["k"].is_null() && v["l"].is_null() && v["t"].is_null());
        assert_eq!(v["m"], "");
        assert_eq!(v["n"], "12");
        assert_eq!(v["o"], "12");
        assert_eq!(v["p"], 7);
        assert_eq!(v["r"], -0.0015);
        assert_eq!(v["s"], "true");
        assert_eq!(v["v"], 1.0);
        assert_eq!(v["w"], -7);
        assert_eq!(v["x"], 3.0);
        for bad in [
            "a: .inf\n",
            "a: -.Inf\n",
            "a: .nan\n",
            "a: 1e999\n",
            "a: !!int x\n",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, Error::Syntax { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("test.yaml:1:"), "{bad}: {err}");
        }
    }

    #[test]
    fn aliases_and_merges() {
        let doc =
            parse("a: &a [1, 2]\nb: *a\nbase: &b {x: 1, y: 2}\nitem:\n  y: 0\n  <<: *b\n").unwrap();
        assert_eq!(doc.value["b"], serde_json::json!([1, 2]));
        // What an alias brings in is reported at the alias.
        assert_eq!(doc.pos("/b/1"), Pos::new(2, 4));
        // An explicit key wins over a merged one, wherever the merge is.
        assert_eq!(doc.value["item"], serde_json::json!({"y": 0, "x": 1}));
        assert_eq!(doc.pos("/item/y"), Pos::new(5, 6));
        assert_eq!(doc.pos("/item/x"), Pos::new(6, 7));
        let many = parse("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n").unwrap();
        let key = parse("&k name: a.b\nalso: *k\n*k : again\n")
            .unwrap_err()
            .to_string();
        assert!(key.contains("duplicate key `name`"), "{key}");
        let key = parse("&k name: a.b\nalso: *k\n").unwrap();
        assert_eq!(key.value["also"], "name");
        assert_eq!(many.value["c"], serde_json::json!({"x": 1, "y": 2}));
        for (bad, expect) in [
            (
                "a: &a {x: 1}\nb:\n  <<: *a\n  x: 2\n  x: 3\n",
                "duplicate key `x`",
            ),
            ("a: &a [*a]\n", "no anchor"),
            ("a: 1\n<<: 5\n", "merge key"),
            ("? [a]\n: 1\n", "must be text"),
            ("a: 1\n---\nb: 2\n", "second YAML document"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(expect), "{bad}: {err}");
        }
    }

    #[test]
    fn hostile_anchors_are_bounded() {
        // Nested anchors each keep a copy: past the budget a copy is not kept, and only an
        // alias to it is refused.
        let items = vec!["x"; 90_000].join(",");
        let nested = format!("a: &l3 [&l2 [&l1 [{items}]]]\n");
        assert!(parse(&nested).is_ok());
        assert!(parse(&format!("{nested}b: *l1\n")).is_ok());
        let err = parse(&format!("{nested}b: *l3\n")).unwrap_err().to_string();
        assert!(err.contains("too large to copy"), "{err}");
        // An alias cannot nest deeper than the limit by expanding where it is used.
        let deep = format!(
            "a: &a {}1{}\nb: {}*a{}\n",
            "[".repeat(40),
            "]".repeat(40),
            "[".repeat(40),
            "]".repeat(40)
        );
        let err = parse(&deep).unwrap_err().to_string();
        assert!(
            err.contains("nesting too deep once the alias is expanded"),
            "{err}"
        );
        assert!(err.contains("test.yaml:2:"), "{err}");
        let two_merges = "a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n";
        assert!(
            parse(two_merges)
                .unwrap_err()
                .to_string()
                .contains("duplicate key `<<`")
        );
    }

    #[test]
    fn tags_and_aliased_keys() {
        let doc = parse("&k true: x\nc: *k\nn: &n 1\n*n : one\nb: !!binary 12\nt: !!timestamp 2001-12-14\nq: !!str <<\n").unwrap();
        assert_eq!(doc.value["c"], true);
        assert_eq!(doc.value["1"], "one");
        assert_eq!(doc.value["b"], "12");
        assert_eq!(doc.value["t"], "2001-12-14");
        assert_eq!(doc.value["q"], "<<");
        let literal = parse("!!str <<: 1\n").unwrap();
        assert_eq!(literal.value["<<"], 1);
        for bad in ["a: !!null x\n", "a: !!map x\n", "a: !!bool yes\n"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("is tagged"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_alias_of_a_long_text_is_counted_by_its_bytes() {
        let long = "x".repeat(1 << 20);
        let text = format!("a: &a \"{long}\"\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n");
        let err = parse(&text).unwrap_err();
        assert!(err.to_string().contains("alias bomb"), "{err}");
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

    #[test]
    fn json_refuses_a_repeated_key_with_its_line() {
        let name = SourceName::Named("r.json".into());
        let err =
            parse_json(&name, "{\n  \"a\": 1,\n  \"b\": {\"x\": 1, \"x\": 2}\n}").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("r.json:3:"), "{msg}");
        assert!(msg.contains("duplicate key `x`"), "{msg}");
        let err = json_from_slice(br#"[{"skills": []}, {"skills": [], "skills": 1}]"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key `skills`"), "{err}");
        // Escapes do not hide a repeat: "\u0061" is "a".
        for text in [r#"{"a": 1, "\u0061": 2}"#, r#"{"k": [{"n": 1, "n": 1}]}"#] {
            assert!(json_from_str(text).is_err(), "{text}");
            assert!(check_unique_keys(text).is_err(), "{text}");
        }
        let many: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {i}")).collect();
        let unique = format!("{{{}}}", many.join(","));
        assert!(check_unique_keys(&unique).is_ok());
        assert_eq!(
            json_from_str(&unique).unwrap().as_object().unwrap().len(),
            100
        );
        let repeated = format!("{{{}, \"k50\": 0}}", many.join(","));
        assert!(check_unique_keys(&repeated).is_err());
        assert!(json_from_str(&repeated).is_err());
        // The same value as serde_json's own reader when nothing repeats.
        let text = r#"{"b": [1, -2, 3.5, 1e300, "x", null, true], "a": {"z": {}, "y": []}}"#;
        assert_eq!(
            json_from_str(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}
