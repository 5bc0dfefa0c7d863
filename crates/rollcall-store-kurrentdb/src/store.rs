//! The KurrentDB event store.

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;
use kurrentdb as kdb;
use rollcall_core::envelope::{Metadata, NewEvent, Position, RecordedEvent};
use rollcall_store::{AppendResult, EventFilter, EventStore, ExpectedRevision, Limits, StoreError, Subscription};
use serde::{Deserialize, Serialize};

/// Events `head` reads backwards: the server filters to this store's streams, so the first is
/// the newest.
const HEAD_SCAN_EVENTS: usize = 1;

/// How [`KurrentDbStore`] maps the store onto a server.
#[derive(Clone, Debug, Default)]
pub struct KurrentDbOptions {
    /// Put before every stream name on the server and taken off when reading, so several stores
    /// (deployments, test cases) share one server without seeing each other's events. Empty by
    /// default: streams keep their names. Must not start with `$`.
    pub namespace: String,
    /// Limits on appends and reads.
    pub limits: Limits,
}

impl KurrentDbOptions {
    /// The defaults with a namespace.
    pub fn with_namespace(namespace: impl Into<String>) -> KurrentDbOptions {
        KurrentDbOptions { namespace: namespace.into(), ..KurrentDbOptions::default() }
    }
}

/// The KurrentDB backend of the event store.
pub struct KurrentDbStore {
    client: kdb::Client,
    options: KurrentDbOptions,
}

/// What the custom metadata of a stored event holds.
#[derive(Serialize, Deserialize)]
struct StoredMetadata {
    schema_version: u32,
    #[serde(flatten)]
    metadata: Metadata,
}

impl KurrentDbStore {
    /// Connects to KurrentDB at `url`, a connection string such as
    /// `esdb://127.0.0.1:2113?tls=false` (or `kurrentdb://...`).
    ///
    /// The client connects lazily; a server that cannot be reached shows on the first call.
    pub async fn connect(url: &str, options: KurrentDbOptions) -> Result<KurrentDbStore, StoreError> {
        if options.namespace.starts_with('$') {
            return Err(StoreError::Invalid(
                "a namespace starting with '$' would make every stream a system stream: drop the '$'".into(),
            ));
        }
        let settings: kdb::ClientSettings = url.parse().map_err(|e| {
            StoreError::Invalid(format!("kurrentdb url is not valid ({e}): use esdb://host:2113?tls=false"))
        })?;
        let client = kdb::Client::new(settings).map_err(|e| StoreError::Backend(format!("kurrentdb client: {e}")))?;
        Ok(KurrentDbStore { client, options })
    }

    fn server_stream(&self, stream: &str) -> String {
        format!("{}{stream}", self.options.namespace)
    }

    /// The server-side filter for a read or subscription: stream prefixes (always within the
    /// namespace), else no system events. Event types are checked in the client.
    fn server_filter(&self, filter: &EventFilter) -> kdb::SubscriptionFilter {
        let namespace = &self.options.namespace;
        if !filter.stream_prefixes.is_empty() {
            filter
                .stream_prefixes
                .iter()
                .fold(kdb::SubscriptionFilter::on_stream_name(), |f, p| f.add_prefix(format!("{namespace}{p}")))
        } else if !namespace.is_empty() {
            kdb::SubscriptionFilter::on_stream_name().add_prefix(namespace)
        } else {
            kdb::SubscriptionFilter::on_stream_name().exclude_system_events()
        }
    }

    /// Maps a server event to a store event, or `None` when it is not this store's to show.
    fn decode(&self, resolved: kdb::ResolvedEvent, filter: &EventFilter) -> Result<Option<RecordedEvent>, StoreError> {
        let Some(event) = resolved.event else { return Ok(None) };
        let Some(stream) = event.stream_id().strip_prefix(self.options.namespace.as_str()) else {
            return Ok(None);
        };
        if stream.starts_with('$') || event.event_type.starts_with('$') || !filter.matches(stream, &event.event_type) {
            return Ok(None);
        }
        let stored: StoredMetadata = serde_json::from_slice(&event.custom_metadata).map_err(|e| {
            StoreError::Backend(format!(
                "kurrentdb: metadata of event {} in {stream} is not rollcall's ({e}): was it written by another program?",
                event.id
            ))
        })?;
        Ok(Some(RecordedEvent {
            id: event.id,
            stream: stream.to_owned(),
            revision: event.revision,
            position: Position { commit: event.position.commit, prepare: event.position.prepare },
            event_type: event.event_type.clone(),
            schema_version: stored.schema_version,
            data: event.data.clone(),
            metadata: stored.metadata,
        }))
    }

