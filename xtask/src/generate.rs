//! Generators of realistic benchmark inputs: projects of N skills with policies, registries of
//! N skills (and a changed copy), and large time-ordered event files.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

/// A small deterministic PRNG (xorshift), so every run benchmarks the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const DOMAINS: &[&str] = &[
    "data", "api", "code", "docs", "test", "build", "deploy", "security", "workflow", "registry",
];
const ACTIONS: &[&str] = &[
    "transform",
    "validate",
    "format",
    "generate",
    "run",
    "package",
    "release",
    "scan",
    "compose",
    "define",
];
const PERMS: &[&str] = &[
    "filesystem:read",
    "filesystem:write",
    "network:http",
    "process:execute",
    "filesystem.read",
    "registry:read",
];

/// The manifest of skill number `i`.
pub fn manifest(i: usize, rng: &mut Rng) -> Value {
    let name = format!("{}.{}{i}", rng.pick(DOMAINS), rng.pick(ACTIONS));
    let perms: Vec<&str> = (0..1 + rng.below(3)).map(|_| rng.pick(PERMS)).collect();
    json!({
        "name": name,
        "version": format!("{}.{}.{}", rng.below(3), rng.below(10), rng.below(20)),
        "description": format!("Generated skill {i} that reads inputs, does its work and reports a structured result for the workflow."),
        "inputs": [
            {"name": "path", "type": "string", "required": true, "description": "What to work on"},
            {"name": "dry_run", "type": "boolean", "required": false, "default": false, "description": "Only report"}
        ],
        "outputs": [{"name": "report", "type": "application/json", "description": "Findings"}],
        "dependencies": [],
        "status": if rng.below(10) == 0 { "draft" } else { "active" },
        "permissions": perms,
        "entrypoints": [{
            "command": format!("/{}", name.replace('.', "/")),
            "handler": "main.py",
            "runtime": "python",
            "description": "Run it",
            "permissions": [rng.pick(PERMS)]
        }],
        "tags": [rng.pick(DOMAINS), "generated"]
    })
}

/// A project folder with `skills/<name>/skill.yaml` for `n` skills and a `registry/` holding
/// the bundled policies plus generated ones up to `policies` files.
pub fn project(root: &Path, bundled_registry: &Path, n: usize, policies: usize) -> Result<()> {
    let mut rng = Rng::new(42);
    let reg = root.join("registry");
    std::fs::create_dir_all(reg.join("policies"))?;
    std::fs::create_dir_all(reg.join("telemetry"))?;
    let mut copied = 0;
    for entry in std::fs::read_dir(bundled_registry.join("policies"))? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(
                &p,
                reg.join("policies").join(p.file_name().unwrap_or_default()),
            )?;
            copied += 1;
        }
    }
    for k in copied..policies {
        let text = format!(
            "policy:\n  name: generated-policy-{k}\n  version: 1.0.0\n  description: Generated policy {k}\n  type: validation\n  scope: [skills]\n  rules:\n    - field: description\n      min_length: {}\n      message: Describe the skill\n      severity: warning\n    - field: tags\n      forbidden_values: [forbidden{k}]\n      message: Tag not allowed\n      severity: error\n  enforcement: warning\n",
            10 + k
        );
        std::fs::write(
            reg.join("policies").join(format!("generated-{k}.yaml")),
            text,
        )?;
    }
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let m = manifest(i, &mut rng);
        let name = m["name"].as_str().unwrap_or_default().to_string();
        let dir = root.join("skills").join(&name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("skill.yaml"), to_yaml(&m, 0))?;
        entries.push(m);
    }
    let registry = json!({
        "registry_version": "1.0.0",
        "generated_at": "2026-01-01T00:00:00.000000+00:00",
        "skills": entries,
    });
    std::fs::write(
        reg.join("skills.json"),
        betty_core::pyjson::to_string(&registry, betty_core::pyjson::Style::REGISTRY),
    )?;
    std::fs::write(reg.join("audit_log.json"), "[\n]\n")?;
    Ok(())
}

