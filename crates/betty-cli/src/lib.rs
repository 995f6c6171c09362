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

    /// Refuses `--user` for a command that records nothing as anyone (a usage error, exit 2):
    /// accepted and ignored, `approval-queue list --user alice` would read as a filter that
    /// is not applied. `BETTY_USER` is a setting of the environment, not of this command, so
    /// it is not refused.
    pub fn refuse_user(&self, command: &str) -> anyhow::Result<()> {
        match &self.user {
            Some(_) => anyhow::bail!(
                "`--user` says who acts, and `{command}` records nothing as anyone, so it would be ignored: leave it out"
            ),
            None => Ok(()),
        }
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
    let colour = use_colour_on_stderr();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || SafeStderr { colour })
        .with_ansi(colour)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Log lines on stderr with every user-supplied control character escaped. The formatter
/// writes one whole event per `write` (its own trailing newline last), and escapes ESC and C1
/// itself, so its colours survive; what is left (CR, embedded newlines, bidi controls, other
/// C0; ESC too when there is no colour) is escaped here, and secrets quoted in a message are
/// redacted.
struct SafeStderr {
    colour: bool,
}

impl Write for SafeStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let safe = safe_log_line(&String::from_utf8_lossy(buf), self.colour);
        std::io::stderr().lock().write_all(safe.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// One formatted log event made safe for a terminal (see [`SafeStderr`]).
fn safe_log_line(text: &str, colour: bool) -> String {
    let (body, end) = match text.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (text, ""),
    };
    let redacted = betty_core::redact::redact_text(body);
    let mut safe = String::with_capacity(redacted.len() + 1);
    for c in redacted.chars() {
        if (c != '\x1b' || !colour) && betty_core::escape::is_unsafe_char(c) {
            safe.push_str(&betty_core::escape::escape(c.encode_utf8(&mut [0; 4])));
        } else {
            safe.push(c);
        }
    }
    safe.push_str(end);
    safe
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

/// The bytes of `serde_json::to_string_pretty` of an object of `fields` then `key: [items]`,
/// and a newline; each item is pretty JSON text.
fn write_json_with_list(
    w: &mut impl Write,
    fields: &[(&str, serde_json::Value)],
    key: &str,
    items: &[String],
) -> std::io::Result<()> {
    let name = |s: &str| serde_json::to_string(s).map_err(std::io::Error::other);
    w.write_all(b"{\n")?;
    for (field, value) in fields {
        let value = serde_json::to_string_pretty(value)
            .map_err(std::io::Error::other)?
            .replace('\n', "\n  ");
        writeln!(w, "  {}: {value},", name(field)?)?;
    }
    write!(w, "  {}: ", name(key)?)?;
    if items.is_empty() {
        return w.write_all(b"[]\n}\n");
    }
    w.write_all(b"[\n")?;
    for (i, item) in items.iter().enumerate() {
        w.write_all(b"    ")?;
        w.write_all(item.replace('\n', "\n    ").as_bytes())?;
        w.write_all(if i + 1 == items.len() { b"\n" } else { b",\n" })?;
    }
    w.write_all(b"  ]\n}\n")
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

    /// Writes, as [`Self::json`] would, an object of `fields` followed by `key` holding the
    /// array of `items` (each already pretty JSON text), without building the whole value: a
    /// listing of 10,000 requests is written as its items are made, on every core.
    pub fn json_with_list(
        &mut self,
        fields: &[(&str, serde_json::Value)],
        key: &str,
        items: &[String],
    ) -> anyhow::Result<()> {
        write_json_with_list(&mut self.out, fields, key, items).map_err(pipe_error)
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
            let _ = writeln!(stderr, "{}", safe_message(&msg));
            ExitStatus::Error.into()
        }
    }
}

/// A message for a person's terminal: secrets redacted ([`betty_core::redact::redact_text`]),
/// control characters escaped with the message's own line breaks kept
/// ([`betty_core::escape::EscapedLines`]). Errors and logs quote user input (names, values,
/// lines of files), so every one of them goes through this.
pub fn safe_message(msg: &str) -> String {
    betty_core::escape::escape_lines(&betty_core::redact::redact_text(msg)).into_owned()
}

/// Parses the command line; `--help`/`--version` print and exit 0; usage errors exit 2.
/// A flag of a command given with one of its subcommands (`telemetry-query --limit 3 stats`)
/// is a usage error too ([`unused_before_subcommand`]): no flag is accepted and ignored.
pub fn parse<T: clap::Parser>() -> Result<T, ExitCode> {
    parse_from(std::env::args_os())
}

