//! Semantic-versioning rules for skill changes, in the spirit of cargo-semver-checks.
//!
//! [`classify`] compares two entries of one skill through betty-core's normalised model
//! (inputs and outputs in either upstream form, permissions in any spelling) and lists each
//! change with the bump it needs ([`RULES`] is the table the README prints). [`check`] then
//! flags a bump smaller than the changes need, a version that goes down, a permission
//! escalation (a new permission, or a wider one: bare `filesystem` is wider than
//! `filesystem:read`) and a skill removed from the registry.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use betty_core::history::ChangeAction;
use betty_core::manifest::{Kind, Manifest, Port, scalar_text};
use betty_core::permission::Permission;
use betty_core::source::SourceName;
use serde_json::Value;

use crate::diff::{RegistryDiff, SkillDiff};

/// How big a version bump a change needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    None,
    Patch,
    Minor,
    Major,
}

impl Bump {
    pub fn as_str(self) -> &'static str {
        match self {
            Bump::None => "none",
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        }
    }
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules, as documented: (change, bump, why).
pub const RULES: &[(&str, Bump, &str)] = &[
    (
        "skill removed from the registry",
        Bump::Major,
        "callers break; flagged by `check` (`--allow-removals` to accept)",
    ),
    ("input removed", Bump::Major, "callers passing it break"),
    (
        "input added, required and without default",
        Bump::Major,
        "existing callers do not pass it",
    ),
    (
        "input made required",
        Bump::Major,
        "existing callers may not pass it",
    ),
    (
        "input type changed",
        Bump::Major,
        "existing values may no longer fit",
    ),
    (
        "output removed, or its type changed",
        Bump::Major,
        "consumers of it break",
    ),
    (
        "permission removed or narrowed",
        Bump::Major,
        "what the skill could do, it no longer can",
    ),
    (
        "entrypoint removed, or its command changed",
        Bump::Major,
        "invocations break",
    ),
    (
        "status changed to archived/removed/disabled",
        Bump::Major,
        "the skill can no longer be used",
    ),
    (
        "input added, optional or with a default",
        Bump::Minor,
        "new capability, old calls still work",
    ),
    (
        "input made optional; default changed",
        Bump::Minor,
        "behaviour changes compatibly",
    ),
    ("output added", Bump::Minor, "new capability"),
    (
        "permission added or widened",
        Bump::Minor,
        "also a permission escalation: `check` fails (`--allow-escalation` to accept)",
    ),
    (
        "entrypoint added; runtime changed",
        Bump::Minor,
        "new or different way to run",
    ),
    (
        "dependency added or removed",
        Bump::Minor,
        "changes what must be installed",
    ),
    (
        "status changed (other)",
        Bump::Minor,
        "lifecycle change (draft → active, → deprecated)",
    ),
    (
        "description, tags, handler, any other field",
        Bump::Patch,
        "documentation and internals",
    ),
];

/// One classified change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The top-level field concerned (`inputs`, `permissions`, ...).
    pub field: String,
    pub bump: Bump,
    pub reason: String,
    /// A new or wider permission.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub escalation: bool,
}

fn finding(field: &str, bump: Bump, reason: String) -> Finding {
    Finding {
        field: field.to_string(),
        bump,
        reason,
        escalation: false,
    }
}

fn manifest(entry: &Value, kind: Kind) -> Option<Manifest> {
    Manifest::from_value(
        kind,
        SourceName::Named("registry entry".into()),
        entry.clone(),
    )
    .ok()
}

/// Every change between two entries of one skill, with the bump each needs.
pub fn classify(old: &Value, new: &Value, kind: Kind) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(a), Some(b)) = (manifest(old, kind), manifest(new, kind)) else {
        return out;
    };
    ports(&a.inputs(), &b.inputs(), "inputs", &mut out);
    ports(&a.outputs(), &b.outputs(), "outputs", &mut out);
    permissions(&a, &b, &mut out);
    entrypoints(old, new, &mut out);
    dependencies(&a, &b, &mut out);
    if a.status() != b.status() {
        let to = b.status().unwrap_or("(none)");
        let bump = if matches!(to, "archived" | "removed" | "disabled") {
            Bump::Major
        } else {
            Bump::Minor
        };
        out.push(finding(
            "status",
            bump,
            format!("status {} → {to}", a.status().unwrap_or("(none)")),
        ));
    }
    let handled = [
        "name",
        "version",
        "inputs",
        "outputs",
        "permissions",
        "entrypoints",
        "dependencies",
        "status",
    ];
    let keys: BTreeSet<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|m| m.keys())
        .collect();
    for k in keys {
        if handled.contains(&k.as_str())
            || betty_core::registry::REGISTRY_ADDED_KEYS.contains(&k.as_str())
        {
            continue;
        }
        if old.get(k) != new.get(k) {
            out.push(finding(k, Bump::Patch, format!("`{k}` changed")));
        }
    }
    out
}

