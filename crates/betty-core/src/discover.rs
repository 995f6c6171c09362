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
    /// Finds the registry from the process environment.
    pub fn discover(flag: Option<&Path>) -> Result<RegistryDir> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        RegistryDir::discover_with(flag, &|k| std::env::var_os(k).map(PathBuf::from), &cwd)
    }

    /// As [`RegistryDir::discover`], with the environment and folder given (for tests).
    pub fn discover_with(
        flag: Option<&Path>,
        env: &dyn Fn(&str) -> Option<PathBuf>,
        cwd: &Path,
    ) -> Result<RegistryDir> {
        let mut looked = Vec::new();
        // An explicit choice that does not exist is an error, never a fallback elsewhere.
        if let Some(dir) = flag {
            return found(dir, Origin::Flag).ok_or_else(|| {
                not_found(vec![format!(
                    "`--registry {}` (no such folder)",
                    dir.display()
                )])
            });
        }
        if let Some(dir) = env("BETTY_REGISTRY").filter(|d| !d.as_os_str().is_empty()) {
            return found(&dir, Origin::EnvRegistry).ok_or_else(|| {
                not_found(vec![format!(
                    "`BETTY_REGISTRY={}` (no such folder)",
                    dir.display()
                )])
            });
        }
        looked.push("`--registry` (not given)".to_string());
        looked.push("`BETTY_REGISTRY` (not set)".to_string());
        match env("BETTY_HOME").filter(|d| !d.as_os_str().is_empty()) {
            Some(home) => {
                let dir = home.join("registry");
                if let Some(r) = found(&dir, Origin::EnvHome) {
                    return Ok(r);
                }
                looked.push(format!(
                    "`$BETTY_HOME/registry` = `{}` (no such folder)",
                    dir.display()
                ));
            }
            None => looked.push("`$BETTY_HOME/registry` (`BETTY_HOME` not set)".to_string()),
        }
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
        let missing = t.path().join("missing");
        let err = RegistryDir::discover_with(Some(&missing), &none, t.path()).unwrap_err();
        assert!(err.to_string().contains("no such folder"));
    }
}
