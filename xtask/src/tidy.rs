//! Repository hygiene as ordinary tests: docs and schemas must not drift from the code.

use std::path::Path;

use betty_core::ExitStatus;

fn read(rel: &str) -> String {
    std::fs::read_to_string(crate::root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn readme_documents_the_exit_codes_the_code_uses() {
    let readme = read("README.md");
    for (code, status) in [
        (0, ExitStatus::Success),
        (1, ExitStatus::Failure),
        (2, ExitStatus::Error),
        (3, ExitStatus::Pending),
    ] {
        assert_eq!(status.code(), code);
        assert!(
            readme.contains(&format!("\n| {code} | ")),
            "README.md exit-code table lacks {code}"
        );
    }
}

#[test]
fn readme_has_exactly_the_two_setup_commands() {
    let readme = read("README.md");
    let setup = readme
        .split("## Set up")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a `## Set up` section");
    let commands: Vec<&str> = setup.lines().filter(|l| l.starts_with("cargo ")).collect();
    assert_eq!(
        commands,
        vec![
            "cargo run --release -p policy-enforce -- --action audit",
            "cargo xtask ci"
        ]
    );
    assert!(
        read(".ci/run").contains("cargo xtask ci"),
        ".ci/run must run the README's test command"
    );
}

#[test]
fn every_crate_is_in_the_architecture_code_map() {
    let arch = read("ARCHITECTURE.md");
    for dir in ["crates", "skills"] {
        for entry in std::fs::read_dir(crate::root().join(dir)).unwrap() {
            let entry = entry.unwrap();
            if entry.path().join("Cargo.toml").is_file() {
                let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
                assert!(
                    arch.contains(&name),
                    "ARCHITECTURE.md does not mention `{name}`"
                );
            }
        }
    }
}

#[test]
fn every_skill_crate_is_a_registered_betty_skill() {
    let root = crate::root();
    let registry = betty_core::registry::Registry::load(
        &root.join("registry/skills.json"),
        betty_core::manifest::Kind::Skill,
    )
    .unwrap();
    for entry in std::fs::read_dir(root.join("skills")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("Cargo.toml").is_file() {
            continue;
        }
        let manifest = dir.join("skill.yaml");
        assert!(manifest.is_file(), "{} has no skill.yaml", dir.display());
        assert!(
            dir.join("SKILL.md").is_file(),
            "{} has no SKILL.md",
            dir.display()
        );
        let m = betty_core::manifest::Manifest::read(&manifest, betty_core::manifest::Kind::Skill)
            .unwrap();
        let folder = dir.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(m.name, folder, "the folder is named after the skill");
        betty_core::schema::validate(betty_core::schema::SchemaId::SkillManifest, m.value())
            .unwrap();
        let entry = registry
            .get(&m.name)
            .unwrap_or_else(|| panic!("`{}` is not in registry/skills.json", m.name));
        assert_eq!(
            &betty_core::registry::without_registry_keys(entry),
            m.value(),
            "registry/skills.json's entry for `{}` differs from its skill.yaml",
            m.name
        );
    }
}

#[test]
fn every_schema_file_is_valid_json_with_an_id() {
    let dir = crate::root().join("schemas");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let id = v["$id"].as_str().unwrap_or_default();
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            id.ends_with(&*name),
            "{name}: $id `{id}` does not end with the file name"
        );
        n += 1;
    }
    assert!(n >= betty_core::schema::SchemaId::ALL.len());
    let _ = Path::new("");
}

#[test]
fn every_binary_has_help_with_an_example() {
    for cmd in crate::commands() {
        let mut cmd = cmd;
        let help = cmd.render_long_help().to_string();
        assert!(
            help.contains("Example"),
            "`{} --help` shows no example",
            cmd.get_name()
        );
        cmd.debug_assert();
    }
}
