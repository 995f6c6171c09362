//! A memo of signatures already verified, so that a listing of 10,000 signed approval requests
//! does not redo 40,000 Ed25519 verifications every time.
//!
//! What it remembers is only the cryptographic fact "this armoured SSHSIG signature is valid over
//! these bytes": each entry is `HMAC-SHA256(secret, signature, message)`. Everything else a
//! verification decides (whether the key is in `allowed_signers`, for which principal and
//! namespace, inside which validity times) is judged again on every use, so a key removed from
//! `allowed_signers` stops counting at once.
//!
//! Why an attacker who writes the working tree and sets the environment cannot forge an entry:
//! - the secret is 32 random bytes in a file only its owner can read, and an entry is worthless
//!   without it (an entry copied from another user's cache, or made up, never matches);
//! - the folder is in the home directory of the effective user as the password database gives
//!   it, never from `HOME`, `XDG_CACHE_HOME` or any other variable, and never in the working tree;
//! - the folder and the secret must belong to the effective user and be closed to everyone else
//!   (no group or other permission bits), and neither may be a symbolic link; otherwise the cache
//!   is not used at all.
//!
//! A cache that cannot be used is never an error: every signature is then verified, which is
//! only slower. `BETTY_SIGNATURE_CACHE=off` turns it off (turning it off can only make a command
//! slower, so the variable gives an attacker nothing). Never share the folder between users or
//! restore it from a CI cache another job can write.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One entry: an HMAC-SHA256 tag.
type Tag = [u8; 32];

/// The entries file is rewritten from scratch past this size (about 2 million signatures).
const MAX_ENTRIES_BYTES: u64 = 64 * 1024 * 1024;

/// New entries are written out in batches of this many (and when the cache is dropped).
const FLUSH_EVERY: usize = 4096;

/// The variable that turns the cache off (`off`, `0`, `false`, `no`).
pub const ENV_SWITCH: &str = "BETTY_SIGNATURE_CACHE";

/// The folder's name inside the user's home.
const DIR_IN_HOME: &str = ".cache/betty/signatures";

/// Verified signatures of one user.
pub struct SigCache {
    dir: PathBuf,
    secret: [u8; 32],
    known: HashSet<Tag>,
    pending: Mutex<Vec<Tag>>,
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigCache")
            .field("dir", &self.dir)
            .field("entries", &self.known.len())
            .finish_non_exhaustive()
    }
}

impl SigCache {
    /// The effective user's cache, unless it is turned off or cannot be used safely.
    pub fn open_default() -> Option<SigCache> {
        if std::env::var(ENV_SWITCH).is_ok_and(|v| matches!(v.trim(), "off" | "0" | "false" | "no"))
        {
            return None;
        }
        SigCache::open(&default_dir()?)
    }

    /// The cache in `dir` (created, closed to others, when missing; its parent must exist or be
    /// creatable); `None` when it cannot be used safely.
    pub fn open(dir: &Path) -> Option<SigCache> {
        let uid = rustix::process::geteuid().as_raw();
        ensure_private_dir(dir, uid)?;
        let secret = read_or_make_secret(&dir.join("key"), uid)?;
        let mut known = HashSet::new();
        if let Some(bytes) = read_private(&dir.join("verified"), uid, MAX_ENTRIES_BYTES) {
            // A torn final entry (a writer killed mid-append) is simply not an entry.
            for chunk in bytes.chunks_exact(32) {
                let mut tag = [0u8; 32];
                tag.copy_from_slice(chunk);
                known.insert(tag);
            }
        }
        Some(SigCache {
            dir: dir.to_path_buf(),
            secret,
            known,
            pending: Mutex::new(Vec::new()),
        })
    }

    /// The tag of `armored` over `message`: lengths first, so no two pairs share one.
    fn tag(&self, armored: &str, message: &[u8]) -> Tag {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        mac.update(b"betty-sigcache-v1\0");
        mac.update(&(armored.len() as u64).to_be_bytes());
        mac.update(armored.as_bytes());
        mac.update(&(message.len() as u64).to_be_bytes());
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `armored` was verified over `message` before.
    pub fn contains(&self, armored: &str, message: &[u8]) -> bool {
        self.known.contains(&self.tag(armored, message))
    }

    /// Remembers that `armored` is valid over `message`. Call only after verifying it.
    pub fn insert(&self, armored: &str, message: &[u8]) {
        let tag = self.tag(armored, message);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.push(tag);
        if pending.len() >= FLUSH_EVERY {
            let batch = std::mem::take(&mut *pending);
            drop(pending);
            self.write(&batch);
        }
    }

    /// Writes `tags` out: one append under the folder's lock. Failures are ignored (the cache
    /// only saves time).
    fn write(&self, tags: &[Tag]) {
        if tags.is_empty() {
            return;
        }
        let Ok(lock) = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join("lock"))
        else {
            return;
        };
        if lock.lock().is_err() {
            return;
        }
        let path = self.dir.join("verified");
        let too_big = std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() > MAX_ENTRIES_BYTES);
        let mut bytes = Vec::with_capacity(tags.len() * 32);
        for t in tags {
            bytes.extend_from_slice(t);
        }
        let mut options = OpenOptions::new();
        options
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW);
        if too_big {
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        if let Ok(mut f) = options.open(&path) {
            // A torn entry from a killed writer would shift every later one: align first.
            if let Ok(m) = f.metadata()
                && m.len() % 32 != 0
                && !too_big
            {
                let _ = f.set_len(m.len() - m.len() % 32);
            }
            let _ = f.write_all(&bytes);
        }
    }
}