fn ports(old: &[Port], new: &[Port], field: &str, out: &mut Vec<Finding>) {
    let what = if field == "inputs" { "input" } else { "output" };
    let a: BTreeMap<&str, &Port> = old.iter().map(|p| (p.name.as_str(), p)).collect();
    let b: BTreeMap<&str, &Port> = new.iter().map(|p| (p.name.as_str(), p)).collect();
    for p in old {
        let name = &p.name.as_str();
        let Some(q) = b.get(name) else {
            out.push(finding(
                field,
                Bump::Major,
                format!("{what} `{name}` removed"),
            ));
            continue;
        };
        if p.kind != q.kind {
            out.push(finding(
                field,
                Bump::Major,
                format!(
                    "{what} `{name}` type {} → {}",
                    p.kind.as_deref().unwrap_or("(none)"),
                    q.kind.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        if field == "inputs" && p.required != q.required {
            if q.required && !q.has_default {
                out.push(finding(
                    field,
                    Bump::Major,
                    format!("input `{name}` made required"),
                ));
            } else {
                out.push(finding(
                    field,
                    Bump::Minor,
                    format!("input `{name}` made optional"),
                ));
            }
        }
        if p.has_default != q.has_default {
            out.push(finding(
                field,
                Bump::Minor,
                format!("{what} `{name}` default changed"),
            ));
        }
        if p.description != q.description {
            out.push(finding(
                field,
                Bump::Patch,
                format!("{what} `{name}` description changed"),
            ));
        }
    }
    for q in new {
        let name = &q.name.as_str();
        if a.contains_key(name) {
            continue;
        }
        if field == "inputs" && q.required && !q.has_default {
            out.push(finding(
                field,
                Bump::Major,
                format!("new required input `{name}`"),
            ));
        } else {
            out.push(finding(
                field,
                Bump::Minor,
                format!("new optional {what} `{name}`"),
            ));
        }
    }
}

/// Parsed permissions of a manifest (top level and entrypoints), keyed by canonical text.
fn permission_set(m: &Manifest) -> BTreeMap<String, Option<Permission>> {
    m.permissions()
        .into_iter()
        .map(|u| match u.parsed {
            Ok(p) => (p.canonical(), Some(p)),
            Err(_) => (u.text, None),
        })
        .collect()
}

fn covered(p: &Option<Permission>, text: &str, by: &BTreeMap<String, Option<Permission>>) -> bool {
    by.iter().any(|(t, q)| match (q, p) {
        (Some(q), Some(p)) => q.covers(p),
        _ => t == text,
    })
}

fn permissions(a: &Manifest, b: &Manifest, out: &mut Vec<Finding>) {
    let (old, new) = (permission_set(a), permission_set(b));
    for (text, p) in &new {
        if !covered(p, text, &old) {
            let narrower: Vec<&str> = old
                .iter()
                .filter(|(_, q)| matches!((p, q), (Some(p), Some(q)) if p.covers(q)))
                .map(|(t, _)| t.as_str())
                .collect();
            let reason = if narrower.is_empty() {
                format!("new permission `{text}`")
            } else {
                format!(
                    "wider permission `{text}` (was `{}`)",
                    narrower.join("`, `")
                )
            };
            out.push(Finding {
                field: "permissions".into(),
                bump: Bump::Minor,
                reason,
                escalation: true,
            });
        }
    }
    for (text, p) in &old {
        if !covered(p, text, &new) {
            out.push(finding(
                "permissions",
                Bump::Major,
                format!("permission `{text}` removed or narrowed"),
            ));
        }
    }
}

fn entrypoints(old: &Value, new: &Value, out: &mut Vec<Finding>) {
    let list = |v: &Value| -> BTreeMap<String, Value> {
        v.get("entrypoints")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let key = e
                            .get("command")
                            .map(scalar_text)
                            .unwrap_or_else(|| format!("#{i}"));
                        (key, e.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (a, b) = (list(old), list(new));
    for (cmd, e) in &a {
        let Some(f) = b.get(cmd) else {
            out.push(finding(
                "entrypoints",
                Bump::Major,
                format!("entrypoint `{cmd}` removed"),
            ));
            continue;
        };
        if e.get("runtime") != f.get("runtime") {
            out.push(finding(
                "entrypoints",
                Bump::Minor,
                format!("entrypoint `{cmd}` runtime changed"),
            ));
        }
        let rest = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("runtime");
                m.remove("permissions");
            }
            v
        };
        if rest(e) != rest(f) {
            out.push(finding(
                "entrypoints",
                Bump::Patch,
                format!("entrypoint `{cmd}` details changed"),
            ));
        }
    }
    for cmd in b.keys().filter(|c| !a.contains_key(*c)) {
        out.push(finding(
            "entrypoints",
            Bump::Minor,
            format!("new entrypoint `{cmd}`"),
        ));
    }
}

fn dependencies(a: &Manifest, b: &Manifest, out: &mut Vec<Finding>) {
    let set = |m: &Manifest| -> BTreeSet<String> {
        m.dependencies().into_iter().map(|(n, _)| n).collect()
    };
    let (x, y) = (set(a), set(b));
    for d in y.difference(&x) {
        out.push(finding(
            "dependencies",
            Bump::Minor,
            format!("new dependency `{d}`"),
        ));
    }
    for d in x.difference(&y) {
        out.push(finding(
            "dependencies",
            Bump::Minor,
            format!("dependency `{d}` removed"),
        ));
    }
}

/// A semantic version, leniently read (`1.2.3`, `1.2`, `v1.2.3-rc.1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SemVer {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
}

impl SemVer {
    pub fn parse(text: &str) -> Option<SemVer> {
        let t = text.trim().trim_start_matches('v');
        let (core, pre) = match t.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (t.split('+').next().unwrap_or(t), None),
        };
        let core = core.split('+').next().unwrap_or(core);
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty() || nums.len() > 3 {
            return None;
        }
        let mut n = [0u64; 3];
        for (i, s) in nums.iter().enumerate() {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n[i] = s.parse().ok()?;
        }
        Some(SemVer {
            major: n[0],
            minor: n[1],
            patch: n[2],
            pre,
        })
    }

    fn key(&self) -> (u64, u64, u64, bool, &str) {
        (
            self.major,
            self.minor,
            self.patch,
            self.pre.is_none(),
            self.pre.as_deref().unwrap_or(""),
        )
    }
}

/// The version went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the version goes down")]
pub struct VersionDown;

/// What bump going from `old` to `new` is, or `Err` when the version goes down.
/// Below 1.0.0 (cargo's rule) a minor bump is a major one and a patch bump a minor one.
pub fn bump_between(old: &SemVer, new: &SemVer) -> Result<Bump, VersionDown> {
    if new.key() < old.key() {
        return Err(VersionDown);
    }
    Ok(if new.key() == old.key() {
        Bump::None
    } else if new.major != old.major {
        Bump::Major
    } else if new.minor != old.minor {
        if old.major == 0 {
            Bump::Major
        } else {
            Bump::Minor
        }
    } else if new.patch != old.patch {
        if old.major == 0 {
            Bump::Minor
        } else {
            Bump::Patch
        }
    } else {
        Bump::Patch
    })
}

/// What `check` found wrong with one skill.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub skill: String,
    /// `bump-too-small`, `version-down`, `invalid-version`, `permission-escalation`, `skill-removed`.
    pub rule: &'static str,
    pub message: String,
}

/// One skill's verdict.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SkillVerdict {
    pub skill: String,
    pub action: ChangeAction,
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    pub required_bump: Bump,
    pub actual_bump: Option<Bump>,
    pub changes: Vec<Finding>,
}

