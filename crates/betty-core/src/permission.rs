//! Permissions, parsed and normalised so that every spelling of one permission is one value.
//!
//! On disk upstream writes `filesystem:read`, the design writes `filesystem.read`; both parse to
//! the same [`Permission`]. A bare domain (`filesystem`) means every action of that domain, and
//! the legacy bare actions `read`/`write` are filesystem actions. A third part is a scope: a path
//! for the filesystem (`filesystem:read:/workspace/data`, legacy `read:/etc/shadow`), a host for
//! the network. Unknown domains or actions are kept and flagged, never silently accepted.

use std::fmt;

/// Domains and the actions each knows. A permission outside these is flagged `unknown`.
pub const KNOWN: &[(&str, &[&str])] = &[
    ("filesystem", &["read", "write", "delete", "execute"]),
    ("network", &["http", "https", "connect", "unrestricted"]),
    ("process", &["execute", "spawn"]),
    ("registry", &["read", "write"]),
    ("secrets", &["read", "write"]),
    ("stdout", &["write"]),
    ("env", &["read", "write"]),
    ("database", &["read", "write"]),
];

/// Longest permission accepted, as written and as normalised.
const MAX_LEN: usize = 512;

/// One normalised permission.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// `filesystem`, `network`, ...; lowercase.
    pub domain: String,
    /// `read`, `http`, ...; `None` for a bare domain, which means every action.
    pub action: Option<String>,
    /// A path or host the permission is limited to, if any.
    pub scope: Option<String>,
    /// The text as written.
    pub raw: String,
}

/// Why a permission string could not be parsed at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("empty permission")]
    Empty,
    #[error("permission `{0}` has characters outside `a-z 0-9 _ - . : / * ~`")]
    BadCharacters(String),
    #[error("permission `{0}` is longer than 512 characters once normalised")]
    TooLong(String),
    #[error(
        "permission `{0}` names no domain; write `domain[.action][:scope]` (`filesystem.read`)"
    )]
    NoDomain(String),
}

