//! Field-level differences between two registries.
//!
//! Skills are matched by `name` (a registry naming one skill twice is refused when read). Inside
//! an entry, objects are compared key by key, lists of objects that each carry a unique `name`
//! are matched by that name (reordering is not a change, an insertion does not shift every later
//! item), other lists of objects by position, and lists of scalars (`permissions`, `tags`) as a
//! whole value. The keys the registry adds itself (`updated_at`, `generated_at`,
//! `content_hash`) are never differences. Each difference also knows how to express itself as
//! an RFC 6902 operation on the old registry, emitted in an order that applies cleanly
//! (changes first, removals from the highest index down, additions appended).

use std::collections::HashMap;

use betty_core::history::{Change, ChangeAction};
use betty_core::manifest::Kind;
use betty_core::registry::{REGISTRY_ADDED_KEYS, without_registry_keys};
use betty_core::source::escape_pointer;
use serde_json::{Map, Value, json};

/// One field that differs inside a skill.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// Display path: `status`, `entrypoints[0].permissions`, `inputs[name=source].required`.
    pub path: String,
    /// `Added` or `Removed` for a key or list item only on one side; `Changed` otherwise.
    pub action: ChangeAction,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// JSON Pointer inside the old entry where the RFC 6902 operation applies
    /// (`.../-` to append an item).
    pub pointer: String,
}

impl FieldChange {
    /// The top-level field of the entry this change is in (`inputs` for `inputs[name=x].type`).
    pub fn top_field(&self) -> &str {
        let end = self.path.find(['.', '[']).unwrap_or(self.path.len());
        &self.path[..end]
    }
}

/// One skill that differs.
#[derive(Clone, Debug, PartialEq)]
pub struct SkillDiff {
    pub name: String,
    pub action: ChangeAction,
    /// The entry before and after, without registry-added keys.
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// Index of the entry in the old registry's list (for patches).
    pub old_index: Option<usize>,
    /// Empty for a skill added or removed.
    pub fields: Vec<FieldChange>,
}

impl SkillDiff {
    pub fn old_version(&self) -> Option<&str> {
        self.old.as_ref()?.get("version")?.as_str()
    }
    pub fn new_version(&self) -> Option<&str> {
        self.new.as_ref()?.get("version")?.as_str()
    }
}

/// Every difference between two registries: changed skills first, then added, then removed,
/// each group by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegistryDiff {
    pub kind: Option<Kind>,
    pub skills: Vec<SkillDiff>,
    /// Skills present and equal on both sides.
    pub unchanged: usize,
}

impl RegistryDiff {
    pub fn is_empty(&self) -> bool {
        self.skills.is_empty()
    }

    pub fn count(&self, action: ChangeAction) -> usize {
        self.skills.iter().filter(|s| s.action == action).count()
    }

    /// Keeps only the skill called `name`.
    pub fn only_skill(mut self, name: &str) -> RegistryDiff {
        self.skills.retain(|s| s.name == name);
        self
    }

    /// The seed's history records: one per skill added or removed, one per field changed.
    pub fn to_changes(&self, changed_by: &str) -> Vec<Change> {
        let mut out = Vec::new();
        let change = |skill: &str,
                      action,
                      field: Option<String>,
                      old: Option<&Value>,
                      new: Option<&Value>| Change {
            skill: skill.to_string(),
            action,
            field,
            old_value: old.cloned().unwrap_or(Value::Null),
            new_value: new.cloned().unwrap_or(Value::Null),
            changed_by: changed_by.to_string(),
            extra: Map::new(),
        };
        for s in &self.skills {
            match s.action {
                ChangeAction::Changed => {
                    for f in &s.fields {
                        out.push(change(
                            &s.name,
                            ChangeAction::Changed,
                            Some(f.path.clone()),
                            f.old.as_ref(),
                            f.new.as_ref(),
                        ));
                    }
                }
                action => out.push(change(
                    &s.name,
                    action,
                    None,
                    s.old.as_ref(),
                    s.new.as_ref(),
                )),
            }
        }
        out
    }

