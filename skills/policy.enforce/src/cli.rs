//! The command line, defined once: it parses `policy-enforce`'s arguments and feeds `--help`,
//! shell completions and man pages (`cargo xtask dist`).

use std::path::PathBuf;

use betty_cli::CommonArgs;
use clap::{Parser, Subcommand, ValueEnum};

use crate::compliance::Framework;
use crate::policy::Action;

const EXAMPLES: &str = "\
Examples:
  policy-enforce --action create --skill-name data.transform   # before a skill exists
  policy-enforce --action register skills/data.transform/skill.yaml
  cat skill.yaml | policy-enforce --action update --kind skill -
  policy-enforce --action execute deploy.release                # a registered skill
  policy-enforce --action execute workflows/release.yaml        # a workflow and every step's skill
  policy-enforce --action deploy --environment production deploy.release
  policy-enforce --action audit                                 # everything registered and on disk
  policy-enforce --all --format sarif > policy.sarif
  policy-enforce report --framework soc2
  policy-enforce test skills/policy.enforce/fixtures             # policy fixtures

Exit codes: 0 passed, 1 blocking violations (or a rejected/expired approval),
2 usage/configuration/input error, 3 approval pending.";

/// Validate skills, agents, workflows and operations against the registry's YAML policies.
#[derive(Debug, Parser)]
#[command(name = "policy-enforce", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub check: CheckArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest files, `-` for stdin; with `--action execute|deploy` also registered names and workflow files
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// The enforcement point (default: every policy applies)
    #[arg(long, value_enum)]
    pub action: Option<Action>,
    /// The skill's name (`--action create`: before any file exists)
    #[arg(long, value_name = "NAME")]
    pub skill_name: Option<String>,
    /// Check every `skills/*/skill.yaml` and `agents/*/agent.yaml` of the project
    #[arg(long)]
    pub all: bool,
    /// Read inputs as this kind (default: from the file name, `skill.yaml`, `agent.yaml`, `workflows/*.yaml`; stdin and other names need it)
    #[arg(long, value_enum, requires = "inputs")]
    pub kind: Option<KindArg>,
    /// Deployment environment (`--action deploy`); compared case-insensitively with the policies' patterns
    #[arg(long, value_name = "NAME", value_parser = environment_name)]
    pub environment: Option<String>,
    /// Warnings block too
    #[arg(long)]
    pub strict: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Policies folder (default: the registry's `policies/`)
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-control compliance report: each control with pass/fail/waived and its evidence
    #[command(after_help = "Example:\n  policy-enforce report --framework iso27001 --format json")]
    Report {
        /// The control framework
        #[arg(long, value_enum)]
        framework: Framework,
        /// Output format
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Policies folder (default: the registry's `policies/`)
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
    },
    /// Run policy fixtures (input + expected outcome); fails on any mismatch
    #[command(after_help = "Example:\n  policy-enforce test skills/policy.enforce/fixtures")]
    Test {
        /// Folder of fixture files (`*.yaml`)
        dir: PathBuf,
        /// Output format
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Policies folder (default: the registry's `policies/`)
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Junit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Skill,
    Agent,
    Workflow,
}

/// An environment name: surrounding white space trimmed; ASCII letters, digits, `-`, `_`, `.`
/// and `/` only. Case is kept here and ignored when compared. A look-alike (Cyrillic `о` in
/// `prоd`) or an invisible character would otherwise match none of a policy's patterns and
/// slip past its approval rule.
pub fn environment_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("the environment name is empty".into());
    }
    if name.len() > 64 {
        return Err("an environment name is at most 64 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
    {
        return Err(format!(
            "{} is not allowed in an environment name: use ASCII letters, digits, `-`, `_`, `.` and `/` (a look-alike or invisible character could slip past an approval rule's patterns)",
            if c.is_ascii_graphic() || c == ' ' {
                format!("`{c}`")
            } else {
                format!("U+{:04X}", c as u32)
            }
        ));
    }
    Ok(name.to_string())
}
