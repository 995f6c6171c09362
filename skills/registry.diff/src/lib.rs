//! `registry-diff`: versions of the registry, field-level deltas between any two of them,
//! semver checks on those deltas, and rollback.
//!
//! The record format, version ids and the locked append live in `betty_core::history`; this
//! crate holds what is specific to the tool: the diff ([`diff`]), the semver rules
//! ([`semver`]), what a `--compare` argument names ([`snapshot`], [`git`]), the writers of
//! history ([`versions`]), the escalation gate a rollback passes ([`gate`]), presentation ([`render`]) and the command line ([`cli`]).

pub mod cli;
pub mod diff;
pub mod gate;
pub mod git;
pub mod render;
pub mod semver;
pub mod snapshot;
pub mod versions;
