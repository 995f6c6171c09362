//! Bad input is the normal case: each of these is a clear, typed error (exit 2 through
//! `Error::exit_status`) naming the input, and nothing on disk changes.

use std::path::Path;

use betty_core::limits::Limits;
use betty_core::manifest::{Kind, Manifest};
use betty_core::registry::Registry;
use betty_core::{Error, ExitStatus};

fn check(name: &str, bytes: &[u8], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Manifest::read(&path, Kind::Skill).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(expect),
        "{name}: expected `{expect}` in: {msg}"
    );
    assert!(
        msg.contains(name),
        "{name}: the message must name the input: {msg}"
    );
    assert_eq!(err.exit_status(), ExitStatus::Error);
    assert_eq!(std::fs::read(&path).unwrap(), before, "{name} was modified");
}

#[test]
fn each_bad_manifest_is_a_clear_error() {
    check("empty.yaml", b"", "is empty");
    check(
        "list.yaml",
        b"- name: a.b\n- name: c.d\n",
        "must be a mapping",
    );
    check(
        "float.yaml",
        b"name: a.b\nversion: 1.0\n",
        "`version` must be a string",
    );
    check(
        "intname.yaml",
        b"name: 12\nversion: \"1\"\n",
        "`name` must be a string",
    );
    check(
        "latin1.yaml",
        b"name: a.b\ndescription: caf\xe9\n",
        "not valid UTF-8",
    );
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, cur) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        bomb.push_str(&format!(
            "{cur}: &{cur} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    check("bomb.yaml", bomb.as_bytes(), "bomb.yaml:");
    check(
        "deep.yaml",
        format!("name: {}{}\n", "[".repeat(5000), "]".repeat(5000)).as_bytes(),
        "deep.yaml:",
    );
    check("tabs.yaml", b"name: a.b\n\tversion: x\n", "tabs.yaml:");
}

#[test]
fn a_huge_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(50 * 1024 * 1024).unwrap();
    drop(f);
    let err = Manifest::read(&path, Kind::Skill).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit, .. } if limit == Limits::MANIFEST.max_bytes),
        "{err}"
    );
    assert!(err.to_string().contains("huge.yaml"));
}

#[test]
fn a_bad_registry_is_refused_with_its_position_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skills.json");
    let text = "{\n  \"skills\": [\n    {\"name\": \"a.b\"}\n    {\"name\": \"c.d\"}\n  ]\n}";
    std::fs::write(&path, text).unwrap();
    let err = Registry::load(&path, Kind::Skill).unwrap_err();
    assert!(err.to_string().contains("skills.json:4:5"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // A missing directory is a clear error too.
    let err = Registry::load(Path::new("/nonexistent/skills.json"), Kind::Skill).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read `/nonexistent/skills.json`"),
        "{err}"
    );
}
