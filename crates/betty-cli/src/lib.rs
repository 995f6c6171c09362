//! Plumbing every Betty binary shares, so each `main` stays thin: the common flags
//! ([`CommonArgs`]), logging to stderr through `tracing` ([`init_logging`]), the one stdout
//! printer that turns a closed pipe into a clean exit ([`Printer`]), and [`run`], the only way
//! out of `main`, which maps errors to exit codes in one place.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use betty_core::ExitStatus;
use betty_core::discover::RegistryDir;
use betty_core::identity::Identity;

/// Flags every binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Registry folder (default: `BETTY_REGISTRY`, `$BETTY_HOME/registry`, or the nearest `registry/` above the working directory)
    #[arg(long, global = true, value_name = "DIR")]
    pub registry: Option<PathBuf>,
    /// Who is acting (default: `BETTY_USER`, git's user.email, `$USER@host`)
    #[arg(long, global = true, value_name = "USER")]
    pub user: Option<String>,
    /// More logging on stderr (-v info, -vv debug, -vvv trace); `RUST_LOG` overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl CommonArgs {
    /// Finds the registry folder (exit 2 with the places looked if there is none).
    pub fn registry_dir(&self) -> anyhow::Result<RegistryDir> {
        let dir = RegistryDir::discover(self.registry.as_deref())?;
        tracing::debug!(root = %dir.root.display(), origin = ?dir.origin, "registry found");
        Ok(dir)
    }

    /// The acting identity.
    pub fn identity(&self) -> anyhow::Result<Identity> {
        Ok(Identity::resolve(self.user.as_deref())?)
    }
}

/// Logs go to stderr; `-v` picks the level, `RUST_LOG` overrides; colour only on a terminal
/// and never with `NO_COLOR`.
pub fn init_logging(common: &CommonArgs) {
    let level = if common.quiet {
        "error"
    } else {
        match common.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour_on_stderr())
        .with_target(false)
        .without_time()
        .try_init();
}

fn no_colour() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

fn use_colour_on_stderr() -> bool {
    !no_colour() && std::io::stderr().is_terminal()
}

/// Whether human output on stdout may use colour: a terminal, no `NO_COLOR`.
/// Machine formats never use colour, whatever this says.
pub fn use_colour_on_stdout() -> bool {
    !no_colour() && std::io::stdout().is_terminal()
}

/// A stdout printer. A closed pipe (`| head`) is not an error: it ends the command with 0.
#[derive(Debug)]
pub struct Printer {
    out: std::io::BufWriter<std::io::Stdout>,
}

/// Raised when stdout is closed; [`run`] turns it into exit 0.
#[derive(Debug)]
pub struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for ClosedPipe {}

impl Default for Printer {
    fn default() -> Self {
        Printer::new()
    }
}

impl Printer {
    pub fn new() -> Printer {
        Printer {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        }
    }

    /// Writes text as is.
    pub fn write_str(&mut self, s: &str) -> anyhow::Result<()> {
        self.out.write_all(s.as_bytes()).map_err(pipe_error)
    }

    /// Writes one line.
    pub fn line(&mut self, s: &str) -> anyhow::Result<()> {
        self.write_str(s)?;
        self.write_str("\n")
    }

    /// Writes a value as pretty JSON and a newline.
    pub fn json(&mut self, v: &serde_json::Value) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(v)?;
        self.line(&text)
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().map_err(pipe_error)
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

fn pipe_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(ClosedPipe)
    } else {
        anyhow::Error::new(e).context("cannot write to stdout")
    }
}

/// The only way out of `main`: runs the command, prints an error with its whole cause chain
/// on stderr, and maps the outcome to the published exit codes.
///
/// Errors are exit 2 (usage, configuration, input, I/O: nothing was written); a closed stdout
/// is exit 0.
pub fn run(command: impl FnOnce() -> anyhow::Result<ExitStatus>) -> ExitCode {
    match command() {
        Ok(status) => status.into(),
        Err(e) if e.downcast_ref::<ClosedPipe>().is_some() => ExitStatus::Success.into(),
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{msg}");
            ExitStatus::Error.into()
        }
    }
}

/// Parses the command line; `--help`/`--version` print and exit 0; usage errors exit 2.
pub fn parse<T: clap::Parser>() -> Result<T, ExitCode> {
    match T::try_parse() {
        Ok(t) => Ok(t),
        Err(e) => {
            let _ = e.print();
            Err(if e.use_stderr() {
                ExitStatus::Error.into()
            } else {
                ExitStatus::Success.into()
            })
        }
    }
}
