//! The PostgreSQL event store.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rollcall_core::envelope::{Metadata, NewEvent, Position, RecordedEvent};
use rollcall_store::{AppendResult, EventFilter, EventStore, ExpectedRevision, StoreError, Subscription};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, NoTls, Row, Statement};
use uuid::Uuid;

use crate::error::{backend, describe, is_unique_violation, pool};
use crate::migrations::migrate;
use crate::options::{PostgresOptions, valid_schema_name};

/// How many times an append is tried when a concurrent writer stored one of its ids first.
const UNIQUE_VIOLATION_TRIES_MAX: usize = 3;
/// Consecutive failed polls after which a subscription gives up and reports the error.
const SUBSCRIPTION_FAILURES_MAX: u32 = 5;
/// Largest page a subscription reads at once.
const SUBSCRIPTION_PAGE_EVENTS_MAX: usize = 1000;

/// The PostgreSQL backend of the event store.
///
/// Cheap to share behind an `Arc`; every call takes a pooled connection for its duration.
pub struct PostgresStore {
    shared: Arc<Shared>,
    group: Option<GroupCommit>,
    migrations_applied: Vec<i32>,
}

struct Shared {
    pool: Pool,
    options: PostgresOptions,
    sql: Sql,
}

/// The store's statements, with the schema filled in.
struct Sql {
    append: String,
    read_stream: String,
    read_range: String,
    newest: String,
    settled_head: String,
    is_settled: String,
}

/// The columns of a read event. `tx` is read as text (no Rust type maps `xid8`) under another
/// name: an output column named `tx` would be what `ORDER BY tx` sorts by, and as text
/// `"10" < "9"`, so reads would leave the global order once transaction ids gain a digit.
const EVENT_COLUMNS: &str =
    "tx::text AS tx_text, position, stream, revision, id, event_type, schema_version, data, metadata::text";

impl Sql {
    fn new(schema: &str) -> Sql {
        Sql {
            append: format!(
                "SELECT out_index, out_outcome, out_revision, out_tx, out_position FROM {schema}.append_events(\
                 $1::text[], $2::bigint[], $3::integer[], $4::integer[], $5::uuid[], $6::text[], \
                 $7::integer[], $8::bytea[], $9::text[])"
            ),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {schema}.events \
                 WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3"
            ),
            read_range: format!(
                "SELECT {EVENT_COLUMNS} FROM {schema}.events \
                 WHERE (tx, position) > ($1::text::xid8, $2::bigint) \
                   AND (tx, position) <= ($3::text::xid8, $4::bigint) \
                   AND (cardinality($5::text[]) = 0 \
                        OR EXISTS (SELECT 1 FROM unnest($5::text[]) AS p(prefix) WHERE starts_with(stream, p.prefix))) \
                   AND (cardinality($6::text[]) = 0 OR event_type = ANY($6::text[])) \
                 ORDER BY tx, position LIMIT $7"
            ),
            newest: format!(
                "SELECT tx::text AS tx_text, position, tx < pg_snapshot_xmin(pg_current_snapshot()) \
                 FROM {schema}.events ORDER BY tx DESC, position DESC LIMIT 1"
            ),
            settled_head: format!(
                "SELECT tx::text AS tx_text, position FROM {schema}.events \
                 WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx DESC, position DESC LIMIT 1"
            ),
            is_settled: "SELECT $1::text::xid8 < pg_snapshot_xmin(pg_current_snapshot())".to_owned(),
        }
    }
}

