//! File safety: regular files only, no symbolic links inside a registry, sidecar locks, atomic
//! rewrites and whole-record appends.
//!
//! Rules every reader and writer in the project follows:
//! - every file is opened with `O_NONBLOCK` and checked with `fstat` before a byte is read:
//!   anything but a regular file (a FIFO, a device, a folder, a socket) is refused at once, so
//!   no input can make a command wait on a pipe or read `/dev/zero` until memory runs out;
//! - inside a registry folder (made known once with [`confine`], which `discover` does) nothing
//!   is read or written through a symbolic link: files are opened with `O_NOFOLLOW` and every
//!   folder between the registry root and the file must be a real folder. Writes use
//!   `O_NOFOLLOW` everywhere. (A check of the folder chain is a check, not a lock: an attacker
//!   racing the check with a rename is outside what a plain `open` can prevent.)
//! - a lock is a sidecar file (`<name>.lock`), never the data file, because a rename replaces
//!   the data file and a lock on the old inode would protect nothing;
//! - a rewrite goes to a temporary file in the same folder, is fsynced, renamed into place, and
//!   the folder is fsynced, so a reader or a crash sees the old file or the new one, never half;
//!   the temporary files a killed rewrite left are removed by the next rewrite of the same
//!   file ([`remove_stale_temps`]);
//! - an append is one `write` of a whole record while holding the lock, so concurrent appenders
//!   never interleave and a `kill -9` leaves at most one torn final record, which readers report.

use std::fs::{File, FileType, OpenOptions};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use crate::error::{Error, Result};

/// Registry roots whose contents are never reached through a symbolic link.
static CONFINED: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

const HINT_FILE: &str =
    "only regular files are read or written; pass a regular file (`-` reads standard input)";
const HINT_LINK: &str = "nothing inside a registry is read or written through a symbolic \
link; replace the link with the file itself";
const HINT_DIR: &str = "every folder inside a registry must be a real folder, never a symbolic \
link; replace it with the folder itself";

/// From now on, files under `root` are read and written only if neither they nor any folder
/// between `root` and them is a symbolic link. `root` itself may be reached through a link.
pub fn confine(root: &Path) {
    let mut roots = CONFINED.write().unwrap_or_else(PoisonError::into_inner);
    if !roots.iter().any(|r| r == root) {
        roots.push(root.to_path_buf());
    }
}

/// Whether `path` lies inside a confined registry; checks the folder chain on the way.
fn check_chain(path: &Path) -> Result<bool> {
    let roots = CONFINED.read().unwrap_or_else(PoisonError::into_inner);
    let mut inside = false;
    for root in roots.iter() {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        inside = true;
        let parts: Vec<Component<'_>> = rel.components().collect();
        let mut dir = root.clone();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            match part {
                Component::Normal(name) => dir.push(name),
                Component::CurDir => continue,
                _ => {
                    return Err(Error::InvalidArgument {
                        what: "registry path",
                        value: path.display().to_string(),
                        reason: "leaves the registry folder (`..`)".into(),
                    });
                }
            }
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(m) => return Err(not_regular(&dir, m.file_type(), "folder", HINT_DIR)),
                // Not there yet: a writer creates it, a reader finds nothing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(Error::read(&dir, e)),
            }
        }
    }
    Ok(inside)
}

/// What a file type is, for messages.
fn describe(ft: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a folder"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, ft: FileType, expected: &'static str, hint: &'static str) -> Error {
    let hint = if ft.is_symlink() && hint == HINT_FILE {
        HINT_LINK
    } else {
        hint
    };
    Error::NotRegular {
        path: path.to_path_buf(),
        what: describe(ft),
        expected,
        hint,
    }
}

fn flags(options: &mut OpenOptions, nofollow: bool) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = libc::O_NONBLOCK;
        if nofollow {
            f |= libc::O_NOFOLLOW;
        }
        options.custom_flags(f);
    }
    #[cfg(not(unix))]
    let _ = (options, nofollow);
}