    /// RFC 6902 operations turning the old registry into the new one (registry-added keys aside).
    pub fn to_patch(&self, kind: Kind) -> Value {
        let list = format!("/{}", kind.plural());
        let mut ops = Vec::new();
        for s in self
            .skills
            .iter()
            .filter(|s| s.action == ChangeAction::Changed)
        {
            let Some(i) = s.old_index else { continue };
            for f in &s.fields {
                let path = format!("{list}/{i}{}", f.pointer);
                ops.push(match (f.action, &f.new) {
                    (ChangeAction::Removed, _) | (_, None) => json!({"op": "remove", "path": path}),
                    (ChangeAction::Added, Some(v)) => {
                        json!({"op": "add", "path": path, "value": v})
                    }
                    (ChangeAction::Changed, Some(v)) => {
                        json!({"op": "replace", "path": path, "value": v})
                    }
                });
            }
        }
        let mut removed: Vec<usize> = self
            .skills
            .iter()
            .filter(|s| s.action == ChangeAction::Removed)
            .filter_map(|s| s.old_index)
            .collect();
        removed.sort_unstable_by(|a, b| b.cmp(a));
        for i in removed {
            ops.push(json!({"op": "remove", "path": format!("{list}/{i}")}));
        }
        for s in self
            .skills
            .iter()
            .filter(|s| s.action == ChangeAction::Added)
        {
            if let Some(v) = &s.new {
                ops.push(json!({"op": "add", "path": format!("{list}/-"), "value": v}));
            }
        }
        Value::Array(ops)
    }
}

/// Entries by name, the last one winning, with their index.
fn by_name(list: &[Value]) -> HashMap<&str, (usize, &Value)> {
    let mut map = HashMap::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        if let Some(n) = e.get("name").and_then(Value::as_str) {
            map.insert(n, (i, e));
        }
    }
    map
}

/// The entry list of a registry value (`skills` or `agents`).
pub fn entries(registry: &Value, kind: Kind) -> &[Value] {
    registry
        .get(kind.plural())
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Compares two registries of the same kind.
pub fn diff_registries(old: &Value, new: &Value, kind: Kind) -> RegistryDiff {
    let (old_list, new_list) = (entries(old, kind), entries(new, kind));
    let (old_map, new_map) = (by_name(old_list), by_name(new_list));
    let mut changed = Vec::new();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut unchanged = 0;
    for (name, (i, old_entry)) in &old_map {
        match new_map.get(name) {
            None => removed.push(SkillDiff {
                name: name.to_string(),
                action: ChangeAction::Removed,
                old: Some(without_registry_keys(old_entry)),
                new: None,
                old_index: Some(*i),
                fields: Vec::new(),
            }),
            Some((_, new_entry)) => {
                let fields = diff_entries(old_entry, new_entry);
                if fields.is_empty() {
                    unchanged += 1;
                } else {
                    changed.push(SkillDiff {
                        name: name.to_string(),
                        action: ChangeAction::Changed,
                        old: Some(without_registry_keys(old_entry)),
                        new: Some(without_registry_keys(new_entry)),
                        old_index: Some(*i),
                        fields,
                    });
                }
            }
        }
    }
    for (name, (_, new_entry)) in &new_map {
        if !old_map.contains_key(name) {
            added.push(SkillDiff {
                name: name.to_string(),
                action: ChangeAction::Added,
                old: None,
                new: Some(without_registry_keys(new_entry)),
                old_index: None,
                fields: Vec::new(),
            });
        }
    }
    RegistryDiff::assemble(kind, changed, added, removed, unchanged)
}

/// A registry read without building its entries: each entry's name and raw JSON text.
/// Comparing two of these parses only the entries whose text differs, which is what makes a
/// 10,000-skill comparison fast (most entries are byte-identical between versions).
#[derive(Debug)]
pub struct RawRegistry<'a> {
    pub kind: Kind,
    pub entries: Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>,
}

#[derive(serde::Deserialize)]
struct RawTop<'a> {
    #[serde(borrow, default)]
    skills: Option<Vec<&'a serde_json::value::RawValue>>,
    #[serde(borrow, default)]
    agents: Option<Vec<&'a serde_json::value::RawValue>>,
}

#[derive(serde::Deserialize)]
struct RawNamed<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
}

