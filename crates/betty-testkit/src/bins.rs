//! The workspace's binaries, for a test that runs one its own crate does not build (the
//! bad-input catalogue runs all five; policy-enforce's signed-approval tests run
//! `approval-queue`). They are found beside the test executable (`<target>/<profile>/deps/..`),
//! and each must be newer than every source it was built from, so a stale build cannot pass.

use std::path::{Path, PathBuf};

/// Whether a binary is older than a source file it was built from (its `.d` dep-info file,
/// written by cargo beside it, lists them); the newer source.
pub fn stale(bin: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let deps = std::fs::read_to_string(bin.with_extension("d")).ok()?;
    let (_, sources) = deps.lines().next()?.split_once(": ")?;
    sources
        .replace("\\ ", "\u{0}")
        .split(' ')
        .map(|s| PathBuf::from(s.replace('\u{0}', " ")))
        .find(|source| {
            std::fs::metadata(source)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > built)
        })
}

/// The folder holding the workspace's binaries. Panics (never skips) when one of `names` is
/// missing or stale, saying how to build it.
#[track_caller]
pub fn dir(names: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let bin_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps")
        .to_path_buf();
    for name in names {
        let path = bin_dir.join(name);
        assert!(
            path.is_file(),
            "{} is not built: run `cargo build --workspace --bins` (or the whole workspace's tests) first",
            path.display()
        );
        if let Some(source) = stale(&path) {
            panic!(
                "{} is older than {}: run `cargo build --workspace --bins` (or the whole workspace's tests) first",
                path.display(),
                source.display()
            );
        }
    }
    bin_dir
}