impl Drop for SigCache {
    fn drop(&mut self) {
        let batch = std::mem::take(
            self.pending
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.write(&batch);
    }
}

/// `<home>/.cache/betty/signatures`, the home directory read from `/etc/passwd` for the
/// effective user (never from the environment).
pub fn default_dir() -> Option<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    home_of(&passwd, uid).map(|home| home.join(DIR_IN_HOME))
}

/// The home directory of `uid` in a password file's text.
fn home_of(passwd: &str, uid: u32) -> Option<PathBuf> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let home = fields.get(5)?;
        (fields.get(2)?.parse::<u32>().ok()? == uid && home.starts_with('/'))
            .then(|| PathBuf::from(home))
    })
}

/// Makes `dir` (and missing parents) closed to others; `None` when it is a link, another
/// user's, or open to others.
fn ensure_private_dir(dir: &Path, uid: u32) -> Option<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        let parent = dir.parent()?;
        std::fs::create_dir_all(parent).ok()?;
        match std::fs::create_dir(dir) {
            Ok(()) => {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).ok()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
    }
    let m = std::fs::symlink_metadata(dir).ok()?;
    (m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0).then_some(())
}

/// Opens a file of ours: a regular file, not a link, owned by `uid`, closed to others.
fn open_private(path: &Path, uid: u32) -> Option<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    (m.is_file() && m.uid() == uid && m.mode() & 0o077 == 0 && m.nlink() == 1).then_some(f)
}

fn read_private(path: &Path, uid: u32, max: u64) -> Option<Vec<u8>> {
    let f = open_private(path, uid)?;
    let mut bytes = Vec::new();
    f.take(max).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// The secret in `path`, made (32 random bytes, mode 0600, created exclusively) when missing.
fn read_or_make_secret(path: &Path, uid: u32) -> Option<[u8; 32]> {
    if std::fs::symlink_metadata(path).is_err() {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).ok()?;
        let made = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path);
        if let Ok(mut f) = made {
            if f.write_all(&secret).and_then(|()| f.sync_all()).is_err() {
                let _ = std::fs::remove_file(path);
                return None;
            }
            return Some(secret);
        }
        // Another process made it first: read theirs.
    }
    let bytes = read_private(path, uid, 64)?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> SigCache {
        SigCache::open(&dir.join("c")).expect("a private cache in a fresh folder")
    }

    #[test]
    fn remembers_what_was_inserted_across_processes() {
        let t = tempfile::tempdir().unwrap();
        let c = cache(t.path());
        assert!(!c.contains("sig", b"msg"));
        c.insert("sig", b"msg");
        drop(c);
        let c = cache(t.path());
        assert!(c.contains("sig", b"msg"));
        assert!(!c.contains("sig", b"msg2"), "another message");
        assert!(!c.contains("sig2", b"msg"), "another signature");
        // Lengths are bound: moving bytes between the two parts is another entry.
        assert!(!c.contains("si", b"gmsg"));
    }

    #[test]
    fn entries_made_with_another_secret_never_match() {
        let t = tempfile::tempdir().unwrap();
        let a = SigCache::open(&t.path().join("a")).unwrap();
        a.insert("forged", b"statement");
        drop(a);
        // The attacker copies their entries into the victim's cache.
        let b = SigCache::open(&t.path().join("b")).unwrap();
        drop(b);
        let entries = std::fs::read(t.path().join("a/verified")).unwrap();
        std::fs::write(t.path().join("b/verified"), entries).unwrap();
        let b = SigCache::open(&t.path().join("b")).unwrap();
        assert!(!b.contains("forged", b"statement"));
    }

    #[test]
    fn a_cache_open_to_others_or_behind_a_link_is_not_used() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c");
        drop(SigCache::open(&dir).unwrap());
        assert_eq!(
            std::fs::metadata(dir.join("key")).unwrap().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(dir.join("key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            SigCache::open(&dir).is_none(),
            "a readable secret is no secret"
        );
        std::fs::set_permissions(dir.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(SigCache::open(&dir).is_none(), "a folder open to others");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(SigCache::open(&link).is_none(), "a folder behind a link");
    }

    #[test]
    fn a_torn_entry_is_dropped_and_later_entries_stay_aligned() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c");
        let c = SigCache::open(&dir).unwrap();
        c.insert("one", b"m");
        drop(c);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("verified"))
            .unwrap();
        f.write_all(&[7u8; 5]).unwrap();
        drop(f);
        let c = SigCache::open(&dir).unwrap();
        assert!(c.contains("one", b"m"));
        c.insert("two", b"m");
        drop(c);
        let c = SigCache::open(&dir).unwrap();
        assert!(c.contains("one", b"m") && c.contains("two", b"m"));
    }

    #[test]
    fn the_home_comes_from_the_password_file_not_the_environment() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbad:x:7:7::relative:/bin/sh\n";
        assert_eq!(home_of(passwd, 0), Some(PathBuf::from("/root")));
        assert_eq!(home_of(passwd, 1000), Some(PathBuf::from("/home/alice")));
        assert_eq!(home_of(passwd, 7), None, "a relative home is refused");
        assert_eq!(home_of(passwd, 42), None);
    }
}
