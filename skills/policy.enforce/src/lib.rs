//! The Betty policy engine behind `policy-enforce`.
//!
//! [`policy`] loads and validates `registry/policies/*.yaml` (every problem with the policy
//! file's `line:column`) and compiles rules once; [`waiver`] reads `waivers.yaml`; [`target`]
//! reads what is checked (manifests, registry entries, workflows, a bare name) with positions;
//! [`engine`] evaluates policies on targets at an enforcement point, applying waivers and
//! approvals; [`report`] renders a run as text, JSON, SARIF or JUnit; [`compliance`] maps
//! findings to SOC 2 / ISO 27001 controls; [`fixture`] runs policy fixtures; [`record`] writes
//! the audit entry and telemetry events of a decision. [`check`] ties them together for one run.
//!
//! Invariant: this library never prints and never exits; the binary does both.

pub mod cli;
pub mod compliance;
pub mod engine;
pub mod fixture;
pub mod policy;
pub mod record;
pub mod report;
pub mod target;
pub mod waiver;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use betty_core::discover::RegistryDir;
use betty_core::manifest::check_safe_name;
use jiff::Timestamp;

use crate::engine::{Context, evaluate_all};
use crate::policy::{Action, Check, LoadError, PolicySet, TargetKind};
use crate::report::Report;
use crate::target::{Approvals, RegistryView, Target};

/// Why a run could not decide anything (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Input(#[from] betty_core::Error),
    #[error(transparent)]
    Policies(#[from] LoadError),
    #[error("{} input(s) could not be read:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Inputs(Vec<betty_core::Error>),
    #[error("{0}")]
    Usage(String),
}

/// What one enforcement run checks, and how.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub action: Option<Action>,
    /// `--skill-name`: the name to check before creation (or a registered skill to execute).
    pub skill_name: Option<String>,
    /// Manifest paths, `-`, registered names or workflow files.
    pub inputs: Vec<String>,
    /// `--all`: every `skills/*/skill.yaml` and `agents/*/agent.yaml` of the project.
    pub all: bool,
    /// How to read manifests whose file name does not say (`-`, `x.yaml`).
    pub kind: Option<TargetKind>,
    pub strict: bool,
    pub environment: Option<String>,
    /// Policies folder (default: the registry's `policies/`).
    pub policies: Option<PathBuf>,
}

/// Everything a run works with, loaded once.
#[derive(Debug)]
pub struct World {
    pub registry_dir: RegistryDir,
    pub policies: PolicySet,
    pub registry: RegistryView,
    /// Whether `registry` was read (else it is empty because nothing needed it).
    pub registry_loaded: bool,
    pub now: Timestamp,
}

impl World {
    /// Loads the policies, and the registry when the action or a rule needs it (reading a
    /// large registry costs more than checking one manifest against naming rules).
    ///
    /// When the registry is needed, `skills.json` must exist (fail closed: "nothing
    /// registered" would pass every escalation and drift check), except for `--action
    /// create`, which checks a name before anything is registered.
    pub fn load(
        registry_dir: RegistryDir,
        policies: Option<&Path>,
        action: Option<Action>,
    ) -> Result<World, RunError> {
        let dir = policies
            .map(Path::to_path_buf)
            .unwrap_or_else(|| registry_dir.policies_dir());
        let policies = PolicySet::load_dir(&dir)?;
        let needs_registry = matches!(
            action,
            Some(Action::Execute | Action::Deploy | Action::Audit)
        ) || policies.policies.iter().flat_map(|p| &p.rules).any(|r| {
            matches!(
                r.check,
                Check::NoEscalation
                    | Check::Registered
                    | Check::ForbiddenStatus(_)
                    | Check::Acyclic
                    | Check::InSync
            )
        });
        let registry = if needs_registry {
            RegistryView::load(&registry_dir, action != Some(Action::Create))?
        } else {
            RegistryView::default()
        };
        Ok(World {
            registry_dir,
            policies,
            registry,
            registry_loaded: needs_registry,
            now: betty_core::time::now(),
        })
    }

    fn needs_approvals(&self, action: Option<Action>) -> bool {
        action.is_some_and(Action::is_operation)
            && self
                .policies
                .policies
                .iter()
                .flat_map(|p| &p.rules)
                .any(|r| matches!(r.check, Check::RequiresApproval(_)))
    }

    pub fn approvals(&self, action: Option<Action>) -> Result<Approvals, RunError> {
        if self.needs_approvals(action) {
            Ok(Approvals::load(
                &self.registry_dir.approvals_dir(),
                &self.registry_dir.audit_log(),
            )?)
        } else {
            Ok(Approvals::default())
        }
    }
}

