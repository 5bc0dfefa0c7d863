//! The Redis target: a batch's effects and its checkpoint in one Lua script.
//!
//! Keys live under a generation prefix: `{P}` for `Live` and `{P}staging:{name}:` for
//! `Staging`. Every key a projection writes is recorded (by its suffix) in the set
//! `{G}index:{name}`, so that a promotion can delete the old live keys and rename the staging
//! keys in place, in one script, without scanning the keyspace. The checkpoint lives at
//! `{G}checkpoint:{name}`; a live view without it is unavailable (lost or never built).

use redis::aio::ConnectionManager;
use rollcall_core::envelope::Position;

use crate::error::ProjectionError;
use crate::lease::Fence;
use crate::projection::Generation;

/// The error code of a write refused by the fence.
const FENCED: &str = "FENCED";

/// Checked first by every script that writes: with a fence (`ARGV[1]` not empty), the lease
/// `KEYS[1]` must still be held by `ARGV[1]`, so a projector that lost its lease (paused, cut
/// off) can never write again, whatever it believes.
const FENCE_PRELUDE: &str = r"
if ARGV[1] ~= '' then
  local holder = redis.call('GET', KEYS[1])
  if holder ~= ARGV[1] then
    return redis.error_reply('FENCED ' .. (holder or ''))
  end
end
";

/// Applies a batch of operations if the checkpoint is the expected one, then sets the new one.
///
/// ARGV: fence holder (`""` for none), generation prefix, projection name, expected checkpoint
/// (`""` for none), new checkpoint, then operations as 4-tuples (op, key suffix or channel,
/// field, value).
const APPLY_SCRIPT: &str = r"
local g = ARGV[2]
local name = ARGV[3]
local ck = g .. 'checkpoint:' .. name
local cur = redis.call('GET', ck)
if not cur then cur = '' end
if cur ~= ARGV[4] then
  return redis.error_reply('CHECKPOINT ' .. cur)
end
local idx = g .. 'index:' .. name
local seen = {}
local n = #ARGV
local i = 6
while i <= n do
  local op = ARGV[i]
  local k = ARGV[i + 1]
  local f = ARGV[i + 2]
  local v = ARGV[i + 3]
  if op == 'p' then
    redis.call('PUBLISH', k, f)
  else
    if not seen[k] then
      seen[k] = true
      redis.call('SADD', idx, k)
    end
    local key = g .. k
    if op == 'h' then
      redis.call('HSET', key, f, v)
    elseif op == 'i' then
      redis.call('HINCRBY', key, f, v)
    elseif op == 'm' then
      local c = redis.call('HGET', key, f)
      if (not c) or tonumber(v) > tonumber(c) then
        redis.call('HSET', key, f, v)
      end
    elseif op == 'z' then
      redis.call('ZINCRBY', key, v, f)
    elseif op == 's' then
      redis.call('SADD', key, f)
    end
  end
  i = i + 4
end
redis.call('SET', ck, ARGV[5])
return 1
";

/// Empties a generation and sets its checkpoint to the start. ARGV: fence holder, prefix, name.
const RESET_SCRIPT: &str = r"
local g = ARGV[2]
local name = ARGV[3]
local idx = g .. 'index:' .. name
for _, k in ipairs(redis.call('SMEMBERS', idx)) do
  redis.call('DEL', g .. k)
end
redis.call('DEL', idx)
redis.call('SET', g .. 'checkpoint:' .. name, '0')
return 1
";

/// Replaces live by staging. ARGV: fence holder, live prefix, staging prefix, name.
const PROMOTE_SCRIPT: &str = r"
local live = ARGV[2]
local stg = ARGV[3]
local name = ARGV[4]
local sck = stg .. 'checkpoint:' .. name
local pos = redis.call('GET', sck)
if not pos then
  return redis.error_reply('CHECKPOINT ')
end
local lidx = live .. 'index:' .. name
local sidx = stg .. 'index:' .. name
for _, k in ipairs(redis.call('SMEMBERS', lidx)) do
  redis.call('DEL', live .. k)
end
redis.call('DEL', lidx)
for _, k in ipairs(redis.call('SMEMBERS', sidx)) do
  if redis.call('EXISTS', stg .. k) == 1 then
    redis.call('RENAME', stg .. k, live .. k)
  end
