//! `cargo xtask demo`: the README's main job on the bundled registry, then a signed approval
//! walked through end to end with throw-away keys, in a temporary copy of the registry (the
//! bundled one is not touched): a production deploy is held, a developer requests approval, two
//! release managers sign, the deploy passes once and is held again (single use).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, root, step};

pub fn run() -> Result<()> {
    let mut audit = cargo();
    audit.args([
        "run",
        "--release",
        "-p",
        "policy-enforce",
        "--",
        "--action",
        "audit",
    ]);
    step("policy-enforce --action audit", audit)?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "policy-enforce",
        "-p",
        "approval-queue",
    ]);
    step(
        "cargo build --release (policy-enforce, approval-queue)",
        build,
    )?;
    signed_approval(&root().join("target/release"))
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".lock") || n == "telemetry" || n == "history" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Runs `bin args` in `dir`, shows the command and its output, and checks the exit code.
fn show(dir: &Path, bin: &Path, args: &[&str], want: i32) -> Result<String> {
    let name = bin.file_name().unwrap_or_default().to_string_lossy();
    println!("\n$ {name} {}", args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("BETTY_REGISTRY")
        .env_remove("BETTY_HOME")
        .env_remove("BETTY_USER")
        .env("NO_COLOR", "1")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let code = out.status.code().unwrap_or(-1);
    println!("(exit {code})");
    if code != want {
        bail!("`{name} {}` exited {code}, expected {want}", args.join(" "));
    }
    Ok(stdout)
}

fn signed_approval(bin: &Path) -> Result<()> {
    let dir = TempDir(std::env::temp_dir().join(format!("betty-demo-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let work = dir.0.clone();
    copy_dir(&root().join("registry"), &work.join("registry"))?;
    std::fs::write(work.join("registry/audit_log.json"), "[\n]\n")?;
    println!(
        "\n==> a signed approval, with throw-away keys, in {}",
        work.display()
    );
    let people = [
        ("dev", "developer@example.com"),
        ("rm", "release-manager@example.com"),
        ("lead", "platform-lead@example.com"),
    ];
    let keys = work.join("keys");
    std::fs::create_dir_all(&keys)?;
    let mut signers = String::new();
    for (key, principal) in people {
        let path = keys.join(key);
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", principal, "-f"])
            .arg(&path)
            .status()
            .context("cannot run ssh-keygen (install openssh-client)")?
            .success();
        if !ok {
            bail!("ssh-keygen could not make a key");
        }
        let public = std::fs::read_to_string(path.with_extension("pub"))?;
        let mut parts = public.split_whitespace();
        let (kind, blob) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        signers.push_str(&format!(
            "{principal} namespaces=\"betty-approval\" {kind} {blob}\n"
        ));
    }
    std::fs::write(work.join("registry/approvals/allowed_signers"), &signers)?;
    println!(
        "registry/approvals/allowed_signers (in a real registry: changed by review):\n{signers}"
    );
    let pe = bin.join("policy-enforce");
    let aq = bin.join("approval-queue");
    let deploy = [
        "--action",
        "deploy",
        "--environment",
        "production",
        "data.transform",
    ];
    show(&work, &pe, &deploy, 3)?;
    let key = |k: &str| keys.join(k).display().to_string();
    let (dev, rm, lead) = (key("dev"), key("rm"), key("lead"));
    let out = show(
        &work,
        &aq,
        &[
            "request",
            "--operation",
            "deploy",
            "--skill",
            "data.transform",
            "--environment",
            "production",
            "--approvers",
            "release-managers",
            "--required",
            "2",
            "--reason",
            "release 1.4",
            "--key",
            &dev,
            "--format",
            "json",
        ],
        3,
    )?;
    let v: serde_json::Value = serde_json::from_str(&out).context("request output")?;
    let id = v["id"].as_str().context("request id")?.to_string();
    // The requester cannot approve their own request: refused and recorded.
    show(&work, &aq, &["approve", &id, "--key", &dev], 2)?;
    show(&work, &aq, &["approve", &id, "--key", &rm], 3)?;
    show(&work, &pe, &deploy, 3)?;
    show(
        &work,
        &aq,
        &["approve", &id, "--key", &lead, "--comment", "go"],
        0,
    )?;
    show(&work, &pe, &deploy, 0)?;
    // Single use: the deploy spent it.
    show(&work, &pe, &deploy, 3)?;
    show(&work, &aq, &["status", &id], 1)?;
    println!("\n==> the demo passed: held, signed twice, used once");
    Ok(())
}
