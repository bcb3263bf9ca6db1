//! The integration tests of `doubleratchet`, in one binary (one build, one link): a module
//! per area, each testing the public API as an app sees it. Fixtures come from the
//! unpublished `doubleratchet-test-support` crate (`crates/test-support`), which is why
//! these tests do not ship in the package.
//!
//! Run one area with `cargo test --test it <module>::`, e.g. `cargo test --test it vectors::`;
//! the full-size prekey store flood (ignored in debug builds) with
//! `cargo test --release --test it prekey_store:: -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod adversarial;
mod conversations;
mod device;
mod errors;
mod golden;
mod groups;
mod header_encryption;
mod persistence;
mod pqxdh;
mod prekey_store;
mod properties;
mod publishing;
mod records;
mod rollback;
mod safety_numbers;
mod smoke;
mod vectors;
