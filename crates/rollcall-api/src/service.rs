//! The application service: load a stream, fold it, decide, append with the expected revision,
//! and retry on a concurrent write.
//!
//! This is the only place that talks to the event store for commands. Ids, randomness and the
//! clock are taken here and passed into the pure core. A refused command writes nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rollcall_core::account::{self, AccountCommand, AccountState};
use rollcall_core::catalogue::{account_stream, workspace_stream};
use rollcall_core::envelope::{Actor, Metadata, NewEvent, Position};
use rollcall_core::events::{Event, IssuedToken};
use rollcall_core::ids::{AccountId, TokenId};
use rollcall_core::token::{Secret, SecretKind};
use rollcall_core::workspace::{self, AccountRef, Context, WorkspaceCommand, WorkspaceState};
use rollcall_core::{DomainError, Email};
use rollcall_store::{EventStore, ExpectedRevision, StoreError};
use uuid::Uuid;

use crate::directory::Directory;
use crate::error::ApiError;
use crate::follow::Follower;
use crate::mail::Mailer;
use crate::password::PasswordHashing;
use crate::views::{ProjectionWatch, UsageView};

/// Events read per page when loading a stream.
const STREAM_PAGE_EVENTS: usize = 1000;

/// Tunables of the service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The base URL users reach the server at, for accept links (no trailing slash).
    pub public_url: String,
    /// Attempts at a command when other writers keep changing its stream.
    pub append_attempts_max: u32,
    /// How long a revocation waits for the token view before answering 503.
    pub revocation_wait_ms: u64,
    /// How long a command waits for the accounts index to show its own write.
    pub index_wait_ms: u64,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            public_url: "http://127.0.0.1:7070".into(),
            append_attempts_max: 64,
            revocation_wait_ms: 5_000,
            index_wait_ms: 5_000,
        }
    }
}

/// Who is calling and which request this is.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The authenticated account, if any.
    pub account: Option<AccountRef>,
    /// Shared by every event this request causes.
    pub correlation_id: Uuid,
}

impl Caller {
    /// An authenticated caller with a fresh correlation id.
    pub fn account(account: AccountRef) -> Caller {
        Caller { account: Some(account), correlation_id: Uuid::now_v7() }
    }

    /// Rollcall itself (the expiry sweep).
    pub fn system() -> Caller {
        Caller { account: None, correlation_id: Uuid::now_v7() }
    }

    fn actor(&self) -> Actor {
        match &self.account {
            Some(a) => Actor::Account { account_id: a.account_id.as_uuid() },
            None => Actor::System,
        }
    }
}

/// The outcome of a workspace command that was recorded (or had nothing to record).
#[derive(Clone, Debug)]
pub struct Executed {
    /// The state the command was decided on.
    pub before: WorkspaceState,
    /// The events recorded (empty when there was nothing to do).
    pub events: Vec<Event>,
    /// Where the last one landed.
    pub position: Option<Position>,
}

/// What a [`Service`] is made of.
pub struct ServiceParts {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// The accounts index.
    pub directory: Arc<Directory>,
    /// The follower keeping the index current.
    pub directory_follower: Follower,
    /// How far the token validity view has got.
    pub tokens: Arc<dyn ProjectionWatch>,
    /// Tool-call usage.
    pub usage: Arc<dyn UsageView>,
    /// Invitation emails.
    pub mailer: Mailer,
    /// Password hashing.
    pub passwords: PasswordHashing,
    /// Tunables.
    pub config: ServiceConfig,
}

/// The service every handler calls.
pub struct Service {
    store: Arc<dyn EventStore>,
    directory: Arc<Directory>,
    directory_follower: Follower,
    tokens: Arc<dyn ProjectionWatch>,
    usage: Arc<dyn UsageView>,
    mailer: Mailer,
    passwords: PasswordHashing,
    config: ServiceConfig,
}

