//! Any bytes through the manifest loader (UTF-8 check, YAML/JSON with positions, shape
//! check) and the strict JSON readers: errors are fine, panics and hangs are bugs.
#![no_main]

use betty_core::limits::Limits;
use betty_core::manifest::{Kind, Manifest};
use betty_core::source::{self, Document, SourceName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = SourceName::Named("fuzz.yaml".into());
    let _ = source::json_from_slice(data);
    let Ok(text) = source::into_text(&name, data.to_vec()) else {
        return;
    };
    let _ = source::check_unique_keys(&text);
    let _ = source::parse_json(&name, &text);
    let _ = betty_core::registry::Registry::parse(
        std::path::Path::new("skills.json"),
        Kind::Skill,
        &text,
    );
    if let Ok(doc) = Document::parse_yaml(name, text, &Limits::MANIFEST) {
        let _ = doc.pos("/name");
        let _ = doc.pos("/entrypoints/0/permissions/0");
        if let Ok(m) = Manifest::from_document(doc, Kind::Skill) {
            let _ = (
                m.permissions(),
                m.inputs(),
                m.outputs(),
                m.dependencies(),
                m.digest(),
            );
        }
    }
});