/// Opens with `options`, then refuses anything but a regular file. A failed open is explained
/// by what is at the path (`ELOOP` from `O_NOFOLLOW` is "a symbolic link").
fn open_checked(
    path: &Path,
    options: &mut OpenOptions,
    nofollow: bool,
    err: fn(&Path, std::io::Error) -> Error,
) -> Result<File> {
    flags(options, nofollow);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(err(path, e)),
        Err(e) => {
            return Err(match std::fs::symlink_metadata(path) {
                Ok(m) if nofollow && m.file_type().is_symlink() => {
                    not_regular(path, m.file_type(), "regular file", HINT_FILE)
                }
                Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
                    not_regular(path, m.file_type(), "regular file", HINT_FILE)
                }
                _ => err(path, e),
            });
        }
    };
    let meta = file.metadata().map_err(|e| err(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(
            path,
            meta.file_type(),
            "regular file",
            HINT_FILE,
        ));
    }
    Ok(file)
}

/// Opens an existing regular file for reading, without blocking: a FIFO, a device or a folder
/// is refused before anything is read, and inside a registry a symbolic link is too.
pub fn open_regular(path: &Path) -> Result<File> {
    let nofollow = check_chain(path)?;
    open_checked(path, OpenOptions::new().read(true), nofollow, |p, e| {
        Error::read(p, e)
    })
}

/// As [`open_regular`]; `None` when there is no file (a dangling link inside a registry is an
/// error, not an absence).
pub fn open_regular_if_exists(path: &Path) -> Result<Option<File>> {
    match open_regular(path) {
        Ok(f) => Ok(Some(f)),
        Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::symlink_metadata(path) {
                Ok(m) => Err(not_regular(path, m.file_type(), "regular file", HINT_FILE)),
                Err(_) => Ok(None),
            }
        }
        Err(e) => Err(e),
    }
}

/// As [`open_regular`], for readers that speak `std::io` (the message says what was found).
pub fn open_regular_io(path: &Path) -> std::io::Result<File> {
    open_regular(path).map_err(|e| match e {
        Error::Read { source, .. } => source,
        other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other.to_string()),
    })
}

