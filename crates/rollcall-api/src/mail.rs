//! Invitation emails: built with lettre, sent over SMTP or written to an outbox folder.
//!
//! The invitation code appears only in the email itself. The outbox folder *is* a mail channel
//! (the only place on disk a code may be written); retries keep the message in memory only, so a
//! restart forgets undelivered mail and marks it `not_delivered`, and a resend issues a new code.
//! A failed send never touches the invitation: it stands, and its delivery status says what
//! happened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rollcall_core::Email;
use rollcall_core::events::Role;
use rollcall_core::ids::InvitationId;
use rollcall_core::token::Secret;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

/// Where invitation emails go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailTransport {
    /// `.eml` files in this folder, one per email sent.
    Outbox(PathBuf),
    /// An SMTP server: `smtp://[user:password@]host[:port]` (plain SMTP, for a local relay).
    Smtp(String),
}

/// How failed sends are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts_max: u32,
    /// Wait before the first retry; doubled after each failure.
    pub backoff_base_ms: u64,
    /// Longest wait between attempts.
    pub backoff_max_ms: u64,
    /// Longest one attempt may take.
    pub attempt_timeout_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { attempts_max: 6, backoff_base_ms: 2_000, backoff_max_ms: 120_000, attempt_timeout_ms: 10_000 }
    }
}

/// The delivery status of an invitation's latest email.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Not tried yet.
    Queued,
    /// Accepted by the SMTP server, or written to the outbox.
    Delivered,
    /// Failed at least once; retrying in the background.
    Retrying,
    /// Every attempt failed, or the server restarted before it was delivered: resend it.
    NotDelivered,
}

/// What an invitation email says.
#[derive(Clone, Debug)]
pub struct InvitationEmail {
    /// The invitation.
    pub invitation_id: InvitationId,
    /// The invited address.
    pub to: Email,
    /// The workspace's name.
    pub workspace: String,
    /// The address of who invited.
    pub invited_by: Email,
    /// The role offered.
    pub role: Role,
    /// When the invitation expires.
    pub expires_at: DateTime<Utc>,
    /// The secret code.
    pub code: Secret,
    /// Whether the address already has an account; if not, the email says to sign up first.
    pub has_account: bool,
    /// The accept link.
    pub accept_url: String,
}

