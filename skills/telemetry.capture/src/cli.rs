//! The command lines of `telemetry-capture` and `telemetry-query`: one definition feeds
//! parsing, `--help`, shell completions and man pages (`cargo xtask dist`).

use std::ffi::OsString;
use std::path::PathBuf;

use betty_cli::CommonArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::{DocFormat, Format};

const CAPTURE_EXAMPLES: &str = "\
Examples:
  telemetry-capture --event-type skill.created --skill-name data.transform --outcome success \\
      --duration-ms 412 --context env=staging --context retries:=2
  echo '{\"event_type\":\"policy.violated\",\"outcome\":\"blocked\"}' | telemetry-capture -
  tail -f build.jsonl | telemetry-capture --stream -
  telemetry-capture run --skill-name data.transform -- ./transform.sh input.csv
  telemetry-capture import registry/telemetry.json
  telemetry-capture audit append registry.update success 412 '[]' '{\"step\": 1}'

Exit codes: 0 recorded (`run`: the command's own code), 1 `audit adopt`: the chain is broken (nothing adopted), 2 bad event, bad argument or I/O error (nothing written)";

/// Record a governance event in `registry/telemetry/events.jsonl`.
#[derive(Debug, Parser)]
#[command(
    name = "telemetry-capture",
    version,

    after_help = CAPTURE_EXAMPLES
)]
pub struct CaptureCli {
    #[command(subcommand)]
    pub command: Option<CaptureCommand>,
    /// `-` reads one JSON event, a JSON array of events, or JSON Lines from stdin (all or nothing)
    #[arg(value_name = "-")]
    pub input: Option<String>,
    #[command(flatten)]
    pub event: EventArgs,
    /// With `-`: record each JSON Lines event as it arrives (one append each, for a live pipe);
    /// a bad line is reported and skipped, and the exit code is then 2
    #[arg(long, requires = "input")]
    pub stream: bool,
    /// What to print for each recorded event: its id (`text`) or the event itself (`json`, one per line)
    #[arg(long, value_enum, default_value = "text")]
    pub format: CaptureFormat,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The event fields given as flags.
#[derive(Debug, Clone, Args)]
pub struct EventArgs {
    /// `domain.action[.detail]`, e.g. `skill.created`, `policy.violated`
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
    /// The skill concerned
    #[arg(long, value_name = "NAME")]
    pub skill_name: Option<String>,
    /// How it ended: `success`, `failure`, `blocked`, ...
    #[arg(long, value_name = "OUTCOME", default_value = "success")]
    pub outcome: String,
    /// How long it took, in milliseconds (finite, non-negative)
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    pub duration_ms: Option<String>,
    /// Extra context: `key=value` (a string) or `key:=JSON` (any JSON value); repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    pub context: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CaptureCommand {
    /// Run a command, record its duration and outcome, and exit with its exit code
    #[command(
        after_help = "Example:\n  telemetry-capture run --skill-name data.transform -- ./transform.sh input.csv"
    )]
    Run {
        /// The skill the command runs
        #[arg(long, value_name = "NAME")]
        skill_name: String,
        /// The event type recorded
        #[arg(long, value_name = "TYPE", default_value = "skill.executed")]
        event_type: String,
        /// Extra context: `key=value` or `key:=JSON`; repeatable
        #[arg(long, value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Alerts of `registry/telemetry/alerts.yaml`: notify hooks of matching events
    #[command(
        subcommand,
        after_help = "Example:\n  telemetry-capture alerts deliver"
    )]
    Alerts(AlertsCommand),
    /// The audit trail: append upstream `audit.log`'s entries through the hash chain, adopt legacy ones
    #[command(
        subcommand,
        after_help = "Examples:\n  telemetry-capture audit append registry.update success 412 '[]' '{\"step\": 1}'\n  telemetry-capture audit adopt"
    )]
    Audit(AuditWrite),
    /// Import upstream Betty's `registry/telemetry.json` (both shapes; running it twice adds nothing)
    #[command(after_help = "Example:\n  telemetry-capture import ../betty/registry/telemetry.json")]
    Import {
        /// Upstream's telemetry file
        file: PathBuf,
        /// Map and check the entries, print how many would be added, write nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// `telemetry-capture audit ...`: writing the audit trail (reading it is `telemetry-query audit`).
#[derive(Debug, Subcommand)]
pub enum AuditWrite {
    /// Append one entry (upstream `audit_log.py`'s arguments) to the hash-chained `audit_log.json`; prints the new head
    #[command(
        after_help = "Example:\n  telemetry-capture audit append workflow.compose failed 1200 '[\"step 2 failed\"]' '{\"workflow\": \"ci\"}'\n\nExit codes: 0 appended, 2 bad argument or I/O error (nothing written)"
    )]
    Append {
        /// The skill that ran
        skill: String,
        /// How it ended: `success`, `failed`, `timeout`, ...
        status: String,
        /// How long it took, in milliseconds
        #[arg(allow_hyphen_values = true)]
        duration_ms: Option<String>,
        /// A JSON array of errors
        errors_json: Option<String>,
        /// A JSON object of metadata
        metadata_json: Option<String>,
    },
    /// Take entries an old (upstream) writer appended after the chain into it, recorded as an `audit.adopt` entry
    #[command(
        after_help = "Example:\n  telemetry-capture audit adopt\n\nExit codes: 0 adopted or nothing to adopt, 1 the chain is broken (nothing adopted), 2 I/O error"
    )]
    Adopt,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alert on events written since the last run, and send due retries (capture starts this in the background)
    #[command(after_help = "Example:\n  telemetry-capture alerts deliver --force")]
    Deliver {
        /// Retry failed deliveries now, whatever their backoff
        #[arg(long)]
        force: bool,
    },
    /// Keep delivering: follow the stream, alerting on events any Betty binary writes
    #[command(after_help = "Example:\n  telemetry-capture alerts watch --interval 2s")]
    Watch {
        /// How often to look for new events
        #[arg(long, value_name = "DURATION", default_value = "1s")]
        interval: String,
    },
}

