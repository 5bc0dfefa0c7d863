//! End-to-end tests: real `rollcall` processes against real services.
