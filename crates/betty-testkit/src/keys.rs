//! Real SSH keys for tests: Ed25519 keys made by `ssh-keygen` in a temporary folder, and the
//! `allowed_signers` lines that trust them for the approval namespace. Every approval test that
//! signs goes through [`Keyring`], so all of them use keys exactly as a user would make them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The namespace approvals are signed in (`betty_core::sshsig::NAMESPACE`).
pub const NAMESPACE: &str = "betty-approval";

/// Whether `ssh-keygen` runs; when it does not, [`crate::skip`]s (a failure in CI).
#[track_caller]
pub fn have_ssh_keygen() -> bool {
    let found = Command::new("ssh-keygen")
        .arg("-?")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        crate::skip("`ssh-keygen` is not on PATH (install openssh-client; `.ci/run` does)");
    }
    found
}

/// A folder of keys, one per name, each made by `ssh-keygen -t ed25519` without a passphrase.
pub struct Keyring {
    dir: PathBuf,
}

impl Keyring {
    /// Makes a key for each of `names` in `dir` (created when missing), or `None` after a skip
    /// when `ssh-keygen` is absent.
    #[track_caller]
    pub fn new(dir: &Path, names: &[&str]) -> Option<Keyring> {
        if !have_ssh_keygen() {
            return None;
        }
        std::fs::create_dir_all(dir).expect("create the key folder");
        let ring = Keyring {
            dir: dir.to_path_buf(),
        };
        for name in names {
            ring.add(name);
        }
        Some(ring)
    }

    /// Makes one more key.
    pub fn add(&self, name: &str) -> PathBuf {
        let path = self.key(name);
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .status()
            .expect("run ssh-keygen")
            .success();
        assert!(ok, "ssh-keygen made the key `{name}`");
        path
    }

    /// The private key file of `name`.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `keytype base64` of `name`'s public key.
    pub fn public(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("{name}.pub")))
            .expect("read the public key");
        let mut parts = text.split_whitespace();
        format!("{} {}", parts.next().unwrap(), parts.next().unwrap())
    }

    /// The `allowed_signers` line trusting `name`'s key as `principal` for approvals.
    pub fn line(&self, principal: &str, name: &str) -> String {
        format!(
            "{principal} namespaces=\"{NAMESPACE}\" {}\n",
            self.public(name)
        )
    }

    /// Writes `allowed_signers` with a line per `(principal, key name)`.
    pub fn write_allowed_signers(&self, path: &Path, entries: &[(&str, &str)]) {
        let text: String = entries.iter().map(|(p, k)| self.line(p, k)).collect();
        std::fs::write(path, text).expect("write allowed_signers");
    }
}