/// [`parse`] of the given arguments (the first is the program name).
pub fn parse_from<T: clap::Parser, I, A>(args: I) -> Result<T, ExitCode>
where
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    match try_parse_from::<T, I, A>(args) {
        Ok(t) => Ok(t),
        Err(e) if e.use_stderr() => {
            // Usage errors quote the offending argument: shown plain, redacted and escaped.
            let text = e.render().to_string();
            let _ = write!(std::io::stderr().lock(), "{}", safe_message(&text));
            Err(ExitStatus::Error.into())
        }
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

/// Parses like `T::try_parse_from`, and refuses a flag of a command that has one of its
/// subcommands after it ([`unused_before_subcommand`]).
pub fn try_parse_from<T: clap::Parser, I, A>(args: I) -> Result<T, clap::Error>
where
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = T::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    unused_before_subcommand(&mut cmd, &matches)?;
    T::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// In every Betty binary a command's own flags (not the global ones) are for the command run
/// without a subcommand: given with a subcommand, they would be silently ignored. This finds the
/// first such flag, at any depth, as a clap usage error (exit 2) naming the flag and the
/// subcommand.
pub fn unused_before_subcommand(
    cmd: &mut clap::Command,
    matches: &clap::ArgMatches,
) -> Result<(), clap::Error> {
    let Some((name, sub_matches)) = matches.subcommand() else {
        return Ok(());
    };
    let used = cmd.get_arguments().find(|a| {
        !a.is_global_set()
            && matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
    });
    if let Some(arg) = used {
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(l), _) => format!("--{l}"),
            (None, Some(c)) => format!("-{c}"),
            (None, None) => arg
                .get_value_names()
                .and_then(|n| n.first())
                .map(|n| n.to_string())
                .unwrap_or_else(|| arg.get_id().to_string()),
        };
        let parent = cmd.get_name().to_string();
        return Err(cmd.error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "`{flag}` is a flag of `{parent}` without a subcommand and does nothing with `{name}`; leave it out, or use `{name}`'s own flags (`{parent} {name} --help`)"
            ),
        ));
    }
    match cmd.find_subcommand_mut(name) {
        Some(sub) => unused_before_subcommand(sub, sub_matches),
        None => Ok(()),
    }
}

#[cfg(test)]
mod json_list_tests {
    #[test]
    fn json_with_list_writes_what_json_writes() {
        use serde_json::json;
        for items in [
            vec![],
            vec![json!({"a": 1, "b": [1, {"c": "x\ny"}], "e": {}})],
            vec![
                json!({"a": 1}),
                json!("s"),
                json!([]),
                json!({"n": {"m": [2]}}),
            ],
        ] {
            let whole = json!({"schema_version": 2, "meta": {"k": [1]}, "requests": items});
            let expected = serde_json::to_string_pretty(&whole).unwrap() + "\n";
            let texts: Vec<String> = items
                .iter()
                .map(|v| serde_json::to_string_pretty(v).unwrap())
                .collect();
            let mut buf = Vec::new();
            super::write_json_with_list(
                &mut buf,
                &[("schema_version", json!(2)), ("meta", json!({"k": [1]}))],
                "requests",
                &texts,
            )
            .unwrap();
            assert_eq!(String::from_utf8(buf).unwrap(), expected);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_and_error_messages_are_escaped_and_redacted() {
        assert_eq!(
            safe_log_line(
                "WARN bad `x\r\nERROR forged\u{202e}` password=hunter2\n",
                false
            ),
            "WARN bad `x\\r\\nERROR forged\\u{202e}` password=[REDACTED]\n"
        );
        // With colour, the formatter's own escapes stay (it escapes ESC in user fields itself).
        assert_eq!(
            safe_log_line("\x1b[33mWARN\x1b[0m a\tb\n", true),
            "\x1b[33mWARN\x1b[0m a\\tb\n"
        );
        assert_eq!(safe_log_line("\x1b[2J\n", false), "\\x1b[2J\n");
        assert_eq!(
            safe_message("error: cannot read `a\x1b]0;t\x07.yaml`\n  caused by: token=abc123"),
            "error: cannot read `a\\x1b]0;t\\x07.yaml`\n  caused by: token=[REDACTED]"
        );
    }
}
