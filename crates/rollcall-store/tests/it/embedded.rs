//! The contract suite on the embedded log, with a small segment size so roll-over is exercised.

use rollcall_store::contract::Guarded;
use rollcall_store::{EmbeddedLog, EmbeddedOptions};

/// Options that roll segments often, so every case crosses segment boundaries.
pub fn small_segments() -> EmbeddedOptions {
    EmbeddedOptions { segment_bytes_max: 64 * 1024, ..EmbeddedOptions::default() }
}

rollcall_store::contract_suite!(async || {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let log = EmbeddedLog::open(dir.path(), small_segments()).await.expect("open the embedded log");
    Guarded { store: log, guard: dir }
});
