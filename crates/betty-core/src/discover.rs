//! Finding the registry folder, in the contract's order: `--registry DIR`, `BETTY_REGISTRY`,
//! `$BETTY_HOME/registry`, then the nearest `registry/` walking up from the working directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How the registry folder was found (for `-v` logs and messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    EnvRegistry,
    EnvHome,
    WalkUp,
}

/// A registry folder that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryDir {
    pub root: PathBuf,
    pub origin: Origin,
}

impl RegistryDir {
    /// Finds the registry from the process environment. From then on nothing inside it is read
    /// or written through a symbolic link ([`crate::fsx::confine`]).
    pub fn discover(flag: Option<&Path>) -> Result<RegistryDir> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let dir =
            RegistryDir::discover_with(flag, &|k| std::env::var_os(k).map(PathBuf::from), &cwd)?;
        crate::fsx::confine(&dir.root);
        Ok(dir)
    }

    /// As [`RegistryDir::discover`], with the environment and folder given (for tests).
    ///
    /// An explicit choice (`--registry`, `BETTY_REGISTRY`, `BETTY_HOME`) that is missing or not
    /// a folder is an error naming it, never a fall-back to the next place: a typo must not
    /// send records to another registry.
    pub fn discover_with(
        flag: Option<&Path>,
        env: &dyn Fn(&str) -> Option<PathBuf>,
        cwd: &Path,
    ) -> Result<RegistryDir> {
        let mut looked = Vec::new();
        if let Some(dir) = flag {
            return explicit(dir, "`--registry`", Origin::Flag);
        }
        if let Some(dir) = env("BETTY_REGISTRY").filter(|d| !d.as_os_str().is_empty()) {
            return explicit(&dir, "`BETTY_REGISTRY`", Origin::EnvRegistry);
        }
        if let Some(home) = env("BETTY_HOME").filter(|d| !d.as_os_str().is_empty()) {
            if let Some(problem) = not_a_folder(&home) {
                return Err(Error::RegistryUnusable {
                    origin: "`BETTY_HOME`",
                    path: home,
                    problem,
                });
            }
            return explicit(
                &home.join("registry"),
                "`$BETTY_HOME/registry`",
                Origin::EnvHome,
            );
        }
        looked.push("`--registry` (not given)".to_string());
        looked.push("`BETTY_REGISTRY` (not set)".to_string());
        looked.push("`$BETTY_HOME/registry` (`BETTY_HOME` not set)".to_string());
        for dir in cwd.ancestors() {
            if let Some(r) = found(&dir.join("registry"), Origin::WalkUp) {
                return Ok(r);
            }
        }
        looked.push(format!(
            "`registry/` in `{}` and every folder above it",
            cwd.display()
        ));
        Err(not_found(looked))
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
    pub fn skills_json(&self) -> PathBuf {
        self.root.join("skills.json")
    }
    pub fn agents_json(&self) -> PathBuf {
        self.root.join("agents.json")
    }
    pub fn policies_dir(&self) -> PathBuf {
        self.root.join("policies")
    }
    pub fn events_jsonl(&self) -> PathBuf {
        self.root.join("telemetry").join("events.jsonl")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit_log.json")
    }
    pub fn approvals_dir(&self) -> PathBuf {
        self.root.join("approvals")
    }
    pub fn history_dir(&self) -> PathBuf {
        self.root.join("history")
    }
    /// The project folder holding the registry (where `skills/` and `agents/` live).
    pub fn project_root(&self) -> PathBuf {
        self.root
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

fn found(dir: &Path, origin: Origin) -> Option<RegistryDir> {
    dir.is_dir().then(|| RegistryDir {
        root: dir.to_path_buf(),
        origin,
    })
}

/// A place the user named: it is the registry, or the command stops.
fn explicit(dir: &Path, origin: &'static str, how: Origin) -> Result<RegistryDir> {
    match not_a_folder(dir) {
        None => Ok(RegistryDir {
            root: dir.to_path_buf(),
            origin: how,
        }),
        Some(problem) => Err(Error::RegistryUnusable {
            origin,
            path: dir.to_path_buf(),
            problem,
        }),
    }
}

/// Why `dir` cannot be a registry folder, if it cannot.
fn not_a_folder(dir: &Path) -> Option<&'static str> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some("is not a folder"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
        Err(_) => Some("cannot be read"),
    }
}