    fn encode(event: &NewEvent) -> Result<kdb::EventData, StoreError> {
        let text = std::str::from_utf8(&event.data)
            .map_err(|_| StoreError::Invalid(format!("the payload of event {} is not UTF-8 JSON", event.id)))?;
        // A raw JSON value serialises to exactly its text, so the payload's bytes are kept.
        let raw = serde_json::value::RawValue::from_string(text.to_owned())
            .map_err(|e| StoreError::Invalid(format!("the payload of event {} is not JSON: {e}", event.id)))?;
        let metadata = StoredMetadata { schema_version: event.schema_version, metadata: event.metadata.clone() };
        let metadata = serde_json::to_vec(&metadata)
            .map_err(|e| StoreError::Invalid(format!("the metadata of event {} does not serialise: {e}", event.id)))?;
        let data = kdb::EventData::json(&event.event_type, &raw)
            .map_err(|e| StoreError::Invalid(format!("the payload of event {} does not serialise: {e}", event.id)))?;
        Ok(data.id(event.id).metadata(Bytes::from(metadata)))
    }

    /// The position of the event at `revision` of a stream (for retries the server answers
    /// without a position).
    async fn position_of(&self, stream: &str, revision: u64) -> Result<Position, StoreError> {
        let events = self.read_stream(stream, revision, 1).await?;
        events.first().map(|e| e.position).ok_or_else(|| {
            StoreError::Backend(format!("kurrentdb: revision {revision} of {stream} cannot be read back"))
        })
    }
}

