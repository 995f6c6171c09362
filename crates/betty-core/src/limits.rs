//! Limits on untrusted input. Every reader goes through these, so no input can make a command
//! hang or exhaust memory.

/// Bounds applied when reading one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most YAML alias (`*ref`) uses in one document.
    pub max_aliases: usize,
    /// Most nodes (scalars and collections) in one document.
    pub max_nodes: usize,
}

impl Limits {
    /// Manifests and policies: hand-written files, a few kilobytes in practice.
    pub const MANIFEST: Limits = Limits {
        max_bytes: 4 * 1024 * 1024,
        max_depth: 64,
        max_aliases: 1_000,
        max_nodes: 200_000,
    };
    /// Registries, history versions and approval files: machine-written, can be large.
    pub const REGISTRY: Limits = Limits {
        max_bytes: 256 * 1024 * 1024,
        max_depth: 64,
        max_aliases: 0,
        max_nodes: 50_000_000,
    };
    /// One telemetry event (one line of `events.jsonl`, or one event on stdin).
    pub const EVENT: Limits = Limits {
        max_bytes: 1024 * 1024,
        max_depth: 32,
        max_aliases: 0,
        max_nodes: 100_000,
    };
}

/// Longest regular expression a policy may carry, in bytes of source.
pub const MAX_REGEX_LEN: usize = 4 * 1024;
/// Compiled-size limit handed to the regex engine.
pub const MAX_REGEX_COMPILED: usize = 1024 * 1024;
/// Longest name (skill, agent, policy, approval id) accepted.
pub const MAX_NAME_LEN: usize = 128;