end
if redis.call('EXISTS', sidx) == 1 then
  redis.call('RENAME', sidx, lidx)
end
redis.call('SET', live .. 'checkpoint:' .. name, pos)
redis.call('DEL', sck)
return pos
";

/// Connects to Redis with a connection manager (it reconnects by itself).
pub async fn connect_redis(url: &str) -> Result<ConnectionManager, ProjectionError> {
    let client = redis::Client::open(url)?;
    Ok(ConnectionManager::new(client).await?)
}

/// Formats a position as stored in a checkpoint key (`commit` or `commit/prepare`).
pub fn format_position(position: Position) -> String {
    position.to_string()
}

/// Parses a checkpoint value written by [`format_position`].
pub fn parse_position(text: &str) -> Option<Position> {
    match text.split_once('/') {
        None => text.parse().ok().map(Position::from_sequence),
        Some((commit, prepare)) => Some(Position { commit: commit.parse().ok()?, prepare: prepare.parse().ok()? }),
    }
}

/// One projection's place in Redis: its key prefix, its name and a connection.
#[derive(Clone)]
pub struct RedisTarget {
    conn: ConnectionManager,
    prefix: String,
    name: String,
    fence: Option<Fence>,
    apply: redis::Script,
    reset: redis::Script,
    promote: redis::Script,
}

/// The operations of one batch, built by a projection, keyed by suffixes under a generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedisOps {
    args: Vec<String>,
}

impl RedisOps {
    /// No operations.
    pub fn new() -> RedisOps {
        RedisOps::default()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.args.len() / 4
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    fn push(&mut self, op: &str, key: &str, field: &str, value: &str) {
        self.args.extend([op.to_owned(), key.to_owned(), field.to_owned(), value.to_owned()]);
    }

    /// `HSET key field value`.
    pub fn hset(&mut self, key: &str, field: &str, value: &str) {
        self.push("h", key, field, value);
    }

    /// `HINCRBY key field delta`.
    pub fn hincr(&mut self, key: &str, field: &str, delta: i64) {
        self.push("i", key, field, &delta.to_string());
    }

    /// Sets a hash field to `value` if that is larger than its current value (or it is unset).
    pub fn hmax(&mut self, key: &str, field: &str, value: i64) {
        self.push("m", key, field, &value.to_string());
    }

    /// `ZINCRBY key delta member`.
    pub fn zincr(&mut self, key: &str, member: &str, delta: i64) {
        self.push("z", key, member, &delta.to_string());
    }

    /// `SADD key member`.
    pub fn sadd(&mut self, key: &str, member: &str) {
        self.push("s", key, member, "");
    }

    /// `PUBLISH channel message`; the channel is a full name, not under a generation.
    pub fn publish(&mut self, channel: &str, message: &str) {
        self.push("p", channel, message, "");
    }
}

impl RedisTarget {
    /// A target for projection `name` under key prefix `prefix` (e.g. `rollcall:`).
    pub fn new(conn: ConnectionManager, prefix: &str, name: &str) -> RedisTarget {
        RedisTarget {
            conn,
            prefix: prefix.to_owned(),
            name: name.to_owned(),
            fence: None,
            apply: redis::Script::new(&format!("{FENCE_PRELUDE}{APPLY_SCRIPT}")),
            reset: redis::Script::new(&format!("{FENCE_PRELUDE}{RESET_SCRIPT}")),
            promote: redis::Script::new(&format!("{FENCE_PRELUDE}{PROMOTE_SCRIPT}")),
        }
    }

    /// The same target, whose every write first checks that `fence`'s lease is still held
    /// (inside the same script), so that only the lease holder ever writes.
    pub fn with_fence(mut self, fence: Fence) -> RedisTarget {
        self.fence = Some(fence);
        self
    }

    /// Starts an invocation of a writing script: the lease key and holder when fenced.
    fn invocation<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        match &self.fence {
            Some(fence) => {
                invocation.key(&fence.key).arg(&fence.holder);
            }
            None => {
                invocation.arg("");
            }
        }
        invocation
    }

