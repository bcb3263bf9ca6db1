//! The logic of the `doubleratchet` fuzz targets, one module and one `pub fn NAME(data:
//! &[u8])` per target, the shared fixture, and the generator of their seed corpora
//! ([`seeds`]).
//!
//! The cargo-fuzz binaries in `fuzz/fuzz_targets/` call these functions, and so do this
//! crate's own tests (`fuzz/tests/corpus.rs`), which replay every committed corpus file
//! through them on the stable toolchain. The library therefore does not use
//! `libfuzzer_sys`.
//!
//! A target panics exactly when it finds a bug: a panic inside the crate, or a broken
//! assertion about the protocol. Every assertion here is a documented promise of the
//! crate's API or a property of the cryptography (an AEAD forgery, a signature forgery or
//! a hash collision is taken as impossible).
//!
//! - [`fixture`] and [`layout`]: what every target shares (keys, genuine messages and
//!   states made once per process; byte offsets and the plaintext encoding);
//! - one module per target: [`decode_message`](mod@decode_message),
//!   [`session`](mod@session), [`symmetric`](mod@symmetric), [`respond`](mod@respond),
//!   [`load`](mod@load), [`bundle`](mod@bundle), [`safety_number`](mod@safety_number),
//!   [`publish`](mod@publish), [`record`](mod@record), [`record_load`](mod@record_load),
//!   [`device_list`](mod@device_list), [`contact_load`](mod@contact_load),
//!   [`group_message`](mod@group_message), [`group_session`](mod@group_session),
//!   [`group_load`](mod@group_load);
//! - [`store_view`]: a stored local device (`0x2A`) read field by field (`load`, `respond`);
//! - [`group_fixture`]: what the group targets share (the group objects' layout, stored
//!   member chains read field by field, a reference receiver of SPEC.md §11.4-§11.5, and
//!   the fixed group of `group_message` and `group_load`);
//! - [`seeds`](mod@seeds): the seed corpora.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bundle;
pub mod contact_load;
pub mod decode_message;
pub mod device_list;
pub mod fixture;
pub mod group_fixture;
pub mod group_load;
pub mod group_message;
pub mod group_session;
pub mod layout;
pub mod load;
mod prelude;
pub mod publish;
pub mod record;
pub mod record_load;
pub mod respond;
pub mod safety_number;
pub mod seeds;
pub mod session;
pub mod store_view;
pub mod symmetric;

pub use bundle::bundle;
pub use contact_load::contact_load;
pub use decode_message::decode_message;
pub use device_list::{device_list, list_ops_from_bytes, ListOp};
pub use group_load::group_load;
pub use group_message::group_message;
pub use group_session::{group_ops_from_bytes, group_session, GroupOp};
pub use load::load;
pub use publish::{publish, publish_ops_from_bytes, PublishOp};
pub use record::{record, record_ops_from_bytes, RecordOp};
pub use record_load::record_load;
pub use respond::respond;
pub use safety_number::safety_number;
pub use seeds::{seeds, Seed};
pub use session::{ops_from_bytes, session, Op, Side};
pub use symmetric::{sym_ops_from_bytes, symmetric, SymOp};

/// A fuzz target's logic: panics exactly when it finds a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary in `fuzz/fuzz_targets/` and of its corpus
/// directory `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_message", decode_message),
    ("session", session),
    ("respond", respond),
    ("load", load),
    ("bundle", bundle),
    ("safety_number", safety_number),
    ("symmetric", symmetric),
    ("publish", publish),
    ("record", record),
    ("record_load", record_load),
    ("device_list", device_list),
    ("contact_load", contact_load),
    ("group_message", group_message),
    ("group_session", group_session),
    ("group_load", group_load),
];
