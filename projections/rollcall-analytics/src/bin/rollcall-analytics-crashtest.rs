//! Runs the analytics projector over an embedded log directory into Redis until killed.
//!
//! Used by the crash test: it is killed with SIGKILL at random moments (mid-batch) and
//! restarted, and the final view must equal a rebuild from zero. It prints `at <position>`
//! whenever the live checkpoint moves and `caught-up <position>` once it reaches the head.
//!
//! Usage: `rollcall-analytics-crashtest <data-dir> <redis-url> <key-prefix> <batch-events-max>`

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rollcall_analytics::RedisAnalytics;
use rollcall_projection::{Projector, ProjectorConfig, connect_redis};
use rollcall_store::{EmbeddedLog, EmbeddedOptions, EventStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, url, prefix, batch] = args.as_slice() else {
        anyhow::bail!("usage: rollcall-analytics-crashtest <data-dir> <redis-url> <key-prefix> <batch-events-max>");
    };
    let batch_events_max: usize = batch.parse().context("batch-events-max must be a number")?;
    let log = EmbeddedLog::open(dir, EmbeddedOptions::default()).await.context("open the embedded log")?;
    let store: Arc<dyn EventStore> = Arc::new(log);
    let conn = connect_redis(url).await.context("connect to redis")?;
    let analytics = RedisAnalytics::new(conn, prefix);
    let config =
        ProjectorConfig { batch_events_max, flush_interval_ms: 5, verify_interval_ms: 200, retry_interval_ms: 50 };
    let handle = Projector::spawn(store.clone(), Arc::new(analytics), config);
    let head = store.head().await?;
    let mut last = None;
    loop {
        let checkpoint = handle.checkpoint();
        if checkpoint != last {
            if let Some(position) = checkpoint {
                println!("at {position}");
                if position >= head {
                    println!("caught-up {position}");
                }
            }
            last = checkpoint;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
