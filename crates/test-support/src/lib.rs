//! Fixtures shared by `doubleratchet`'s integration tests (`tests/it`), the vector tool
//! (`tools/vectors`), the benches and the fuzz crate. Not published: the crate's package
//! ships only what builds without it.
//!
//! - [`rng`](mod@rng): seeded RNGs, shuffles, recognisable plaintexts and an RNG that fails on
//!   demand;
//! - [`hex`]: one lowercase-hex encoder and decoder;
//! - [`layout`] and [`wire`]: byte offsets of the wire formats (SPEC.md §5.2-§5.4) and
//!   readers/writers of message header fields;
//! - [`storage`]: storage encodings (`stored`, `load`, `reload`), the transactional
//!   rejection check and a reader of the ratchet fields of a stored session (SPEC.md §7.1);
//! - [`fixtures`]: Alice and Bob with identities and prekey stores, session pairs at the
//!   usual points of their life (offered, accepted, established) in every mode, and the
//!   bundle of given keys built from their public parts ([`bundle_of`]);
//! - [`golden`]: the generator of the golden files of the storage format;
//! - [`heap`]: a counting global allocator for the benches that report heap use (the one
//!   module with `unsafe` code);
//! - [`peer`]: a party keeping its sessions with one contact in a
//!   [`SessionRecord`](doubleratchet::SessionRecord), which routes incoming messages among
//!   them as SPEC.md §6.3-§6.4 tell an app to;
//! - [`record`]: the storage encoding of a session record (SPEC.md §7.8) split into its
//!   fixed fields and entries;
//! - [`server`]: a prekey server for one device playing by SPEC.md §8.5.
//!
//! The fixtures draw from their RNG in a fixed order: golden files and seeds depend on it,
//! so a change to a fixture's draws is a change to those files.
//!
//! Everything here panics on failure: it is test code.

pub mod fixtures;
pub mod golden;
pub mod heap;
pub mod hex;
pub mod layout;
pub mod peer;
pub mod record;
pub mod rng;
pub mod server;
pub mod storage;
pub mod wire;

#[cfg(feature = "pqxdh")]
pub use fixtures::pq_bundle_of;
pub use fixtures::{
    accepted_pair, accepted_pair_in_mode, bundle_of, device_of, established_pair,
    established_pair_in_mode, Offer, Pair, Parties, Party, SessionPair,
};
pub use peer::Peer;
pub use rng::{below, rng, shuffle, text, FailingRng, ListedRng, RngDown};
pub use storage::{
    assert_rejected, load, padding_offset, ratchet_view, reload, sent_header, stored, view, Cursor,
    RatchetView,
};
pub use wire::{
    forge_header, get_u32, get_u64, header, header_offset, is_initial, message_number,
    previous_chain_length, put_u32, put_u64, ratchet_key, Header,
};

/// The ChaCha20 RNG every fixture draws from (`rand_chacha` 0.10).
pub use rand_chacha::ChaCha20Rng;