/// Reads a whole regular file of at most `max_bytes` (`Error::TooLarge` past it). The size is
/// checked before reading and again while reading (a file may grow).
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::read(path, e))?.len();
    let too_large = |size| Error::TooLarge {
        input: crate::source::SourceName::from(path),
        size,
        limit: max_bytes,
    };
    if len > max_bytes {
        return Err(too_large(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::read(path, e))?;
    if buf.len() as u64 > max_bytes {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

/// Opens an existing regular file for writing in place (the audit trail's O(1) append), never
/// through a symbolic link.
pub fn open_in_place(path: &Path) -> Result<File> {
    check_chain(path)?;
    let f = open_checked(path, OpenOptions::new().write(true), true, |p, e| {
        Error::write(p, e)
    })?;
    refuse_hard_links(path, &f)?;
    Ok(f)
}

/// A file written in place (appended, its tail replaced) must have no other name: a hard link
/// from the registry to a file elsewhere would otherwise carry our writes out of the registry,
/// as a symbolic link would.
fn refuse_hard_links(path: &Path, file: &File) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().map_err(|e| Error::write(path, e))?;
        if meta.nlink() > 1 {
            return Err(Error::NotRegular {
                path: path.to_path_buf(),
                what: "a file with other hard links (another name outside our control)",
                expected: "file of its own",
                hint: "nothing is written through a link; replace it with a copy (`cp FILE FILE.new && mv FILE.new FILE`)",
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, file);
    Ok(())
}

/// Opens (or creates) a lock file, never through a symbolic link; the caller takes the lock.
pub fn open_lock_file(path: &Path) -> Result<File> {
    check_chain(path)?;
    open_checked(
        path,
        OpenOptions::new().create(true).truncate(false).write(true),
        true,
        |p, e| Error::write(p, e),
    )
}

/// Creates `dir` (and its parents) after checking that no folder of the chain inside a
/// registry is a symbolic link.
pub fn create_dir_checked(dir: &Path) -> Result<()> {
    // The chain of a file in `dir` covers `dir` itself.
    check_chain(&dir.join("_"))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))
}

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
            create_dir_checked(dir)?;
        }
        let file = open_lock_file(&path)?;
        file.lock().map_err(|e| Error::write(&path, e))?;
        Ok(LockGuard { file, path })
    }

    /// Blocks until a shared lock on `<data>.lock` is held (readers that need a stable view).
    pub fn shared(data: &Path) -> Result<LockGuard> {
        let path = lock_path(data);
        check_chain(&path)?;
        let file = match open_checked(
            &path,
            OpenOptions::new().create(true).truncate(false).write(true),
            true,
            |p, e| Error::read(p, e),
        ) {
            Ok(f) => f,
            // A read-only folder: readers still work, without the lock.
            Err(Error::Read { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                open_regular(data)?
            }
            Err(e) => return Err(e),
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
    create_dir_checked(&dir)?;
    check_chain(path)?;
    // The file replaced must be a regular file too (a rename would replace a link silently).
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(not_regular(path, m.file_type(), "regular file", HINT_FILE));
        }
        _ => {}
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    remove_stale_temps(&dir, &name, std::time::SystemTime::now());
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        flags(options.write(true).create_new(true), true);
        let mut f = options.open(&tmp)?;
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

/// A temporary file of a rewrite whose writer is provably gone is removed once it is this old
/// (a writer renames its temporary file away within moments of writing it).
pub const TEMP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);
/// Where it cannot be told whether the writer's process lives (no `/proc`), a temporary file
/// this old is taken to be abandoned.
pub const TEMP_ABANDONED: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temporary files that killed rewrites of `name` left in `dir`
/// (`.<name>.tmp.<pid>.<uuid>`, the exact form [`atomic_write`] creates), so they do not pile
/// up. Called by the next rewrite of the same file, under that file's lock. A temporary file
/// is removed only when it is a regular file (never a link: `unlink` removes the name, nothing
/// is followed), is not this process's own, and its writer's process is gone (by `/proc`) and
/// it is older than [`TEMP_GRACE`]; where `/proc` cannot tell, when it is older than
/// [`TEMP_ABANDONED`]. A file whose writer's process id is alive is never touched (a reused
/// id keeps a dead writer's file: the safe side). Best effort: what cannot be listed or
/// removed stays, and the write goes on.
pub fn remove_stale_temps(dir: &Path, name: &str, now: std::time::SystemTime) {
    let prefix = format!(".{name}.tmp.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = temp_writer(rest) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let path = entry.path();
        // `symlink_metadata`: a link is described, never followed.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        // A time in the future counts as new.
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let abandoned = match process_alive(pid) {
            Some(true) => false,
            Some(false) => age >= TEMP_GRACE,
            None => age >= TEMP_ABANDONED,
        };
        if abandoned {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The writer's process id of a temporary file name's tail `<pid>.<32 hex digits>`.
fn temp_writer(rest: &str) -> Option<u32> {
    let (pid, id) = rest.split_once('.')?;
    let well_formed = !pid.is_empty()
        && pid.bytes().all(|c| c.is_ascii_digit())
        && id.len() == 32
        && id.bytes().all(|c| c.is_ascii_hexdigit());
    if well_formed { pid.parse().ok() } else { None }
}

/// Whether a process with this id exists, as `/proc` (this pid namespace's) tells; `None`
/// where that cannot be told (no `/proc`, as on macOS, or `/proc` unreadable).
fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    match std::fs::symlink_metadata(proc.join(pid.to_string())) {
        Ok(_) => Some(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

/// Appends one whole record (which must end in a newline) under the sidecar lock, in one write.
pub fn append_record(path: &Path, record: &[u8]) -> Result<()> {
    let _lock = LockGuard::exclusive(path)?;
    append_locked(path, record)
}

/// Appends one whole record; the caller already holds the lock.
pub fn append_locked(path: &Path, record: &[u8]) -> Result<()> {
    let mut f = open_append(path)?;
    f.write_all(record).map_err(|e| Error::write(path, e))?;
    f.sync_data().map_err(|e| Error::write(path, e))?;
    Ok(())
}

/// Appends one whole record without waiting for the disk (high-volume streams such as
/// telemetry; the caller holds the lock).
pub fn append_locked_nosync(path: &Path, record: &[u8]) -> Result<()> {
    let mut f = open_append(path)?;
    f.write_all(record).map_err(|e| Error::write(path, e))
}

/// Opens (or creates) a regular file for appending, never through a symbolic link.
fn open_append(path: &Path) -> Result<File> {
    check_chain(path)?;
    let f = open_checked(
        path,
        OpenOptions::new().create(true).append(true),
        true,
        |p, e| Error::write(p, e),
    )?;
    refuse_hard_links(path, &f)?;
    Ok(f)
}

/// Overwrites `path` from byte `offset` with `bytes`, cuts the file there, and syncs: how the
/// audit trail replaces its closing `]` with `,{entry}]`. The caller holds the lock.
pub fn replace_tail(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = open_in_place(path)?;
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
    check_chain(from)?;
    check_chain(to)?;
    std::fs::rename(from, to).map_err(|e| Error::write(from, e))?;
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir(dir).map_err(|e| Error::write(dir, e))
}

/// Removes a file the caller owns (a finished journal); a file already gone is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    check_chain(path)?;
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
    fn a_hard_link_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"precious\n").unwrap();
        let inside = dir.path().join("events.jsonl");
        std::fs::hard_link(&outside, &inside).unwrap();
        let err = append_record(&inside, b"{}\n").unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
        assert!(open_in_place(&inside).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious\n");
    }

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

    /// A temporary file name as `atomic_write` makes it, for another process.
    fn temp_of(dir: &Path, name: &str, pid: u32) -> PathBuf {
        dir.join(format!(
            ".{name}.tmp.{pid}.{}",
            uuid::Uuid::now_v7().simple()
        ))
    }

    fn set_age(path: &Path, age: std::time::Duration) {
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
    }

    /// A pid no process has: past the kernel's largest (`pid_max` is at most 2^22).
    const GONE: u32 = 4_194_305;

    /// Killed rewrites used to leave `.<name>.tmp.*` files behind for ever. The next rewrite of
    /// the same file removes the abandoned ones, and nothing else.
    #[test]
    fn the_next_rewrite_removes_abandoned_temp_files_and_nothing_else() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let p = d.join("data.json");
        std::fs::write(&p, "old").unwrap();
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        let min = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);

        // Removed: a dead writer's file past the grace period.
        let dead_old = temp_of(d, "data.json", GONE);
        // Kept: a dead writer's file still within the grace period, a live writer's of any
        // age (the test runner is alive), this process's own, another file's temporary
        // file, names not in the exact form, a link and a folder.
        let live_ancient = temp_of(d, "data.json", parent);
        let dead_young = temp_of(d, "data.json", GONE);
        let live = temp_of(d, "data.json", parent);
        let mine = temp_of(d, "data.json", me);
        let other_file = temp_of(d, "other.json", GONE);
        let odd = d.join(".data.json.tmp.123.not-a-uuid");
        let plain = d.join(".data.json.tmp");
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("precious");
        std::fs::write(&target, "precious").unwrap();
        let link = temp_of(d, "data.json", GONE);
        let folder = temp_of(d, "data.json", GONE);
        for f in [
            &dead_old,
            &live_ancient,
            &dead_young,
            &live,
            &mine,
            &other_file,
            &odd,
            &plain,
        ] {
            std::fs::write(f, "partial").unwrap();
        }
        std::os::unix::fs::symlink(&target, &link).unwrap();
        std::fs::create_dir(&folder).unwrap();
        set_age(&dead_old, min + Duration::from_secs(1));
        set_age(&live_ancient, hour * 48);
        set_age(&dead_young, Duration::from_secs(5));
        set_age(&live, hour - Duration::from_secs(60));
        for f in [&mine, &other_file, &odd, &plain, &target] {
            set_age(f, hour * 2);
        }

        atomic_write(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        // Without `/proc` liveness cannot be told and only the long limit applies.
        let proc = Path::new("/proc/self").exists();
        assert!(
            dead_old.exists() != proc,
            "a dead writer's old temp file stays"
        );
        for kept in [
            &live_ancient,
            &dead_young,
            &live,
            &mine,
            &other_file,
            &odd,
            &plain,
            &folder,
        ] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        assert!(link.symlink_metadata().is_ok(), "the link was removed");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    #[test]
    fn temp_names_parse_only_in_the_exact_form() {
        assert_eq!(temp_writer("12.0123456789abcdef0123456789abcdef"), Some(12));
        for bad in [
            "",
            "12",
            "12.",
            ".0123456789abcdef0123456789abcdef",
            "-1.0123456789abcdef0123456789abcdef",
            "12.0123456789abcdef0123456789abcdeg",
            "99999999999.0123456789abcdef0123456789abcdef",
            "1.2.3",
        ] {
            assert_eq!(temp_writer(bad), None, "{bad:?}");
        }
        if Path::new("/proc/self").exists() {
            assert_eq!(process_alive(std::process::id()), Some(true));
            assert_eq!(process_alive(GONE), Some(false));
        }
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

    fn mkfifo(path: &Path) {
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {}", path.display());
    }

    #[test]
    fn only_regular_files_are_read_and_never_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        mkfifo(&fifo);
        // Nothing writes to the FIFO: a plain open would block forever.
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a folder"),
        ] {
            let err = read_regular(path, 1024).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::NotRegular { .. }), "{msg}");
            assert!(
                msg.contains(what) && msg.contains(&*path.to_string_lossy()),
                "{msg}"
            );
            assert!(open_regular_if_exists(path).is_err());
        }
        // A FIFO is not appended to either (no reader: the open must not block).
        let err = append_record(&fifo, b"x\n").unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        let err = atomic_write(&fifo, b"x").unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(
            open_regular_if_exists(&dir.path().join("absent"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn nothing_inside_a_registry_is_read_or_written_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("registry");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("telemetry")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("target.json"), "[]\n").unwrap();
        confine(&root);
        let linked = root.join("audit_log.json");
        std::os::unix::fs::symlink(outside.join("target.json"), &linked).unwrap();
        let dangling = root.join("telemetry/events.jsonl");
        std::os::unix::fs::symlink(outside.join("nothing"), &dangling).unwrap();
        for path in [&linked, &dangling] {
            let errs = [
                append_record(path, b"{}\n").unwrap_err(),
                atomic_write(path, b"{}").unwrap_err(),
                open_regular(path).unwrap_err(),
                open_regular_if_exists(path).unwrap_err(),
                open_in_place(path).unwrap_err(),
            ];
            for err in errs {
                let msg = err.to_string();
                assert!(msg.contains("symbolic link"), "{msg}");
            }
        }
        // A linked folder anywhere in the chain is refused too, for reads and writes.
        std::os::unix::fs::symlink(&outside, root.join("history")).unwrap();
        let inside = root.join("history/target.json");
        for err in [
            atomic_write(&inside, b"x").unwrap_err(),
            append_record(&inside, b"x\n").unwrap_err(),
            LockGuard::exclusive(&inside).unwrap_err(),
            open_regular(&inside).unwrap_err(),
        ] {
            assert!(err.to_string().contains("not a folder"), "{err}");
        }
        std::os::unix::fs::symlink(&outside, root.join("approvals")).unwrap();
        let err = atomic_write(&root.join("approvals/sub/new.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("approvals"), "{err}");
        assert!(!outside.join("sub").exists());
        assert_eq!(std::fs::read(outside.join("target.json")).unwrap(), b"[]\n");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        // Outside a registry a link to a regular file is an ordinary input.
        let manifest = dir.path().join("skill.yaml");
        std::os::unix::fs::symlink(outside.join("target.json"), &manifest).unwrap();
        assert_eq!(read_regular(&manifest, 1024).unwrap(), b"[]\n");
    }
}