impl<'a> RawRegistry<'a> {
    /// `None` when the text is not a well-formed registry (the caller then reads it the slow
    /// way, which says exactly what is wrong).
    pub fn parse(text: &'a str) -> Option<RawRegistry<'a>> {
        let top: RawTop<'a> = serde_json::from_str(text).ok()?;
        let (kind, list) = match (top.skills, top.agents) {
            (Some(l), _) => (Kind::Skill, l),
            (None, Some(l)) => (Kind::Agent, l),
            (None, None) => return None,
        };
        let mut entries = Vec::with_capacity(list.len());
        for raw in list {
            let name = match leading_name(raw.get()) {
                Some(n) => std::borrow::Cow::Borrowed(n),
                None => serde_json::from_str::<RawNamed<'a>>(raw.get()).ok()?.name,
            };
            entries.push((name, raw));
        }
        // Two entries of one name: the slow reader says which (`Registry::from_value`).
        if betty_core::registry::repeated_name(entries.iter().map(|(n, _)| n.as_ref())).is_some() {
            return None;
        }
        Some(RawRegistry { kind, entries })
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }
}

/// The name of an entry whose first key is `"name"` with a plain string (no escapes): the
/// usual layout, read without scanning the rest of the entry. Anything else is `None`.
fn leading_name(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"name\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// An entry that differs, parsed; a key repeated in it is an error (an entry byte-identical
/// on both sides is never parsed: the comparison does not depend on which copy a reader keeps,
/// and checking every entry of two 10,000-skill registries would double the compare's cost).
fn parse_raw(name: &str, raw: &serde_json::value::RawValue) -> Result<Value, String> {
    betty_core::source::json_from_str(raw.get()).map_err(|e| format!("skill `{name}`: {e}"))
}

fn raw_index<'r>(
    r: &'r RawRegistry<'_>,
) -> HashMap<&'r str, (usize, &'r serde_json::value::RawValue)> {
    let mut m = HashMap::with_capacity(r.entries.len());
    for (i, (n, raw)) in r.entries.iter().enumerate() {
        m.insert(n.as_ref(), (i, *raw));
    }
    m
}

