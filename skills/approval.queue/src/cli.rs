//! The command line of `approval-queue`: one definition feeds parsing, `--help`, shell
//! completions and the man page.

use std::path::PathBuf;

use betty_cli::CommonArgs;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "approval-queue",
    version,
    about = "Hold sensitive operations until enough of the right humans approve",
    after_help = "Examples:\n  approval-queue request --operation deploy --manifest skills/deploy.release/skill.yaml \\\n      --approvers security --required 2 --reason \"release 1.4\"\n  approval-queue approve apr-0193... --comment \"reviewed\"\n  approval-queue status apr-0193...      # exit 0 approved, 1 rejected/expired, 3 pending\n  approval-queue list --status pending\n\nExit codes: 0 approved, 1 rejected/expired/cancelled, 2 error, 3 still pending."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Subject {
    /// The operation needing approval (`deploy`, `register`, `execute`, ...)
    #[arg(long)]
    pub operation: String,
    /// The manifest the approval binds to (its canonical digest); `-` reads stdin
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// The skill concerned (default: the manifest's name)
    #[arg(long)]
    pub skill: Option<String>,
    /// Operation arguments the approval binds to when there is no manifest (repeatable)
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask for approval; prints the request id (exit 3: pending)
    Request {
        #[command(flatten)]
        subject: Subject,
        /// The group whose members may approve (defined in `approvals/groups.yaml`)
        #[arg(long)]
        approvers: String,
        /// How many distinct approvers are needed
        #[arg(long, default_value_t = 1)]
        required: u32,
        /// Why the operation is needed
        #[arg(long)]
        reason: String,
        /// When the request expires if not decided (`24h`, `7d`, `90m`)
        #[arg(long, default_value = "72h", value_name = "DURATION")]
        expires_in: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Approve a request (exit 0 when it is now approved, 3 while more approvals are needed)
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Reject a request: one rejection rejects (exit 1)
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Withdraw your own pending request
    Cancel { id: String },
    /// Print a request's state; the exit code is the state
    Status {
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Is this exact subject approved? (exit 0 approved, 3 pending, 1 otherwise)
    Check {
        #[command(flatten)]
        subject: Subject,
    },
    /// List requests
    List {
        /// Only requests in this state (as of now: expired requests show as expired)
        #[arg(long, value_parser = ["pending", "approved", "rejected", "expired", "cancelled"])]
        status: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}
