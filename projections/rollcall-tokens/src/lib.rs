//! The token-validity projection: token hash to workspace, member or bot, kind and status; in process or in Redis.
