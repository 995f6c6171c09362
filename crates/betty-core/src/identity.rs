//! Who is acting, in which session, from where.
//!
//! User: `--user`, else `BETTY_USER`, else git's `user.email` (read from git's config files, not
//! by running git), else `$USER@host`. Session: `BETTY_SESSION_ID` (a parent workflow sets it so
//! all its events share one), else a new UUID v7 per process. Client IP: `BETTY_CLIENT_IP`, else
//! the `SSH_CLIENT` address, else `127.0.0.1`. User and client IP are claims: [`Sources`] records
//! where each came from, and every audit entry carries it (`identity_sources`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The actor of one process. `user` and `ip_address` are claims, not proof: they come from a
/// flag, the environment, git's configuration or a default, and [`Identity::sources`] records
/// which, so every audit entry says how much its `user` and `ip_address` can be trusted (an
/// approval proves its signer with an SSH signature instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub session_id: String,
    pub ip_address: String,
    /// Where `user` and `ip_address` came from.
    pub sources: Sources,
}

/// Where each claimed field of an [`Identity`] came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sources {
    pub user: Source,
    pub ip_address: Source,
}

/// Where one claimed value came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A command-line flag (`--user`).
    Flag,
    /// An environment variable (`BETTY_USER`, `BETTY_CLIENT_IP`, `SSH_CLIENT`).
    Environment,
    /// git's configuration (`user.email`).
    Git,
    /// Nothing said: a default (`$USER@host`, `127.0.0.1`).
    #[default]
    Default,
}

impl Identity {
    /// Resolves the identity from the process environment and working directory.
    pub fn resolve(user_flag: Option<&str>) -> Result<Identity> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Identity::resolve_with(user_flag, &|k| std::env::var(k).ok(), &cwd)
    }

    /// As [`Identity::resolve`], with the environment and folder given (for tests).
    pub fn resolve_with(
        user_flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Identity> {
        let (user, user_source) = match user_flag {
            Some(u) => (check("user (`--user`)", u)?, Source::Flag),
            None => match env("BETTY_USER").filter(|u| !u.is_empty()) {
                Some(u) => (check("user (`BETTY_USER`)", &u)?, Source::Environment),
                None => match git_user_email(env, cwd).and_then(|u| check("user", &u).ok()) {
                    Some(u) => (u, Source::Git),
                    None => {
                        let name = env("USER")
                            .or_else(|| env("LOGNAME"))
                            .filter(|u| !u.is_empty())
                            .unwrap_or_else(|| "unknown".into());
                        (format!("{name}@{}", hostname(env)), Source::Default)
                    }
                },
            },
        };
        let session_id = match env("BETTY_SESSION_ID").filter(|s| !s.is_empty()) {
            Some(s) => check("session id (`BETTY_SESSION_ID`)", &s)?,
            None => new_session_id(),
        };
        let (ip_address, ip_source) = env("BETTY_CLIENT_IP")
            .or_else(|| {
                env("SSH_CLIENT").and_then(|s| s.split_whitespace().next().map(str::to_string))
            })
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
            .map_or_else(
                || ("127.0.0.1".to_string(), Source::Default),
                |ip| (ip, Source::Environment),
            );
        Ok(Identity {
            user,
            session_id,
            ip_address,
            sources: Sources {
                user: user_source,
                ip_address: ip_source,
            },
        })
    }
}

/// A new session id: a UUID v7, so ids sort by creation time.
pub fn new_session_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn check(what: &'static str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
        return Err(Error::InvalidArgument {
            what,
            value: value.chars().take(80).collect(),
            reason: "must be 1 to 256 printable characters".into(),
        });
    }
    Ok(v.to_string())
}