/// Options for [`check`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    pub allow_escalation: bool,
    pub allow_removals: bool,
}

/// The verdict on one changed skill.
pub fn verdict(s: &SkillDiff, kind: Kind) -> SkillVerdict {
    let changes = match (&s.old, &s.new) {
        (Some(a), Some(b)) => classify(a, b, kind),
        _ => Vec::new(),
    };
    let required = match s.action {
        ChangeAction::Removed => Bump::Major,
        ChangeAction::Added => Bump::None,
        ChangeAction::Changed => changes.iter().map(|c| c.bump).max().unwrap_or(Bump::None),
    };
    let actual = match (
        s.old_version().and_then(SemVer::parse),
        s.new_version().and_then(SemVer::parse),
    ) {
        (Some(a), Some(b)) => bump_between(&a, &b).ok(),
        _ => None,
    };
    SkillVerdict {
        skill: s.name.clone(),
        action: s.action,
        old_version: s.old_version().map(str::to_string),
        new_version: s.new_version().map(str::to_string),
        required_bump: required,
        actual_bump: actual,
        changes,
    }
}

/// Checks every skill of a diff; returns the verdicts and the problems (exit 1 if any).
pub fn check(
    diff: &RegistryDiff,
    kind: Kind,
    opts: CheckOptions,
) -> (Vec<SkillVerdict>, Vec<Problem>) {
    let mut verdicts = Vec::new();
    let mut problems = Vec::new();
    for s in &diff.skills {
        let v = verdict(s, kind);
        let mut problem = |rule, message| {
            problems.push(Problem {
                skill: s.name.clone(),
                rule,
                message,
            })
        };
        match s.action {
            ChangeAction::Removed if !opts.allow_removals => problem(
                "skill-removed",
                format!(
                    "removed from the registry (was {}); a removal breaks its callers: deprecate it first, or pass `--allow-removals`",
                    v.old_version.as_deref().unwrap_or("unversioned")
                ),
            ),
            ChangeAction::Changed => {
                let (old_v, new_v) = (v.old_version.as_deref(), v.new_version.as_deref());
                let versions = format!(
                    "{} → {}",
                    old_v.unwrap_or("(none)"),
                    new_v.unwrap_or("(none)")
                );
                match (old_v.map(SemVer::parse), new_v.map(SemVer::parse)) {
                    (Some(Some(a)), Some(Some(b))) => match bump_between(&a, &b) {
                        Err(VersionDown) => {
                            problem("version-down", format!("version goes down ({versions})"))
                        }
                        Ok(actual) if actual < v.required_bump => {
                            let why: Vec<&str> = v
                                .changes
                                .iter()
                                .filter(|c| c.bump == v.required_bump)
                                .map(|c| c.reason.as_str())
                                .collect();
                            problem(
                                "bump-too-small",
                                format!(
                                    "needs a {} bump ({}), got {actual} ({versions}){}",
                                    v.required_bump,
                                    why.join("; "),
                                    if a.major == 0 {
                                        "; below 1.0.0 a 0.y → 0.(y+1) bump is major and 0.y.z → 0.y.(z+1) is minor"
                                    } else {
                                        ""
                                    }
                                ),
                            )
                        }
                        Ok(_) => {}
                    },
                    _ if v.required_bump > Bump::None => problem(
                        "invalid-version",
                        format!(
                            "version is not semver ({versions}); cannot tell whether the {} bump it needs was made",
                            v.required_bump
                        ),
                    ),
                    _ => {}
                }
                if !opts.allow_escalation {
                    for c in v.changes.iter().filter(|c| c.escalation) {
                        problem(
                            "permission-escalation",
                            format!(
                                "permission escalation: {}; needs review and approval, or pass `--allow-escalation`",
                                c.reason
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
        verdicts.push(v);
    }
    (verdicts, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff_registries;
    use serde_json::json;

    fn reasons(old: Value, new: Value) -> Vec<String> {
        classify(&old, &new, Kind::Skill)
            .into_iter()
            .map(|f| {
                format!(
                    "{} {}{}",
                    f.bump,
                    f.reason,
                    if f.escalation { " !" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn rules() {
        let base = json!({"name": "a.b", "version": "1.0.0", "description": "d",
            "inputs": [{"name": "src", "type": "string", "required": true}, "opt (string): x"],
            "outputs": [{"name": "report", "type": "object"}],
            "permissions": ["filesystem:read"], "status": "active"});
        let mut v = base.clone();
        v["inputs"] = json!([{"name": "src", "type": "string", "required": true}]);
        assert_eq!(reasons(base.clone(), v), ["major input `opt` removed"]);
        let mut v = base.clone();
        v["inputs"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "n", "required": true}));
        v["inputs"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "m"}));
        assert_eq!(
            reasons(base.clone(), v),
            [
                "major new required input `n`",
                "minor new optional input `m`"
            ]
        );
        let mut v = base.clone();
        v["outputs"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "log"}));
        v["description"] = json!("better");
        assert_eq!(
            reasons(base.clone(), v),
            [
                "minor new optional output `log`",
                "patch `description` changed"
            ]
        );
        let mut v = base.clone();
        v["permissions"] = json!(["filesystem.read"]);
        assert!(
            reasons(base.clone(), v).is_empty(),
            "spelling is not a change"
        );
        let mut v = base.clone();
        v["permissions"] = json!(["filesystem"]);
        assert_eq!(
            reasons(base.clone(), v),
            ["minor wider permission `filesystem` (was `filesystem.read`) !"]
        );
        let mut v = base.clone();
        v["permissions"] = json!([]);
        assert_eq!(
            reasons(base.clone(), v),
            ["major permission `filesystem.read` removed or narrowed"]
        );
        let wide = json!({"name": "a.b", "permissions": ["filesystem"]});
        let narrow = json!({"name": "a.b", "permissions": ["filesystem:read"]});
        assert_eq!(
            reasons(wide, narrow),
            ["major permission `filesystem` removed or narrowed"]
        );
    }

    #[test]
    fn bumps_and_zero_versions() {
        let b =
            |a: &str, c: &str| bump_between(&SemVer::parse(a).unwrap(), &SemVer::parse(c).unwrap());
        assert_eq!(b("1.2.3", "2.0.0"), Ok(Bump::Major));
        assert_eq!(b("1.2.3", "1.3.0"), Ok(Bump::Minor));
        assert_eq!(b("1.2.3", "1.2.4"), Ok(Bump::Patch));
        assert_eq!(b("0.1.0", "0.2.0"), Ok(Bump::Major));
        assert_eq!(b("0.1.0", "0.1.1"), Ok(Bump::Minor));
        assert_eq!(b("1.0.0-rc.1", "1.0.0"), Ok(Bump::Patch));
        assert_eq!(b("1.2.3", "1.2.3"), Ok(Bump::None));
        assert_eq!(b("1.2.3", "1.2.2"), Err(VersionDown));
        assert!(SemVer::parse("one").is_none());
        assert!(SemVer::parse("1.2.3.4").is_none());
    }

    #[test]
    fn check_flags_small_bumps_downgrades_escalations_and_removals() {
        let old = json!({"skills": [
            {"name": "a", "version": "1.0.0", "inputs": [{"name": "x"}]},
            {"name": "b", "version": "1.0.0", "permissions": ["filesystem:read"]},
            {"name": "c", "version": "2.0.0", "description": "d"},
            {"name": "d", "version": "1.0.0"},
            {"name": "ok", "version": "1.0.0", "description": "d"}
        ]});
        let new = json!({"skills": [
            {"name": "a", "version": "1.1.0", "inputs": []},
            {"name": "b", "version": "1.1.0", "permissions": ["filesystem:read", "network:http"]},
            {"name": "c", "version": "1.9.0", "description": "e"},
            {"name": "ok", "version": "1.0.1", "description": "e"}
        ]});
        let d = diff_registries(&old, &new, Kind::Skill);
        let (_, problems) = check(&d, Kind::Skill, CheckOptions::default());
        let rules: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.skill.as_str(), p.rule))
            .collect();
        assert_eq!(
            rules,
            [
                ("a", "bump-too-small"),
                ("b", "permission-escalation"),
                ("c", "version-down"),
                ("d", "skill-removed")
            ]
        );
        assert!(
            problems[0]
                .message
                .contains("needs a major bump (input `x` removed), got minor"),
            "{}",
            problems[0].message
        );
        let (_, none) = check(
            &d.clone().only_skill("b"),
            Kind::Skill,
            CheckOptions {
                allow_escalation: true,
                allow_removals: true,
            },
        );
        assert!(none.is_empty());
    }
}
