//! The token check with Redis: one Lua script per request reads the token's hash key and
//! applies the rate limit atomically, in one round trip shared by every gateway replica.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rollcall_core::{TokenHash, TokenId, WorkspaceId};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::authority::{AuthorityError, RateLimit, TokenAuthority, TokenInfo, TokenKind, TokenStatus, Verdict};

/// Revocations buffered for slow listeners before they lag (and rely on the sweep).
const REVOCATIONS_BUFFER: usize = 1024;
/// Longest wait before retrying the revocation subscription.
const RESUBSCRIBE_DELAY_MAX_MS: u64 = 1000;

/// The check. KEYS[1] is the token's hash key, KEYS[2] its rate-limit sorted set, KEYS[3] the
/// token projection's checkpoint (absent while the view is not built: "unavailable", not
/// "unknown", so a Redis restarted empty gives 503 until the projection has rebuilt it).
/// ARGV: requests allowed, window in ms, a member suffix unique to this request.
///
/// The rate limit is a sliding-window log: one sorted-set entry per counted request, scored by
/// Redis's own clock so replicas with skewed clocks agree. Entries older than the window are
/// trimmed first; refused requests are not added, so a flood does not extend the wait.
const CHECK_SCRIPT: &str = r"
local f = redis.call('HMGET', KEYS[1], 'status', 'workspace_id', 'workspace', 'kind', 'subject_id', 'token_id', 'label')
if not f[1] then
  if redis.call('EXISTS', KEYS[3]) == 0 then return {'unavailable', '0'} end
  return {'unknown', '0'}
end
local info = {f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or ''}
if f[1] ~= 'active' then
  return {'revoked', '0', info[1], info[2], info[3], info[4], info[5], info[6]}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local retry = tonumber(oldest[2]) + window - now
  if retry < 1 then retry = 1 end
  return {'limited', tostring(retry), info[1], info[2], info[3], info[4], info[5], info[6]}
end
redis.call('ZADD', KEYS[2], now, now .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[2], window)
return {'valid', '0', info[1], info[2], info[3], info[4], info[5], info[6]}
";

/// Settings of the Redis token check.
#[derive(Clone, Debug)]
pub struct RedisAuthorityConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Key prefix shared with the token projection, e.g. `rollcall:`.
    pub prefix: String,
    /// The rate limit.
    pub limit: RateLimit,
    /// Longest wait for one Redis answer before failing closed, in milliseconds.
    pub response_timeout_ms: u64,
    /// Longest wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl RedisAuthorityConfig {
    /// Defaults for a URL: prefix `rollcall:`, 120 per 60 s, 500 ms timeouts.
    pub fn new(url: impl Into<String>) -> RedisAuthorityConfig {
        RedisAuthorityConfig {
            url: url.into(),
            prefix: "rollcall:".to_owned(),
            limit: RateLimit::default(),
            response_timeout_ms: 500,
            connect_timeout_ms: 500,
        }
    }
}

/// Token validity and rate limits in Redis, shared by every replica.
pub struct RedisAuthority {
    connection: ConnectionManager,
    script: redis::Script,
    config: RedisAuthorityConfig,
    instance: String,
    checkpoint_key: String,
    sequence: AtomicU64,
    revocations: broadcast::Sender<TokenHash>,
    _stop: DropGuard,
}

impl RedisAuthority {
    /// Connects lazily (the gateway starts and fails closed while Redis is down) and subscribes
    /// to `{prefix}revocations` in a task that reconnects by itself. Call inside a tokio runtime.
    pub fn connect(config: RedisAuthorityConfig) -> Result<RedisAuthority, AuthorityError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| AuthorityError::Unavailable(format!("bad redis url: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(RESUBSCRIBE_DELAY_MAX_MS));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        let revocations = broadcast::channel(REVOCATIONS_BUFFER).0;
        let cancel = CancellationToken::new();
        tokio::spawn(listen_revocations(
            client,
            format!("{}revocations", config.prefix),
            revocations.clone(),
            config.connect_timeout_ms,
            cancel.clone(),
        ));
        Ok(RedisAuthority {
            connection,
            script: redis::Script::new(CHECK_SCRIPT),
            instance: Uuid::new_v4().simple().to_string(),
            checkpoint_key: format!("{}checkpoint:{}", config.prefix, rollcall_tokens::PROJECTION_NAME),
            sequence: AtomicU64::new(0),
            revocations,
            config,
            _stop: cancel.drop_guard(),
        })
    }

    /// The key of a token's entry in the validity set.
    pub fn token_key(&self, hash: &TokenHash) -> String {
        format!("{}token:{}", self.config.prefix, hash.to_hex())
    }

    fn rate_key(&self, hash: &TokenHash) -> String {
        format!("{}rl:{}", self.config.prefix, hash.to_hex())
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.response_timeout_ms)
    }
}

