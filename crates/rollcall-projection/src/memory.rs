//! The in-process target: a state behind one lock; a batch and its checkpoint change together.

use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use rollcall_core::envelope::Position;

use crate::error::ProjectionError;
use crate::event::ProjectedEvent;
use crate::projection::{Generation, Projection};

/// A read model's state that folds events in place.
pub trait ViewState: Default + Send + Sync + 'static {
    /// Whether events of this type change the state.
    fn wants(event_type: &str) -> bool;

    /// Folds one event. Never fails: events are facts.
    fn apply(&mut self, event: &ProjectedEvent);
}

/// Called after a batch has been applied to the live view (e.g. to broadcast revocations).
pub type LiveHook = Box<dyn Fn(&[ProjectedEvent]) + Send + Sync>;

struct View<S> {
    checkpoint: Option<Position>,
    state: S,
}

impl<S: Default> View<S> {
    fn empty(checkpoint: Option<Position>) -> View<S> {
        View { checkpoint, state: S::default() }
    }
}

/// A projection held in this process. Readers take a read lock; a batch takes the write lock,
/// so a reader sees a batch entirely or not at all, and a rebuild swaps the whole state.
pub struct InProcess<S> {
    name: String,
    live: RwLock<View<S>>,
    staging: Mutex<View<S>>,
    hook: Option<LiveHook>,
}

impl<S: ViewState> InProcess<S> {
    /// An empty, not yet built projection.
    pub fn new(name: &str) -> InProcess<S> {
        InProcess {
            name: name.to_owned(),
            live: RwLock::new(View::empty(None)),
            staging: Mutex::new(View::empty(None)),
            hook: None,
        }
    }

    /// An empty projection that calls `hook` after every batch applied to the live view.
    pub fn with_live_hook(name: &str, hook: LiveHook) -> InProcess<S> {
        InProcess { hook: Some(hook), ..InProcess::new(name) }
    }

    /// Reads the live state; `None` while the view is not built (unavailable).
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> Option<R> {
        let view = self.live.read().unwrap_or_else(|e| e.into_inner());
        view.checkpoint.map(|_| f(&view.state))
    }

    /// Reads the live state with its checkpoint; `None` while the view is not built.
    pub fn read_at<R>(&self, f: impl FnOnce(&S, Position) -> R) -> Option<R> {
        let view = self.live.read().unwrap_or_else(|e| e.into_inner());
        view.checkpoint.map(|position| f(&view.state, position))
    }

    /// Drops the live view, as if the process had lost it; the projector notices and rebuilds.
    pub fn discard_live(&self) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = View::empty(None);
    }
}

impl<S: ViewState + Clone> InProcess<S> {
    /// A copy of the live state; `None` while the view is not built.
    pub fn snapshot(&self) -> Option<S> {
        self.read(S::clone)
    }
}

fn check_expected(name: &str, found: Option<Position>, expected: Position) -> Result<(), ProjectionError> {
    if found == Some(expected) {
        Ok(())
    } else {
        Err(ProjectionError::CheckpointMismatch { projection: name.to_owned(), expected: Some(expected), found })
    }
}

#[async_trait]
impl<S: ViewState> Projection for InProcess<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, event_type: &str) -> bool {
        S::wants(event_type)
    }

    async fn checkpoint(&self, generation: Generation) -> Result<Option<Position>, ProjectionError> {
        Ok(match generation {
            Generation::Live => self.live.read().unwrap_or_else(|e| e.into_inner()).checkpoint,
            Generation::Staging => self.staging.lock().unwrap_or_else(|e| e.into_inner()).checkpoint,
        })
    }

    async fn apply(
        &self,
        generation: Generation,
        expected: Position,
        events: &[ProjectedEvent],
        to: Position,
    ) -> Result<(), ProjectionError> {
        match generation {
            Generation::Live => {
                {
                    let mut view = self.live.write().unwrap_or_else(|e| e.into_inner());
                    check_expected(&self.name, view.checkpoint, expected)?;
                    fold(&mut view, events, expected, to);
                }
                if let Some(hook) = &self.hook {
                    hook(events);
                }
            }
            Generation::Staging => {
                let mut view = self.staging.lock().unwrap_or_else(|e| e.into_inner());
                check_expected(&self.name, view.checkpoint, expected)?;
                fold(&mut view, events, expected, to);
            }
        }
        Ok(())
    }

    async fn reset_staging(&self) -> Result<(), ProjectionError> {
        *self.staging.lock().unwrap_or_else(|e| e.into_inner()) = View::empty(Some(Position::START));
        Ok(())
    }

    async fn promote_staging(&self) -> Result<Position, ProjectionError> {
        let mut staging = self.staging.lock().unwrap_or_else(|e| e.into_inner());
        let Some(position) = staging.checkpoint else {
            return Err(ProjectionError::CheckpointMismatch {
                projection: self.name.clone(),
                expected: None,
                found: None,
            });
        };
        let built = std::mem::replace(&mut *staging, View::empty(None));
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = built;
        Ok(position)
    }
}

fn fold<S: ViewState>(view: &mut View<S>, events: &[ProjectedEvent], expected: Position, to: Position) {
    // Events at or below the checkpoint are already reflected: applying them again would count
    // them twice.
    for event in events.iter().filter(|e| e.position > expected && e.position <= to) {
        view.state.apply(event);
    }
    view.checkpoint = Some(to);
}