/// Why the mailer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL is not usable.
    #[error("invalid SMTP URL {url:?}: {reason}")]
    Url {
        /// The URL (without password).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A sender address that does not parse.
    #[error("invalid sender address {0:?}: give an address like \"Rollcall <rollcall@example.com>\"")]
    From(String),
    /// The outbox cannot be created.
    #[error("cannot create the outbox folder {path}: {source}")]
    Outbox {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The mailer: sends, retries in the background, and remembers each invitation's delivery.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

enum Sender {
    Outbox(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

struct Inner {
    sender: Sender,
    from: Mailbox,
    retry: RetryPolicy,
    status_file: Option<PathBuf>,
    statuses: Mutex<HashMap<InvitationId, Status>>,
    tasks: Mutex<JoinSet<()>>,
    outbox_lock: tokio::sync::Mutex<()>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Status {
    /// Bumped by every new email for the invitation, so retries of a superseded email stop.
    generation: u64,
    delivery: Delivery,
}

impl Mailer {
    /// A mailer. `status_file` keeps delivery statuses (never codes) across restarts.
    pub fn new(
        transport: &MailTransport,
        from: &str,
        retry: RetryPolicy,
        status_file: Option<PathBuf>,
    ) -> Result<Mailer, MailError> {
        let from: Mailbox = from.parse().map_err(|_| MailError::From(from.to_owned()))?;
        let sender = match transport {
            MailTransport::Outbox(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|source| MailError::Outbox { path: dir.display().to_string(), source })?;
                Sender::Outbox(dir.clone())
            }
            MailTransport::Smtp(url) => Sender::Smtp(smtp_transport(url, retry)?),
        };
        let statuses = status_file.as_deref().map(load_statuses).unwrap_or_default();
        let mailer = Mailer {
            inner: Arc::new(Inner {
                sender,
                from,
                retry,
                status_file,
                statuses: Mutex::new(statuses),
                tasks: Mutex::new(JoinSet::new()),
                outbox_lock: tokio::sync::Mutex::new(()),
            }),
        };
        mailer.persist();
        Ok(mailer)
    }

    /// Sends an invitation email: one attempt now, then retries in the background.
    /// Returns the delivery status after the first attempt.
    pub async fn send(&self, email: InvitationEmail) -> Delivery {
        let invitation_id = email.invitation_id;
        let message = match build_message(&self.inner.from, &email) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%invitation_id, %error, "cannot build the invitation email");
                return self.set(invitation_id, None, Delivery::NotDelivered);
            }
        };
        let generation = self.next_generation(invitation_id);
        match self.inner.attempt(&message, invitation_id).await {
            Ok(()) => self.set(invitation_id, Some(generation), Delivery::Delivered),
            Err(error) => {
                tracing::warn!(%invitation_id, %error, "invitation email not delivered; retrying");
                let delivery = self.set(invitation_id, Some(generation), Delivery::Retrying);
                if self.inner.retry.attempts_max > 1 {
                    let mailer = self.clone();
                    let mut tasks = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
                    while tasks.try_join_next().is_some() {}
                    tasks.spawn(async move {
                        mailer.retry(message, invitation_id, generation).await;
                    });
                } else {
                    return self.set(invitation_id, Some(generation), Delivery::NotDelivered);
                }
                delivery
            }
        }
    }

    /// The delivery status of an invitation's latest email; `not_delivered` when this server
    /// never sent one (sent before a restart that lost it, or by another server).
    pub fn delivery(&self, invitation_id: InvitationId) -> Delivery {
        self.lock().get(&invitation_id).map_or(Delivery::NotDelivered, |s| s.delivery)
    }

    /// Stops retrying an invitation's email (it was cancelled or accepted).
    pub fn forget_retries(&self, invitation_id: InvitationId) {
        let mut statuses = self.lock();
        if let Some(status) = statuses.get_mut(&invitation_id) {
            status.generation += 1;
            if matches!(status.delivery, Delivery::Retrying | Delivery::Queued) {
                status.delivery = Delivery::NotDelivered;
            }
        }
        drop(statuses);
        self.persist();
    }

    /// Stops every background retry and records the undelivered mail as `not_delivered`.
    pub async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        tasks.shutdown().await;
        let mut statuses = self.lock();
        for status in statuses.values_mut() {
            if matches!(status.delivery, Delivery::Retrying | Delivery::Queued) {
                status.delivery = Delivery::NotDelivered;
            }
        }
        drop(statuses);
        self.persist();
    }

    async fn retry(&self, message: Message, invitation_id: InvitationId, generation: u64) {
        let policy = self.inner.retry;
        let mut wait_ms = policy.backoff_base_ms;
        for attempt in 2..=policy.attempts_max {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            wait_ms = (wait_ms.saturating_mul(2)).min(policy.backoff_max_ms);
            if !self.is_current(invitation_id, generation) {
                return;
            }
            match self.inner.attempt(&message, invitation_id).await {
                Ok(()) => {
                    self.set(invitation_id, Some(generation), Delivery::Delivered);
                    return;
                }
                Err(error) => {
                    tracing::warn!(%invitation_id, attempt, %error, "invitation email not delivered");
                }
            }
        }
        tracing::warn!(%invitation_id, attempts = policy.attempts_max, "invitation email given up: resend the invitation");
        self.set(invitation_id, Some(generation), Delivery::NotDelivered);
    }

    fn next_generation(&self, invitation_id: InvitationId) -> u64 {
        let mut statuses = self.lock();
        let status = statuses.entry(invitation_id).or_insert(Status { generation: 0, delivery: Delivery::Queued });
        status.generation += 1;
        status.delivery = Delivery::Queued;
        status.generation
    }

    fn is_current(&self, invitation_id: InvitationId, generation: u64) -> bool {
        self.lock().get(&invitation_id).is_some_and(|s| s.generation == generation)
    }

    /// Sets the status if `generation` is still current (or unconditionally when `None`).
    fn set(&self, invitation_id: InvitationId, generation: Option<u64>, delivery: Delivery) -> Delivery {
        let mut statuses = self.lock();
        let status = statuses.entry(invitation_id).or_insert(Status { generation: 0, delivery });
        if generation.is_none_or(|g| g == status.generation) {
            status.delivery = delivery;
        }
        let current = status.delivery;
        drop(statuses);
        self.persist();
        current
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InvitationId, Status>> {
        self.inner.statuses.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self) {
        let Some(path) = &self.inner.status_file else { return };
        // Serialised under the lock so that concurrent writers cannot interleave an older map
        // after a newer one.
        let statuses = self.lock();
        let map: HashMap<String, Status> = statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let result = serde_json::to_vec(&map).map_err(std::io::Error::other).and_then(|bytes| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        });
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "cannot record invitation delivery statuses");
        }
    }
}

impl Inner {
    async fn attempt(&self, message: &Message, invitation_id: InvitationId) -> Result<(), String> {
        let timeout = Duration::from_millis(self.retry.attempt_timeout_ms);
        let outcome = tokio::time::timeout(timeout, async {
            match &self.sender {
                Sender::Smtp(transport) => transport.send(message.clone()).await.map(drop).map_err(|e| e.to_string()),
                Sender::Outbox(dir) => self.write_outbox(dir, message, invitation_id).await.map_err(|e| e.to_string()),
            }
        })
        .await;
        outcome.unwrap_or_else(|_| Err(format!("no answer within {} ms", self.retry.attempt_timeout_ms)))
    }

