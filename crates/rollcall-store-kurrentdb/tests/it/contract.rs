//! The event store contract, on KurrentDB. Every case gets its own stream namespace, so the
//! cases share one server without seeing each other's events.

use rollcall_store_kurrentdb::{KurrentDbOptions, KurrentDbStore};

rollcall_store::contract_suite!(async || {
    let url = std::env::var("KURRENTDB_URL").unwrap_or_else(|_| env!("KURRENTDB_URL").to_owned());
    let options = KurrentDbOptions::with_namespace(format!("t{}-", uuid::Uuid::new_v4().simple()));
    KurrentDbStore::connect(&url, options).await.unwrap_or_else(|e| {
        panic!("cannot reach KurrentDB at {url} ({e}): start a server (e.g. the kurrentdb docker image) or fix KURRENTDB_URL")
    })
});
