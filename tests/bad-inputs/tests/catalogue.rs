//! Runs every case of `cases.yaml` against the binaries built in this target folder (the
//! workspace's test build makes them: `cargo nextest run --workspace`, or
//! `cargo build --workspace --bins` before `cargo test -p bad-inputs`).

#![allow(clippy::print_stderr)] // the report of a data-driven test goes to stderr

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bad_inputs::{BINARIES, Case, Env, Verdict};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cases() -> Vec<Case> {
    bad_inputs::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cases.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The binaries built in this target folder, each newer than its sources.
fn env() -> Env {
    Env {
        bin_dir: betty_testkit::bins::dir(&BINARIES),
        bundled_registry: root().join("registry"),
    }
}

#[test]
fn the_catalogue_is_big_and_covers_every_binary() {
    let cases = cases();
    assert!(
        cases.len() >= 60,
        "{} cases, at least 60 wanted",
        cases.len()
    );
    let settled = cases.iter().filter(|c| c.pending.is_none()).count();
    assert!(settled >= 40, "{settled} cases without `pending`");
    let mut ids = BTreeSet::new();
    for case in &cases {
        assert!(ids.insert(&case.id), "case id `{}` is used twice", case.id);
        assert!(!case.message.is_empty(), "{}: empty message", case.id);
        assert!(
            [1, 2].contains(&case.exit),
            "{}: a bad input exits 1 or 2",
            case.id
        );
    }
    for bin in BINARIES {
        let n = cases.iter().filter(|c| c.bin == bin).count();
        assert!(n >= 5, "only {n} cases for {bin}");
    }
}

#[test]
fn every_bad_input_is_refused_and_changes_nothing() {
    let env = env();
    let scratch = std::env::temp_dir().join(format!("betty-bad-inputs-{}", std::process::id()));
    let filter = std::env::var("BAD_INPUTS_CASE").ok();
    let verbose = std::env::var_os("BAD_INPUTS_VERBOSE").is_some();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| filter.as_ref().is_none_or(|f| c.id.contains(f.as_str())))
        .collect();
    // Cases run four at a time (most of a case is waiting on a child process).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let verdicts = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let verdict = bad_inputs::run(&env, case, i, &scratch);
                    verdicts.lock().unwrap().push((i, verdict));
                }
            });
        }
    });
    let mut verdicts = verdicts.into_inner().unwrap();
    verdicts.sort_by_key(|(i, _)| *i);
    let (mut passed, mut pending, mut failures) = (0, Vec::new(), Vec::new());
    for (i, verdict) in verdicts {
        let case = &cases[i];
        match verdict {
            Verdict::Pass(output) => {
                passed += 1;
                if verbose {
                    eprintln!("  {}: {output}", case.id);
                }
            }
            Verdict::PendingFailed(why) => pending.push(format!(
                "  {} (pending: {}): {why}",
                case.id,
                case.pending.as_deref().unwrap_or_default()
            )),
            Verdict::PendingPassed => failures.push(format!(
                "  {}: passes now: remove the pending mark ({})",
                case.id,
                case.pending.as_deref().unwrap_or_default()
            )),
            Verdict::Fail(why) => failures.push(format!("  {}: {why}", case.id)),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!(
        "bad inputs: {passed} passed, {} pending, {} failed",
        pending.len(),
        failures.len()
    );
    if !pending.is_empty() {
        eprintln!("pending (reported, accepted):\n{}", pending.join("\n"));
    }
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
}
