//! File safety: sidecar locks, atomic rewrites and whole-record appends.
//!
//! Rules every writer in the project follows:
//! - a lock is a sidecar file (`<name>.lock`), never the data file, because a rename replaces
//!   the data file and a lock on the old inode would protect nothing;
//! - a rewrite goes to a temporary file in the same folder, is fsynced, renamed into place, and
//!   the folder is fsynced, so a reader or a crash sees the old file or the new one, never half;
//! - an append is one `write` of a whole record while holding the lock, so concurrent appenders
//!   never interleave and a `kill -9` leaves at most one torn final record, which readers report.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An exclusive lock on a sidecar file, released on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    /// Blocks until the exclusive lock on `<data>.lock` is held.
    pub fn exclusive(data: &Path) -> Result<LockGuard> {
        let path = lock_path(data);
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::write(&path, e))?;
        file.lock().map_err(|e| Error::write(&path, e))?;
        Ok(LockGuard { file, path })
    }

    /// Blocks until a shared lock on `<data>.lock` is held (readers that need a stable view).
    pub fn shared(data: &Path) -> Result<LockGuard> {
        let path = lock_path(data);
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            // A read-only folder: readers still work, without the lock.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                File::open(data).map_err(|e| Error::read(data, e))?
            }
            Err(e) => return Err(Error::read(&path, e)),
        };
        file.lock_shared().map_err(|e| Error::read(&path, e))?;
        Ok(LockGuard { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// `<data>.lock` beside the data file.
pub fn lock_path(data: &Path) -> PathBuf {
    let mut name = data.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    data.with_file_name(name)
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync folder.
/// The caller holds the lock when other writers may exist.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::write(path, e));
    }
    Ok(())
}

/// Appends one whole record (which must end in a newline) under the sidecar lock, in one write.
pub fn append_record(path: &Path, record: &[u8]) -> Result<()> {
    let _lock = LockGuard::exclusive(path)?;
    append_locked(path, record)
}

/// Appends one whole record; the caller already holds the lock.
pub fn append_locked(path: &Path, record: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    f.write_all(record).map_err(|e| Error::write(path, e))?;
    f.sync_data().map_err(|e| Error::write(path, e))?;
    Ok(())
}

/// Appends one whole record without waiting for the disk (high-volume streams such as
/// telemetry; the caller holds the lock).
pub fn append_locked_nosync(path: &Path, record: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    f.write_all(record).map_err(|e| Error::write(path, e))
}

/// Overwrites `path` from byte `offset` with `bytes`, cuts the file there, and syncs: how the
/// audit trail replaces its closing `]` with `,{entry}]`. The caller holds the lock.
pub fn replace_tail(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    let io = (|| {
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(bytes)?;
        f.set_len(offset + bytes.len() as u64)?;
        f.sync_data()
    })();
    io.map_err(|e| Error::write(path, e))
}

/// Renames `from` to `to` in the same folder and fsyncs the folder (segment rotation).
pub fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::write(from, e))?;
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir(dir).map_err(|e| Error::write(dir, e))
}

/// Removes a file the caller owns (a finished journal); a file already gone is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::write(path, e)),
    }
}

/// Fsyncs a folder so a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir) {
        Ok(d) => match d.sync_all() {
            // Some file systems refuse to fsync a directory; the rename is still atomic.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
            other => other,
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["data.json".to_string()]);
    }

    #[test]
    fn appends_are_whole_records_and_the_lock_is_a_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::thread::scope(|s| {
            for t in 0..8 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..50 {
                        append_record(p, format!("{{\"t\":{t},\"i\":{i}}}\n").as_bytes()).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 400);
        assert!(
            text.lines()
                .all(|l| l.starts_with("{\"t\":") && l.ends_with('}'))
        );
        assert!(dir.path().join("events.jsonl.lock").exists());
    }

    #[test]
    fn exclusive_lock_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let g = LockGuard::exclusive(&p).unwrap();
        let f = OpenOptions::new().write(true).open(g.path()).unwrap();
        assert!(f.try_lock().is_err());
        drop(g);
        assert!(f.try_lock().is_ok());
    }
}
