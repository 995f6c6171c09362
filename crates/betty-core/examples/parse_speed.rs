use std::time::Instant;
fn main() {
    let files: Vec<String> = std::fs::read_dir("registry/policies").unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    let t = Instant::now();
    for _ in 0..100 { for f in &files { let _ = betty_core::Document::parse_yaml(betty_core::SourceName::Named("x".into()), f.clone(), &betty_core::limits::Limits::MANIFEST).unwrap(); } }
    println!("spanned: {:?} per set", t.elapsed() / 100);
    let t = Instant::now();
    for _ in 0..100 { for f in &files { let _: serde_json::Value = serde_saphyr::from_str(f).unwrap(); } }
    println!("plain: {:?} per set", t.elapsed() / 100);
    let t = Instant::now();
    let s = std::fs::read_to_string("registry/skills.json").unwrap();
    for _ in 0..100 { let _: serde_json::Value = serde_json::from_str(&s).unwrap(); }
    println!("skills.json: {:?}", t.elapsed() / 100);
    let t = Instant::now();
    for _ in 0..100 { let _ = betty_core::schema::validate(betty_core::schema::SchemaId::TelemetryEvent, &serde_json::json!({})); }
    println!("schema validate (incl. first compile): {:?}", t.elapsed() / 100);
}
