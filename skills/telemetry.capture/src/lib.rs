//! `telemetry-capture` and `telemetry-query`: record governance events, then query, aggregate,
//! export and alert on them.
//!
//! Writing goes through `betty_core::telemetry` (completion, redaction, schema check, whole-line
//! appends under the sidecar lock); this crate adds what only these two binaries need: reading
//! the stream in constant memory ([`lines`], [`scan`]) across rotated [`segments`], the
//! aggregates ([`sketch`], [`stats`], [`metrics`]), turning stdin and flags into events
//! ([`capture`]), importing upstream's `telemetry.json` ([`import`]), the output formats
//! ([`output`]), upstream's `audit.log` arguments as audit entries ([`audit_entry`]), alerts on captured events ([`alerts`]), and the command lines ([`cli`]).

pub mod alerts;
pub mod audit_entry;
pub mod capture;
pub mod cli;
pub mod import;
pub mod lines;
pub mod metrics;
pub mod output;
pub mod scan;
pub mod segments;
pub mod sketch;
pub mod stats;
