//! `.ci/run` refuses to start when the upstream corpus is missing: it is run from a copy of
//! the project's `.ci/` in a scratch folder that has no `../shared/upstream-betty` beside it,
//! where it must stop at once (before configuring git or installing anything).

use std::path::Path;
use std::process::Command;

#[test]
fn ci_run_fails_without_the_upstream_corpus() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scratch = std::env::temp_dir().join(format!("betty-ci-run-{}", std::process::id()));
    let copy = scratch.join("project");
    std::fs::create_dir_all(copy.join(".ci")).unwrap();
    std::fs::copy(project.join(".ci/run"), copy.join(".ci/run")).unwrap();
    assert!(!scratch.join("shared/upstream-betty").exists());
    // Only `dirname` is on the PATH: were the check missing, the script could not reach git,
    // pip or cargo on this machine.
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(which("dirname"), bin.join("dirname")).unwrap();
    let out = Command::new(which("bash"))
        .arg(copy.join(".ci/run"))
        .env("PATH", &bin)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&scratch).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("../shared/upstream-betty is missing"), "{err}");
}

fn which(program: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{program}` is not on the PATH"))
}