const QUERY_EXAMPLES: &str = "\
Examples:
  telemetry-query --event-type skill.created --last 24h
  telemetry-query --event-type 'policy.*' --outcome blocked --since 2026-11-01 --format csv
  telemetry-query --count-by skill --last 7d
  telemetry-query stats --by event_type --last 30d
  telemetry-query metrics
  telemetry-query audit verify --expect-head 41:9f2c...

Exit codes: 0 done, 1 `audit verify` found tampering, 2 bad flag or unreadable input";

/// Query, count, aggregate and export telemetry events and the audit trail.
#[derive(Debug, Parser)]
#[command(
    name = "telemetry-query",
    version,

    after_help = QUERY_EXAMPLES
)]
pub struct QueryCli {
    #[command(subcommand)]
    pub command: Option<QueryCommand>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub list: ListArgs,
    #[command(flatten)]
    pub globals: QueryGlobals,
}

/// Flags every `telemetry-query` command takes. (`--user` here filters events; it is not the
/// acting identity, which a read-only query does not need.)
#[derive(Debug, Clone, Args)]
pub struct QueryGlobals {
    /// Registry folder (default: `BETTY_REGISTRY`, `$BETTY_HOME/registry`, or the nearest `registry/` above the working directory)
    #[arg(long, global = true, value_name = "DIR")]
    pub registry: Option<PathBuf>,
    /// Read this events file (alone) instead of the registry's `telemetry/events.jsonl` and its rotated segments
    #[arg(long, global = true, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); `RUST_LOG` overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl QueryGlobals {
    /// The shared flags, for the shared plumbing.
    pub fn common(&self) -> CommonArgs {
        CommonArgs {
            registry: self.registry.clone(),
            user: None,
            verbose: self.verbose,
            quiet: self.quiet,
        }
    }
}

