//! The event streams open through the gateway, by token, so a revocation can close them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rollcall_core::TokenHash;
use tokio_util::sync::CancellationToken;

/// Open streams by token.
pub(crate) struct Streams {
    by_token: Mutex<HashMap<TokenHash, HashMap<u64, CancellationToken>>>,
    next_id: AtomicU64,
    open: AtomicUsize,
    open_max: usize,
}

/// One open stream; dropping it unregisters the stream.
pub(crate) struct Registration {
    streams: Arc<Streams>,
    hash: TokenHash,
    id: u64,
    /// Fires when the stream must close.
    pub(crate) cancel: CancellationToken,
}

impl Streams {
    pub(crate) fn new(open_max: usize) -> Streams {
        Streams {
            by_token: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            open_max,
        }
    }

    /// How many streams are open.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether another stream may be opened.
    pub(crate) fn has_room(&self) -> bool {
        self.open() < self.open_max
    }

    /// Registers a stream of a token.
    pub(crate) fn register(self: &Arc<Self>, hash: TokenHash) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        self.lock().entry(hash).or_default().insert(id, cancel.clone());
        self.open.fetch_add(1, Ordering::Relaxed);
        Registration { streams: self.clone(), hash, id, cancel }
    }

    /// Closes every open stream of a token; returns how many.
    pub(crate) fn close_token(&self, hash: &TokenHash) -> usize {
        let Some(streams) = self.lock().remove(hash) else { return 0 };
        for cancel in streams.values() {
            cancel.cancel();
        }
        self.open.fetch_sub(streams.len(), Ordering::Relaxed);
        streams.len()
    }

    /// The tokens that have open streams.
    pub(crate) fn tokens(&self) -> Vec<TokenHash> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, HashMap<u64, CancellationToken>>> {
        self.by_token.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut by_token = self.streams.lock();
        if let Some(streams) = by_token.get_mut(&self.hash) {
            // Absent when close_token already took it (and already decremented the count).
            if streams.remove(&self.id).is_some() {
                self.streams.open.fetch_sub(1, Ordering::Relaxed);
            }
            if streams.is_empty() {
                by_token.remove(&self.hash);
            }
        }
    }
}
