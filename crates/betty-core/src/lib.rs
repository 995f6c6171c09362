//! `betty-core` is the model of the Betty registry world, shared by every governance binary.
//!
//! It knows where a registry lives ([`discover`]), how manifests and registries are shaped
//! ([`manifest`], [`registry`]), what a permission means ([`permission`]), how to read untrusted
//! YAML and JSON with limits and source positions ([`source`]), how to write files so that
//! concurrent writers and crashes lose nothing ([`fsx`]), who is acting ([`identity`]), what time
//! it is ([`time`]), and how to keep the tamper-evident audit trail ([`audit`]) and the telemetry
//! event stream ([`telemetry`], [`stream`]). Approvers are compared as [`principal::normalise`]d
//! identities and sign with SSH keys ([`sshsig`]: SSHSIG verification against an
//! `allowed_signers` file). Every binary records operations through one
//! [`record::Recorder`]: audit entry (intent and commit for a state change), events, alerts.
//!
//! Invariant: this crate never prints and never exits. Every failure is a typed [`Error`];
//! binaries add context and map it to an exit code through [`ExitStatus`].

pub mod approval;
pub mod audit;
pub mod canonical;
pub mod deliver;
pub mod discover;
pub mod error;
pub mod escape;
pub mod fsx;
pub mod history;
pub mod identity;
pub mod limits;
pub mod manifest;
pub mod par;
pub mod permission;
pub mod principal;
pub mod pyjson;
pub mod record;
pub mod redact;
pub mod registry;
pub mod schema;
pub mod sigcache;
pub mod source;
pub mod sshsig;
pub mod stream;
pub mod telemetry;
pub mod time;

pub use error::{Error, ExitStatus, Result};
pub use source::{Document, Pos, SourceName};

/// The version of this crate, recorded in events (`context.version`) and audit entries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
