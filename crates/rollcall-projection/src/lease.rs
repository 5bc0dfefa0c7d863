//! The projector lease: several `rollcall project` processes, one writer.
//!
//! Any number of projector processes may run against one Redis. They compete for one key,
//! `{P}lease:projector`, taken with `SET key <instance> NX PX <ttl>` and renewed by a
//! compare-and-extend script. Only the holder runs projectors; the others poll and take over
//! within about one TTL when the holder dies.
//!
//! A lease alone is not enough: a holder paused longer than its TTL (a stopped VM, a long GC in
//! a neighbour, SIGSTOP) still believes it holds the lease when it wakes. So every write of a
//! fenced [`RedisTarget`](crate::RedisTarget) checks, inside the same Lua script as the batch,
//! that the lease is still held by this instance ([`Fence`]). A batch is applied by the holder,
//! or not at all; together with the checkpoint check this means no event is ever counted twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use rollcall_store::EventStore;
use tokio::task::JoinHandle;

use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::projector::{Projector, ProjectorConfig, ProjectorHandle, ProjectorStatus};

/// Extends the lease if this instance holds it. KEYS: lease. ARGV: instance, ttl in ms.
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes the lease if this instance holds it. KEYS: lease. ARGV: instance.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What a fenced write checks: that `key` still holds `holder`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The lease key, `{P}lease:{name}`.
    pub key: String,
    /// The instance that must hold it.
    pub holder: String,
}

/// How long a lease lasts and how often it is renewed and polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long the lease lasts without renewal: a dead holder is replaced after at most this
    /// (plus one poll interval).
    pub ttl_ms: u64,
    /// How often the holder renews (well below `ttl_ms`, so a slow renewal does not lose it).
    pub renew_interval_ms: u64,
    /// How often a standby tries to take the lease.
    pub standby_poll_interval_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> LeaseConfig {
        LeaseConfig { ttl_ms: 5_000, renew_interval_ms: 1_000, standby_poll_interval_ms: 500 }
    }
}

/// One instance's view of a lease in Redis.
#[derive(Clone)]
pub struct Lease {
    conn: ConnectionManager,
    key: String,
    instance: String,
    ttl_ms: u64,
    renew: redis::Script,
    release: redis::Script,
}

impl Lease {
    /// The lease `{prefix}lease:{name}` as seen by `instance` (a name unique to this process,
    /// such as host, pid and a random suffix).
    pub fn new(conn: ConnectionManager, prefix: &str, name: &str, instance: &str, ttl_ms: u64) -> Lease {
        Lease {
            conn,
            key: format!("{prefix}lease:{name}"),
            instance: instance.to_owned(),
            ttl_ms: ttl_ms.max(1),
            renew: redis::Script::new(RENEW_SCRIPT),
            release: redis::Script::new(RELEASE_SCRIPT),
        }
    }

    /// The lease key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The fence that writes of this instance must pass.
    pub fn fence(&self) -> Fence {
        Fence { key: self.key.clone(), holder: self.instance.clone() }
    }

    /// Takes the lease if it is free (or extends it if this instance already holds it);
    /// returns whether this instance holds it now.
    pub async fn try_acquire(&self) -> Result<bool, ProjectionError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms)
            .query_async(&mut self.conn.clone())
            .await?;
        if set.is_some() {
            return Ok(true);
        }
        self.renew().await
    }

    /// Extends the lease by its TTL if this instance holds it; returns whether it does.
    pub async fn renew(&self) -> Result<bool, ProjectionError> {
        let mut invocation = self.renew.key(&self.key);
        invocation.arg(&self.instance).arg(self.ttl_ms);
        let renewed: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(renewed == 1)
    }

    /// Gives the lease up if this instance holds it, so a standby takes over at once.
    pub async fn release(&self) -> Result<bool, ProjectionError> {
        let mut invocation = self.release.key(&self.key);
        invocation.arg(&self.instance);
        let released: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(released == 1)
    }

    /// Who holds the lease now, if anyone.
    pub async fn holder(&self) -> Result<Option<String>, ProjectionError> {
        Ok(redis::cmd("GET").arg(&self.key).query_async(&mut self.conn.clone()).await?)
    }
}

/// Whether this instance is writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Waiting for the lease.
    Standby,
    /// Holding the lease and running the projectors.
    Active,
}

