//! The `approvals` benchmark suite: request and approve as whole processes beside the
//! `ssh-keygen -Y sign` step they contain, `list` over 10,000 signed requests (each with three
//! signed decisions, every signature verified), and the in-process derivation of one request
//! with three decisions.

use std::path::Path;
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use betty_core::approval::{ApprovalRequest, ApprovalStore, Status};

use crate::bench::{Ctx, Row, ms};

const PEOPLE: [(&str, &str); 4] = [
    ("dev", "dev@x.com"),
    ("alice", "alice@x.com"),
    ("bob", "bob@x.com"),
    ("carol", "carol@x.com"),
];

/// A registry with keys for [`PEOPLE`], the `security` group and one manifest.
fn setup(dir: &Path) -> Result<()> {
    let reg = dir.join("registry");
    std::fs::create_dir_all(reg.join("approvals"))?;
    std::fs::create_dir_all(dir.join("skills/deploy.release"))?;
    std::fs::write(reg.join("audit_log.json"), "[\n]\n")?;
    std::fs::write(
        reg.join("approvals/groups.yaml"),
        "groups:\n  security: [alice@x.com, bob@x.com, carol@x.com]\n",
    )?;
    std::fs::write(
        dir.join("skills/deploy.release/skill.yaml"),
        "name: deploy.release\nversion: 1.0.0\ndescription: Ship it\nstatus: active\npermissions: [network:http]\n",
    )?;
    let signers = crate::torture::throwaway_keys(&dir.join("keys"), &PEOPLE)?;
    std::fs::write(reg.join("approvals/allowed_signers"), signers)?;
    Ok(())
}

