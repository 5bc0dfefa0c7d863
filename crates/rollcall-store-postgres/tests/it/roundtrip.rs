//! What goes in comes out exactly.

use bytes::Bytes;
use rollcall_store::contract::event_with_data;
use rollcall_store::{Actor, EventFilter, EventStore, ExpectedRevision, Position};
use uuid::Uuid;

use crate::support;

#[tokio::test]
async fn payload_and_metadata_round_trip_exactly() -> anyhow::Result<()> {
    let (store, _guard) = support::store().await;
    // Odd spacing, key order and escapes: jsonb would normalise these, bytea must not.
    let data = Bytes::from_static(b"{ \"b\" : 1,\n \"a\":\"\\u00e9\\n\", \"n\": 1.50 }");
    let mut event = event_with_data("Odd", data.clone());
    event.schema_version = 7;
    event.metadata.actor = Actor::Member { workspace_id: Uuid::new_v4(), member_id: Uuid::new_v4() };
    event.metadata.causation_id = Some(Uuid::new_v4());
    let result = store.append("roundtrip-1", ExpectedRevision::NoStream, vec![event.clone()]).await?;

    let read = store.read_stream("roundtrip-1", 0, 10).await?;
    assert_eq!(read.len(), 1);
    let got = &read[0];
    assert_eq!(got.data, data, "payload bytes are kept exactly");
    assert_eq!(got.metadata, event.metadata, "metadata, including nanoseconds, is kept");
    assert_eq!((got.id, got.event_type.as_str(), got.schema_version), (event.id, "Odd", 7));
    assert_eq!((got.revision, got.position), (0, result.position));
    let all = store.read_all(Position::START, &EventFilter::all(), 10).await?;
    assert_eq!(all, read);
    Ok(())
}