fn not_found(looked: Vec<String>) -> Error {
    Error::RegistryNotFound { looked }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_discovery() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in ["flag", "env", "home/registry", "proj/registry", "proj/a/b"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let env = |pairs: Vec<(&'static str, PathBuf)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let cwd = root.join("proj/a/b");
        let all = env(vec![
            ("BETTY_REGISTRY", root.join("env")),
            ("BETTY_HOME", root.join("home")),
        ]);
        let flag = root.join("flag");
        let r = RegistryDir::discover_with(Some(&flag), &all, &cwd).unwrap();
        assert_eq!((r.root, r.origin), (flag, Origin::Flag));
        let r = RegistryDir::discover_with(None, &all, &cwd).unwrap();
        assert_eq!(r.origin, Origin::EnvRegistry);
        let home = env(vec![("BETTY_HOME", root.join("home"))]);
        let r = RegistryDir::discover_with(None, &home, &cwd).unwrap();
        assert_eq!(
            (r.root, r.origin),
            (root.join("home/registry"), Origin::EnvHome)
        );
        let none = env(vec![]);
        let r = RegistryDir::discover_with(None, &none, &cwd).unwrap();
        assert_eq!(
            (r.root, r.origin),
            (root.join("proj/registry"), Origin::WalkUp)
        );
    }

    #[test]
    fn not_found_lists_every_place_looked() {
        let t = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let err = RegistryDir::discover_with(None, &none, t.path()).unwrap_err();
        let msg = err.to_string();
        for place in [
            "--registry",
            "BETTY_REGISTRY",
            "BETTY_HOME",
            "every folder above",
        ] {
            assert!(msg.contains(place), "{msg}");
        }
    }

    #[test]
    fn an_explicit_choice_that_is_not_a_folder_never_falls_back() {
        let t = tempfile::tempdir().unwrap();
        // A registry the walk-up would find: none of the cases below may land there.
        std::fs::create_dir_all(t.path().join("registry")).unwrap();
        std::fs::write(t.path().join("file"), "").unwrap();
        std::fs::create_dir_all(t.path().join("home-without-registry")).unwrap();
        let none = |_: &str| None;
        let missing = t.path().join("missing");
        let file = t.path().join("file");
        for dir in [&missing, &file] {
            let err = RegistryDir::discover_with(Some(dir), &none, t.path()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("`--registry`") && msg.contains(&*dir.to_string_lossy()),
                "{msg}"
            );
            assert!(
                msg.contains("does not exist") || msg.contains("is not a folder"),
                "{msg}"
            );
        }
        for (var, value, expect) in [
            ("BETTY_REGISTRY", missing.clone(), "`BETTY_REGISTRY`"),
            ("BETTY_REGISTRY", file.clone(), "`BETTY_REGISTRY`"),
            ("BETTY_HOME", missing.clone(), "`BETTY_HOME`"),
            ("BETTY_HOME", file.clone(), "`BETTY_HOME`"),
            (
                "BETTY_HOME",
                t.path().join("home-without-registry"),
                "`$BETTY_HOME/registry`",
            ),
        ] {
            let env = |k: &str| (k == var).then(|| value.clone());
            let err = RegistryDir::discover_with(None, &env, t.path()).unwrap_err();
            assert!(
                matches!(err, Error::RegistryUnusable { .. }),
                "{var}: {err}"
            );
            assert!(err.to_string().contains(expect), "{var}: {err}");
        }
    }
}