/// Runs `approval-queue` as `who`, signing with their key; returns the time and stdout.
fn queue(ctx: &Ctx, dir: &Path, who: &str, args: &[&str]) -> Result<(Duration, String)> {
    let start = Instant::now();
    let out = Command::new(ctx.bin.join("approval-queue"))
        .args(args)
        .arg("--key")
        .arg(dir.join("keys").join(who))
        .current_dir(dir)
        .env_remove("BETTY_USER")
        .env_remove("BETTY_REGISTRY")
        .stdin(Stdio::null())
        .output()
        .context("cannot run approval-queue")?;
    let elapsed = start.elapsed();
    if out.status.code().is_none_or(|c| c == 2 || c > 3) {
        bail!(
            "`approval-queue {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((elapsed, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// `ssh-keygen -Y sign` of a message the size of a request statement: the signing step.
fn sign_step(dir: &Path, who: &str, message: &Path) -> Result<Duration> {
    let start = Instant::now();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "betty-approval", "-f"])
        .arg(dir.join("keys").join(who))
        .stdin(std::fs::File::open(message)?)
        .output()
        .context("cannot run ssh-keygen")?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!(
            "ssh-keygen -Y sign failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(elapsed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn id_of(json: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(json).context("request printed no JSON")?;
    Ok(v["id"]
        .as_str()
        .context("request printed no id")?
        .to_string())
}

pub fn approvals(ctx: &Ctx, rows: &mut Vec<Row>) -> Result<()> {
    let dir = ctx.work.join("approvals");
    setup(&dir)?;
    let manifest = dir.join("skills/deploy.release/skill.yaml");
    let manifest = manifest.to_str().context("work path is not UTF-8")?;
    let request_args = [
        "request",
        "--operation",
        "deploy",
        "--manifest",
        manifest,
        "--approvers",
        "security",
        "--required",
        "3",
        "--reason",
        "bench",
        "--format",
        "json",
    ];
    let message = dir.join("statement.json");
    std::fs::write(&message, "x".repeat(700))?;
    // Request, then the signing step alone, by turns (the first pair is a warm-up).
    let runs = ctx.runs();
    let (mut req_t, mut sign_t, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        let (t, out) = queue(ctx, &dir, "dev", &request_args)?;
        let s = sign_step(&dir, "dev", &message)?;
        ids.push(id_of(&out)?);
        if i > 0 {
            req_t.push(t);
            sign_t.push(s);
        }
    }
    let (mut appr_t, mut sign2_t) = (Vec::new(), Vec::new());
    for (i, id) in ids.iter().enumerate() {
        let (t, _) = queue(ctx, &dir, "alice", &["approve", id, "--format", "json"])?;
        let s = sign_step(&dir, "alice", &message)?;
        if i > 0 {
            appr_t.push(t);
            sign2_t.push(s);
        }
    }
    for (name, ours, sign) in [
        (
            "approval-queue request, whole process (key resolution, ssh-keygen signing, audit intent + commit, event)",
            median(req_t),
            median(sign_t),
        ),
        (
            "approval-queue approve, whole process (verifying the request, ssh-keygen signing, audit, event)",
            median(appr_t),
            median(sign2_t),
        ),
    ] {
        let own = ours.saturating_sub(sign);
        rows.push(Row {
            name: name.to_string(),
            ours: ms(ours),
            baseline: format!("{} (ssh-keygen -Y sign alone)", ms(sign)),
            ratio: format!("{} besides signing", ms(own)),
            target: "signing shown separately".into(),
            met: None,
        });
    }

    // One request with three signed decisions: the template of the listing, and the derive.
    let (_, out) = queue(ctx, &dir, "dev", &request_args)?;
    let id = id_of(&out)?;
    for who in ["alice", "bob", "carol"] {
        queue(ctx, &dir, who, &["approve", &id])?;
    }
    let reg = dir.join("registry");
    let store = ApprovalStore::new(&reg.join("approvals"));
    let trust = store.trust(Some(&reg.join("audit_log.json")))?;
    let template = store.load(&id)?;
    let now = betty_core::time::now();
    let derived = template.derive(&trust, now);
    if derived.status != Status::Approved {
        bail!(
            "the template request derived as {}, not approved",
            derived.status
        );
    }
    let n = 2000u32;
    let mut per = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(template.derive(&trust, now));
        }
        per.push(start.elapsed() / n);
    }
    let per = median(per);
    rows.push(Row {
        name: "derive one request with 3 signed decisions, in process (4 SSHSIG verifications)"
            .into(),
        ours: format!("{:.3} ms", per.as_secs_f64() * 1000.0),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "< 1 ms".into(),
        met: Some(per < Duration::from_millis(1)),
    });

    // 10,000 such requests, each re-signed in process under its own id.
    let total = if ctx.quick { 2_000 } else { 10_000 };
    let big = ctx.work.join("approvals-10k");
    std::fs::create_dir_all(big.join("registry/approvals"))?;
    for f in [
        "approvals/groups.yaml",
        "approvals/allowed_signers",
        "audit_log.json",
    ] {
        std::fs::copy(reg.join(f), big.join("registry").join(f))?;
    }
    let keys: Vec<(String, ssh_key::PrivateKey)> = PEOPLE
        .iter()
        .map(|(file, principal)| {
            Ok((
                principal.to_string(),
                ssh_key::PrivateKey::read_openssh_file(&dir.join("keys").join(file))?,
            ))
        })
        .collect::<Result<_>>()?;
    let sign = |who: &str, msg: &[u8]| -> Result<String> {
        let key = &keys.iter().find(|(p, _)| p == who).context("no key")?.1;
        Ok(key
            .sign("betty-approval", ssh_key::HashAlg::Sha512, msg)?
            .to_pem(ssh_key::LineEnding::LF)?)
    };
    for i in 0..total {
        let mut r: ApprovalRequest = template.clone();
        r.id = format!("apr-0be4c4{i:026x}");
        r.signature = Some(sign(&r.requested_by, &r.statement())?);
        let statements: Vec<Vec<u8>> = r.decisions.iter().map(|d| d.statement(&r)).collect();
        for (d, s) in r.decisions.iter_mut().zip(statements) {
            d.signature = Some(sign(&d.by, &s)?);
        }
        std::fs::write(
            big.join("registry/approvals")
                .join(format!("{}.json", r.id)),
            serde_json::to_vec_pretty(&r)?,
        )?;
    }
    let list = || -> Result<(Duration, String)> {
        let start = Instant::now();
        let out = Command::new(ctx.bin.join("approval-queue"))
            .args(["list", "--format", "json"])
            .current_dir(&big)
            .env_remove("BETTY_REGISTRY")
            .output()?;
        let t = start.elapsed();
        if !out.status.success() {
            bail!(
                "approval-queue list failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok((t, String::from_utf8_lossy(&out.stdout).into_owned()))
    };
    let (_, out) = list()?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let approved = v["requests"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|r| r["effective_status"] == "approved")
            .count()
    });
    if approved != total as usize {
        bail!("list derived {approved} of {total} requests as approved");
    }
    let times = (0..runs)
        .map(|_| list().map(|(t, _)| t))
        .collect::<Result<Vec<_>>>()?;
    let t = median(times);
    rows.push(Row {
        name: format!(
            "approval-queue list over {total} signed requests (3 signed decisions each: {} signatures verified), whole process",
            total * 4
        ),
        ours: ms(t),
        baseline: "-".into(),
        ratio: format!("{:.0} requests/ms", f64::from(total) / (t.as_secs_f64() * 1000.0)),
        target: "< 200 ms".into(),
        met: Some(t < Duration::from_millis(200)),
    });
    Ok(())
}