    async fn write_outbox(&self, dir: &Path, message: &Message, invitation_id: InvitationId) -> std::io::Result<()> {
        let _guard = self.outbox_lock.lock().await;
        let mut n = 1u32;
        let path = loop {
            let candidate = dir.join(format!("{invitation_id}-{n}.eml"));
            if !tokio::fs::try_exists(&candidate).await? {
                break candidate;
            }
            n += 1;
        };
        // Written aside and renamed, so a reader of the outbox never sees half an email.
        let tmp = dir.join(format!(".{invitation_id}-{n}.eml.tmp"));
        tokio::fs::write(&tmp, message.formatted()).await?;
        tokio::fs::rename(&tmp, &path).await
    }
}

/// The text of an invitation email.
pub fn invitation_text(email: &InvitationEmail) -> String {
    let mut text = format!(
        "{inviter} invited you to join the workspace \"{workspace}\" on Rollcall as {article} {role}.\n\n\
         This invitation is for {to} and expires at {expires} UTC.\n\n",
        inviter = email.invited_by,
        workspace = email.workspace,
        article = if email.role == Role::Admin { "an" } else { "a" },
        role = email.role,
        to = email.to,
        expires = email.expires_at.format("%Y-%m-%d %H:%M"),
    );
    if !email.has_account {
        text.push_str(&format!(
            "You do not have a Rollcall account yet. Sign up first, with this address:\n\n    \
             rollcall account signup --email {to}\n\n\
             then accept the invitation.\n\n",
            to = email.to
        ));
    }
    text.push_str(&format!(
        "To accept, open this link:\n\n    {url}\n\n\
         or run:\n\n    rollcall invite accept {code}\n\n\
         The code is secret: do not share it. If you did not expect this invitation, ignore this email.\n",
        url = email.accept_url,
        code = email.code.expose(),
    ));
    text
}

fn build_message(from: &Mailbox, email: &InvitationEmail) -> Result<Message, String> {
    let to: Mailbox = email.to.as_str().parse().map_err(|e: lettre::address::AddressError| e.to_string())?;
    let text = invitation_text(email);
    // 7bit keeps the link and the code on one line each, whole, so they can be copied from the
    // raw message too; quoted-printable would cut them with soft line breaks. 7bit allows lines
    // up to 998 characters of ASCII (RFC 5322); anything else gets lettre's own choice.
    let seven_bit = text.is_ascii() && text.lines().all(|l| l.len() <= 998) && !text.contains('\0');
    let body = if seven_bit {
        Body::dangerous_pre_encoded(text.replace('\n', "\r\n").into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text)
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!("You are invited to join {} on Rollcall", email.workspace))
        .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(body))
        .map_err(|e| e.to_string())
}

fn smtp_transport(url: &str, retry: RetryPolicy) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let fail = |reason: &str| MailError::Url { url: redact_url(url), reason: reason.to_owned() };
    let rest = if let Some(rest) = url.strip_prefix("smtp://") {
        rest
    } else if url.starts_with("smtps://") || url.contains("starttls") {
        return Err(fail("this build sends plain SMTP only: relay through a local SMTP server (smtp://host:port)"));
    } else {
        return Err(fail("use smtp://[user:password@]host[:port]"));
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, host_port) = match rest.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            let (user, password) = userinfo.split_once(':').ok_or_else(|| fail("give user:password before the @"))?;
            (Some(Credentials::new(user.to_owned(), password.to_owned())), host_port)
        }
        None => (None, rest),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| fail("the port is not a number"))?),
        None => (host_port, 25),
    };
    if host.is_empty() {
        return Err(fail("the host is missing"));
    }
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .timeout(Some(Duration::from_millis(retry.attempt_timeout_ms)));
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    Ok(builder.build())
}

/// An SMTP URL with its password hidden, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn load_statuses(path: &Path) -> HashMap<InvitationId, Status> {
    let Ok(bytes) = std::fs::read(path) else { return HashMap::new() };
    let map: HashMap<String, Status> = match serde_json::from_slice(&bytes) {
        Ok(map) => map,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring unreadable invitation delivery statuses");
            return HashMap::new();
        }
    };
    map.into_iter()
        .filter_map(|(id, mut status)| {
            // Retries lived in memory only; after a restart nothing will send them.
            if matches!(status.delivery, Delivery::Retrying | Delivery::Queued) {
                status.delivery = Delivery::NotDelivered;
            }
            Some((InvitationId(id.parse().ok()?), status))
        })
        .collect()
}
