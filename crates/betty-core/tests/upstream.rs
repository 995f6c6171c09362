//! The upstream Betty corpus (`../shared/upstream-betty`) must load: every manifest, every
//! registry, every history version but the one that is broken, byte-exact rewrites.
//! Skips with a message where the corpus is absent (a plain clone of the project).

#![allow(clippy::print_stderr)] // a skipped test says why

use std::path::{Path, PathBuf};

use betty_core::limits::Limits;
use betty_core::manifest::{Kind, Manifest};
use betty_core::registry::Registry;
use betty_core::schema::{SchemaId, validate};
use betty_core::{Document, Error};

fn corpus() -> Option<PathBuf> {
    betty_testkit::upstream()
}

fn manifests(root: &Path, folder: &str, file: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root.join(folder))
        .unwrap()
        .map(|e| e.unwrap().path().join(file))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_upstream_manifest_loads_and_matches_its_schema() {
    let Some(root) = corpus() else { return };
    let mut skills = manifests(&root, "skills", "skill.yaml");
    skills.push(root.join("examples/skills/hello.world/skill.yaml"));
    let agents = manifests(&root, "agents", "agent.yaml");
    assert_eq!(skills.len(), 55);
    assert_eq!(agents.len(), 27);
    for (paths, kind, schema) in [
        (&skills, Kind::Skill, SchemaId::SkillManifest),
        (&agents, Kind::Agent, SchemaId::AgentManifest),
    ] {
        for path in paths {
            let m = Manifest::read(path, kind).unwrap_or_else(|e| panic!("{e}"));
            assert!(!m.name.is_empty());
            if let Err(errs) = validate(schema, m.value()) {
                panic!("{}: {errs:?}", path.display());
            }
            for p in m.permissions() {
                assert!(p.parsed.is_ok(), "{}: {}", path.display(), p.text);
            }
        }
    }
    // The trap: colon-form permissions, top level, in code.format.
    let m = Manifest::read(&root.join("skills/code.format/skill.yaml"), Kind::Skill).unwrap();
    let perms: Vec<String> = m
        .permissions()
        .into_iter()
        .map(|p| p.parsed.unwrap().canonical())
        .collect();
    assert!(perms.contains(&"process.execute".to_string()), "{perms:?}");
}

#[test]
fn every_upstream_registry_loads_and_matches_its_schema() {
    let Some(root) = corpus() else { return };
    for (file, kind) in [("skills.json", Kind::Skill), ("agents.json", Kind::Agent)] {
        let r = Registry::load(&root.join("registry").join(file), kind).unwrap();
        assert!(!r.entries().is_empty());
        validate(SchemaId::Registry, &r.as_value()).unwrap();
    }
}

#[test]
fn saving_an_unchanged_upstream_registry_is_byte_for_byte() {
    let Some(root) = corpus() else { return };
    let src = root.join("registry/skills.json");
    let original = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("skills.json");
    std::fs::write(&copy, &original).unwrap();
    let r = Registry::load(&copy, Kind::Skill).unwrap();
    r.save().unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), original);
    let agents = std::fs::read(root.join("registry/agents.json")).unwrap();
    let r = Registry::parse(
        Path::new("agents.json"),
        Kind::Agent,
        std::str::from_utf8(&agents).unwrap(),
    )
    .unwrap();
    assert_eq!(r.to_bytes(), agents);
}

#[test]
fn content_hash_of_version_34_is_reproduced() {
    let Some(root) = corpus() else { return };
    let path = root.join("history/skills.json/34-6bd8837.json");
    let r = Registry::load(&path, Kind::Skill).unwrap();
    let stored = r.stored_content_hash().unwrap().to_string();
    // Version 33 had no hash, so upstream hashed the object without one.
    let mut without = r.as_value();
    without.as_object_mut().unwrap().remove("content_hash");
    let r = Registry::from_value(&path, Kind::Skill, without).unwrap();
    assert_eq!(r.compute_content_hash(), stored);
    assert_eq!(
        stored,
        "42ff68eb9831ce68dcbb6b21f0b0b04348426c07b3a092e654c6a85d9a473fd8"
    );
}

#[test]
fn history_versions_load_except_the_broken_one_which_names_its_line() {
    let Some(root) = corpus() else { return };
    let dir = root.join("history/skills.json");
    let mut ok = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in &files {
        match Registry::load(path, Kind::Skill) {
            Ok(r) => {
                validate(SchemaId::Registry, &r.as_value()).unwrap();
                ok += 1;
            }
            Err(e) => {
                assert!(path.ends_with("19-cfbe39d.json"), "{e}");
                assert!(matches!(e, Error::Syntax { .. }), "{e}");
                assert!(e.to_string().contains("19-cfbe39d.json:923:7"), "{e}");
            }
        }
    }
    assert_eq!((files.len(), ok), (36, 35));
}

#[test]
fn upstream_policies_audit_log_and_telemetry_parse() {
    let Some(root) = corpus() else { return };
    for entry in std::fs::read_dir(root.join("registry/policies")).unwrap() {
        let path = entry.unwrap().path();
        let doc = Document::read_yaml(&path, &Limits::MANIFEST).unwrap();
        validate(SchemaId::Policy, &doc.value)
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    }
    let log = betty_core::audit::AuditLog::new(&root.join("registry/audit_log.json"));
    let report = log.verify(None).unwrap();
    assert_eq!(
        (report.entries, report.legacy_entries, report.hashed_entries),
        (76, 76, 0)
    );
    assert!(report.ok());
}