    /// Maps a script error: `FENCED` (the lease is not ours) to [`ProjectionError::Fenced`].
    fn script_error(&self, error: redis::RedisError) -> ProjectionError {
        if error.code() == Some(FENCED) {
            return ProjectionError::Fenced {
                projection: self.name.clone(),
                holder: error.detail().map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()),
            };
        }
        error.into()
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key prefix of the live generation (`{P}`).
    pub fn live_prefix(&self) -> &str {
        &self.prefix
    }

    /// The key prefix of a generation.
    pub fn generation_prefix(&self, generation: Generation) -> String {
        match generation {
            Generation::Live => self.prefix.clone(),
            Generation::Staging => format!("{}staging:{}:", self.prefix, self.name),
        }
    }

    /// The full name of a live key from its suffix.
    pub fn live_key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// The live checkpoint key, `{P}checkpoint:{name}`: readers treat its absence as
    /// "unavailable".
    pub fn checkpoint_key(&self) -> String {
        format!("{}checkpoint:{}", self.prefix, self.name)
    }

    /// A connection (cheap to clone; multiplexed).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The checkpoint of a generation.
    pub async fn checkpoint(&self, generation: Generation) -> Result<Option<Position>, ProjectionError> {
        let key = format!("{}checkpoint:{}", self.generation_prefix(generation), self.name);
        let value: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut self.conn.clone()).await?;
        match value {
            None => Ok(None),
            Some(text) => parse_position(&text)
                .map(Some)
                .ok_or_else(|| ProjectionError::Malformed(format!("checkpoint {key} is {text:?}"))),
        }
    }

    /// Runs `ops` and moves the checkpoint from `expected` to `to`, atomically.
    pub async fn apply(
        &self,
        generation: Generation,
        expected: Position,
        ops: &RedisOps,
        to: Position,
    ) -> Result<(), ProjectionError> {
        let mut invocation = self.invocation(&self.apply);
        invocation
            .arg(self.generation_prefix(generation))
            .arg(&self.name)
            .arg(format_position(expected))
            .arg(format_position(to))
            .arg(&ops.args);
        match invocation.invoke_async::<i64>(&mut self.conn.clone()).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("CHECKPOINT") => {
                let found = e.detail().and_then(|d| parse_position(d.trim()));
                Err(ProjectionError::CheckpointMismatch {
                    projection: self.name.clone(),
                    expected: Some(expected),
                    found,
                })
            }
            Err(e) => Err(self.script_error(e)),
        }
    }

    /// Empties the staging generation and sets its checkpoint to the start.
    pub async fn reset_staging(&self) -> Result<(), ProjectionError> {
        let mut invocation = self.invocation(&self.reset);
        invocation.arg(self.generation_prefix(Generation::Staging)).arg(&self.name);
        match invocation.invoke_async::<i64>(&mut self.conn.clone()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.script_error(e)),
        }
    }

    /// Replaces live by staging in one script; returns the new live checkpoint.
    pub async fn promote_staging(&self) -> Result<Position, ProjectionError> {
        let mut invocation = self.invocation(&self.promote);
        invocation.arg(&self.prefix).arg(self.generation_prefix(Generation::Staging)).arg(&self.name);
        match invocation.invoke_async::<String>(&mut self.conn.clone()).await {
            Ok(text) => parse_position(&text)
                .ok_or_else(|| ProjectionError::Malformed(format!("staging checkpoint is {text:?}"))),
            Err(e) if e.code() == Some("CHECKPOINT") => {
                Err(ProjectionError::CheckpointMismatch { projection: self.name.clone(), expected: None, found: None })
            }
            Err(e) => Err(self.script_error(e)),
        }
    }

    /// Deletes every key of both generations of this projection (for tests and teardown).
    pub async fn delete_all(&self) -> Result<(), ProjectionError> {
        for generation in [Generation::Live, Generation::Staging] {
            // Teardown is not a projector's write: it is not fenced.
            let mut invocation = self.reset.prepare_invoke();
            invocation.arg("").arg(self.generation_prefix(generation)).arg(&self.name);
            invocation.invoke_async::<i64>(&mut self.conn.clone()).await?;
            let key = format!("{}checkpoint:{}", self.generation_prefix(generation), self.name);
            redis::cmd("DEL").arg(&key).query_async::<i64>(&mut self.conn.clone()).await?;
        }
        Ok(())
    }
}
