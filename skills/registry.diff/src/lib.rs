//! registry-diff: registry versions, field-level deltas, semver checks and rollback.
