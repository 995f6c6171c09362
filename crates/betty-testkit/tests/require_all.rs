//! `BETTY_REQUIRE_ALL` turns a skip into a failure: this test runs its own test binary again,
//! with the corpus pointed at a folder that does not exist, once with the variable and once
//! without, and checks the first fails naming the corpus and the second passes with a skip.

use std::process::{Command, Output};

const CHILD: &str = "BETTY_TESTKIT_CHILD";

/// Run only as the child of the test below (it does nothing in an ordinary run).
#[test]
fn child_asks_for_the_upstream_corpus() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    assert!(betty_testkit::upstream().is_none());
}

fn child(require_all: Option<&str>) -> Output {
    let missing = std::env::temp_dir().join("betty-testkit-no-such-corpus");
    assert!(!missing.exists());
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_asks_for_the_upstream_corpus",
        "--nocapture",
    ])
    .env(CHILD, "1")
    .env(betty_testkit::UPSTREAM_VAR, &missing)
    .env_remove(betty_testkit::REQUIRE_ALL);
    if let Some(v) = require_all {
        c.env(betty_testkit::REQUIRE_ALL, v);
    }
    c.output().unwrap()
}

#[test]
fn a_missing_corpus_fails_when_everything_is_required() {
    let out = child(Some("1"));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("betty-testkit-no-such-corpus"), "{all}");
    assert!(all.contains("BETTY_REQUIRE_ALL is set"), "{all}");
}

#[test]
fn a_missing_corpus_skips_otherwise() {
    for value in [None, Some("0"), Some("")] {
        let out = child(value);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{value:?}: {err}");
        assert!(
            err.contains("skipping: the upstream corpus"),
            "{value:?}: {err}"
        );
    }
}
