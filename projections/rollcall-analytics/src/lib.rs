//! The analytics projection: per-member, per-bot, per-tool and per-workspace usage; in process or in Redis.
