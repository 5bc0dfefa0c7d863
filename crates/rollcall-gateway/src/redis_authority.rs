//! The token check with Redis: one Lua script per request reads the token's hash key and
//! applies the rate limit atomically, in one round trip shared by every gateway replica.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rollcall_core::{TokenHash, TokenId, WorkspaceId};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::authority::{AuthorityError, RateLimit, TokenAuthority, TokenInfo, TokenKind, TokenStatus, Verdict};

/// Revocations buffered for slow listeners before they lag (and rely on the sweep).
const REVOCATIONS_BUFFER: usize = 1024;
/// Longest wait before retrying the revocation subscription.
const RESUBSCRIBE_DELAY_MAX_MS: u64 = 1000;

/// The check. KEYS[1] is the token's hash key, KEYS[2] its rate-limit list, KEYS[3] the token
/// projection's checkpoint (absent while the view is not built: "unavailable", not "unknown",
/// so a Redis restarted empty gives 503 until the projection has rebuilt it). ARGV: requests
/// allowed, window in ms, and 1 when the gateway does not know the token's owner yet.
///
/// The answer is a verdict code (see [`Code`]) and a retry delay in ms, followed by the owner's
/// six fields when they were asked for. A token's owner never changes, so each gateway asks for
/// it once per token and Redis answers two integers on every other request.
///
/// The rate limit is a sliding-window log: a list of the times of the counted requests, newest
/// first, taken from Redis's own clock so replicas with skewed clocks agree. A request is
/// allowed when fewer than the limit are listed or the one at the limit's place is out of the
/// window; refused requests are not listed, so a flood does not extend the wait. Writes are the
/// costly part of a script, so a counted request makes one: the list is trimmed back to the
/// limit only once it holds twice as many, and its expiry is pushed to two windows ahead only
/// once less than one window is left (the list always outlives every time in it that matters).
const CHECK_SCRIPT: &str = r"
local f
if ARGV[3] == '1' then
  f = redis.call('HMGET', KEYS[1], 'status', 'workspace_id', 'workspace', 'kind', 'subject_id', 'token_id', 'label')
else
  f = {redis.call('HGET', KEYS[1], 'status')}
end
if not f[1] then
  if redis.call('EXISTS', KEYS[3]) == 0 then return {4, 0} end
  return {3, 0}
end
local code, retry = 0, 0
if f[1] ~= 'active' then
  code = 2
else
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  local max = tonumber(ARGV[1])
  local window = tonumber(ARGV[2])
  local oldest = redis.call('LINDEX', KEYS[2], max - 1)
  if oldest and tonumber(oldest) > now - window then
    code = 1
    retry = tonumber(oldest) + window - now
  else
    if redis.call('LPUSH', KEYS[2], now) > 2 * max then redis.call('LTRIM', KEYS[2], 0, max - 1) end
    if redis.call('PTTL', KEYS[2]) < window then redis.call('PEXPIRE', KEYS[2], 2 * window) end
  end
end
if ARGV[3] == '1' then
  return {code, retry, f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or ''}
end
return {code, retry}
";

/// The check's verdict codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Code {
    Valid = 0,
    Limited = 1,
    Revoked = 2,
    Unknown = 3,
    Unavailable = 4,
}

impl Code {
    fn from_int(code: i64) -> Option<Code> {
        [Code::Valid, Code::Limited, Code::Revoked, Code::Unknown, Code::Unavailable]
            .into_iter()
            .find(|c| *c as i64 == code)
    }
}

/// Owners of tokens seen, at most this many (then the cache starts again empty).
const OWNERS_CACHED_MAX: usize = 100_000;

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
    checkpoint_key: String,
    /// Token owners already read from Redis: they never change for a token.
    owners: RwLock<HashMap<TokenHash, TokenInfo>>,
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
            checkpoint_key: format!("{}checkpoint:{}", config.prefix, rollcall_tokens::PROJECTION_NAME),
            owners: RwLock::new(HashMap::new()),
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
        format!("{}rate:{}", self.config.prefix, hash.to_hex())
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.response_timeout_ms)
    }
}