impl Permission {
    /// Parses any accepted spelling.
    pub fn parse(text: &str) -> Result<Permission, PermissionError> {
        let raw = text.to_string();
        let t = text.trim();
        if t.is_empty() {
            return Err(PermissionError::Empty);
        }
        if t.len() > MAX_LEN
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:/*~@+=,".contains(c))
        {
            return Err(PermissionError::BadCharacters(raw));
        }
        let lower = t.to_ascii_lowercase();
        // The domain ends at the first ':' or '.'; the action runs to the next ':'; what
        // follows is the scope (a path may contain dots, so only ':' ends an action).
        let (first, rest) = match lower.find([':', '.']) {
            Some(i) => (lower[..i].to_string(), Some(lower[i + 1..].to_string())),
            None => (lower.clone(), None),
        };
        let (domain, action, scope) = match (first.as_str(), rest) {
            // Legacy bare actions are filesystem actions: `read`, `write`, `read:/etc/shadow`.
            ("read" | "write" | "delete", rest) => ("filesystem".to_string(), Some(first), rest),
            (_, None) => (first, None, None),
            (_, Some(r)) => match r.find(':') {
                Some(j) => (
                    first,
                    Some(r[..j].to_string()),
                    Some(r[j + 1..].to_string()),
                ),
                None => (first, Some(r), None),
            },
        };
        if domain.is_empty() {
            return Err(PermissionError::NoDomain(raw));
        }
        let action = action.filter(|a| !a.is_empty() && a != "*");
        let scope = scope.filter(|s| !s.is_empty());
        let p = Permission {
            domain,
            action,
            scope,
            raw,
        };
        // The limit holds for the canonical spelling (legacy `read:` becomes `filesystem.read:`),
        // so whatever parses has a canonical spelling that parses too (found by fuzzing).
        if p.canonical().len() > MAX_LEN {
            return Err(PermissionError::TooLong(p.raw));
        }
        Ok(p)
    }

    /// The canonical dotted spelling (`filesystem.read`, `filesystem`, `network.http:api.x.com`,
    /// and `network.*:api.x.com` for a scoped bare domain, which `network:api.x.com` would not
    /// read back as). Parsing it gives the same permission.
    pub fn canonical(&self) -> String {
        let mut s = self.domain.clone();
        match (&self.action, &self.scope) {
            (Some(a), _) => {
                s.push('.');
                s.push_str(a);
            }
            (None, Some(_)) => s.push_str(".*"),
            (None, None) => {}
        }
        if let Some(sc) = &self.scope {
            s.push(':');
            s.push_str(sc);
        }
        s
    }

    /// Whether the domain and action are in the known vocabulary.
    pub fn is_known(&self) -> bool {
        KNOWN.iter().any(|(d, actions)| {
            *d == self.domain && self.action.as_deref().is_none_or(|a| actions.contains(&a))
        })
    }

    /// Whether this permission grants at least everything `other` grants.
    /// `filesystem` covers `filesystem.read`; an unscoped action covers any scope of it.
    pub fn covers(&self, other: &Permission) -> bool {
        if self.domain != other.domain {
            return false;
        }
        match (&self.action, &other.action) {
            (None, _) => {}
            (Some(_), None) => return false,
            (Some(a), Some(b)) if a != b => return false,
            _ => {}
        }
        match (&self.scope, &other.scope) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => glob_match(a, b),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// A pattern over normalised permissions: `filesystem.read`, `filesystem.*`, `network`, `*`,
/// and any spelling `Permission::parse` accepts (`filesystem:read` is `filesystem.read`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionPattern {
    domain: String,
    /// `None` matches every action, including a bare-domain permission.
    action: Option<String>,
    scope: Option<String>,
    pub raw: String,
}

impl PermissionPattern {
    pub fn parse(text: &str) -> Result<PermissionPattern, PermissionError> {
        let t = text.trim();
        if t == "*" || t == "*.*" {
            return Ok(PermissionPattern {
                domain: "*".into(),
                action: None,
                scope: None,
                raw: text.to_string(),
            });
        }
        let p = Permission::parse(t)?;
        Ok(PermissionPattern {
            domain: p.domain,
            action: p.action,
            scope: p.scope,
            raw: text.to_string(),
        })
    }

    /// Whether the pattern names everything the permission grants.
    /// A bare `filesystem` permission is matched only by patterns covering every filesystem action.
    pub fn matches(&self, p: &Permission) -> bool {
        if !glob_match(&self.domain, &p.domain) {
            return false;
        }
        match (&self.action, &p.action) {
            (None, _) => {}
            (Some(_), None) => return false,
            (Some(a), Some(b)) if !glob_match(a, b) => return false,
            _ => {}
        }
        match (&self.scope, &p.scope) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => glob_match(a, b),
        }
    }

    /// Whether the pattern touches the permission at all (for deny lists: a bare `filesystem`
    /// permission includes `filesystem.delete`, so a deny of `filesystem.delete` catches it).
    pub fn overlaps(&self, p: &Permission) -> bool {
        if !glob_match(&self.domain, &p.domain) {
            return false;
        }
        match (&self.action, &p.action) {
            (Some(a), Some(b)) if !glob_match(a, b) => return false,
            _ => {}
        }
        match (&self.scope, &p.scope) {
            (Some(a), Some(b)) => glob_match(a, b),
            _ => true,
        }
    }
}

impl fmt::Display for PermissionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Glob with `*` (any run of characters, `/` included) and `?` (one character).
/// Iterative with backtracking on the last star: O(pattern x text) at worst, never exponential,
/// and allocation-free for ASCII (the common case on hot paths such as event filters).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    if pattern.is_ascii() && text.is_ascii() {
        return glob_units(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_units(&p, &t, '*', '?')
}

fn glob_units<T: PartialEq + Copy>(p: &[T], t: &[T], star_unit: T, any: T) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_unit {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == star_unit {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Permission::parse(s).unwrap().canonical()
    }

    #[test]
    fn spellings_normalise_to_one_permission() {
        let cases = [
            ("filesystem:read", "filesystem.read"),
            ("filesystem.read", "filesystem.read"),
            ("Filesystem:Read", "filesystem.read"),
            ("filesystem", "filesystem"),
            ("filesystem:*", "filesystem"),
            ("read", "filesystem.read"),
            ("write", "filesystem.write"),
            ("read:/etc/shadow", "filesystem.read:/etc/shadow"),
            (
                "filesystem:read:/workspace/data.v1",
                "filesystem.read:/workspace/data.v1",
            ),
            ("network:http", "network.http"),
            ("network", "network"),
            ("stdout:write", "stdout.write"),
            ("secrets.read", "secrets.read"),
        ];
        for (input, expect) in cases {
            assert_eq!(canon(input), expect, "{input}");
        }
        assert_eq!(
            Permission::parse("filesystem:read").unwrap().canonical(),
            Permission::parse("filesystem.read").unwrap().canonical()
        );
    }

    #[test]
    fn unknown_and_bad_are_flagged() {
        assert!(Permission::parse("filesystem:read").unwrap().is_known());
        assert!(Permission::parse("filesystem").unwrap().is_known());
        assert!(!Permission::parse("quantum:teleport").unwrap().is_known());
        assert!(
            !Permission::parse("filesystem:obliterate")
                .unwrap()
                .is_known()
        );
        assert_eq!(Permission::parse(" "), Err(PermissionError::Empty));
        assert!(Permission::parse("rm -rf /").is_err());
    }

    #[test]
    fn patterns_match_normalised_permissions() {
        let m = |pat: &str, perm: &str| {
            PermissionPattern::parse(pat)
                .unwrap()
                .matches(&Permission::parse(perm).unwrap())
        };
        assert!(m("filesystem.read", "filesystem:read"));
        assert!(m("filesystem:*", "filesystem.delete"));
        assert!(m("filesystem", "filesystem"));
        assert!(m("*", "process:execute"));
        // The holes upstream's prefix check had:
        assert!(!m("filesystem.read", "filesystem:delete"));
        assert!(!m("filesystem.read", "filesystem"));
        assert!(m("filesystem.read", "read:/etc/shadow"));
        assert!(!m("filesystem.read:/workspace/*", "read:/etc/shadow"));
        assert!(m(
            "filesystem.read:/workspace/*",
            "filesystem:read:/workspace/a/b"
        ));
        let deny = PermissionPattern::parse("filesystem.delete").unwrap();
        assert!(deny.overlaps(&Permission::parse("filesystem").unwrap()));
        assert!(!deny.overlaps(&Permission::parse("filesystem:read").unwrap()));
    }

    #[test]
    fn covers_is_wider_or_equal() {
        let p = |s: &str| Permission::parse(s).unwrap();
        assert!(p("filesystem").covers(&p("filesystem:write")));
        assert!(!p("filesystem:read").covers(&p("filesystem")));
        assert!(p("network:http").covers(&p("network.http")));
        assert!(!p("network:http").covers(&p("network:https")));
    }

    #[test]
    fn glob_is_not_exponential() {
        let text = "a".repeat(5000);
        assert!(!glob_match(&format!("{}b", "*a".repeat(50)), &text));
        assert!(glob_match("a*?*a", "abca"));
        assert!(glob_match("é*", "été"));
        assert!(glob_match("policy.*", "policy.violated"));
        assert!(!glob_match("policy.*", "skill.created"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }
}
