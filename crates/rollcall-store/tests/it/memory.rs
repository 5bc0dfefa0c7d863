//! The contract suite on the in-memory backend.

use rollcall_store::MemoryStore;

rollcall_store::contract_suite!(async || MemoryStore::new());
