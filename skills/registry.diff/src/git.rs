//! Reading registry versions out of git, with the `git` binary itself (no library: whatever
//! the user's git understands, `HEAD~1`, `main`, a hash, a tag, works here too).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use betty_core::limits::Limits;

/// Why git could not give us what we asked.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run `git` ({0}); install git, or compare history versions or files instead")]
    Spawn(std::io::Error),
    #[error(
        "invalid git revision `{0}`: a revision has no spaces, control characters or `:` and does not start with `-`"
    )]
    BadRevision(String),
    #[error("`git {args}` failed in `{dir}`: {message}")]
    Failed {
        args: String,
        dir: String,
        message: String,
    },
    #[error("`{what}` from git is {size} bytes, over the limit of {limit} bytes for a registry")]
    TooLarge { what: String, size: u64, limit: u64 },
}

/// Refuses anything git could read as an option or that would change the `REV:path` syntax.
pub fn check_revision(rev: &str) -> Result<(), GitError> {
    let ok = !rev.is_empty()
        && rev.len() <= 256
        && !rev.starts_with('-')
        && !rev.contains(':')
        && rev.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(GitError::BadRevision(rev.chars().take(80).collect()))
    }
}

fn run(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .map(|l| l.trim_start_matches("fatal: ").trim())
            .find(|l| !l.is_empty())
            .unwrap_or("no message")
            .to_string();
        return Err(GitError::Failed {
            args: args.join(" "),
            dir: dir.display().to_string(),
            message,
        });
    }
    Ok(out.stdout)
}

/// Whether `rev` names a commit in the repository around `dir`.
pub fn is_revision(dir: &Path, rev: &str) -> bool {
    check_revision(rev).is_ok()
        && run(
            dir,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ],
        )
        .is_ok()
}

/// The bytes of `file` (a name inside `dir`) at revision `rev`.
pub fn show(dir: &Path, rev: &str, file: &str) -> Result<Vec<u8>, GitError> {
    check_revision(rev)?;
    let bytes = run(dir, &["show", &format!("{rev}:./{file}")])?;
    limit(&format!("{rev}:{file}"), bytes)
}

fn limit(what: &str, bytes: Vec<u8>) -> Result<Vec<u8>, GitError> {
    let max = Limits::REGISTRY.max_bytes;
    if bytes.len() as u64 > max {
        return Err(GitError::TooLarge {
            what: what.to_string(),
            size: bytes.len() as u64,
            limit: max,
        });
    }
    Ok(bytes)
}

/// One commit that touched the registry file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub hash: String,
    /// Committer date, strict ISO 8601.
    pub date: String,
    pub committer_email: String,
    pub committer_name: String,
    pub subject: String,
}

/// Commits touching `file` (inside `dir`), oldest first; `range` as git takes it (`A..B`).
pub fn log(dir: &Path, file: &str, range: Option<&str>) -> Result<Vec<Commit>, GitError> {
    let mut args = vec!["log", "--reverse", "--format=%H%x1f%cI%x1f%ce%x1f%cn%x1f%s"];
    if let Some(r) = range {
        // A range may hold `..`; each side is a revision.
        for side in r.split("..").map(|s| s.trim_start_matches('.')) {
            if !side.is_empty() {
                check_revision(side)?;
            }
        }
        args.push(r);
    }
    let path = format!("./{file}");
    args.extend(["--", &path]);
    let out = run(dir, &args)?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\x1f').collect();
            (f.len() >= 5).then(|| Commit {
                hash: f[0].to_string(),
                date: f[1].to_string(),
                committer_email: f[2].to_string(),
                committer_name: f[3].to_string(),
                subject: f[4..].join(" "),
            })
        })
        .collect())
}

/// One commit as a compared side shows it.
#[derive(Clone, Debug)]
pub struct CommitInfo {
    pub hash: String,
    /// Commit date, strict ISO 8601.
    pub date: String,
    /// The author's email, else their name.
    pub author: String,
}

/// The commit `rev` names.
pub fn commit(dir: &Path, rev: &str) -> Result<CommitInfo, GitError> {
    check_revision(rev)?;
    let out = run(
        dir,
        &[
            "log",
            "-1",
            "--format=%H%x1f%cI%x1f%ae%x1f%an",
            &format!("{rev}^{{commit}}"),
            "--",
        ],
    )?;
    let text = String::from_utf8_lossy(&out);
    let f: Vec<&str> = text.trim_end_matches('\n').split('\x1f').collect();
    let field = |i: usize| f.get(i).copied().unwrap_or("").to_string();
    let email = field(2);
    Ok(CommitInfo {
        hash: field(0),
        date: field(1),
        author: if email.is_empty() { field(3) } else { email },
    })
}

/// The file at each commit, read with one `git cat-file --batch`; `None` where the commit
/// has no such file (deleted).
pub fn show_many(
    dir: &Path,
    commits: &[Commit],
    file: &str,
) -> Result<Vec<Option<Vec<u8>>>, GitError> {
    let prefix = String::from_utf8_lossy(&run(dir, &["rev-parse", "--show-prefix"])?)
        .trim()
        .to_string();
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitError::Spawn)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| GitError::Spawn(std::io::Error::other("no stdin")))?;
    let requests: String = commits
        .iter()
        .map(|c| format!("{}:{prefix}{file}\n", c.hash))
        .collect();
    // Write from a thread so a large answer cannot block us while we still write.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(requests.as_bytes());
    });
    let mut all = Vec::new();
    child
        .stdout
        .take()
        .ok_or_else(|| GitError::Spawn(std::io::Error::other("no stdout")))?
        .read_to_end(&mut all)
        .map_err(GitError::Spawn)?;
    let _ = writer.join();
    let status = child.wait().map_err(GitError::Spawn)?;
    let failed = |message: String| GitError::Failed {
        args: "cat-file --batch".into(),
        dir: dir.display().to_string(),
        message,
    };
    if !status.success() {
        return Err(failed(format!("exit status {status}")));
    }
    let mut out = Vec::with_capacity(commits.len());
    let mut at = 0;
    for c in commits {
        let end = all[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| at + i)
            .ok_or_else(|| failed(format!("truncated answer for {}", c.hash)))?;
        let header = String::from_utf8_lossy(&all[at..end]).to_string();
        at = end + 1;
        let parts: Vec<&str> = header.split(' ').collect();
        if parts.len() == 3 && parts[1] == "blob" {
            let size: usize = parts[2]
                .parse()
                .map_err(|_| failed(format!("bad header `{header}`")))?;
            if at + size > all.len() {
                return Err(failed(format!("truncated blob for {}", c.hash)));
            }
            let blob = all[at..at + size].to_vec();
            at += size + 1;
            out.push(Some(limit(&format!("{}:{file}", c.hash), blob)?));
        } else if header.ends_with(" missing") || header.ends_with(" ambiguous") {
            out.push(None);
        } else {
            return Err(failed(format!("unexpected answer `{header}`")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_that_could_be_options_are_refused() {
        for ok in [
            "HEAD",
            "HEAD~1",
            "main",
            "a1b2c3d",
            "v1.0^",
            "origin/main",
            "@{1}",
        ] {
            assert!(check_revision(ok).is_ok(), "{ok}");
        }
        for bad in ["", "--output=/tmp/x", "-p", "HEAD:secret", "a b", "a\nb"] {
            assert!(check_revision(bad).is_err(), "{bad:?}");
        }
    }
}