/// The state of a leased group of projectors.
#[derive(Clone, Debug)]
pub struct LeasedStatus {
    /// This instance.
    pub instance: String,
    /// Whether it holds the lease.
    pub role: Role,
    /// How many times this instance took the lease.
    pub acquisitions: u64,
    /// The projectors' status while active (empty on standby).
    pub projectors: Vec<ProjectorStatus>,
}

struct LeasedShared {
    role: Role,
    acquisitions: u64,
    handles: Vec<ProjectorHandle>,
}

/// Projectors that run only while this instance holds the lease.
pub struct LeasedProjectors {
    lease: Lease,
    shared: Arc<Mutex<LeasedShared>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl LeasedProjectors {
    /// Competes for `lease`; while holding it, runs one projector per projection (each fenced
    /// with `lease.fence()` by its caller) and stops them when the lease is lost.
    pub fn spawn(
        store: Arc<dyn EventStore>,
        projections: Vec<Arc<dyn Projection>>,
        lease: Lease,
        lease_config: LeaseConfig,
        projector_config: ProjectorConfig,
    ) -> LeasedProjectors {
        let shared = Arc::new(Mutex::new(LeasedShared { role: Role::Standby, acquisitions: 0, handles: Vec::new() }));
        let supervisor = Supervisor {
            store,
            projections,
            lease: lease.clone(),
            lease_config,
            projector_config,
            shared: shared.clone(),
        };
        let task = tokio::spawn(supervisor.run());
        LeasedProjectors { lease, shared, task: Mutex::new(Some(task)) }
    }

    /// Role, acquisitions and the projectors' position and lag.
    pub fn status(&self) -> LeasedStatus {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        LeasedStatus {
            instance: self.lease.instance().to_owned(),
            role: shared.role,
            acquisitions: shared.acquisitions,
            projectors: shared.handles.iter().map(ProjectorHandle::status).collect(),
        }
    }

    /// Stops competing, stops the projectors and releases the lease so a standby takes over
    /// without waiting for it to expire.
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let handles = std::mem::take(&mut self.shared.lock().unwrap_or_else(|e| e.into_inner()).handles);
        for handle in &handles {
            handle.stop().await;
        }
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).role = Role::Standby;
        match self.lease.release().await {
            Ok(true) => tracing::info!(instance = %self.lease.instance(), "released the projector lease"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot release the projector lease; it expires by itself"),
        }
    }
}

struct Supervisor {
    store: Arc<dyn EventStore>,
    projections: Vec<Arc<dyn Projection>>,
    lease: Lease,
    lease_config: LeaseConfig,
    projector_config: ProjectorConfig,
    shared: Arc<Mutex<LeasedShared>>,
}

impl Supervisor {
    async fn run(self) {
        let poll = Duration::from_millis(self.lease_config.standby_poll_interval_ms.max(1));
        let renew_every = Duration::from_millis(self.lease_config.renew_interval_ms.max(1));
        let ttl = Duration::from_millis(self.lease_config.ttl_ms.max(1));
        loop {
            // Standby: the lease is measured from before the request that took it, so this
            // instance never believes it holds the lease longer than Redis does.
            let asked_at = Instant::now();
            match self.lease.try_acquire().await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::time::sleep(poll).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach redis for the projector lease; retrying");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            }
            let mut valid_until = asked_at + ttl;
            tracing::info!(instance = %self.lease.instance(), "took the projector lease: projecting");
            self.activate();
            loop {
                tokio::time::sleep(renew_every).await;
                let asked_at = Instant::now();
                match self.lease.renew().await {
                    Ok(true) => valid_until = asked_at + ttl,
                    Ok(false) => {
                        tracing::warn!(instance = %self.lease.instance(), "lost the projector lease: standing by");
                        break;
                    }
                    Err(e) if Instant::now() < valid_until => {
                        tracing::warn!(error = %e, "cannot renew the projector lease; retrying while it lasts");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the projector lease expired without renewal: standing by");
                        break;
                    }
                }
            }
            self.deactivate().await;
        }
    }

    fn activate(&self) {
        let handles: Vec<ProjectorHandle> = self
            .projections
            .iter()
            .map(|p| Projector::spawn(self.store.clone(), p.clone(), self.projector_config))
            .collect();
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.handles = handles;
        shared.role = Role::Active;
        shared.acquisitions += 1;
    }

    async fn deactivate(&self) {
        let handles = {
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            shared.role = Role::Standby;
            std::mem::take(&mut shared.handles)
        };
        // Whatever these projectors still try to write is refused by the fence.
        for handle in &handles {
            handle.stop().await;
        }
    }
}