impl PostgresStore {
    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/db`), creates the schema named
    /// in `options` if needed and brings it to the current version.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        if !valid_schema_name(&options.schema) {
            return Err(StoreError::Invalid(format!(
                "schema name {:?} is not usable: use lowercase letters, digits and underscores, at most 63 bytes",
                options.schema
            )));
        }
        if options.pool_size == 0 || options.group_commit_appends_max == 0 || options.subscription_buffer_events == 0 {
            return Err(StoreError::Invalid(
                "pool_size, group_commit_appends_max and subscription_buffer_events must be at least 1".into(),
            ));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(format!("postgres url is not valid ({e}): use postgres://user@host:port/db"))
        })?;
        config.application_name("rollcall-store");
        let connect_timeout = Duration::from_millis(options.connect_timeout_ms);
        config.connect_timeout(connect_timeout);

        let (mut client, connection) = config.connect(NoTls).await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot connect to postgres ({}): check that the server runs and the url is right",
                describe(&e)
            ))
        })?;
        let connection_task = tokio::spawn(connection);
        let migrated = migrate(&mut client, &options.schema).await;
        drop(client);
        // The connection ends once its client is gone; its result says nothing more than the
        // migration's did.
        let _ = connection_task.await;
        let migrations_applied = migrated?;

        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect_timeout))
            .create_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres pool: {e}")))?;

        let shared = Arc::new(Shared { sql: Sql::new(&options.schema), pool, options });
        let group = (shared.options.group_commit_appends_max > 1).then(|| start_group_commit(&shared));
        Ok(PostgresStore { shared, group, migrations_applied })
    }

    /// The migration versions this store's `connect` applied (empty when the schema was current).
    pub fn migrations_applied(&self) -> &[i32] {
        &self.migrations_applied
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.shared.options.schema
    }

    /// Appends inside a transaction the caller owns, so events commit atomically with the
    /// caller's other writes (an outbox), or not at all.
    ///
    /// The append must be the transaction's first write: the global order relies on the
    /// transaction getting its id only once it holds the stream's lock. Later appends or other
    /// writes in the same transaction are fine. The events become visible at commit.
    pub async fn append_within<C: GenericClient + Sync>(
        &self,
        client: &C,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let request = AppendRequest::new(&self.shared.options, stream, expected, events)?;
        let statement = client.prepare(&self.shared.sql.append).await.map_err(backend)?;
        let mut results = run_appends(client, &statement, std::slice::from_ref(&request)).await.map_err(backend)?;
        results.pop().unwrap_or_else(|| Err(StoreError::Backend("postgres: the append returned no outcome".into())))
    }

    async fn append_direct(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let batch = [request];
        let mut results = self.shared.append_batch(&batch).await?;
        results.pop().unwrap_or_else(|| Err(StoreError::Backend("postgres: the append returned no outcome".into())))
    }
}

impl Shared {
    /// Runs a batch of appends on a pooled connection, retrying when a concurrent writer stored
    /// one of the ids first (the retry then sees that writer's events and answers accordingly).
    async fn append_batch(&self, batch: &[AppendRequest]) -> Result<Vec<Result<AppendResult, StoreError>>, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let statement = client.prepare_cached(&self.sql.append).await.map_err(backend)?;
        let mut tries = 0;
        loop {
            tries += 1;
            match run_appends(&**client, &statement, batch).await {
                Ok(results) => return Ok(results),
                Err(e) if is_unique_violation(&e) && tries < UNIQUE_VIOLATION_TRIES_MAX => continue,
                Err(e) => return Err(backend(e)),
            }
        }
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query_opt(&statement, params).await.map_err(backend)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool)?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query(&statement, params).await.map_err(backend)
    }

    /// The newest event whose transaction, and every transaction that could still write an
    /// event before it in the global order, has finished. Never moves backwards.
    async fn settled_head(&self) -> Result<Position, StoreError> {
        match self.query_opt(&self.sql.settled_head, &[]).await? {
            Some(row) => row_position(&row, 0, 1),
            None => Ok(Position::START),
        }
    }

    /// The settled head, after waiting (up to the settle timeout) until everything committed
    /// before the call is settled, so a caller reads its own writes.
    async fn settled_head_after_waiting(&self) -> Result<Position, StoreError> {
        let Some(row) = self.query_opt(&self.sql.newest, &[]).await? else {
            return Ok(Position::START);
        };
        let newest = row_position(&row, 0, 1)?;
        if row.get::<_, bool>(2) {
            return Ok(newest);
        }
        let deadline = Instant::now() + Duration::from_millis(self.options.settle_timeout_ms);
        let tx = newest.commit.to_string();
        let mut pause = Duration::from_millis(1);
        loop {
            tokio::time::sleep(pause).await;
            let settled: bool =
                self.query_opt(&self.sql.is_settled, &[&tx]).await?.map(|row| row.get(0)).unwrap_or(false);
            if settled {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    schema = %self.options.schema,
                    "a transaction older than the newest event is still open after {} ms; answering with the settled events only",
                    self.options.settle_timeout_ms
                );
                break;
            }
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        self.settled_head().await
    }

    /// Reads matching events after `after` up to and including `until`, in global order.
    async fn read_range(
        &self,
        after: Position,
        until: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (after_tx, after_pos) = position_params(after);
        let (until_tx, until_pos) = position_params(until);
        let limit = i64::try_from(max_count).unwrap_or(i64::MAX);
        let rows = self
            .query(
                &self.sql.read_range,
                &[&after_tx, &after_pos, &until_tx, &until_pos, &filter.stream_prefixes, &filter.event_types, &limit],
            )
            .await?;
        rows.iter().map(decode_event).collect()
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let request = AppendRequest::new(&self.shared.options, stream, expected, events)?;
        match (&self.group, expected) {
            (Some(group), ExpectedRevision::Any) => {
                let (reply, answer) = oneshot::channel();
                group
                    .worker_for(&request.stream)
                    .send(GroupRequest { request, reply })
                    .await
                    .map_err(|_| StoreError::Backend("postgres: the group commit has stopped".into()))?;
                answer.await.map_err(|_| StoreError::Backend("postgres: the group commit dropped an append".into()))?
            }
            _ => self.append_direct(request).await,
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = i64::try_from(from_revision).unwrap_or(i64::MAX);
        let limit = i64::try_from(max_count.min(self.shared.options.limits.read_events_max)).unwrap_or(i64::MAX);
        let rows = self.shared.query(&self.shared.sql.read_stream, &[&stream, &from, &limit]).await?;
        rows.iter().map(decode_event).collect()
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let until = self.shared.settled_head_after_waiting().await?;
        if until <= after || max_count == 0 {
            return Ok(Vec::new());
        }
        let max_count = max_count.min(self.shared.options.limits.read_events_max);
        self.shared.read_range(after, until, filter, max_count).await
    }

    async fn subscribe(&self, after: Position, filter: EventFilter) -> Result<Subscription, StoreError> {
        let buffer = self.shared.options.subscription_buffer_events;
        let (sender, receiver) = mpsc::channel(buffer);
        tokio::spawn(run_subscription(self.shared.clone(), after, filter, sender));
        Ok(Box::pin(futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })))
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.shared.settled_head_after_waiting().await
    }
}

/// Feeds one subscription: pages of settled events, then polling for more.
async fn run_subscription(
    shared: Arc<Shared>,
    mut after: Position,
    filter: EventFilter,
    sender: mpsc::Sender<Result<RecordedEvent, StoreError>>,
) {
    let page_events = shared.options.subscription_buffer_events.min(SUBSCRIPTION_PAGE_EVENTS_MAX);
    let poll = Duration::from_millis(shared.options.poll_interval_ms);
    let mut failures = 0;
    loop {
        let read = async {
            let settled = shared.settled_head().await?;
            if settled <= after {
                return Ok(None);
            }
            let page = shared.read_range(after, settled, &filter, page_events).await?;
            Ok::<_, StoreError>(Some((settled, page)))
        };
        let read = tokio::select! {
            _ = sender.closed() => return,
            read = read => read,
        };
        let caught_up = match read {
            Ok(None) => {
                failures = 0;
                true
            }
            Ok(Some((settled, page))) => {
                failures = 0;
                let full = page.len() == page_events;
                // A short page means every settled event up to `settled` was scanned.
                let next_after = match page.last() {
                    Some(last) if full => last.position,
                    _ => settled,
                };
                for event in page {
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                after = next_after;
                !full
            }
            Err(e) => {
                failures += 1;
                if failures >= SUBSCRIPTION_FAILURES_MAX {
                    let _ = sender.send(Err(e)).await;
                    return;
                }
                tracing::warn!(error = %e, failures, "subscription poll failed; retrying");
                tokio::select! {
                    _ = sender.closed() => return,
                    _ = tokio::time::sleep(poll * 10 * failures) => {}
                }
                continue;
            }
        };
        if caught_up {
            tokio::select! {
                _ = sender.closed() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

/// One validated append.
struct AppendRequest {
    stream: String,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
    metadata: Vec<String>,
}

impl AppendRequest {
    fn new(
        options: &PostgresOptions,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendRequest, StoreError> {
        options.limits.check_append(stream, &events)?;
        let mut seen = HashSet::with_capacity(events.len());
        if let Some(event) = events.iter().find(|e| !seen.insert(e.id)) {
            return Err(StoreError::Invalid(format!(
                "event id {} appears twice in one append: give every event its own id",
                event.id
            )));
        }
        if let ExpectedRevision::Exact(r) = expected
            && i64::try_from(r).is_err()
        {
            return Err(StoreError::Invalid(format!("expected revision {r} is out of range")));
        }
        if let Some(event) = events.iter().find(|e| i32::try_from(e.schema_version).is_err()) {
            return Err(StoreError::Invalid(format!(
                "schema version {} of event {} is out of range",
                event.schema_version, event.id
            )));
        }
        let metadata = events
            .iter()
            .map(|e| serde_json::to_string(&e.metadata))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid(format!("event metadata does not serialise: {e}")))?;
        Ok(AppendRequest { stream: stream.to_owned(), expected, events, metadata })
    }

    fn expected_code(&self) -> i64 {
        match self.expected {
            ExpectedRevision::Any => -1,
            ExpectedRevision::NoStream => -2,
            ExpectedRevision::StreamExists => -3,
            // Checked to fit when the request was built.
            ExpectedRevision::Exact(r) => i64::try_from(r).unwrap_or(i64::MAX),
        }
    }
}

/// Runs appends (on distinct streams) in one statement, which is one transaction unless the
/// client is inside one already. Returns one outcome per append, in order.
async fn run_appends<C: GenericClient + Sync>(
    client: &C,
    statement: &Statement,
    batch: &[AppendRequest],
) -> Result<Vec<Result<AppendResult, StoreError>>, tokio_postgres::Error> {
    let events_total: usize = batch.iter().map(|r| r.events.len()).sum();
    let mut streams = Vec::with_capacity(batch.len());
    let mut expected = Vec::with_capacity(batch.len());
    let mut first = Vec::with_capacity(batch.len());
    let mut count = Vec::with_capacity(batch.len());
    let mut ids = Vec::with_capacity(events_total);
    let mut types = Vec::with_capacity(events_total);
    let mut versions = Vec::with_capacity(events_total);
    let mut data: Vec<&[u8]> = Vec::with_capacity(events_total);
    let mut metadata: Vec<&str> = Vec::with_capacity(events_total);
    for request in batch {
        streams.push(request.stream.as_str());
        expected.push(request.expected_code());
        // Limits keep both far below i32::MAX.
        first.push(i32::try_from(ids.len() + 1).unwrap_or(i32::MAX));
        count.push(i32::try_from(request.events.len()).unwrap_or(i32::MAX));
        for (event, meta) in request.events.iter().zip(&request.metadata) {
            ids.push(event.id);
            types.push(event.event_type.as_str());
            versions.push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
            data.push(&event.data);
            metadata.push(meta.as_str());
        }
    }
    let rows = client
        .query(statement, &[&streams, &expected, &first, &count, &ids, &types, &versions, &data, &metadata])
        .await?;
    let mut results: Vec<Option<Result<AppendResult, StoreError>>> = batch.iter().map(|_| None).collect();
    for row in rows {
        let index: i32 = row.get(0);
        let Some(request) = usize::try_from(index).ok().and_then(|i| i.checked_sub(1)).and_then(|i| batch.get(i))
        else {
            continue;
        };
        let outcome: i32 = row.get(1);
        let revision: Option<i64> = row.get(2);
        let result = match outcome {
            0 | 1 => match (revision, row.get::<_, Option<&str>>(3), row.get::<_, Option<i64>>(4)) {
                (Some(revision), Some(tx), Some(position)) => parse_position(tx, position)
                    .map(|position| AppendResult { next_expected_revision: revision as u64, position }),
                _ => Err(StoreError::Backend("postgres: an append outcome lacks its position".into())),
            },
            2 => Err(StoreError::WrongExpectedRevision {
                stream: request.stream.clone(),
                expected: request.expected,
                actual: revision.map(|r| r as u64),
            }),
            _ => Err(StoreError::Invalid(format!(
                "an event id of this append to {} is already stored by a different append: retry with exactly the same events or use fresh ids",
                request.stream
            ))),
        };
        results[(index - 1) as usize] = Some(result);
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Backend("postgres: an append returned no outcome".into()))))
        .collect())
}

/// An `Any` append waiting for a shared transaction.
struct GroupRequest {
    request: AppendRequest,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// The group-commit workers, each owning the streams that hash to it.
///
/// Routing every append of a stream to one worker means two workers never hold transactions
/// that wait on each other's stream locks, and a worker defers a second append to a stream in
/// the same batch to its next one, so concurrent appenders of a few hot streams still share
/// commits instead of queueing behind each other's locks.
struct GroupCommit {
    workers: Vec<mpsc::Sender<GroupRequest>>,
}

impl GroupCommit {
    fn worker_for(&self, stream: &str) -> &mpsc::Sender<GroupRequest> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        stream.hash(&mut hasher);
        &self.workers[(hasher.finish() % self.workers.len() as u64) as usize]
    }
}

/// Starts the group-commit workers; they stop when the returned senders are dropped.
fn start_group_commit(shared: &Arc<Shared>) -> GroupCommit {
    let count = (shared.options.pool_size / 2).max(1);
    let queue = (shared.options.group_commit_queue_appends_max / count).max(1);
    let workers = (0..count)
        .map(|_| {
            let (sender, receiver) = mpsc::channel(queue);
            tokio::spawn(group_commit_worker(shared.clone(), receiver));
            sender
        })
        .collect();
    GroupCommit { workers }
}

async fn group_commit_worker(shared: Arc<Shared>, mut receiver: mpsc::Receiver<GroupRequest>) {
    let appends_max = shared.options.group_commit_appends_max;
    let events_max = shared.options.group_commit_events_max;
    // Appends that could not join the batch being built (same stream or event id, or over the
    // size), in arrival order; they go first into the next batches.
    let mut deferred: VecDeque<GroupRequest> = VecDeque::new();
    loop {
        if deferred.is_empty() {
            match receiver.recv().await {
                Some(request) => deferred.push_back(request),
                None => return,
            }
        }
        while deferred.len() < appends_max * 2 {
            match receiver.try_recv() {
                Ok(request) => deferred.push_back(request),
                Err(_) => break,
            }
        }
        let mut batch: Vec<GroupRequest> = Vec::new();
        let mut streams: HashSet<String> = HashSet::new();
        let mut ids: HashSet<Uuid> = HashSet::new();
        let mut events = 0;
        let mut rest = VecDeque::with_capacity(deferred.len());
        while let Some(candidate) = deferred.pop_front() {
            // The first append always fits; the others must not touch a stream or an event id
            // already in the batch (a stream's appends stay in arrival order across batches).
            let fits = batch.is_empty()
                || (batch.len() < appends_max
                    && events + candidate.request.events.len() <= events_max
                    && !streams.contains(&candidate.request.stream)
                    && !candidate.request.events.iter().any(|e| ids.contains(&e.id)));
            if fits {
                events += candidate.request.events.len();
                streams.insert(candidate.request.stream.clone());
                ids.extend(candidate.request.events.iter().map(|e| e.id));
                batch.push(candidate);
            } else {
                // Keep later appends of a deferred stream behind it.
                streams.insert(candidate.request.stream.clone());
                rest.push_back(candidate);
            }
        }
        deferred = rest;
        let (requests, replies): (Vec<AppendRequest>, Vec<_>) = batch.into_iter().map(|g| (g.request, g.reply)).unzip();
        match shared.append_batch(&requests).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
    }
}

fn position_params(position: Position) -> (String, i64) {
    (position.commit.to_string(), i64::try_from(position.prepare).unwrap_or(i64::MAX))
}

fn parse_position(tx: &str, position: i64) -> Result<Position, StoreError> {
    let commit = tx
        .parse::<u64>()
        .map_err(|e| StoreError::Backend(format!("postgres: transaction id {tx:?} does not parse: {e}")))?;
    Ok(Position { commit, prepare: position as u64 })
}

fn row_position(row: &Row, tx_column: usize, position_column: usize) -> Result<Position, StoreError> {
    parse_position(row.get(tx_column), row.get(position_column))
}

fn decode_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position = row_position(row, 0, 1)?;
    let metadata: &str = row.get(8);
    let metadata: Metadata = serde_json::from_str(metadata).map_err(|e| {
        StoreError::Backend(format!("postgres: metadata of the event at {position} does not parse: {e}"))
    })?;
    let revision: i64 = row.get(3);
    let schema_version: i32 = row.get(6);
    Ok(RecordedEvent {
        id: row.get(4),
        stream: row.get(2),
        revision: revision as u64,
        position,
        event_type: row.get(5),
        schema_version: schema_version as u32,
        data: Bytes::from(row.get::<_, Vec<u8>>(7)),
        metadata,
    })
}