#[async_trait]
impl TokenAuthority for RedisAuthority {
    async fn check(&self, hash: &TokenHash) -> Result<Verdict, AuthorityError> {
        let unique = format!("{}:{}", self.instance, self.sequence.fetch_add(1, Ordering::Relaxed));
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(self.token_key(hash));
        invocation
            .key(self.rate_key(hash))
            .key(&self.checkpoint_key)
            .arg(self.config.limit.requests_max)
            .arg(self.config.limit.window_ms)
            .arg(unique);
        let answer: Vec<String> = tokio::time::timeout(self.timeout(), invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| AuthorityError::Unavailable("redis did not answer in time".into()))?
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        parse_verdict(&answer)
    }

    async fn statuses(&self, hashes: &[TokenHash]) -> Result<Vec<TokenStatus>, AuthorityError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for hash in hashes {
            pipe.hget(self.token_key(hash), "status");
        }
        let mut connection = self.connection.clone();
        let answer: Vec<Option<String>> = tokio::time::timeout(self.timeout(), pipe.query_async(&mut connection))
            .await
            .map_err(|_| AuthorityError::Unavailable("redis did not answer in time".into()))?
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        Ok(answer
            .into_iter()
            .map(|status| match status.as_deref() {
                Some("active") => TokenStatus::Active,
                Some(_) => TokenStatus::Revoked,
                None => TokenStatus::Unknown,
            })
            .collect())
    }

    fn revocations(&self) -> broadcast::Receiver<TokenHash> {
        self.revocations.subscribe()
    }

    async fn ping(&self) -> Result<(), AuthorityError> {
        let mut connection = self.connection.clone();
        let _: String = tokio::time::timeout(self.timeout(), redis::cmd("PING").query_async(&mut connection))
            .await
            .map_err(|_| AuthorityError::Unavailable("redis did not answer in time".into()))?
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        Ok(())
    }
}

fn parse_verdict(answer: &[String]) -> Result<Verdict, AuthorityError> {
    let status = answer.first().map(String::as_str).unwrap_or_default();
    match status {
        "unknown" => return Ok(Verdict::Unknown),
        "unavailable" => {
            return Err(AuthorityError::Unavailable(
                "the token view in redis is not built (no checkpoint): is the token projection running?".into(),
            ));
        }
        _ => {}
    }
    if answer.len() != 8 {
        return Err(AuthorityError::Malformed(format!("the check answered {} fields, expected 8", answer.len())));
    }
    let bad = |field: &str| AuthorityError::Malformed(format!("the token entry has a malformed {field}"));
    let info = TokenInfo {
        workspace_id: WorkspaceId(answer[2].parse().map_err(|_| bad("workspace_id"))?),
        workspace: answer[3].clone(),
        kind: TokenKind::from_name(&answer[4]).ok_or_else(|| bad("kind"))?,
        subject_id: answer[5].parse().map_err(|_| bad("subject_id"))?,
        token_id: TokenId(answer[6].parse().map_err(|_| bad("token_id"))?),
        label: answer[7].clone(),
    };
    match status {
        "valid" => Ok(Verdict::Allowed(info)),
        "revoked" => Ok(Verdict::Revoked(info)),
        "limited" => {
            let retry_after_ms = answer[1].parse().map_err(|_| bad("retry delay"))?;
            Ok(Verdict::Limited { info, retry_after_ms })
        }
        other => Err(AuthorityError::Malformed(format!("unknown check status {other:?}"))),
    }
}

/// Forwards every hash published on the revocation channel, resubscribing after a disconnect.
async fn listen_revocations(
    client: redis::Client,
    channel: String,
    sender: broadcast::Sender<TokenHash>,
    connect_timeout_ms: u64,
    cancel: CancellationToken,
) {
    let mut delay_ms = 50;
    loop {
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let connected = tokio::select! {
            () = cancel.cancelled() => return,
            r = tokio::time::timeout(Duration::from_millis(connect_timeout_ms), connect) => r,
        };
        match connected {
            Ok(Ok(pubsub)) => {
                delay_ms = 50;
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        () = cancel.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(message) = message else { break };
                    match std::str::from_utf8(message.get_payload_bytes()).ok().and_then(TokenHash::from_hex) {
                        // Nobody listening is fine: there are no open streams to close then.
                        Some(hash) => drop(sender.send(hash)),
                        None => {
                            tracing::warn!(channel = %channel, "ignoring a revocation message that is not a token hash")
                        }
                    }
                }
                tracing::warn!(channel = %channel, "revocation subscription lost; resubscribing");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot subscribe to revocations; retrying"),
            Err(_) => tracing::warn!("subscribing to revocations timed out; retrying"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
        }
        delay_ms = (delay_ms * 2).min(RESUBSCRIBE_DELAY_MAX_MS);
    }
}