/// A registry of `n` skills, and a copy with about 5% of them changed, 1% removed, 1% added.
pub fn registry_pair(a: &Path, b: &Path, n: usize) -> Result<()> {
    let mut rng = Rng::new(7);
    let entries: Vec<Value> = (0..n).map(|i| manifest(i, &mut rng)).collect();
    let mut changed = Vec::with_capacity(n);
    for (i, e) in entries.iter().enumerate() {
        match i % 100 {
            0 => continue,
            1..=5 => {
                let mut e = e.clone();
                e["version"] = json!("9.9.9");
                e["permissions"] = json!(["filesystem", "network:http"]);
                changed.push(e);
            }
            _ => changed.push(e.clone()),
        }
    }
    for i in 0..n / 100 {
        changed.push(manifest(n + i, &mut rng));
    }
    let wrap = |skills: Vec<Value>| json!({"registry_version": "1.0.0", "generated_at": "2026-01-01T00:00:00.000000+00:00", "skills": skills});
    let style = betty_core::pyjson::Style::REGISTRY;
    std::fs::write(a, betty_core::pyjson::to_string(&wrap(entries), style))?;
    std::fs::write(b, betty_core::pyjson::to_string(&wrap(changed), style))?;
    Ok(())
}

/// A time-ordered `events.jsonl` of about `bytes` bytes; returns the number of events and how
/// many are `policy.violated`.
pub fn events(path: &Path, bytes: u64, end: jiff::Timestamp) -> Result<(u64, u64)> {
    const TYPES: &[&str] = &[
        "skill.created",
        "skill.validated",
        "skill.registered",
        "workflow.started",
        "workflow.step.completed",
        "workflow.completed",
        "policy.enforced",
        "policy.violated",
        "registry.updated",
    ];
    const OUTCOMES: &[&str] = &["success", "success", "success", "failure", "blocked"];
    let mut rng = Rng::new(99);
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    // Spread events over 90 days ending at `end`: each event's time is proportional to the
    // bytes written before it, so times never decrease and the last one is just before `end`.
    let span_us: i64 = 90 * 86_400 * 1_000_000;
    let start = end.as_microsecond() - span_us;
    let (mut written, mut n, mut violated) = (0u64, 0u64, 0u64);
    while written < bytes {
        let offset = (i128::from(span_us) * i128::from(written) / i128::from(bytes.max(1))) as i64;
        let ts = jiff::Timestamp::from_microsecond(start + offset)?;
        let et = rng.pick(TYPES);
        if et == "policy.violated" {
            violated += 1;
        }
        let line = format!(
            "{{\"event_id\":\"{}\",\"event_type\":\"{et}\",\"timestamp\":\"{}\",\"user\":\"user{}@example.com\",\"session_id\":\"s-{}\",\"skill_name\":\"{}.{}\",\"context\":{{\"tool\":\"bench\",\"version\":\"0.1.0\",\"host\":\"ci-{}\"}},\"outcome\":\"{}\",\"duration_ms\":{}.{},\"schema_version\":1}}\n",
            uuid_like(n),
            betty_core::time::format(ts),
            rng.below(50),
            n / 20,
            rng.pick(DOMAINS),
            rng.pick(ACTIONS),
            rng.below(8),
            rng.pick(OUTCOMES),
            rng.below(5000),
            rng.below(10)
        );
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
        n += 1;
    }
    w.flush()?;
    Ok((n, violated))
}

fn uuid_like(n: u64) -> String {
    format!(
        "0190{:04x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        (n >> 48) & 0xffff,
        (n >> 32) & 0xffff,
        (n >> 20) & 0xfff,
        (n >> 8) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// A plain YAML rendering (block style) of a JSON value, for generated manifests.
pub fn to_yaml(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match val {
                    Value::Object(c) if !c.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n{}", to_yaml(val, indent + 2)))
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n{}", to_yaml(val, indent + 2)))
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(val))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) => {
                        let inner = to_yaml(item, indent + 2);
                        let inner = inner.trim_start();
                        out.push_str(&format!("{pad}- {inner}"));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        // JSON strings are valid YAML double-quoted scalars.
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_manifests_load_and_match_the_schema() {
        let mut rng = Rng::new(1);
        for i in 0..20 {
            let m = manifest(i, &mut rng);
            let text = to_yaml(&m, 0);
            let doc = betty_core::Document::parse_yaml(
                betty_core::SourceName::Named("gen.yaml".into()),
                text,
                &betty_core::limits::Limits::MANIFEST,
            )
            .unwrap();
            assert_eq!(doc.value, m);
            betty_core::schema::validate(betty_core::schema::SchemaId::SkillManifest, &doc.value)
                .unwrap();
        }
    }

    #[test]
    fn generated_events_are_valid_and_time_ordered() {
        let dir = std::env::temp_dir().join(format!("betty-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let end = jiff::Timestamp::now();
        let (n, _) = events(&path, 100_000, end).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count() as u64, n);
        let mut last = String::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            betty_core::telemetry::check_event(&v).unwrap();
            let ts = v["timestamp"].as_str().unwrap().to_string();
            assert!(ts >= last);
            last = ts;
        }
        assert!(last < betty_core::time::format(end));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