/// Which events. Values of one flag are alternatives (repeat the flag or separate with commas);
/// different flags must all hold. Values may be globs (`policy.*`).
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Event type(s), globs allowed: `skill.created`, `policy.*`
    #[arg(long, value_name = "TYPE", value_delimiter = ',')]
    pub event_type: Vec<String>,
    /// Skill name(s), globs allowed
    #[arg(long, alias = "skill-name", value_name = "NAME", value_delimiter = ',')]
    pub skill: Vec<String>,
    /// Outcome(s): `success`, `failure`, `blocked`, ...
    #[arg(long, value_name = "OUTCOME", value_delimiter = ',')]
    pub outcome: Vec<String>,
    /// Who acted (globs allowed: `*@example.com`)
    #[arg(long, value_name = "USER", value_delimiter = ',')]
    pub user: Vec<String>,
    /// Session id(s)
    #[arg(long, alias = "session-id", value_name = "ID", value_delimiter = ',')]
    pub session: Vec<String>,
    /// Only the last DURATION: `90m`, `24h`, `7d`, `1h30m`
    #[arg(long, value_name = "DURATION", conflicts_with = "since")]
    pub last: Option<String>,
    /// From this time on (RFC 3339, or a date `2026-11-24`; naive times are UTC)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Up to this time (inclusive)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// How matching events are listed.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// At most N events (the N newest, or with `--order oldest` the N oldest, by `timestamp`)
    #[arg(long, value_name = "N", conflicts_with_all = ["count", "count_by"])]
    pub limit: Option<u64>,
    /// Order by `timestamp`: `newest` first (default) or `oldest` first (not with `--count` or
    /// `--count-by`: a count has no order)
    #[arg(long, value_enum, default_value = "newest", conflicts_with_all = ["count", "count_by"])]
    pub order: OrderArg,
    /// Print only the number of matching events
    #[arg(long, conflicts_with = "count_by")]
    pub count: bool,
    /// Count matching events per value of FIELD: event_type, skill, outcome, user, session, tool, day, hour, context.KEY
    #[arg(long, value_name = "FIELD")]
    pub count_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    Newest,
    Oldest,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Count, success rate and p50/p95/p99 duration per skill, event type or any field
    #[command(after_help = "Example:\n  telemetry-query stats --by event_type --last 7d")]
    Stats {
        /// Group by this field (event_type, skill, outcome, user, tool, day, context.KEY)
        #[arg(long, value_name = "FIELD", default_value = "skill")]
        by: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Output format
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Update `registry/telemetry/metrics.json` from the events appended since the last update
    #[command(
        after_help = "Example:\n  telemetry-query metrics && telemetry-query metrics --rebuild"
    )]
    Metrics {
        /// Recompute from all events (gives the same file as the incremental updates)
        #[arg(long)]
        rebuild: bool,
        /// Print a summary (`table`) or the metrics document (`json`)
        #[arg(long, value_enum, default_value = "table")]
        format: DocFormat,
    },
    /// The audit trail: list entries, verify the hash chain, show the head
    #[command(
        after_help = "Examples:\n  telemetry-query audit --operation 'policy.*' --last 7d\n  telemetry-query audit verify --expect-head \"$(cat audit.head)\"\n  telemetry-query audit head > audit.head"
    )]
    Audit(AuditArgs),
}

#[derive(Debug, Args)]

pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Operation(s), globs allowed: `policy.*`, `approval.decide`
    #[arg(long, value_name = "OP", value_delimiter = ',')]
    pub operation: Vec<String>,
    /// Skill(s), globs allowed
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub skill: Vec<String>,
    /// Outcome(s)
    #[arg(long, value_name = "OUTCOME", value_delimiter = ',')]
    pub outcome: Vec<String>,
    /// Who acted
    #[arg(long, value_name = "USER", value_delimiter = ',')]
    pub user: Vec<String>,
    /// Session id(s)
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub session: Vec<String>,
    /// Only the last DURATION
    #[arg(long, value_name = "DURATION", conflicts_with = "since")]
    pub last: Option<String>,
    /// From this time on
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Up to this time
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most N entries (with `--order newest`, the N newest)
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Order: `oldest` first (default, the log's own order) or `newest` first
    #[arg(long, value_enum, default_value = "oldest")]
    pub order: OrderArg,
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 1 and show the breaking entry on any edit, deletion, insertion or reordering
    #[command(after_help = "Example:\n  telemetry-query audit verify --expect-head 41:9f2c...")]
    Verify {
        /// The head you kept (`SEQ:HASH` or `HASH`): also detects entries removed from the end
        #[arg(long, value_name = "HEAD")]
        expect_head: Option<String>,
        /// Output format (`table` is text)
        #[arg(long, value_enum, default_value = "table")]
        format: DocFormat,
    },
    /// Print the current head (`SEQ:HASH`): keep it to detect truncation later
    #[command(after_help = "Example:\n  telemetry-query audit head > audit.head")]
    Head {
        /// Output format (`table` is text)
        #[arg(long, value_enum, default_value = "table")]
        format: DocFormat,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_lines_are_well_formed_and_show_examples() {
        for cmd in [CaptureCli::command(), QueryCli::command()] {
            cmd.clone().debug_assert();
            let mut stack = vec![cmd.clone()];
            while let Some(mut c) = stack.pop() {
                let help = c.render_long_help().to_string();
                assert!(
                    help.contains("Example"),
                    "`{}` shows no example",
                    c.get_name()
                );
                stack.extend(
                    c.get_subcommands()
                        .filter(|s| s.get_name() != "help")
                        .cloned(),
                );
            }
        }
    }
}