/// [`diff_registries`] over raw registries: the same result, parsing only what differs.
pub fn diff_raw(old: &RawRegistry<'_>, new: &RawRegistry<'_>) -> Result<RegistryDiff, String> {
    let kind = old.kind;
    let (old_map, new_map) = (raw_index(old), raw_index(new));
    let (mut changed, mut added, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    let mut unchanged = 0;
    for (name, (i, a)) in &old_map {
        match new_map.get(name) {
            None => removed.push(SkillDiff {
                name: name.to_string(),
                action: ChangeAction::Removed,
                old: Some(without_registry_keys(&parse_raw(name, a)?)),
                new: None,
                old_index: Some(*i),
                fields: Vec::new(),
            }),
            Some((_, b)) if a.get() == b.get() => unchanged += 1,
            Some((_, b)) => {
                let (x, y) = (parse_raw(name, a)?, parse_raw(name, b)?);
                let fields = diff_entries(&x, &y);
                if fields.is_empty() {
                    unchanged += 1;
                } else {
                    changed.push(SkillDiff {
                        name: name.to_string(),
                        action: ChangeAction::Changed,
                        old: Some(without_registry_keys(&x)),
                        new: Some(without_registry_keys(&y)),
                        old_index: Some(*i),
                        fields,
                    });
                }
            }
        }
    }
    for (name, (_, b)) in &new_map {
        if !old_map.contains_key(name) {
            added.push(SkillDiff {
                name: name.to_string(),
                action: ChangeAction::Added,
                old: None,
                new: Some(without_registry_keys(&parse_raw(name, b)?)),
                old_index: None,
                fields: Vec::new(),
            });
        }
    }
    Ok(RegistryDiff::assemble(
        kind, changed, added, removed, unchanged,
    ))
}

impl RegistryDiff {
    /// Changed, then added, then removed skills, each group by name: the order every output uses.
    fn assemble(
        kind: Kind,
        mut changed: Vec<SkillDiff>,
        mut added: Vec<SkillDiff>,
        mut removed: Vec<SkillDiff>,
        unchanged: usize,
    ) -> RegistryDiff {
        for group in [&mut changed, &mut added, &mut removed] {
            group.sort_by(|a, b| a.name.cmp(&b.name));
        }
        changed.append(&mut added);
        changed.append(&mut removed);
        RegistryDiff {
            kind: Some(kind),
            skills: changed,
            unchanged,
        }
    }
}

/// The field changes between two entries of one skill.
pub fn diff_entries(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let skip = |k: &str| REGISTRY_ADDED_KEYS.contains(&k);
            diff_objects(a, b, "", "", &skip, &mut out);
        }
        _ => diff_value(old, new, "", "", &mut out),
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn diff_objects(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    path: &str,
    ptr: &str,
    skip: &dyn Fn(&str) -> bool,
    out: &mut Vec<FieldChange>,
) {
    for (k, va) in a {
        if skip(k) {
            continue;
        }
        let p = join(path, k);
        let q = format!("{ptr}/{}", escape_pointer(k));
        match b.get(k) {
            Some(vb) => diff_value(va, vb, &p, &q, out),
            None => out.push(FieldChange {
                path: p,
                action: ChangeAction::Removed,
                old: Some(va.clone()),
                new: None,
                pointer: q,
            }),
        }
    }
    for (k, vb) in b {
        if skip(k) || a.contains_key(k) {
            continue;
        }
        out.push(FieldChange {
            path: join(path, k),
            action: ChangeAction::Added,
            old: None,
            new: Some(vb.clone()),
            pointer: format!("{ptr}/{}", escape_pointer(k)),
        });
    }
}

/// The `name` of every item, if every item is an object with a unique string `name`.
fn item_names(list: &[Value]) -> Option<Vec<&str>> {
    let mut names = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for v in list {
        let n = v.as_object()?.get("name")?.as_str()?;
        if !seen.insert(n) {
            return None;
        }
        names.push(n);
    }
    Some(names)
}

fn diff_value(a: &Value, b: &Value, path: &str, ptr: &str, out: &mut Vec<FieldChange>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => diff_objects(x, y, path, ptr, &|_| false, out),
        (Value::Array(x), Value::Array(y)) => diff_lists(x, y, path, ptr, out),
        _ => out.push(FieldChange {
            path: path.to_string(),
            action: ChangeAction::Changed,
            old: Some(a.clone()),
            new: Some(b.clone()),
            pointer: ptr.to_string(),
        }),
    }
}

fn diff_lists(x: &[Value], y: &[Value], path: &str, ptr: &str, out: &mut Vec<FieldChange>) {
    let item =
        |p: String, action, old: Option<&Value>, new: Option<&Value>, q: String| FieldChange {
            path: p,
            action,
            old: old.cloned(),
            new: new.cloned(),
            pointer: q,
        };
    if let (Some(xn), Some(yn)) = (item_names(x), item_names(y)) {
        let yi: HashMap<&str, usize> = yn.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let xs: std::collections::HashSet<&str> = xn.iter().copied().collect();
        let mut gone = Vec::new();
        for (i, n) in xn.iter().enumerate() {
            let p = format!("{path}[name={n}]");
            match yi.get(n) {
                Some(&j) => diff_value(&x[i], &y[j], &p, &format!("{ptr}/{i}"), out),
                None => gone.push((i, p)),
            }
        }
        for (i, p) in gone.into_iter().rev() {
            out.push(item(
                p,
                ChangeAction::Removed,
                Some(&x[i]),
                None,
                format!("{ptr}/{i}"),
            ));
        }
        for (j, n) in yn.iter().enumerate() {
            if !xs.contains(n) {
                out.push(item(
                    format!("{path}[name={n}]"),
                    ChangeAction::Added,
                    None,
                    Some(&y[j]),
                    format!("{ptr}/-"),
                ));
            }
        }
        return;
    }
    let objects = |l: &[Value]| l.iter().all(Value::is_object);
    if objects(x) && objects(y) {
        let common = x.len().min(y.len());
        for i in 0..common {
            diff_value(
                &x[i],
                &y[i],
                &format!("{path}[{i}]"),
                &format!("{ptr}/{i}"),
                out,
            );
        }
        for i in (common..x.len()).rev() {
            out.push(item(
                format!("{path}[{i}]"),
                ChangeAction::Removed,
                Some(&x[i]),
                None,
                format!("{ptr}/{i}"),
            ));
        }
        for (i, v) in y.iter().enumerate().skip(common) {
            out.push(item(
                format!("{path}[{i}]"),
                ChangeAction::Added,
                None,
                Some(v),
                format!("{ptr}/-"),
            ));
        }
        return;
    }
    out.push(item(
        path.to_string(),
        ChangeAction::Changed,
        Some(&Value::Array(x.to_vec())),
        Some(&Value::Array(y.to_vec())),
        ptr.to_string(),
    ));
}

