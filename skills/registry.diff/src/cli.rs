//! The command line of `registry-diff`: one definition feeds parsing, `--help`, shell
//! completions and the man page.

use betty_cli::CommonArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "registry-diff",
    version,
    about = "Version the registry: field-level diffs, history, semver checks, rollback",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  registry-diff --compare HEAD~1 HEAD                # Changed: NAME / field: old → new / Added: / Removed:\n  registry-diff --compare 2025.10.23.009 2025.10.23.010 --skill api.define\n  registry-diff --compare old/skills.json current --format patch   # RFC 6902\n  registry-diff record                               # snapshot the live registry as a new version\n  registry-diff log --skill workflow.validate\n  registry-diff check --compare HEAD~1 HEAD          # exit 1: bump too small, version down, escalation\n  registry-diff rollback 2025.10.23.009 --dry-run\n  registry-diff import-git                           # history from the git log of registry/skills.json\n\nA version to compare is a history version (YYYY.MM.DD.NNN), `current` (the live registry),\na registry file, or a git revision (HEAD~1, main, a hash). Without --compare: the latest\nhistory version against the live registry.\n\nExit codes: 0 done / no differences or checks passed, 1 differences with --exit-code, failed\nchecks, or git versions that could not be imported, 2 usage, input or I/O error."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub diff: DiffArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum DiffFormat {
    #[default]
    Text,
    Json,
    /// RFC 6902 JSON Patch from the first to the second
    Patch,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// What to compare.
#[derive(Debug, Clone, Args, Default)]
pub struct Compare {
    /// Compare FROM with TO (default TO: `current`); each a history version, `current`, a file or a git revision
    #[arg(long, num_args = 1..=2, value_names = ["FROM", "TO"])]
    pub compare: Vec<String>,
    /// Only this skill
    #[arg(long, value_name = "NAME")]
    pub skill: Option<String>,
}

#[derive(Debug, Clone, Args, Default)]
pub struct DiffArgs {
    #[command(flatten)]
    pub compare: Compare,
    #[arg(long, value_enum, default_value_t)]
    pub format: DiffFormat,
    /// Exit 1 when there are differences (like `git diff --exit-code`)
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot the live registry as a new history version (a no-op when nothing changed)
    Record {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List versions with time, author and a summary, newest first
    Log {
        /// Only versions that changed this skill, with the fields changed
        #[arg(long, value_name = "NAME")]
        skill: Option<String>,
        /// Show at most N versions
        #[arg(short = 'n', long, value_name = "N")]
        max_count: Option<usize>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Classify changes as major/minor/patch; exit 1 on a bump too small, a version going down,
    /// a permission escalation or a removed skill
    Check {
        #[command(flatten)]
        compare: Compare,
        /// Accept new or wider permissions
        #[arg(long)]
        allow_escalation: bool,
        /// Accept skills removed from the registry
        #[arg(long)]
        allow_removals: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Make an old version's registry live again, recorded as a new version (history is never rewritten)
    Rollback {
        /// The version to return to (`registry-diff log` lists them)
        version: String,
        /// Show what would change; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Accept wider permissions than today's, each with an approved `update` request
        #[arg(long)]
        allow_escalation: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Build history from the git log of registry/skills.json (committer as changed_by)
    ImportGit {
        /// Which commits, as git takes them (`v1.0..main`); default: all
        #[arg(value_name = "REV_RANGE")]
        range: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent_and_help_shows_examples() {
        Cli::command().debug_assert();
        assert!(
            Cli::command()
                .render_long_help()
                .to_string()
                .contains("Examples:")
        );
        let cli = Cli::try_parse_from(["registry-diff", "--compare", "HEAD~1", "HEAD"]).unwrap();
        assert_eq!(cli.diff.compare.compare, ["HEAD~1", "HEAD"]);
        assert!(cli.command.is_none());
        assert!(Cli::try_parse_from(["registry-diff", "--compare", "a", "b", "c"]).is_err());
        let cli = Cli::try_parse_from(["registry-diff", "rollback", "2025.10.23.001", "--dry-run"])
            .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Rollback { dry_run: true, .. })
        ));
    }
}
