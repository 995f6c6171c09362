//! `policy-enforce`: validate skills, agents, workflows and operations against the registry's
//! YAML policies. Thin: parse flags, run the engine (the `policy_enforce` library), record the
//! decision, print, map the outcome to an exit code.

use betty_core::escape::Escaped;
use std::time::Instant;

use anyhow::Context as _;
use betty_cli::{CommonArgs, Printer};
use betty_core::ExitStatus;
use policy_enforce::cli::{CheckArgs, Cli, Command, Format, KindArg, ReportFormat};
use policy_enforce::compliance;
use policy_enforce::policy::{Action, TargetKind};
use policy_enforce::{CheckOptions, World};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli: Cli = match betty_cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    betty_cli::init_logging(&cli.common);
    betty_cli::run(|| run(cli))
}

fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    let registry_dir = cli.common.registry_dir()?;
    match cli.command {
        Some(Command::Report {
            framework,
            format,
            policies,
        }) => {
            cli.common.refuse_user("policy-enforce report")?;
            let world = World::load(registry_dir, policies.as_deref(), Some(Action::Audit))?;
            // The compliance view is the continuous audit's: everything registered and on disk.
            let audit = CheckOptions {
                action: Some(Action::Audit),
                ..CheckOptions::default()
            };
            let report = policy_enforce::check(&world, &audit)?;
            let head = betty_core::audit::AuditLog::new(&world.registry_dir.audit_log())
                .head()
                .ok()
                .flatten()
                .map(|h| h.to_string());
            let value = compliance::control_report(framework, &report, head);
            let mut out = Printer::new();
            match format {
                ReportFormat::Json => out.json(&value)?,
                ReportFormat::Text => out.write_str(&compliance::control_text(&value))?,
            }
            out.flush()?;
            let failed = value["summary"]["fail"].as_u64().unwrap_or(0);
            Ok(if failed > 0 {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            })
        }
        Some(Command::Test {
            dir,
            format,
            policies,
        }) => {
            cli.common.refuse_user("policy-enforce test")?;
            // Fixtures may name any enforcement point: load everything.
            let world = World::load(registry_dir, policies.as_deref(), Some(Action::Audit))?;
            let approvals = world.approvals(Some(Action::Register))?;
            let run = policy_enforce::fixture::run_dir(
                &dir,
                &world.policies,
                &world.registry,
                &approvals,
                world.now,
            )?;
            let mut out = Printer::new();
            match format {
                ReportFormat::Json => out.json(&run.to_json())?,
                ReportFormat::Text => {
                    for f in &run.fixtures {
                        if f.ok {
                            out.line(&format!(
                                "✅ {} ({})",
                                Escaped(&f.fixture),
                                Escaped(&f.file)
                            ))?;
                        } else {
                            let mut why = vec![format!(
                                "expected {}, got {}",
                                f.expected.as_str(),
                                f.got.as_str()
                            )];
                            if !f.missing.is_empty() {
                                why.push(format!("missing findings: {}", f.missing.join(", ")));
                            }
                            if !f.unexpected.is_empty() {
                                why.push(format!(
                                    "unexpected findings: {}",
                                    f.unexpected.join(", ")
                                ));
                            }
                            out.line(&format!(
                                "❌ {} ({}): {}",
                                Escaped(&f.fixture),
                                Escaped(&f.file),
                                Escaped(&why.join("; "))
                            ))?;
                        }
                    }
                    if !run.unexercised.is_empty() {
                        out.line(&format!(
                            "\nRules no fixture exercises ({}):",
                            run.unexercised.len()
                        ))?;
                        for r in &run.unexercised {
                            out.line(&format!("  {}", Escaped(&r.to_string())))?;
                        }
                    }
                    let failed = run.fixtures.iter().filter(|f| !f.ok).count();
                    out.line(&format!(
                        "\n{} fixture(s): {} passed, {failed} failed",
                        run.fixtures.len(),
                        run.fixtures.len() - failed
                    ))?;
                }
            }
            out.flush()?;
            Ok(if run.passed() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            })
        }
        None => enforce(cli.check, &cli.common, registry_dir, started),
    }
}

fn enforce(
    args: CheckArgs,
    common: &CommonArgs,
    registry_dir: betty_core::discover::RegistryDir,
    started: Instant,
) -> anyhow::Result<ExitStatus> {
    if args.action == Some(Action::Deploy) && args.environment.is_none() {
        anyhow::bail!(
            "`--action deploy` needs `--environment NAME` (for example `--environment production`)"
        );
    }
    if args.environment.is_some() && args.action != Some(Action::Deploy) {
        anyhow::bail!("`--environment` goes with `--action deploy`");
    }
    let identity = common.identity()?;
    let opts = CheckOptions {
        action: args.action,
        skill_name: args.skill_name,
        inputs: args.inputs,
        all: args.all,
        kind: args.kind.map(|k| match k {
            KindArg::Skill => TargetKind::Skill,
            KindArg::Agent => TargetKind::Agent,
            KindArg::Workflow => TargetKind::Workflow,
        }),
        strict: args.strict,
        environment: args.environment,
        policies: args.policies,
    };
    // The manifests of `--all` are read while the policies and the registry load.
    let load = |dir| World::load(dir, opts.policies.as_deref(), opts.action);
    let (world, pre) = if opts.all {
        std::thread::scope(|s| {
            let pre = s.spawn(|| policy_enforce::prefetch(&registry_dir, &opts));
            let world = load(registry_dir.clone());
            match pre.join() {
                Ok(pre) => (world, pre),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    } else {
        (load(registry_dir), policy_enforce::Prefetch::default())
    };
    let world = world?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        policies = world.policies.policies.len(),
        "policies, registry and --all manifests loaded"
    );
    let report = policy_enforce::check_prefetched(&world, &opts, pre)?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        targets = report.results.len(),
        "evaluated"
    );
    // A passing run spends the single-use approvals it relied on before it says so.
    policy_enforce::record::consume(&world.registry_dir, &identity, &report)?;
    // Record before printing: a decision that cannot be recorded is not given.
    let head = policy_enforce::record::record(&world.registry_dir, &identity, &report).context(
        "cannot record the decision in the audit trail and telemetry; nothing was decided",
    )?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "recorded");
    tracing::info!(audit_head = %head, targets = report.results.len(), outcome = report.outcome.as_str(), "decision recorded");
    let mut out = Printer::new();
    let printing = Instant::now();
    match args.format {
        Format::Text => out.write_str(&report.to_text(betty_cli::use_colour_on_stdout()))?,
        Format::Json => out.line(&report.to_json_string())?,
        Format::Sarif => out.json(&report.to_sarif())?,
        Format::Junit => out.write_str(&report.to_junit())?,
    }
    out.flush()?;
    tracing::debug!(ms = printing.elapsed().as_millis() as u64, "printed");
    let status = report.outcome.exit_status();
    // The process ends here: freeing a large batch's documents one by one would only cost time.
    std::mem::forget(report);
    std::mem::forget(world);
    Ok(status)
}
