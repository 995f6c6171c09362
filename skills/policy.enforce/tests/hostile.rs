//! Hostile files and text against the real `policy-enforce`: nothing is written through a link
//! out of the registry, a FIFO is refused at once (manifest, policy, `skills.json`), and no
//! text (Japanese, emoji, CR/LF, escapes) makes it panic.

#[path = "../../../crates/betty-core/tests/support/hostile.rs"]
mod hostile;

use hostile::{HOSTILE, Link, Project};

const BIN: &str = env!("CARGO_BIN_EXE_policy-enforce");
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry");

#[test]
fn no_decision_is_recorded_through_a_link() {
    hostile::assert_no_write_through_links(BIN, BUNDLED, |_: Link| {
        Some(
            ["--action", "create", "--skill-name", "data.transform"]
                .map(String::from)
                .to_vec(),
        )
    });
}

#[test]
fn a_fifo_as_manifest_policy_or_registry_is_refused_at_once() {
    let p = Project::new(BUNDLED);
    let manifest = p.dir().join("skill.yaml");
    hostile::mkfifo(&manifest);
    hostile::assert_fifo_refused(BIN, &p.dir(), &["skill.yaml"], &manifest);
    let out = hostile::run(BIN, &p.dir(), &["--kind", "skill", "/dev/zero"], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("character device"), "{}", out.stderr);
    let out = hostile::run(BIN, &p.dir(), &["--kind", "skill", "registry"], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("a folder"), "{}", out.stderr);

    let in_all = p.dir().join("skills/fifo.skill/skill.yaml");
    hostile::mkfifo(&in_all);
    hostile::assert_fifo_refused(BIN, &p.dir(), &["--all"], &in_all);
    std::fs::remove_file(&in_all).unwrap();

    let policy = p.registry().join("policies/zz-fifo.yaml");
    hostile::mkfifo(&policy);
    hostile::assert_fifo_refused(
        BIN,
        &p.dir(),
        &["--action", "create", "--skill-name", "data.transform"],
        &policy,
    );
    std::fs::remove_file(&policy).unwrap();

    let workflow = p.dir().join("workflows/fifo.yaml");
    std::fs::create_dir_all(workflow.parent().unwrap()).unwrap();
    hostile::mkfifo(&workflow);
    hostile::assert_fifo_refused(BIN, &p.dir(), &["--action", "audit"], &workflow);
    std::fs::remove_file(&workflow).unwrap();

    let skills = p.registry().join("skills.json");
    hostile::mkfifo(&skills);
    hostile::assert_fifo_refused(BIN, &p.dir(), &["--action", "audit"], &skills);
}

#[test]
fn hostile_text_never_panics() {
    let p = Project::new(BUNDLED);
    for text in HOSTILE {
        // The error path (a bad name) and the success path (a manifest that is checked).
        let out = hostile::run(
            BIN,
            &p.dir(),
            &["--action", "create", "--skill-name", text],
            None,
        );
        assert!(matches!(out.code, 1 | 2), "{text:?}: {}", out.stderr);
        for format in ["text", "json", "sarif", "junit"] {
            let manifest = format!(
                "name: {}\nversion: 0.1.0\ndescription: {}\npermissions: [{}]\n",
                serde_json::to_string(text).unwrap(),
                serde_json::to_string(text).unwrap(),
                serde_json::to_string(text).unwrap(),
            );
            hostile::run(
                BIN,
                &p.dir(),
                &["--format", format, "-"],
                Some(manifest.as_bytes()),
            );
        }
    }
}

#[test]
fn a_named_registry_that_is_missing_never_falls_back() {
    // The project has a `registry/` the walk-up would find: none of these may use it.
    let p = Project::new(BUNDLED);
    let audit = p.registry().join("audit_log.json");
    let before = std::fs::read(&audit).unwrap();
    let missing = p.outside().join("missing");
    let file = p.registry().join("skills.json");
    let home_without = p.outside();
    let create = ["--action", "create", "--skill-name", "data.transform"];
    for (var, value, named) in [
        ("BETTY_HOME", missing.as_path(), "`BETTY_HOME`"),
        (
            "BETTY_HOME",
            home_without.as_path(),
            "`$BETTY_HOME/registry`",
        ),
        ("BETTY_REGISTRY", missing.as_path(), "`BETTY_REGISTRY`"),
        ("BETTY_REGISTRY", file.as_path(), "`BETTY_REGISTRY`"),
    ] {
        let out = hostile::run_env(BIN, &p.dir(), &create, None, &[(var, value)]);
        assert_eq!(out.code, 2, "{var}={}: {}", value.display(), out.stderr);
        assert!(out.stderr.contains(named), "{var}: {}", out.stderr);
    }
    let flag = missing.to_string_lossy().to_string();
    let mut args = vec!["--registry", flag.as_str()];
    args.extend(create);
    let out = hostile::run(BIN, &p.dir(), &args, None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("`--registry`") && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(&audit).unwrap(),
        before,
        "the walk-up registry was written"
    );
}
