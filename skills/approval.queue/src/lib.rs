//! The `approval-queue` skill: its command line (`cli`, shared with `cargo xtask dist` for
//! completions and man pages) and its notifications (`notify`). The approval model itself is
//! `betty_core::approval`.

pub mod cli;
pub mod notify;
pub mod run;
