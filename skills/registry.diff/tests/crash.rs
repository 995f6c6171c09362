//! `kill -9` during `rollback` and `record`, at random moments, 100 times: the registry is
//! always exactly the old file or the new one, and it parses; history stays readable.
#![allow(clippy::print_stderr)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn big_registry(version: &str, n: usize) -> Vec<u8> {
    let skills: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": format!("skill.s{i:05}"), "version": version, "description": format!("Skill number {i}, a fairly long description to make the file big enough"),
                "inputs": [{"name": "source", "type": "string", "required": true, "description": "where"}],
                "permissions": ["filesystem:read"], "status": "active", "tags": ["a", "b", "c"],
                "entrypoints": [{"command": format!("/s/{i}"), "handler": "h", "runtime": "rust", "permissions": ["filesystem:read"]}]
            })
        })
        .collect();
    registry(Value::Array(skills))
}

/// xorshift, seeded from the clock: a different schedule of kills on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_during_rollback_or_record_leaves_the_old_or_the_new_registry() {
    let t = tempfile::tempdir().unwrap();
    let reg = t.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let file = reg.join("skills.json");
    let a = big_registry("1.0.0", 800);
    let b = big_registry("1.1.0", 800);
    std::fs::write(&file, &a).unwrap();
    assert_eq!(code(&run(t.path(), &["record"])), 0);
    std::fs::write(&file, &b).unwrap();
    // Kills land anywhere in a run: spread them over twice what a whole run takes here.
    let started = std::time::Instant::now();
    assert_eq!(code(&run(t.path(), &["record"])), 0);
    let spread = (started.elapsed().as_micros() as u64 * 2).max(1_000);
    let ids: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(reg.join("history"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids.len(), 2);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill schedule seed: {seed}");
    let mut rng = Rng(seed);
    let mut finished = 0;
    for round in 0..100 {
        let live = std::fs::read(&file).unwrap();
        let mut child = if round % 4 == 3 {
            // A record racing with the kill (after a plain rewrite of the registry).
            let other = if live == a { &b } else { &a };
            betty_core::fsx::atomic_write(&file, other).unwrap();
            cmd(t.path())
                .arg("record")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        } else {
            let target = if live == a { &ids[1] } else { &ids[0] };
            cmd(t.path())
                .args(["rollback", target])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        std::thread::sleep(Duration::from_micros(rng.next() % spread));
        let _ = child.kill();
        if child.wait().unwrap().success() {
            finished += 1;
        }
        let now = std::fs::read(&file).unwrap();
        assert!(
            now == a || now == b,
            "round {round}: the registry is neither the old nor the new file"
        );
        serde_json::from_slice::<Value>(&now).expect("the registry parses");
    }
    eprintln!("{finished} of 100 runs finished before the kill");
    // History is readable, locks were released, and the tool still works.
    let o = run(t.path(), &["log", "--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(t.path(), &["record"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(
        t.path(),
        &["--compare", &ids[0], &ids[1], "--format", "json"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["summary"]["changed"], 800);
}
