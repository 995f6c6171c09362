//! `approval-queue`: hold sensitive operations until enough of the right humans approve.
//!
//! Glue only: parse flags, then `approval_queue::run::run` (exit 0 approved, 1 rejected,
//! expired, cancelled, consumed or invalid, 3 pending, 2 error: nothing changed).

// `list` over thousands of requests allocates and frees many small values: the system
// allocator spent a quarter of its time taking fresh pages from the kernel.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli: approval_queue::cli::Cli = match betty_cli::parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    betty_cli::init_logging(&cli.common);
    betty_cli::run(|| approval_queue::run::run(cli))
}
