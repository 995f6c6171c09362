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
    after_help = "Examples:\n  approval-queue request --operation deploy --manifest skills/deploy.release/skill.yaml \\\n      --approvers security --required 2 --reason \"release 1.4\"\n  approval-queue approve apr-0193... --key ~/.ssh/id_ed25519 --comment \"reviewed\"\n  approval-queue status apr-0193...      # exit 0 approved, 1 rejected/expired, 3 pending\n  approval-queue list --status pending\n\nExit codes: 0 approved, 1 rejected/expired/cancelled, 2 error, 3 still pending."
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
    /// What the manifest is (default: from its file name: `agent.yaml` an agent, a file under
    /// `workflows/` a workflow, anything else a skill)
    #[arg(long, value_parser = ["skill", "agent", "workflow"])]
    pub kind: Option<String>,
    /// The environment the operation targets (bound into the approval: staging never covers production)
    #[arg(long, value_name = "ENV")]
    pub environment: Option<String>,
    /// Operation arguments the approval binds to (repeatable)
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub args: Vec<String>,
}

/// The key that signs (SSHSIG via `ssh-keygen -Y sign`, so ssh-agent and FIDO keys work).
#[derive(Debug, clap::Args)]
pub struct KeyArg {
    /// Private key (or public key held by ssh-agent) to sign with (default: git's
    /// `user.signingkey` when `gpg.format` is `ssh`)
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
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
        #[arg(
            long,
            default_value = "72h",
            value_name = "DURATION",
            conflicts_with = "expires_at"
        )]
        expires_in: String,
        /// The expiry as a timestamp (RFC 3339)
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
        /// How long the approval is usable once it has its approvals (default 24h)
        #[arg(long, value_name = "DURATION")]
        valid_for: Option<String>,
        /// Dev mode: write an unsigned request (counts only for policies with
        /// `requires_approval: {signed: false}`)
        #[arg(long, conflicts_with = "key")]
        unsigned: bool,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Approve a request (exit 0 when it is now approved, 3 while more approvals are needed)
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Reject a request: one rejection rejects (exit 1)
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Withdraw your approval of a request before it is used
    Revoke {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Withdraw your own pending request
    Cancel {
        id: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Block until a request is decided (exit as `status`; 3 when the timeout passes first)
    Wait {
        id: String,
        /// How long to wait (`10m`, `1h`)
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        timeout: String,
        /// How often to look
        #[arg(long, default_value = "2s", value_name = "DURATION")]
        interval: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
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
        #[arg(long, value_parser = ["pending", "approved", "rejected", "expired", "cancelled", "consumed", "invalid"])]
        status: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}