#[async_trait]
impl EventStore for KurrentDbStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.options.limits.check_append(stream, &events)?;
        if stream.starts_with('$') {
            return Err(StoreError::Invalid(format!(
                "stream {stream} starts with '$', which KurrentDB keeps for itself"
            )));
        }
        let mut seen = HashSet::with_capacity(events.len());
        if let Some(event) = events.iter().find(|e| !seen.insert(e.id)) {
            return Err(StoreError::Invalid(format!(
                "event id {} appears twice in one append: give every event its own id",
                event.id
            )));
        }
        let data = events.iter().map(Self::encode).collect::<Result<Vec<_>, _>>()?;
        let state = match expected {
            ExpectedRevision::Any => kdb::StreamState::Any,
            ExpectedRevision::NoStream => kdb::StreamState::NoStream,
            ExpectedRevision::StreamExists => kdb::StreamState::StreamExists,
            ExpectedRevision::Exact(r) => kdb::StreamState::StreamRevision(r),
        };
        let options = kdb::AppendToStreamOptions::default().stream_state(state);
        match self.client.append_to_stream(self.server_stream(stream), &options, data).await {
            Ok(written) => {
                let position = if written.position.commit == 0 && written.position.prepare == 0 {
                    self.position_of(stream, written.next_expected_version).await?
                } else {
                    Position { commit: written.position.commit, prepare: written.position.prepare }
                };
                Ok(AppendResult { next_expected_revision: written.next_expected_version, position })
            }
            Err(kdb::Error::WrongExpectedVersion { current, .. }) => Err(StoreError::WrongExpectedRevision {
                stream: stream.to_owned(),
                expected,
                actual: match current {
                    kdb::CurrentRevision::Current(r) => Some(r),
                    kdb::CurrentRevision::NoStream => None,
                },
            }),
            Err(e) => Err(backend(e)),
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max_count = max_count.min(self.options.limits.read_events_max);
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let options = kdb::ReadStreamOptions::default()
            .forwards()
            .position(kdb::StreamPosition::Position(from_revision))
            .max_count(max_count);
        let mut read = match self.client.read_stream(self.server_stream(stream), &options).await {
            Ok(read) => read,
            Err(kdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(backend(e)),
        };
        let mut out = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => {
                    if let Some(event) = self.decode(resolved, &EventFilter::all())? {
                        out.push(event);
                    }
                }
                Ok(None) | Err(kdb::Error::ResourceNotFound) => break,
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(out)
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max_count = max_count.min(self.options.limits.read_events_max);
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut from = after;
        // A read of $all starts at its position (inclusive), and event types are filtered here,
        // so read pages until enough events matched or the log ends.
        loop {
            let start = if from == Position::START {
                kdb::StreamPosition::Start
            } else {
                kdb::StreamPosition::Position(kdb::Position { commit: from.commit, prepare: from.prepare })
            };
            let page_events = (max_count - out.len()).saturating_add(1);
            let options = kdb::ReadAllOptions::default()
                .forwards()
                .position(start)
                .filter(self.server_filter(filter))
                .max_count(page_events);
            let mut read = self.client.read_all(&options).await.map_err(backend)?;
            let mut seen = 0;
            let mut last = from;
            while let Some(resolved) = read.next().await.map_err(backend)? {
                seen += 1;
                if let Some(event) = resolved.event.as_ref() {
                    last = last.max(Position { commit: event.position.commit, prepare: event.position.prepare });
                }
                let Some(event) = self.decode(resolved, filter)? else { continue };
                // `from` itself was read (starts are inclusive) and, on later pages, delivered.
                if event.position > from && out.len() < max_count {
                    out.push(event);
                }
            }
            if out.len() >= max_count || seen < page_events || last == from {
                return Ok(out);
            }
            from = last;
        }
    }

    async fn subscribe(&self, after: Position, filter: EventFilter) -> Result<Subscription, StoreError> {
        let start = if after == Position::START {
            kdb::StreamPosition::Start
        } else {
            kdb::StreamPosition::Position(kdb::Position { commit: after.commit, prepare: after.prepare })
        };
        let options = kdb::SubscribeToAllOptions::default().position(start).filter(self.server_filter(&filter));
        let subscription = self.client.subscribe_to_all(&options).await;
        let decoder = KurrentDbStore { client: self.client.clone(), options: self.options.clone() };
        // Pull-based: the next server event is asked for only when the subscriber polls, and the
        // gRPC stream's flow control bounds what is buffered meanwhile.
        let state = (subscription, decoder, filter, after, false);
        Ok(Box::pin(futures::stream::unfold(state, |(mut sub, decoder, filter, mut last, done)| async move {
            if done {
                return None;
            }
            loop {
                match sub.next().await {
                    Ok(resolved) => match decoder.decode(resolved, &filter) {
                        // Positions start after `after`, exclusive; never deliver one twice.
                        Ok(Some(event)) if event.position > last => {
                            last = event.position;
                            return Some((Ok(event), (sub, decoder, filter, last, false)));
                        }
                        Ok(_) => continue,
                        Err(e) => return Some((Err(e), (sub, decoder, filter, last, true))),
                    },
                    Err(e) => {
                        let e = StoreError::SubscriptionClosed(format!("kurrentdb subscription failed: {e}"));
                        return Some((Err(e), (sub, decoder, filter, last, true)));
                    }
                }
            }
        })))
    }

    async fn head(&self) -> Result<Position, StoreError> {
        let options = kdb::ReadAllOptions::default()
            .backwards()
            .position(kdb::StreamPosition::End)
            .filter(self.server_filter(&EventFilter::all()))
            .max_count(HEAD_SCAN_EVENTS);
        let mut read = self.client.read_all(&options).await.map_err(backend)?;
        while let Some(resolved) = read.next().await.map_err(backend)? {
            if let Some(event) = self.decode(resolved, &EventFilter::all())? {
                return Ok(event.position);
            }
        }
        Ok(Position::START)
    }
}

fn backend(e: kdb::Error) -> StoreError {
    StoreError::Backend(format!("kurrentdb: {e}"))
}