/// Applies an RFC 6902 patch of `add`, `remove` and `replace` operations (what
/// [`RegistryDiff::to_patch`] writes); used to check patches round-trip.
pub fn apply_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
    for op in patch.as_array().ok_or("a patch is a list of operations")? {
        let kind = op["op"].as_str().ok_or("operation without `op`")?;
        let path = op["path"].as_str().ok_or("operation without `path`")?;
        let (parent, last) = path.rsplit_once('/').ok_or("bad path")?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = doc
            .pointer_mut(parent)
            .ok_or_else(|| format!("no `{parent}`"))?;
        match (target, kind) {
            (Value::Object(m), "add" | "replace") => {
                m.insert(last, op["value"].clone());
            }
            (Value::Object(m), "remove") => {
                m.remove(&last).ok_or_else(|| format!("no `{path}`"))?;
            }
            (Value::Array(a), "add") if last == "-" => a.push(op["value"].clone()),
            (Value::Array(a), k) => {
                let i: usize = last.parse().map_err(|_| format!("bad index in `{path}`"))?;
                if i >= a.len() {
                    return Err(format!("index out of range in `{path}`"));
                }
                match k {
                    "replace" => a[i] = op["value"].clone(),
                    "remove" => {
                        a.remove(i);
                    }
                    "add" => a.insert(i, op["value"].clone()),
                    _ => return Err(format!("unsupported op `{k}`")),
                }
            }
            _ => return Err(format!("cannot apply `{kind}` at `{path}`")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(skills: Value) -> Value {
        json!({"registry_version": "1.0.0", "generated_at": "2025-01-01T00:00:00Z", "skills": skills})
    }

    fn paths(d: &RegistryDiff) -> Vec<String> {
        d.skills
            .iter()
            .flat_map(|s| {
                let head = format!("{:?} {}", s.action, s.name);
                std::iter::once(head).chain(
                    s.fields
                        .iter()
                        .map(|f| format!("  {:?} {}", f.action, f.path)),
                )
            })
            .collect()
    }

    #[test]
    fn registry_added_keys_are_never_changes() {
        let a = reg(json!([{"name": "a.b", "version": "1.0.0", "updated_at": "x"}]));
        let mut b = reg(json!([{"name": "a.b", "version": "1.0.0", "updated_at": "y"}]));
        b["generated_at"] = json!("later");
        b["content_hash"] = json!("abc");
        let d = diff_registries(&a, &b, Kind::Skill);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn named_items_match_by_name_and_nested_paths_show() {
        let a = reg(json!([
            {"name": "w.v", "status": "draft", "inputs": [{"name": "x", "required": false}, {"name": "y"}],
             "entrypoints": [{"command": "/w", "permissions": ["filesystem:read"]}]},
            {"name": "gone.skill"}
        ]));
        let b = reg(json!([
            {"name": "new.skill"},
            {"name": "w.v", "status": "active", "inputs": [{"name": "z"}, {"name": "x", "required": true}],
             "entrypoints": [{"command": "/w", "permissions": ["filesystem:read", "network:http"]}]}
        ]));
        let d = diff_registries(&a, &b, Kind::Skill);
        assert_eq!(
            paths(&d),
            [
                "Changed w.v",
                "  Changed status",
                "  Changed inputs[name=x].required",
                "  Removed inputs[name=y]",
                "  Added inputs[name=z]",
                "  Changed entrypoints[0].permissions",
                "Added new.skill",
                "Removed gone.skill",
            ]
        );
        // The patch turns the old registry into the new one.
        let mut patched = a.clone();
        apply_patch(&mut patched, &d.to_patch(Kind::Skill)).unwrap();
        assert!(diff_registries(&patched, &b, Kind::Skill).is_empty());
        let changes = d.to_changes("me");
        assert_eq!(changes[0].field.as_deref(), Some("status"));
        assert_eq!(changes[0].old_value, "draft");
        assert_eq!(changes.last().unwrap().action, ChangeAction::Removed);
    }

    #[test]
    fn the_raw_fast_path_gives_the_same_diff() {
        let a = reg(
            json!([{"name": "a", "v": 1, "updated_at": "x"}, {"name": "b", "l": [{"name": "p"}]}, {"name": "c"}, {"name": "d\\u00e9"}]),
        );
        let b = reg(
            json!([{"name": "b", "l": [{"name": "q"}]}, {"name": "a", "v": 1, "updated_at": "y"}, {"name": "e"}, {"name": "d\\u00e9"}]),
        );
        let (ta, tb) = (a.to_string(), b.to_string());
        let (ra, rb) = (
            RawRegistry::parse(&ta).unwrap(),
            RawRegistry::parse(&tb).unwrap(),
        );
        assert_eq!(
            diff_raw(&ra, &rb).unwrap(),
            diff_registries(&a, &b, Kind::Skill)
        );
        assert_eq!(diff_raw(&ra, &rb).unwrap().unchanged, 2);
        // A key repeated in an entry that differs is an error naming the skill.
        let dup = r#"{"skills": [{"name": "a", "v": 1, "v": 2}]}"#;
        let err = diff_raw(&ra, &RawRegistry::parse(dup).unwrap()).unwrap_err();
        assert!(
            err.contains("skill `a`") && err.contains("duplicate key `v`"),
            "{err}"
        );
        assert!(RawRegistry::parse("{\"skills\": [{\"name\": 1}]}").is_none());
        assert!(RawRegistry::parse("{\"skills\": [}").is_none());
        assert!(RawRegistry::parse("[]").is_none());
        assert_eq!(
            leading_name("{\n  \"name\": \"a.b\",\n  \"v\": 1}"),
            Some("a.b")
        );
        assert_eq!(leading_name("{\"name\":\"a\\\"b\"}"), None);
        assert_eq!(leading_name("{\"version\": \"1\", \"name\": \"x\"}"), None);
        let odd = "{\"skills\": [{\"v\": 1, \"name\": \"late\"}, {\"name\": \"q\\\"uote\"}]}";
        let names: Vec<String> = RawRegistry::parse(odd)
            .unwrap()
            .entries
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["late", "q\"uote"]);
    }

    #[test]
    fn reordering_named_items_or_skills_is_not_a_change() {
        let a =
            reg(json!([{"name": "a", "inputs": [{"name": "x"}, {"name": "y"}]}, {"name": "b"}]));
        let b =
            reg(json!([{"name": "b"}, {"name": "a", "inputs": [{"name": "y"}, {"name": "x"}]}]));
        assert!(diff_registries(&a, &b, Kind::Skill).is_empty());
    }

    #[test]
    fn positional_lists_and_patches_apply_in_order() {
        let a = reg(
            json!([{"name": "a", "entrypoints": [{"command": "/1"}, {"command": "/2"}, {"command": "/3"}], "tags": ["x"]},
                            {"name": "b"}, {"name": "c"}, {"name": "d"}]),
        );
        let b = reg(
            json!([{"name": "a", "entrypoints": [{"command": "/1", "runtime": "rust"}], "tags": ["x", "y"], "new~/key": 1},
                            {"name": "c"}, {"name": "e"}]),
        );
        let d = diff_registries(&a, &b, Kind::Skill);
        let mut patched = a.clone();
        apply_patch(&mut patched, &d.to_patch(Kind::Skill)).unwrap();
        assert!(
            diff_registries(&patched, &b, Kind::Skill).is_empty(),
            "{patched}"
        );
        assert_eq!(d.count(ChangeAction::Removed), 2);
    }
}