fn hostname(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("HOSTNAME")
        .or_else(|| {
            let bytes = crate::fsx::read_regular(Path::new("/etc/hostname"), 4096).ok()?;
            String::from_utf8(bytes).ok()
        })
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `user.email` from the repository's config, else the global config files, as git reads them.
fn git_user_email(env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Option<String> {
    let mut files = Vec::new();
    for dir in cwd.ancestors() {
        let git = dir.join(".git");
        if git.is_dir() {
            files.push(git.join("config"));
            break;
        }
    }
    if let Some(xdg) = env("XDG_CONFIG_HOME") {
        files.push(Path::new(&xdg).join("git/config"));
    }
    if let Some(home) = env("HOME") {
        files.push(Path::new(&home).join(".config/git/config"));
        files.push(Path::new(&home).join(".gitconfig"));
    }
    files.iter().find_map(|f| {
        // A FIFO or a device named by `HOME` is skipped, never read.
        let bytes = crate::fsx::read_regular(f, 1024 * 1024).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        config_value(&text, "user", "email")
    })
}

/// The last `key` in `[section]` of a git config file.
fn config_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line
                .trim_start_matches('[')
                .split([']', ' ', '"'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim().eq_ignore_ascii_case(key)
        {
            let v = v.split(['#', ';']).next().unwrap_or_default().trim();
            found = Some(v.trim_matches('"').to_string()).filter(|v| !v.is_empty());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn user_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            "[core]\n\temail = no@x\n[user]\n\tname = A\n\temail = ada@example.com\n",
        )
        .unwrap();
        let h = home.to_str().unwrap();
        let cwd = dir.path();
        let id = |flag, env: &[(&str, &str)]| {
            Identity::resolve_with(flag, &env_of(env), cwd)
                .unwrap()
                .user
        };
        assert_eq!(
            id(Some("flag@x"), &[("BETTY_USER", "env@x"), ("HOME", h)]),
            "flag@x"
        );
        assert_eq!(id(None, &[("BETTY_USER", "env@x"), ("HOME", h)]), "env@x");
        assert_eq!(id(None, &[("HOME", h)]), "ada@example.com");
        assert_eq!(id(None, &[("USER", "bob"), ("HOSTNAME", "box")]), "bob@box");
        assert!(Identity::resolve_with(Some("a\nb"), &env_of(&[]), cwd).is_err());
        // Each says where it came from.
        let source = |flag, env: &[(&str, &str)]| {
            Identity::resolve_with(flag, &env_of(env), cwd)
                .unwrap()
                .sources
                .user
        };
        assert_eq!(
            source(Some("flag@x"), &[("BETTY_USER", "env@x")]),
            Source::Flag
        );
        assert_eq!(
            source(None, &[("BETTY_USER", "env@x"), ("HOME", h)]),
            Source::Environment
        );
        assert_eq!(source(None, &[("HOME", h)]), Source::Git);
        assert_eq!(source(None, &[("USER", "bob")]), Source::Default);
    }

    #[test]
    fn session_and_ip() {
        let cwd = Path::new("/");
        let a =
            Identity::resolve_with(None, &env_of(&[("BETTY_SESSION_ID", "wf-1")]), cwd).unwrap();
        assert_eq!(a.session_id, "wf-1");
        let b = Identity::resolve_with(None, &env_of(&[]), cwd).unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(&b.session_id)
                .unwrap()
                .get_version_num(),
            7
        );
        assert_eq!(b.ip_address, "127.0.0.1");
        let c = Identity::resolve_with(None, &env_of(&[("SSH_CLIENT", "10.1.2.3 5555 22")]), cwd)
            .unwrap();
        assert_eq!(c.ip_address, "10.1.2.3");
        assert_eq!(b.sources.ip_address, Source::Default);
        assert_eq!(c.sources.ip_address, Source::Environment);
        let d = Identity::resolve_with(None, &env_of(&[("BETTY_CLIENT_IP", "not an ip")]), cwd)
            .unwrap();
        assert_eq!(
            (d.ip_address.as_str(), d.sources.ip_address),
            ("127.0.0.1", Source::Default)
        );
    }
}