impl Service {
    /// Assembles the service from its parts.
    pub fn new(parts: ServiceParts) -> Service {
        let ServiceParts { store, directory, directory_follower, tokens, usage, mailer, passwords, config } = parts;
        Service { store, directory, directory_follower, tokens, usage, mailer, passwords, config }
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The accounts index.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The usage view.
    pub fn usage(&self) -> &dyn UsageView {
        self.usage.as_ref()
    }

    /// The mailer.
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// Tunables.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Whether every view the API reads has caught up with the log.
    pub fn is_ready(&self) -> bool {
        self.directory_follower.is_caught_up() && self.tokens.is_caught_up() && self.usage.is_caught_up()
    }

    /// The accept link of an invitation code.
    pub fn accept_url(&self, code: &Secret, has_account: bool) -> String {
        let signup = if has_account { "" } else { "&signup=1" };
        format!("{}/accept?code={}{signup}", self.config.public_url, code.expose())
    }

    // ---- accounts ----

    /// Signs up: records the account, its password hash and a first API token.
    pub async fn sign_up(
        &self,
        caller: &Caller,
        email: Email,
        password: String,
    ) -> Result<(AccountId, Email, Secret), ApiError> {
        PasswordHashing::check_policy(&password)?;
        if self.directory.account_by_email(&email).is_some() {
            return Err(DomainError::AccountExists { email }.into());
        }
        // Hashed before anything is locked or read: it is the slow part.
        let password_hash = self.passwords.hash(password).await?;
        let account_id = AccountId(Uuid::now_v7());
        let secret = new_secret(SecretKind::AccountToken);
        let token = IssuedToken::of(TokenId(Uuid::now_v7()), &secret);
        let command = AccountCommand::SignUp { account_id, email: email.clone(), password_hash, token };
        let caller = Caller { account: Some(AccountRef { account_id, email: email.clone() }), ..caller.clone() };
        self.execute_account(&caller, &email, command).await?;
        Ok((account_id, email, secret))
    }

    /// Logs in: checks the password and issues a new API token. Unknown address and wrong
    /// password give the same answer in about the same time.
    pub async fn log_in(
        &self,
        caller: &Caller,
        email: &str,
        password: String,
    ) -> Result<(AccountId, Email, Secret), ApiError> {
        let row = Email::parse(email).ok().and_then(|e| self.directory.account_by_email(&e));
        let stored = row.as_ref().and_then(|r| r.password_hash.clone());
        let matched = self.passwords.verify(stored, password).await?;
        let Some(row) = row.filter(|_| matched) else {
            return Err(DomainError::BadCredentials.into());
        };
        let secret = new_secret(SecretKind::AccountToken);
        let token = IssuedToken::of(TokenId(Uuid::now_v7()), &secret);
        let command = AccountCommand::IssueToken { token, label: "login".into() };
        let caller = Caller {
            account: Some(AccountRef { account_id: row.account_id, email: row.email.clone() }),
            ..caller.clone()
        };
        self.execute_account(&caller, &row.email, command).await?;
        Ok((row.account_id, row.email, secret))
    }

    /// The account behind a presented `mwa_` token.
    pub fn authenticate(&self, presented: &str) -> Result<AccountRef, ApiError> {
        let secret = Secret::parse_kind(presented, SecretKind::AccountToken).map_err(|e| {
            ApiError::InvalidToken(format!("{e}: pass an account token (mwa_...) from `rollcall login`"))
        })?;
        let (account_id, email) = self.directory.account_by_token(&secret.hash()).ok_or_else(|| {
            ApiError::InvalidToken("this account token is unknown or revoked: log in again (rollcall login)".into())
        })?;
        Ok(AccountRef { account_id, email })
    }

    async fn execute_account(&self, caller: &Caller, email: &Email, command: AccountCommand) -> Result<(), ApiError> {
        let stream = account_stream(email);
        for attempt in 1..=self.config.append_attempts_max {
            let recorded = read_whole_stream(self.store.as_ref(), &stream).await?;
            let mut state = AccountState::default();
            for event in &recorded {
                account::evolve(&mut state, &decode(event)?);
            }
            let events = account::decide(&state, command.clone(), Utc::now())?;
            if events.is_empty() {
                return Ok(());
            }
            let expected = recorded.last().map_or(ExpectedRevision::NoStream, |e| ExpectedRevision::Exact(e.revision));
            match self.store.append(&stream, expected, encode(&events, caller)).await {
                Ok(result) => {
                    self.await_index(result.position).await;
                    return Ok(());
                }
                Err(StoreError::WrongExpectedRevision { .. }) if attempt < self.config.append_attempts_max => {
                    backoff(attempt).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApiError::Contended(stream))
    }

    // ---- workspaces ----

    /// Loads a workspace's state and the revision of its last event.
    pub async fn load_workspace(&self, name: &str) -> Result<(WorkspaceState, Option<u64>), ApiError> {
        if workspace::validate_workspace_name(name).is_err() {
            return Ok((WorkspaceState::default(), None));
        }
        let recorded = read_whole_stream(self.store.as_ref(), &workspace_stream(name)).await?;
        let mut state = WorkspaceState::default();
        for event in &recorded {
            workspace::evolve(&mut state, &decode(event)?);
        }
        Ok((state, recorded.last().map(|e| e.revision)))
    }

    /// Loads a workspace the caller belongs to, with the caller's role. Anything else reads as
    /// "no such workspace", so that names of other people's workspaces do not leak.
    pub async fn visible_workspace(
        &self,
        caller: &AccountRef,
        name: &str,
    ) -> Result<(WorkspaceState, rollcall_core::Role), ApiError> {
        let (state, _) = self.load_workspace(name).await?;
        match state.role_of(caller.account_id) {
            Some(role) if state.is_live() => Ok((state, role)),
            _ => Err(not_found(name)),
        }
    }

    /// Decides and records a command on a workspace, retrying on concurrent writes. `make`
    /// builds the command from the freshly loaded state on every attempt.
    pub async fn execute(
        &self,
        caller: &Caller,
        name: &str,
        make: impl FnMut(&WorkspaceState) -> Result<WorkspaceCommand, ApiError>,
    ) -> Result<Executed, ApiError> {
        self.execute_at(caller, name, None, make).await
    }

    /// [`Service::execute`] decided at a given time (`None`: the clock at each attempt).
    pub async fn execute_at(
        &self,
        caller: &Caller,
        name: &str,
        at: Option<DateTime<Utc>>,
        mut make: impl FnMut(&WorkspaceState) -> Result<WorkspaceCommand, ApiError>,
    ) -> Result<Executed, ApiError> {
        let stream = workspace_stream(name);
        for attempt in 1..=self.config.append_attempts_max {
            let (state, revision) = self.load_workspace(name).await?;
            let command = make(&state)?;
            let is_create = matches!(command, WorkspaceCommand::Create { .. });
            if !is_create && workspace::validate_workspace_name(name).is_err() {
                return Err(not_found(name));
            }
            if is_create {
                workspace::validate_workspace_name(name)?;
            }
            let ctx = Context { actor: caller.account.clone(), now: at.unwrap_or_else(Utc::now) };
            let events = workspace::decide(&state, command, &ctx).map_err(|error| match error {
                DomainError::WorkspaceNotFound { .. } => not_found(name),
                other => ApiError::Domain(other),
            })?;
            if events.is_empty() {
                return Ok(Executed { before: state, events, position: None });
            }
            let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            match self.store.append(&stream, expected, encode(&events, caller)).await {
                Ok(result) => {
                    self.await_index(result.position).await;
                    return Ok(Executed { before: state, events, position: Some(result.position) });
                }
                Err(StoreError::WrongExpectedRevision { .. }) if attempt < self.config.append_attempts_max => {
                    backoff(attempt).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApiError::Contended(stream))
    }

    /// Waits until the token view reflects `position` (a revocation), or answers 503 saying the
    /// revocation is recorded.
    pub async fn await_revocation(&self, position: Option<Position>, what: &'static str) -> Result<(), ApiError> {
        let Some(position) = position else { return Ok(()) };
        let timeout_ms = self.config.revocation_wait_ms;
        if self.tokens.wait_for(position, Duration::from_millis(timeout_ms)).await {
            Ok(())
        } else {
            Err(ApiError::ProjectionLagging { what, position: position.to_string(), timeout_ms })
        }
    }

    /// Waits (bounded) until the token view knows a newly issued token, so that it works at the
    /// gateway as soon as it is shown. A lagging view does not undo the issue: it is recorded
    /// and becomes valid once the view catches up.
    pub async fn await_issue(&self, position: Option<Position>) {
        let Some(position) = position else { return };
        if !self.tokens.wait_for(position, Duration::from_millis(self.config.revocation_wait_ms)).await {
            tracing::warn!(%position, "the token view is behind: a new token works once it catches up");
        }
    }

    /// Records the expiry of pending invitations past their expiry; returns how many.
    pub async fn expire_invitations(&self, now: DateTime<Utc>, limit: usize) -> usize {
        let mut expired = 0;
        for pending in self.directory.expired_invitations(now, limit) {
            let invitation_id = pending.invitation_id;
            let outcome = self
                .execute_at(&Caller::system(), &pending.workspace, Some(now), |_| {
                    Ok(WorkspaceCommand::Expire { invitation_id })
                })
                .await;
            match outcome {
                Ok(_) => {
                    self.mailer.forget_retries(invitation_id);
                    expired += 1;
                }
                // Resent or accepted in the meantime: nothing to record.
                Err(ApiError::Domain(
                    DomainError::InvitationNotPending { .. } | DomainError::InvitationNotYetExpired { .. },
                )) => {}
                Err(error) => tracing::warn!(%invitation_id, %error, "cannot record an invitation's expiry"),
            }
        }
        expired
    }

    async fn await_index(&self, position: Position) {
        let wait = Duration::from_millis(self.config.index_wait_ms);
        if !self.directory_follower.wait_for(position, wait).await {
            tracing::warn!(%position, "the accounts index is behind the log");
        }
    }
}

/// A new secret from the operating system's generator (through the thread-local CSPRNG).
pub fn new_secret(kind: SecretKind) -> Secret {
    let mut random = [0u8; 32];
    rand::rng().fill(&mut random);
    Secret::generate(kind, random)
}

/// The "no such workspace" refusal, named as the caller wrote it.
pub fn not_found(name: &str) -> ApiError {
    DomainError::WorkspaceNotFound { name: name.chars().take(80).collect() }.into()
}

fn encode(events: &[Event], caller: &Caller) -> Vec<NewEvent> {
    // One command: its events share a causation id (the command's) and the request's
    // correlation id.
    let command_id = Uuid::now_v7();
    let recorded_at = Utc::now();
    events
        .iter()
        .map(|event| {
            let metadata = Metadata {
                actor: caller.actor(),
                correlation_id: caller.correlation_id,
                causation_id: Some(command_id),
                recorded_at,
            };
            event.to_new_event(Uuid::now_v7(), metadata)
        })
        .collect()
}

fn decode(recorded: &rollcall_core::envelope::RecordedEvent) -> Result<Event, ApiError> {
    Event::from_recorded(recorded)
        .map_err(|e| ApiError::internal(format!("cannot decode {} at {}: {e}", recorded.event_type, recorded.position)))
}

async fn read_whole_stream(
    store: &dyn EventStore,
    stream: &str,
) -> Result<Vec<rollcall_core::envelope::RecordedEvent>, ApiError> {
    let mut events = Vec::new();
    loop {
        let page = store.read_stream(stream, events.len() as u64, STREAM_PAGE_EVENTS).await?;
        let done = page.len() < STREAM_PAGE_EVENTS;
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}

async fn backoff(attempt: u32) {
    // Random, growing waits spread the retries of writers that collided.
    let ceiling_ms = 2u64.saturating_pow(attempt.min(6)).min(50);
    let wait_ms = rand::rng().random_range(0..=ceiling_ms);
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
}