/// What a run reads from disk whatever the policies say (the manifests of `--all`), so it can
/// be read while the policies and the registry load.
#[derive(Debug, Default)]
pub struct Prefetch {
    all: Option<Result<Vec<Target>, Vec<betty_core::Error>>>,
}

/// Reads what [`Prefetch`] holds for these options.
pub fn prefetch(registry_dir: &RegistryDir, opts: &CheckOptions) -> Prefetch {
    Prefetch {
        all: opts.all.then(|| {
            target::discover_manifests(&registry_dir.project_root())
                .and_then(|paths| target::read_manifests(&paths))
        }),
    }
}

/// Runs one enforcement: gathers the targets the options name, evaluates, and reports.
pub fn check(world: &World, opts: &CheckOptions) -> Result<Report, RunError> {
    check_prefetched(world, opts, prefetch(&world.registry_dir, opts))
}

/// [`check`], with the files [`prefetch`] already read.
pub fn check_prefetched(
    world: &World,
    opts: &CheckOptions,
    pre: Prefetch,
) -> Result<Report, RunError> {
    let started = std::time::Instant::now();
    let targets = gather(world, opts, pre)?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        targets = targets.len(),
        "targets read"
    );
    let approvals = world.approvals(opts.action)?;
    // A workflow's steps are checked against the registry under any policy pack.
    let loaded;
    let registry =
        if !world.registry_loaded && targets.iter().any(|t| t.kind == TargetKind::Workflow) {
            loaded = RegistryView::load(&world.registry_dir, true)?;
            &loaded
        } else {
            &world.registry
        };
    if let Some(path) = &registry.agents_absent
        && world.registry_loaded
        && opts.action != Some(Action::Create)
        && targets
            .iter()
            .any(|t| t.kind == TargetKind::Agent && !t.is_registered_entry())
    {
        return Err(RunError::Input(betty_core::Error::Read {
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it does not exist, and an agent is checked against the registered versions (escalation, drift, registration); restore it, or start an empty one with `{\"registry_version\": \"1.0.0\", \"agents\": []}`",
            ),
        }));
    }
    let cx = Context {
        action: opts.action,
        strict: opts.strict,
        environment: opts.environment.clone(),
        registry,
        approvals: &approvals,
        batch: targets
            .iter()
            .filter(|t| !t.name.is_empty())
            .map(|t| t.name.clone())
            .collect(),
        now: world.now,
        cycles: crate::engine::CycleIndex::for_policies(&world.policies, registry),
    };
    let results = evaluate_all(&world.policies, &targets, &cx);
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "policies evaluated"
    );
    let mut report = Report::new(
        &world.policies,
        results,
        opts.action,
        opts.strict,
        opts.environment.clone(),
        world.now,
    );
    report.relied_on = approvals.relied_on();
    Ok(report)
}

/// Everything registered and on disk, as the continuous audit and the compliance report see
/// it: every registry entry, each manifest on disk that is not registered or differs from its
/// entry (drift), and every workflow under `workflows/`.
pub fn audit_targets(world: &World) -> Result<Vec<Target>, RunError> {
    let mut targets: Vec<Target> = world.registry.current().cloned().collect();
    let on_disk = target::discover_manifests(&world.registry_dir.project_root())
        .and_then(|paths| target::read_manifests(&paths))
        .map_err(RunError::Inputs)?;
    for t in on_disk {
        let same = world
            .registry
            .get(t.kind, &t.name)
            .is_some_and(|r| r.digest() == t.digest());
        if !same {
            targets.push(t);
        }
    }
    let mut errors = Vec::new();
    let workflows = target::discover_workflows(&world.registry_dir.project_root())
        .map_err(|e| RunError::Inputs(vec![e]))?;
    for path in workflows {
        match target::read_workflow(&path) {
            Ok((workflow, _)) => targets.push(workflow),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(RunError::Inputs(errors));
    }
    Ok(targets)
}

/// The kind of an input: `--kind`, else its file name (`skill.yaml`, `agent.yaml`, and
/// `*.skill.yaml`/`*.agent.yaml`; a `.yaml`/`.yml` directly under a `workflows/` folder).
/// Never the content: a `skill.yaml` holding `steps:` is still checked as a skill, so
/// writing `steps:` cannot steer a manifest past the skill policies. Stdin and names that
/// say nothing need `--kind`.
pub fn kind_of(input: &str, given: Option<TargetKind>) -> Result<TargetKind, RunError> {
    if let Some(k) = given {
        return Ok(k);
    }
    if input == "-" {
        return Err(RunError::Usage(
            "reading a manifest from stdin (`-`) needs `--kind skill`, `--kind agent` or `--kind workflow`: the kind is never guessed from the content".into(),
        ));
    }
    let path = Path::new(input);
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for (kind, name) in [(TargetKind::Skill, "skill"), (TargetKind::Agent, "agent")] {
        for ext in ["yaml", "yml"] {
            if file == format!("{name}.{ext}") || file.ends_with(&format!(".{name}.{ext}")) {
                return Ok(kind);
            }
        }
    }
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let in_workflows = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "workflows");
    if yaml && in_workflows {
        return Ok(TargetKind::Workflow);
    }
    Err(RunError::Usage(format!(
        "cannot tell what `{input}` is from its name: skills are `skill.yaml`, agents `agent.yaml`, workflows `workflows/*.yaml`; pass `--kind skill`, `--kind agent` or `--kind workflow`"
    )))
}