#[async_trait]
impl TokenAuthority for RedisAuthority {
    async fn check(&self, hash: &TokenHash) -> Result<Verdict, AuthorityError> {
        let known = self.owners.read().unwrap_or_else(|e| e.into_inner()).get(hash).cloned();
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(self.token_key(hash));
        invocation
            .key(self.rate_key(hash))
            .key(&self.checkpoint_key)
            .arg(self.config.limit.requests_max)
            .arg(self.config.limit.window_ms)
            .arg(if known.is_some() { "0" } else { "1" });
        let answer: redis::Value = tokio::time::timeout(self.timeout(), invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| AuthorityError::Unavailable("redis did not answer in time".into()))?
            .map_err(|e| AuthorityError::Unavailable(e.to_string()))?;
        let (code, retry_after_ms, owner) = parse_answer(answer)?;
        let info = match (code, known, owner) {
            (Code::Unknown, ..) => return Ok(Verdict::Unknown),
            (Code::Unavailable, ..) => {
                return Err(AuthorityError::Unavailable(
                    "the token view in redis is not built (no checkpoint): is the token projection running?".into(),
                ));
            }
            (_, Some(info), _) => info,
            (_, None, Some(info)) => {
                let mut owners = self.owners.write().unwrap_or_else(|e| e.into_inner());
                if owners.len() >= OWNERS_CACHED_MAX {
                    owners.clear();
                }
                owners.insert(*hash, info.clone());
                info
            }
            (_, None, None) => {
                return Err(AuthorityError::Malformed("the check did not name the token's owner".into()));
            }
        };
        Ok(match code {
            Code::Valid => Verdict::Allowed(info),
            Code::Revoked => Verdict::Revoked(info),
            Code::Limited => Verdict::Limited { info, retry_after_ms },
            Code::Unknown | Code::Unavailable => unreachable!("answered above"),
        })
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

/// Splits the script's answer into its code, its retry delay and, when asked for, the owner.
fn parse_answer(answer: redis::Value) -> Result<(Code, u64, Option<TokenInfo>), AuthorityError> {
    let redis::Value::Array(fields) = answer else {
        return Err(AuthorityError::Malformed("the check did not answer a list".into()));
    };
    let int = |value: Option<&redis::Value>| match value {
        Some(redis::Value::Int(n)) => Some(*n),
        _ => None,
    };
    let code = int(fields.first())
        .and_then(Code::from_int)
        .ok_or_else(|| AuthorityError::Malformed("the check answered an unknown code".into()))?;
    let retry_after_ms = int(fields.get(1))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| AuthorityError::Malformed("the check answered a malformed retry delay".into()))?;
    if fields.len() == 2 {
        return Ok((code, retry_after_ms, None));
    }
    if fields.len() != 8 {
        return Err(AuthorityError::Malformed(format!("the check answered {} fields, expected 2 or 8", fields.len())));
    }
    let mut text = Vec::with_capacity(6);
    for value in &fields[2..] {
        match value {
            redis::Value::BulkString(bytes) => text.push(String::from_utf8_lossy(bytes).into_owned()),
            _ => return Err(AuthorityError::Malformed("the token entry has a field that is not text".into())),
        }
    }
    let bad = |field: &str| AuthorityError::Malformed(format!("the token entry has a malformed {field}"));
    let info = TokenInfo {
        workspace_id: WorkspaceId(text[0].parse().map_err(|_| bad("workspace_id"))?),
        workspace: text[1].clone(),
        kind: TokenKind::from_name(&text[2]).ok_or_else(|| bad("kind"))?,
        subject_id: text[3].parse().map_err(|_| bad("subject_id"))?,
        token_id: TokenId(text[4].parse().map_err(|_| bad("token_id"))?),
        label: text[5].clone(),
    };
    Ok((code, retry_after_ms, Some(info)))
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
