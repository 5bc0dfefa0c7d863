//! The event store contract, on PostgreSQL.

use rollcall_store::contract::Guarded;

use crate::support;

rollcall_store::contract_suite!(async || {
    let (store, guard) = support::store().await;
    Guarded { store, guard }
});
