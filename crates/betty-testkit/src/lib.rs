//! Test-only helpers. Its one job today: a test that needs something from outside the project
//! (the upstream corpus in `../shared/upstream-betty`, Python's DuckDB, a sibling binary built by
//! another crate's tests) may skip with a message on a developer's machine, but never in CI:
//! with `BETTY_REQUIRE_ALL=1` (exported by `.ci/run`) every skip is a failure naming what was
//! missing. Every skip in the workspace goes through [`skip`], so none can be forgotten.
//! [`keys`] makes real SSH keys with `ssh-keygen` for the approval tests; [`bins`] finds the
//! workspace's binaries for a test that runs one its crate does not build; [`loopback`] is the
//! one HTTP and SMTP server on 127.0.0.1 that every network test uses.

#![allow(clippy::print_stderr)] // a skipped test says why, on stderr

use std::path::PathBuf;

pub mod bins;
pub mod keys;
pub mod loopback;

/// The variable that turns every skip into a failure (set by `.ci/run`).
pub const REQUIRE_ALL: &str = "BETTY_REQUIRE_ALL";

/// Overrides where the upstream corpus is looked for (default: `../shared/upstream-betty`
/// beside the project root).
pub const UPSTREAM_VAR: &str = "BETTY_UPSTREAM_CORPUS";

/// Whether skips are failures: `BETTY_REQUIRE_ALL` set to anything but empty or `0`.
pub fn skips_are_failures() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Skips the calling test (the caller returns right after), or fails it when
/// [`skips_are_failures`]. `reason` says what is missing and how to get it.
#[track_caller]
pub fn skip(reason: &str) {
    assert!(
        !skips_are_failures(),
        "{reason}; {REQUIRE_ALL} is set, so a test may not skip (unset it to skip locally)"
    );
    eprintln!("skipping: {reason}");
}

/// The upstream Betty corpus, or `None` after [`skip`] when it is absent.
#[track_caller]
pub fn upstream() -> Option<PathBuf> {
    let path = std::env::var_os(UPSTREAM_VAR).map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/upstream-betty"
            ))
        },
        PathBuf::from,
    );
    if path.is_dir() {
        Some(path)
    } else {
        skip(&format!(
            "the upstream corpus `{}` is absent (it lives in ../shared beside the project)",
            path.display()
        ));
        None
    }
}
