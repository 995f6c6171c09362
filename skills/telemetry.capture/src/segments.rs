//! The event stream's segments. The model (rotation, `.unordered` markers, the batch journal)
//! is `betty_core::stream`, shared by every binary's appends; readers list segments here, after
//! finishing a batch a killed writer left half-appended, so a reader sees none of a batch or
//! all of it.

use std::path::Path;

pub use betty_core::stream::{SKEW, Segment, is_rotated_name, rotated_name, unordered_marker};

/// The segments of the stream whose live file is `events_jsonl`, oldest first, once any
/// half-appended batch is finished (a registry we may not write is read as it is).
pub fn list(events_jsonl: &Path) -> std::io::Result<Vec<Segment>> {
    if let Err(e) = betty_core::stream::settle(events_jsonl) {
        tracing::warn!("a half-appended batch could not be finished: {e}");
    }
    betty_core::stream::list(events_jsonl)
}