fn gather(world: &World, opts: &CheckOptions, pre: Prefetch) -> Result<Vec<Target>, RunError> {
    let mut targets: Vec<Target> = Vec::new();
    let operation = matches!(opts.action, Some(Action::Execute | Action::Deploy));
    if let Some(name) = &opts.skill_name {
        if opts.action == Some(Action::Create) || !operation {
            targets.push(Target::from_name(TargetKind::Skill, name, "--skill-name"));
        } else {
            targets.push(registered(world, name)?);
        }
    } else if opts.action == Some(Action::Create) && opts.inputs.is_empty() {
        return Err(RunError::Usage(
            "`--action create` checks a name before the skill exists: pass `--skill-name NAME` (for example `--skill-name data.transform`)".into(),
        ));
    }
    if opts.action == Some(Action::Audit) {
        targets.extend(audit_targets(world)?);
    }
    if let Some(all) = pre.all {
        let found = all.map_err(RunError::Inputs)?;
        if found.is_empty() {
            // A gate asked to check everything that finds nothing must not pass: deleting
            // every manifest would otherwise open it.
            return Err(RunError::Usage(format!(
                "`--all` found no `skills/*/skill.yaml` or `agents/*/agent.yaml` under `{}`: nothing to check, so nothing passes (run from the project's root, or name the manifests)",
                world.registry_dir.project_root().display()
            )));
        }
        targets.extend(found);
    }
    let mut errors = Vec::new();
    for input in &opts.inputs {
        match resolve(world, input, opts, operation) {
            Ok(mut ts) => targets.append(&mut ts),
            Err(RunError::Input(e)) => errors.push(e),
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(RunError::Inputs(errors));
    }
    if targets.is_empty() && opts.action != Some(Action::Audit) && !opts.all {
        return Err(RunError::Usage(
            "nothing to check: give manifest paths (or `-` for stdin), `--all`, `--action audit`, or `--action create --skill-name NAME`".into(),
        ));
    }
    // A skill reached twice (two workflow steps) is checked once.
    let mut seen = HashSet::new();
    targets.retain(|t| seen.insert((t.label.clone(), t.base.clone(), t.name.clone())));
    Ok(targets)
}

fn registered(world: &World, name: &str) -> Result<Target, RunError> {
    check_safe_name("skill name", name)?;
    world.registry.find(name).cloned().ok_or_else(|| {
        RunError::Usage(format!(
            "`{name}` is neither a file nor a registered skill or agent in `{}`",
            world.registry_dir.root.display()
        ))
    })
}

/// One command-line input: `-`, a manifest or workflow file, or a registered name.
fn resolve(
    world: &World,
    input: &str,
    opts: &CheckOptions,
    operation: bool,
) -> Result<Vec<Target>, RunError> {
    let path = Path::new(input);
    if input == "-" || path.exists() {
        let kind = kind_of(input, opts.kind)?;
        if kind == TargetKind::Workflow {
            let (workflow, steps) = target::read_workflow(path)?;
            let mut out = vec![workflow];
            if operation {
                // Each step runs the skill as registered; an unregistered step is the
                // workflow's own blocking finding (`builtin/workflow-step-registered`).
                for step in steps {
                    if let Some(t) = world.registry.get(step.kind, &step.name) {
                        out.push(t.clone());
                    }
                }
            }
            return Ok(out);
        }
        return Ok(vec![target::read_manifest(path, kind)?]);
    }
    if operation && check_safe_name("skill name", input).is_ok() {
        return Ok(vec![registered(world, input)?]);
    }
    Err(RunError::Input(betty_core::Error::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            if operation {
                "no such file, and no registered skill or agent of that name"
            } else {
                "no such file"
            },
        ),
    }))
}
