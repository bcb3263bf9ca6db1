//! The seed corpora of every target (`fuzz/corpus/<target>/seed-*`).

use crate::device_list::{
    list_fixture, list_ops_from_bytes, ListOp, DEVICE_IDS, LIST_COUNT, LIST_ENTRIES, LIST_ENTRY,
    LIST_OP_VARIANTS,
};
use crate::group_fixture::{group_fixture, GROUP_PREFIX, MESSAGE_ITERATION, SIGNATURE};
use crate::group_session::{group_ops_from_bytes, GroupOp, GROUP_OP_VARIANTS};
use crate::prelude::*;
use crate::publish::{publish_fixture, publish_ops_from_bytes, PublishOp, PUBLISH_OP_VARIANTS};
use crate::record::{
    record_fixture, record_ops_from_bytes, reload_record, RecordOp, RECORD_OP_VARIANTS,
};
use crate::session::{ops_from_bytes, Op, Side};
use crate::symmetric::{sym_ops_from_bytes, SymOp, CHAIN_LENGTHS, SYM_OP_VARIANTS};
use doubleratchet::{Contact, DeviceId, MAX_DEVICES};
use doubleratchet_test_support::bundle_of;

/// One seed file: `fuzz/corpus/<target>/seed-<name>`.
pub struct Seed {
    /// The target's name (a key of [`TARGETS`]).
    pub target: &'static str,
    /// The file name after `seed-`.
    pub name: String,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// Appends `arbitrary`'s encoding of enum variant `i` of `n`: a little-endian `u32` `v`
/// with `(v * n) >> 32 == i`.
fn variant(out: &mut Vec<u8>, i: u64, n: u64) {
    let v = (i << 32).div_ceil(n);
    out.extend_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
}

/// Encodes operations in the input format of the `session` target, the inverse of
/// [`ops_from_bytes`] (checked by [`seeds`]): `arbitrary` picks an enum variant `i` of `n`
/// from a little-endian `u32` `v` as `(v * n) >> 32`, and reads integers little-endian.
fn ops_to_bytes(ops: &[Op]) -> Vec<u8> {
    fn side(out: &mut Vec<u8>, s: Side) {
        variant(out, s.index() as u64, 2);
    }
    const N: u64 = 13;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::AliceSends { len } => {
                variant(&mut out, 0, N);
                out.push(len);
            }
            Op::BobSends { len } => {
                variant(&mut out, 1, N);
                out.push(len);
            }
            Op::Deliver { idx } => {
                variant(&mut out, 2, N);
                out.push(idx);
            }
            Op::Drop { idx } => {
                variant(&mut out, 3, N);
                out.push(idx);
            }
            Op::Duplicate { idx } => {
                variant(&mut out, 4, N);
                out.push(idx);
            }
            Op::Replay { msg } => {
                variant(&mut out, 5, N);
                out.push(msg);
            }
            Op::Reorder { a, b } => {
                variant(&mut out, 6, N);
                out.extend_from_slice(&[a, b]);
            }
            Op::Truncate { idx, at } => {
                variant(&mut out, 7, N);
                out.push(idx);
                out.extend_from_slice(&at.to_le_bytes());
            }
            Op::FlipBit { idx, bit } => {
                variant(&mut out, 8, N);
                out.push(idx);
                out.extend_from_slice(&bit.to_le_bytes());
            }
            Op::Splice { a, b, at } => {
                variant(&mut out, 9, N);
                out.extend_from_slice(&[a, b]);
                out.extend_from_slice(&at.to_le_bytes());
            }
            Op::Reflect { idx } => {
                variant(&mut out, 10, N);
                out.push(idx);
            }
            Op::Reload { side: s, sealed } => {
                variant(&mut out, 11, N);
                side(&mut out, s);
                out.push(u8::from(sealed));
            }
            Op::SetLimits {
                side: s,
                max_skip,
                max_stored,
            } => {
                variant(&mut out, 12, N);
                side(&mut out, s);
                out.extend_from_slice(&[max_skip, max_stored]);
            }
        }
    }
    out
}

/// Encodes operations in the input format of the `symmetric` target, the inverse of
/// [`sym_ops_from_bytes`] (checked by [`seeds`]).
fn sym_ops_to_bytes(ops: &[SymOp]) -> Vec<u8> {
    const N: u64 = SYM_OP_VARIANTS;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            SymOp::Deliver { msg } => {
                variant(&mut out, 0, N);
                out.push(msg);
            }
            SymOp::FlipBit { msg, bit } => {
                variant(&mut out, 1, N);
                out.push(msg);
                out.extend_from_slice(&bit.to_le_bytes());
            }
            SymOp::Truncate { msg, at } => {
                variant(&mut out, 2, N);
                out.push(msg);
                out.extend_from_slice(&at.to_le_bytes());
            }
            SymOp::Splice { a, b, at } => {
                variant(&mut out, 3, N);
                out.extend_from_slice(&[a, b]);
                out.extend_from_slice(&at.to_le_bytes());
            }
            SymOp::BobSends { len } => {
                variant(&mut out, 4, N);
                out.push(len);
            }
            SymOp::Reload { sealed } => {
                variant(&mut out, 5, N);
                out.push(u8::from(sealed));
            }
            SymOp::SetLimits {
                max_skip,
                max_stored,
            } => {
                variant(&mut out, 6, N);
                out.extend_from_slice(&[max_skip, max_stored]);
            }
        }
    }
    out
}

/// Encodes operations in the input format of the `publish` target, the inverse of
/// [`publish_ops_from_bytes`] (checked by [`seeds`]): `arbitrary` reads a `bool` as a byte
/// (its lowest bit), an `Option` as a `bool` then the value, a `u16` little-endian.
fn publish_ops_to_bytes(ops: &[PublishOp]) -> Vec<u8> {
    const N: u64 = PUBLISH_OP_VARIANTS;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            PublishOp::Upload {
                carol,
                signed,
                created,
                one_time,
                rotate,
                last_resort,
                pq_one_time,
                flip,
                swap_identity,
            } => {
                variant(&mut out, 0, N);
                out.extend_from_slice(&[
                    u8::from(carol),
                    signed,
                    created,
                    one_time,
                    rotate,
                    last_resort,
                    pq_one_time,
                ]);
                match flip {
                    None => out.push(0),
                    Some(bit) => {
                        out.push(1);
                        out.extend_from_slice(&bit.to_le_bytes());
                    }
                }
                out.push(u8::from(swap_identity));
            }
            PublishOp::Resend => variant(&mut out, 1, N),
            PublishOp::Fetch => variant(&mut out, 2, N),
            PublishOp::Evict { pq, key } => {
                variant(&mut out, 3, N);
                out.extend_from_slice(&[u8::from(pq), key]);
            }
        }
    }
    out
}

/// Encodes operations in the input format of the `record` target, the inverse of
/// [`record_ops_from_bytes`] (checked by [`seeds`]): a `bool` is a byte, an `Option` a
/// `bool` then the value, `u16` and `i16` little-endian.
fn record_ops_to_bytes(ops: &[RecordOp]) -> Vec<u8> {
    const N: u64 = RECORD_OP_VARIANTS;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            RecordOp::Deliver {
                msg,
                receive,
                options,
            } => {
                variant(&mut out, 0, N);
                out.extend_from_slice(&[msg, u8::from(receive), options]);
            }
            RecordOp::FlipBit { msg, bit, receive } => {
                variant(&mut out, 1, N);
                out.push(msg);
                out.extend_from_slice(&bit.to_le_bytes());
                out.push(u8::from(receive));
            }
            RecordOp::Truncate { msg, at, receive } => {
                variant(&mut out, 2, N);
                out.push(msg);
                out.extend_from_slice(&at.to_le_bytes());
                out.push(u8::from(receive));
            }
            RecordOp::Splice { a, b, at, receive } => {
                variant(&mut out, 3, N);
                out.extend_from_slice(&[a, b]);
                out.extend_from_slice(&at.to_le_bytes());
                out.push(u8::from(receive));
            }
            RecordOp::Reflect { msg, receive } => {
                variant(&mut out, 4, N);
                out.extend_from_slice(&[msg, u8::from(receive)]);
            }
            RecordOp::Encrypt { len } => {
                variant(&mut out, 5, N);
                out.push(len);
            }
            RecordOp::Request { req } => {
                variant(&mut out, 6, N);
                out.push(req);
            }
            RecordOp::CorruptRequest { req, bit } => {
                variant(&mut out, 7, N);
                out.push(req);
                out.extend_from_slice(&bit.to_le_bytes());
            }
            RecordOp::MakeRequest { msg, flip } => {
                variant(&mut out, 8, N);
                out.push(msg);
                match flip {
                    None => out.push(0),
                    Some(bit) => {
                        out.push(1);
                        out.extend_from_slice(&bit.to_le_bytes());
                    }
                }
            }
            RecordOp::Archive => variant(&mut out, 9, N),
            RecordOp::SetLimits {
                max_archived,
                max_trials,
                max_stored_skipped,
                unacknowledged_after,
                reset_interval,
            } => {
                variant(&mut out, 10, N);
                out.extend_from_slice(&[max_archived, max_trials]);
                out.extend_from_slice(&max_stored_skipped.to_le_bytes());
                out.extend_from_slice(&unacknowledged_after.to_le_bytes());
                out.extend_from_slice(&reset_interval.to_le_bytes());
            }
            RecordOp::Initiate {
                header_encryption,
                post_quantum,
            } => {
                variant(&mut out, 11, N);
                out.extend_from_slice(&[u8::from(header_encryption), u8::from(post_quantum)]);
            }
            RecordOp::Reload { sealed } => {
                variant(&mut out, 12, N);
                out.push(u8::from(sealed));
            }
            RecordOp::Tick { minutes } => {
                variant(&mut out, 13, N);
                out.extend_from_slice(&minutes.to_le_bytes());
            }
        }
    }
    out
}

/// The `record` target's scripts, naming pool messages and requests by their labels in
/// the fixture (`record::make_record_fixture`). Accepted in the fixture: `s2-initial-0`,
/// `s1-chain1-1`, `s1-chain2-2`, `s2-more-1`, `s3-chain1-0`; `s4` and `s5` are not held.
fn record_scripts() -> Vec<(&'static str, Vec<RecordOp>)> {
    use RecordOp::*;
    let rfx = record_fixture();
    let m = |label: &str| u8::try_from(rfx.message(label)).unwrap();
    let q = |label: &str| u8::try_from(rfx.request(label)).unwrap();
    let deliver = |label: &str, receive: bool| Deliver {
        msg: m(label),
        receive,
        options: 0,
    };
    let limits = |max_archived: u8, max_trials: u8, max_stored_skipped: u16| SetLimits {
        max_archived,
        max_trials,
        max_stored_skipped,
        unacknowledged_after: 43_200,
        reset_interval: 60,
    };
    let fresh = [
        "s1-chain1-0",
        "s1-chain1-2",
        "s1-chain1-3",
        "s1-chain2-0",
        "s1-chain2-1",
        "s2-initial-1",
        "s2-initial-2",
        "s2-more-0",
        "s2-more-2",
        "s3-chain1-1",
        "s3-chain1-2",
        "s3-chain2-0",
        "s3-chain2-1",
        "s4-initial-0",
        "s4-initial-1",
        "s5-initial-0",
    ];
    #[allow(unused_mut)]
    let mut scripts = vec![
        (
            "in-order",
            fresh
                .iter()
                .enumerate()
                .map(|(i, l)| deliver(l, i % 3 == 0 || l.starts_with("s4") || l.starts_with("s5")))
                .collect(),
        ),
        (
            "reverse",
            fresh.iter().rev().map(|l| deliver(l, true)).collect(),
        ),
        (
            // Replays of what the fixture accepted, a message twice, Alice's own messages.
            "replays",
            vec![
                deliver("s2-initial-0", true),
                deliver("s1-chain1-1", false),
                deliver("s1-chain2-2", true),
                deliver("s2-more-1", false),
                deliver("s3-chain1-0", true),
                deliver("s1-chain1-0", false),
                deliver("s1-chain1-0", true),
                Reflect {
                    msg: 0,
                    receive: true,
                },
                Reflect {
                    msg: 2,
                    receive: false,
                },
                Reflect {
                    msg: 4,
                    receive: false,
                },
            ],
        ),
        (
            // Bob's new sessions: refused by `decrypt` and by options they do not meet,
            // accepted by `receive`; a replay of the last-resort one; Alice then sends.
            "new-sessions",
            vec![
                deliver("s5-initial-0", false),
                Deliver {
                    msg: m("s5-initial-0"),
                    receive: true,
                    options: 2,
                },
                Deliver {
                    msg: m("s4-initial-1"),
                    receive: true,
                    options: 1,
                },
                Deliver {
                    msg: m("s5-initial-0"),
                    receive: true,
                    options: 1,
                },
                deliver("s4-initial-1", true),
                deliver("s4-initial-1", true),
                deliver("s4-initial-0", false),
                Encrypt { len: 10 },
                deliver("s2-more-2", false),
                deliver("s2-more-0", false),
                Encrypt { len: 70 },
                Encrypt { len: 0 },
            ],
        ),
        (
            // Sending on the sending session (s3), on new chains, with the clock moving.
            "send",
            vec![
                Encrypt { len: 5 },
                deliver("s3-chain2-0", false),
                Encrypt { len: 63 },
                Encrypt { len: 64 },
                Tick { minutes: 600 },
                deliver("s3-chain1-2", true),
                Encrypt { len: 200 },
                deliver("s1-chain1-3", false),
                deliver("s1-chain1-2", false),
                Encrypt { len: 1 },
            ],
        ),
        (
            // A reset by the request naming s3, a stale and a rate-limited one, one naming
            // no sending session; after an hour a second reset (s1 became the sending
            // session again); Carol's, one to Carol, altered ones; requests Alice makes.
            "requests",
            vec![
                Request {
                    req: q("s3-initial-at-2000"),
                },
                Request {
                    req: q("s3-initial-at-2000"),
                },
                Encrypt { len: 3 },
                Request {
                    req: q("answer-1-at-6000"),
                },
                Tick { minutes: 120 },
                Request {
                    req: q("s3-answer-at-6000"),
                },
                deliver("s1-chain2-0", false),
                Request {
                    req: q("s1-initial-at-6000"),
                },
                Request { req: q("carol") },
                Request { req: q("to-carol") },
                CorruptRequest {
                    req: q("s1-initial-at-6000"),
                    bit: 1000,
                },
                CorruptRequest {
                    req: q("answer-2-at-6000"),
                    bit: 300,
                },
                deliver("s3-chain2-1", false),
                Encrypt { len: 8 },
                MakeRequest {
                    msg: m("s1-chain1-0"),
                    flip: None,
                },
                MakeRequest {
                    msg: m("s4-initial-0"),
                    flip: None,
                },
                MakeRequest {
                    msg: m("s2-initial-1"),
                    flip: Some(20),
                },
            ],
        ),
        (
            // Lower limits (evictions), archiving, refused limits, new sessions, reloads.
            "limits-and-archive",
            vec![
                limits(1, 1, 3),
                deliver("s1-chain1-0", false),
                deliver("s2-more-0", true),
                Archive,
                limits(65, 3, 10),
                limits(2, 0, 10),
                limits(2, 66, 10),
                limits(2, 2, u16::MAX),
                Initiate {
                    header_encryption: true,
                    post_quantum: false,
                },
                Encrypt { len: 4 },
                Initiate {
                    header_encryption: false,
                    post_quantum: true,
                },
                Reload { sealed: true },
                deliver("s4-initial-0", true),
                Reload { sealed: false },
                limits(0, 1, 0),
                Archive,
                Archive,
                deliver("s3-chain1-1", false),
            ],
        ),
        (
            // Altered messages, then the originals.
            "tamper",
            vec![
                FlipBit {
                    msg: m("s1-chain1-0"),
                    bit: 300,
                    receive: false,
                },
                FlipBit {
                    msg: m("s4-initial-0"),
                    bit: 600,
                    receive: true,
                },
                Truncate {
                    msg: m("s2-more-0"),
                    at: 60,
                    receive: false,
                },
                Splice {
                    a: m("s1-chain2-0"),
                    b: m("s1-chain2-1"),
                    at: 50,
                    receive: true,
                },
                Splice {
                    a: m("s4-initial-0"),
                    b: m("s4-initial-1"),
                    at: 40,
                    receive: true,
                },
                deliver("s1-chain1-0", false),
                deliver("s4-initial-0", true),
                deliver("s1-chain2-0", false),
            ],
        ),
        (
            // A session initiated and never answered: unacknowledged after 30 days; the
            // clock going back.
            "unacknowledged",
            vec![
                Initiate {
                    header_encryption: false,
                    post_quantum: false,
                },
                Tick { minutes: 30_000 },
                Encrypt { len: 2 },
                Tick { minutes: 30_000 },
                Tick { minutes: -32_768 },
                Tick { minutes: -32_768 },
                Encrypt { len: 2 },
            ],
        ),
    ];
    // With PQXDH the sending session is `s6` (Alice's PQXDH session): a reset of it, a
    // stale and a rate-limited request, then `s3` sending again and reset, and the retired
    // `s6` still decrypting.
    #[cfg(feature = "pqxdh")]
    scripts.push((
        "pq-requests",
        vec![
            Request {
                req: q("s6-initial-at-8000"),
            },
            Request {
                req: q("s6-initial-at-8000"),
            },
            Request {
                req: q("s3-initial-at-9000"),
            },
            Tick { minutes: 61 },
            Request {
                req: q("s3-initial-at-9000"),
            },
            deliver("s3-chain2-0", false),
            Request {
                req: q("s3-initial-at-9000"),
            },
            deliver("s6-chain1-0", true),
            Encrypt { len: 1 },
            deliver("s6-chain1-2", false),
        ],
    ));
    scripts
}

/// Encodes operations in the input format of the `device_list` target, the inverse of
/// [`list_ops_from_bytes`] (checked by [`seeds`]).
fn list_ops_to_bytes(ops: &[ListOp]) -> Vec<u8> {
    const N: u64 = LIST_OP_VARIANTS;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            ListOp::Add { b, id, key, other } => {
                variant(&mut out, 0, N);
                out.extend_from_slice(&[u8::from(b), id, key, u8::from(other)]);
            }
            ListOp::Remove { b, id } => {
                variant(&mut out, 1, N);
                out.extend_from_slice(&[u8::from(b), id]);
            }
            ListOp::Feed { list } => {
                variant(&mut out, 2, N);
                out.push(list);
            }
            ListOp::Tamper { list, at, mode } => {
                variant(&mut out, 3, N);
                out.push(list);
                out.extend_from_slice(&at.to_le_bytes());
                out.push(mode);
            }
            ListOp::Accept { change } => {
                variant(&mut out, 4, N);
                out.push(change);
            }
            ListOp::Restore { id, mode } => {
                variant(&mut out, 5, N);
                out.extend_from_slice(&[id, mode]);
            }
            ListOp::Encrypt { len } => {
                variant(&mut out, 6, N);
                out.push(len);
            }
            ListOp::MarkVerified { b } => {
                variant(&mut out, 7, N);
                out.push(u8::from(b));
            }
            ListOp::Reload { sealed } => {
                variant(&mut out, 8, N);
                out.push(u8::from(sealed));
            }
            ListOp::Rollback { b, snapshot, adopt } => {
                variant(&mut out, 9, N);
                out.extend_from_slice(&[u8::from(b), snapshot, u8::from(adopt)]);
            }
            ListOp::Adopt { b, list } => {
                variant(&mut out, 10, N);
                out.extend_from_slice(&[u8::from(b), list]);
            }
            ListOp::DecryptionError { id } => {
                variant(&mut out, 11, N);
                out.push(id);
            }
            ListOp::HandleDecryptionError { id } => {
                variant(&mut out, 12, N);
                out.push(id);
            }
            ListOp::Archive { id } => {
                variant(&mut out, 13, N);
                out.push(id);
            }
        }
    }
    out
}

/// Encodes operations in the input format of the `group_session` target, the inverse of
/// [`group_ops_from_bytes`] (checked by [`seeds`]).
fn group_ops_to_bytes(ops: &[GroupOp]) -> Vec<u8> {
    const N: u64 = GROUP_OP_VARIANTS;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            GroupOp::Encrypt {
                from,
                len,
                unpadded,
            } => {
                variant(&mut out, 0, N);
                out.extend_from_slice(&[from, len, u8::from(unpadded)]);
            }
            GroupOp::Deliver { msg, to, spoof } => {
                variant(&mut out, 1, N);
                out.extend_from_slice(&[msg, to, u8::from(spoof)]);
            }
            GroupOp::Duplicate { msg } => {
                variant(&mut out, 2, N);
                out.push(msg);
            }
            GroupOp::Reorder { a, b } => {
                variant(&mut out, 3, N);
                out.extend_from_slice(&[a, b]);
            }
            GroupOp::Tamper { msg, at, xor } => {
                variant(&mut out, 4, N);
                out.push(msg);
                out.extend_from_slice(&at.to_le_bytes());
                out.push(xor);
            }
            GroupOp::Distribute { from, to } => {
                variant(&mut out, 5, N);
                out.extend_from_slice(&[from, to]);
            }
            GroupOp::Resend { dist, to } => {
                variant(&mut out, 6, N);
                out.extend_from_slice(&[dist, to]);
            }
            GroupOp::Remove { by, who } => {
                variant(&mut out, 7, N);
                out.extend_from_slice(&[by, who]);
            }
            GroupOp::Add { by, who } => {
                variant(&mut out, 8, N);
                out.extend_from_slice(&[by, who]);
            }
            GroupOp::Rotate { by } => {
                variant(&mut out, 9, N);
                out.push(by);
            }
            GroupOp::Reload { who, sealed } => {
                variant(&mut out, 10, N);
                out.extend_from_slice(&[who, u8::from(sealed)]);
            }
        }
    }
    out
}

/// The `group_session` target's scripts. Members are 0, 1 and 2; a receiver `to` is an
/// index into the sender's others: 0's are (1, 2), 1's (2, 0), 2's (0, 1). Pool messages
/// and distributions are numbered in the order they are made; distributions 0, 1 and 2
/// are the members' first ones (taken by everyone at the start).
fn group_session_scripts() -> Vec<(&'static str, Vec<GroupOp>)> {
    use GroupOp::{
        Add, Deliver, Distribute, Duplicate, Encrypt, Reload, Remove, Reorder, Resend, Rotate,
        Tamper,
    };
    let enc = |from, len| Encrypt {
        from,
        len,
        unpadded: false,
    };
    let to = |msg, to| Deliver {
        msg,
        to,
        spoof: false,
    };
    vec![
        // Everyone sends once; every message reaches both others; one arrives twice.
        (
            "exchange",
            vec![
                enc(0, 10),
                enc(1, 70),
                enc(2, 0),
                to(0, 0),
                to(0, 1),
                to(1, 0),
                to(1, 1),
                to(2, 0),
                to(2, 1),
                to(0, 0),
            ],
        ),
        // Four messages from 0 to 1 out of order (skipped keys used later), again, and an
        // unpadded one; a duplicated pool entry and a reordered pool.
        (
            "out-of-order",
            vec![
                enc(0, 1),
                enc(0, 2),
                enc(0, 3),
                enc(0, 4),
                to(3, 0),
                to(0, 0),
                to(2, 0),
                to(1, 0),
                to(3, 0),
                Encrypt {
                    from: 0,
                    len: 100,
                    unpadded: true,
                },
                Duplicate { msg: 4 },
                Reorder { a: 5, b: 0 },
                to(0, 0),
                to(5, 0),
                to(4, 1),
            ],
        ),
        // Altered copies (a byte changed, cut short, to nothing) are refused and change
        // nothing; a copy altered back is the original and decrypts, once; the third
        // member's chains refuse it.
        (
            "tamper",
            vec![
                enc(0, 20),
                Tamper {
                    msg: 0,
                    at: 50,
                    xor: 1,
                },
                Tamper {
                    msg: 0,
                    at: 100,
                    xor: 0,
                },
                Tamper {
                    msg: 0,
                    at: 200,
                    xor: 0x80,
                },
                Tamper {
                    msg: 1,
                    at: 50,
                    xor: 1,
                },
                to(1, 0),
                to(2, 0),
                to(3, 0),
                to(4, 0),
                Deliver {
                    msg: 0,
                    to: 0,
                    spoof: true,
                },
                to(0, 0),
                // Cut to nothing (altered no further) and to 20 bytes (no chain id).
                Tamper {
                    msg: 0,
                    at: 0,
                    xor: 0,
                },
                Tamper {
                    msg: 5,
                    at: 3,
                    xor: 1,
                },
                Tamper {
                    msg: 0,
                    at: 20,
                    xor: 0,
                },
                to(5, 0),
                to(6, 1),
            ],
        ),
        // 1 and 2 remove 0 and rotate, then exchange their new chains; 0's messages and
        // distributions are refused by both; 0 does not hold their new chains.
        (
            "remove-rotate",
            vec![
                enc(0, 5),
                Remove { by: 1, who: 1 },
                Remove { by: 2, who: 0 },
                to(0, 0),
                to(0, 1),
                Distribute { from: 1, to: 0 },
                Distribute { from: 2, to: 1 },
                Distribute { from: 1, to: 1 },
                enc(1, 5),
                to(1, 0),
                to(1, 1),
                Resend { dist: 0, to: 0 },
                Resend { dist: 3, to: 0 },
                enc(0, 6),
                to(2, 0),
                Remove { by: 1, who: 1 },
            ],
        ),
        // 1 removes 0, then adds it back (twice: `DuplicateDevice`): fresh chains for 0,
        // which has no chain until 0 sends its distribution again; messages before it are
        // not decrypted, later ones are, once; 1's distribution again is `Known` at 0.
        (
            "add-back",
            vec![
                enc(0, 5),
                Remove { by: 1, who: 1 },
                Add { by: 1, who: 1 },
                Add { by: 1, who: 1 },
                to(0, 0),
                Distribute { from: 0, to: 0 },
                enc(0, 6),
                to(0, 0),
                to(1, 0),
                to(1, 0),
                Distribute { from: 1, to: 1 },
                Resend { dist: 1, to: 1 },
            ],
        ),
        // 0 rotates six times, each chain taken by 1: the first chain is evicted and
        // retired; its distribution is refused and its message has no chain.
        (
            "evict",
            vec![
                enc(0, 1),
                Rotate { by: 0 },
                Distribute { from: 0, to: 0 },
                Rotate { by: 0 },
                Distribute { from: 0, to: 0 },
                Rotate { by: 0 },
                Distribute { from: 0, to: 0 },
                Rotate { by: 0 },
                Distribute { from: 0, to: 0 },
                Rotate { by: 0 },
                Distribute { from: 0, to: 0 },
                Resend { dist: 0, to: 0 },
                to(0, 0),
                to(0, 1),
                enc(0, 2),
                to(1, 0),
            ],
        ),
        // A newer distribution moves a held chain forward (`Advanced`, the skipped keys
        // kept: the messages between still decrypt); an old one again changes nothing
        // (`Known`: the iteration is not moved back); stores and loads, plain and sealed,
        // between messages.
        (
            "advance-resend-reload",
            vec![
                enc(0, 1),
                enc(0, 2),
                enc(0, 3),
                to(2, 0),
                enc(0, 4),
                Distribute { from: 0, to: 0 },
                Resend { dist: 0, to: 0 },
                Reload {
                    who: 1,
                    sealed: true,
                },
                to(2, 0),
                to(0, 0),
                Reload {
                    who: 0,
                    sealed: false,
                },
                enc(0, 5),
                Reload {
                    who: 1,
                    sealed: false,
                },
                to(3, 0),
                to(4, 0),
                to(1, 0),
                Reload {
                    who: 2,
                    sealed: true,
                },
                to(1, 1),
            ],
        ),
    ]
}

/// The index in `DEVICE_IDS` of device id `id`.
fn id_index(id: u32) -> u8 {
    u8::try_from(DEVICE_IDS.iter().position(|i| *i == id).unwrap()).unwrap()
}

/// The `device_list` target's scripts. Lists are numbered in the order they are produced:
/// 0 is A's first list (device 1, key 1), 1 is B's (device 1, key 2), then every list an
/// account signs. Keys 0..=17 are device keys (0 the local device, 1 the device with a
/// prepared session), 18 and 19 the accounts' keys. An account's stored encodings (for
/// `Rollback`) are numbered likewise: 0 its first, then one per list it signs or adopts.
fn list_scripts() -> Vec<(&'static str, Vec<ListOp>)> {
    use ListOp::*;
    let add = |id: u32, key: u8| Add {
        b: false,
        id: id_index(id),
        key,
        other: false,
    };
    let remove = |id: u32| Remove {
        b: false,
        id: id_index(id),
    };
    let feed = |list: u8| Feed { list };
    let restore = |id: u32, mode: u8| Restore {
        id: id_index(id),
        mode,
    };
    let rollback = |snapshot: u8, adopt: bool| Rollback {
        b: false,
        snapshot,
        adopt,
    };
    let adopt = |list: u8| Adopt { b: false, list };
    let decryption_error = |id: u32| DecryptionError { id: id_index(id) };
    let handle = |id: u32| HandleDecryptionError { id: id_index(id) };
    let archive = |id: u32| Archive { id: id_index(id) };
    // A grows to 16 devices (ids 2..=16, keys 3..=17: lists 2..=16), then is full; removes
    // device 1 (list 17) and adds another (list 18).
    let mut full: Vec<ListOp> = (2..=16u32).map(|id| add(id, id as u8 + 1)).collect();
    full.extend([
        add(17, 2),
        feed(16),
        remove(1),
        add(u32::MAX, 0),
        add(0, 1),
        feed(18),
        feed(17),
        feed(16),
    ]);
    vec![
        (
            // Adds and removes; replays of older lists (which would bring a removed device
            // back) refused; the held list unchanged; refused changes, a link made for
            // the other account among them.
            "add-remove-replay",
            vec![
                add(2, 3),
                feed(2),
                add(3, 4),
                remove(2),
                feed(4),
                feed(2),
                feed(3),
                feed(0),
                feed(4),
                remove(9),
                add(1, 5),
                add(5, 1),
                add(5, 18),
                Add {
                    b: false,
                    id: id_index(6),
                    key: 8,
                    other: true,
                },
                add(5, 19),
                feed(5),
            ],
        ),
        (
            // B's lists are identity changes; accepting one pins B; changes seen under
            // another key are stale; back to A; trust only for the pinned key; a change
            // seen before the contact took a newer list is stale.
            "identity-change",
            vec![
                feed(1),
                Add {
                    b: true,
                    id: id_index(2),
                    key: 6,
                    other: false,
                },
                feed(2),
                Accept { change: 1 },
                feed(0),
                Accept { change: 0 },
                feed(1),
                feed(2),
                Accept { change: 2 },
                feed(0),
                MarkVerified { b: true },
                MarkVerified { b: false },
                feed(1),
                add(3, 7),
                feed(3),
                Accept { change: 3 },
                feed(1),
                Accept { change: 4 },
                MarkVerified { b: false },
            ],
        ),
        (
            // Records put back (with a session for device 1; the local device listed has
            // none; refusals); fan-out with and without randomness; decryption-error
            // requests made and handled (a reset of device 1's session, then stale, also
            // after a reload); reloads; a removed device's record dropped and not brought
            // back by a replay.
            "records",
            vec![
                add(2, 0),
                add(3, 7),
                feed(3),
                restore(1, 0),
                restore(3, 0),
                restore(2, 0),
                restore(3, 0),
                restore(4, 0),
                restore(2, 1),
                restore(3, 2),
                Encrypt { len: 5 },
                Encrypt { len: 15 },
                decryption_error(1),
                decryption_error(2),
                decryption_error(3),
                decryption_error(4),
                archive(3),
                handle(2),
                handle(3),
                handle(4),
                handle(1),
                handle(1),
                Encrypt { len: 4 },
                Reload { sealed: true },
                handle(1),
                remove(1),
                feed(4),
                feed(3),
                Encrypt { len: 3 },
                Reload { sealed: false },
            ],
        ),
        (
            // A sending session archived: fan-out has no session for it, and a reset
            // request finds nothing to reset.
            "archive",
            vec![
                restore(1, 0),
                Encrypt { len: 1 },
                archive(1),
                archive(1),
                Encrypt { len: 2 },
                handle(1),
                Reload { sealed: false },
                remove(1),
                feed(2),
                Encrypt { len: 15 },
            ],
        ),
        (
            // A restored from its first stored state without adopting signs counter 2
            // again, with another device: the contact holding the first counter-2 list
            // answers ForkedDeviceList and does not change; counter 3 is taken; replays
            // refused. Then, restored from the state that still lists device 2 (removed
            // since, and seen removed by the contact), it signs a list that brings device
            // 2 back and the contact takes it: what adopting prevents.
            "rollback",
            vec![
                add(2, 3),
                feed(2),
                rollback(0, false),
                add(4, 5),
                feed(3),
                add(5, 6),
                feed(4),
                feed(2),
                feed(3),
                rollback(1, false),
                add(6, 7),
                feed(5),
                add(7, 8),
                feed(6),
            ],
        ),
        (
            // A restored from an older state adopts its newest list (the server's) first:
            // its next lists have new counters, and device 2, removed, never comes back.
            // Adopting the held list changes nothing; another account's is WrongRecord,
            // an older one StaleDeviceList, another with the held counter
            // ForkedDeviceList.
            "rollback-adopt",
            vec![
                add(2, 3),
                add(3, 4),
                feed(3),
                remove(2),
                feed(4),
                rollback(1, true),
                add(5, 6),
                feed(5),
                feed(4),
                rollback(2, false),
                adopt(3),
                add(6, 7),
                adopt(4),
                adopt(1),
                adopt(2),
                feed(6),
                adopt(5),
                add(7, 8),
                feed(7),
                rollback(0, true),
                add(8, 9),
                feed(8),
            ],
        ),
        ("full", full),
        (
            // Altered bytes of lists never parse: the header, the count, a cut, a byte
            // appended, a device's link signature, the list signature.
            "tamper",
            vec![
                Tamper {
                    list: 0,
                    at: 0,
                    mode: 0,
                },
                Tamper {
                    list: 0,
                    at: (LIST_COUNT * 8) as u16,
                    mode: 0,
                },
                Tamper {
                    list: 0,
                    at: 100,
                    mode: 1,
                },
                Tamper {
                    list: 1,
                    at: 7,
                    mode: 2,
                },
                Tamper {
                    list: 0,
                    at: ((LIST_ENTRIES + 40) * 8 + 5) as u16,
                    mode: 0,
                },
                Tamper {
                    list: 0,
                    at: ((LIST_ENTRIES + LIST_ENTRY) * 8 + 3) as u16,
                    mode: 0,
                },
                feed(0),
            ],
        ),
    ]
}

/// The fields of a [`PublishOp::Upload`] of the `publish` target's pool
/// (`publish::make_publish_fixture`): signed prekeys Bob 11, 12, 13 and Carol 11; one-time
/// prekeys 21..=25 and a second 21; post-quantum prekeys Bob one-time 31, 32, 33,
/// last-resort 41, 42 and a last-resort 31, Carol one-time 34 and last-resort 43.
#[derive(Clone, Copy, Default)]
struct Upload {
    carol: bool,
    signed: u8,
    created: u8,
    one_time: u8,
    rotate: u8,
    last_resort: u8,
    pq_one_time: u8,
    flip: Option<u16>,
    swap_identity: bool,
}

impl Upload {
    fn op(self) -> PublishOp {
        PublishOp::Upload {
            carol: self.carol,
            signed: self.signed,
            created: self.created,
            one_time: self.one_time,
            rotate: self.rotate,
            last_resort: self.last_resort,
            pq_one_time: self.pq_one_time,
            flip: self.flip,
            swap_identity: self.swap_identity,
        }
    }
}

/// Bob's upload of signed prekey `signed`, the one-time prekeys of `one_time` (a bit per
/// pool key), the last-resort post-quantum prekey `last_resort` (0 none, else pool index
/// + 1) and the one-time post-quantum prekeys of `pq_one_time`.
fn upload(signed: u8, one_time: u8, last_resort: u8, pq_one_time: u8) -> Upload {
    Upload {
        signed,
        one_time,
        last_resort,
        pq_one_time,
        ..Upload::default()
    }
}

/// The `publish` target's scripts.
fn publish_scripts() -> Vec<(&'static str, Vec<PublishOp>)> {
    use PublishOp::{Evict, Fetch, Resend};
    let damaged = |flip: Option<u16>, swap_identity: bool| {
        Upload {
            flip,
            swap_identity,
            ..upload(0, 0b11, 0, 0)
        }
        .op()
    };
    let carol = |u: Upload| Upload { carol: true, ..u }.op();
    vec![
        (
            "upload-and-fetch",
            vec![
                upload(0, 0b00111, 4, 0b011).op(),
                Fetch,
                Fetch,
                Fetch,
                Fetch,
                Resend,
                Fetch,
            ],
        ),
        (
            // A rotation; the older set again (a rollback) and the current signed prekey
            // with another creation time are refused.
            "rotation-and-rollback",
            vec![
                upload(0, 0b001, 4, 0b001).op(),
                Fetch,
                Upload {
                    rotate: 1,
                    ..upload(1, 0b110, 5, 0b110)
                }
                .op(),
                upload(0, 0b001, 4, 0b001).op(),
                Upload {
                    created: 1,
                    ..upload(1, 0, 0, 0)
                }
                .op(),
                Fetch,
                Resend,
                Fetch,
            ],
        ),
        (
            // Repeated ids within a set (refused by the constructors), a held id with
            // another key, a last-resort key with a held one-time id.
            "clashing-ids",
            vec![
                upload(0, 0b100001, 0, 0).op(),
                upload(0, 0b000001, 0, 0b001).op(),
                upload(0, 0b100000, 0, 0).op(),
                upload(0, 0, 6, 0b001).op(),
                upload(0, 0, 6, 0).op(),
                upload(0, 0, 4, 0b001000).op(),
                Fetch,
                Fetch,
            ],
        ),
        (
            // Carol's device first; Bob's set is then another identity's; keys Carol did
            // not sign are refused by the constructors.
            "other-identity",
            vec![
                carol(upload(3, 0b011, 8, 0b1000000)),
                upload(0, 0b100, 0, 0).op(),
                carol(upload(0, 0, 0, 0)),
                carol(upload(3, 0, 4, 0)),
                Fetch,
            ],
        ),
        (
            // Another identity key; then one bit flipped in the signed prekey's creation
            // time (not signed), in its key, in the absent last-resort key's zeros, in the
            // first one-time prekey's key.
            "damaged",
            vec![
                damaged(None, true),
                damaged(Some(147 * 8), false),
                damaged(Some(50 * 8 + 3), false),
                damaged(Some(300 * 8), false),
                damaged(Some(1440 * 8 + 1), false),
                Fetch,
            ],
        ),
        (
            // More one-time prekeys than the server's bound, then evictions.
            "bound-and-evict",
            vec![
                upload(0, 0b11111, 4, 0b111).op(),
                Evict { pq: false, key: 2 },
                Evict { pq: true, key: 1 },
                Evict { pq: true, key: 3 },
                Fetch,
                Fetch,
                Resend,
                Fetch,
                Fetch,
            ],
        ),
    ]
}

/// The `symmetric` target's scripts. Pool indices: Alice's chain 1 is 0..5, her current
/// chain 2 is 5..13; the first of each Bob has accepted.
fn symmetric_scripts() -> Vec<(&'static str, Vec<SymOp>)> {
    use SymOp::*;
    assert_eq!(CHAIN_LENGTHS, [1, 5, 8], "the scripts' pool indices");
    let deliver = |msgs: &[u8]| msgs.iter().map(|&msg| Deliver { msg }).collect::<Vec<_>>();
    vec![
        ("in-order", deliver(&[6, 7, 8, 9, 10, 11, 12, 1, 2, 3, 4])),
        ("reverse", deliver(&[12, 11, 10, 9, 8, 7, 6, 4, 3, 2, 1])),
        ("duplicates", deliver(&[7, 7, 0, 1, 1, 5, 12, 12])),
        (
            "late-after-reload",
            vec![
                Deliver { msg: 10 },
                Reload { sealed: true },
                Deliver { msg: 6 },
                Deliver { msg: 1 },
                Reload { sealed: false },
                Deliver { msg: 8 },
            ],
        ),
        (
            "tamper",
            vec![
                FlipBit { msg: 7, bit: 300 },
                Truncate { msg: 8, at: 40 },
                Splice {
                    a: 9,
                    b: 10,
                    at: 50,
                },
                FlipBit { msg: 1, bit: 323 },
                Deliver { msg: 9 },
                BobSends { len: 5 },
                Deliver { msg: 10 },
            ],
        ),
        (
            "limits",
            vec![
                SetLimits {
                    max_skip: 2,
                    max_stored: 3,
                },
                Deliver { msg: 12 },
                Deliver { msg: 11 },
                Deliver { msg: 7 },
                SetLimits {
                    max_skip: 255,
                    max_stored: 0,
                },
                BobSends { len: 70 },
                Deliver { msg: 1 },
            ],
        ),
    ]
}

fn session_scripts() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    vec![
        (
            "ping-pong",
            vec![
                AliceSends { len: 5 },
                Deliver { idx: 0 },
                BobSends { len: 7 },
                Deliver { idx: 0 },
                AliceSends { len: 3 },
                Deliver { idx: 0 },
                BobSends { len: 0 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "out-of-order",
            vec![
                AliceSends { len: 4 },
                AliceSends { len: 4 },
                AliceSends { len: 4 },
                Deliver { idx: 2 },
                Duplicate { idx: 0 },
                Deliver { idx: 0 },
                BobSends { len: 9 },
                BobSends { len: 9 },
                Deliver { idx: 2 },
                AliceSends { len: 1 },
                Deliver { idx: 2 },
                Deliver { idx: 0 },
                Deliver { idx: 0 },
                Replay { msg: 0 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "first-message-lost",
            vec![
                AliceSends { len: 2 },
                AliceSends { len: 2 },
                Drop { idx: 0 },
                Deliver { idx: 0 },
                BobSends { len: 6 },
                Deliver { idx: 0 },
                AliceSends { len: 8 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "tamper",
            vec![
                AliceSends { len: 16 },
                Duplicate { idx: 0 },
                FlipBit { idx: 0, bit: 300 },
                Deliver { idx: 0 },
                Truncate { idx: 0, at: 140 },
                Duplicate { idx: 0 },
                Deliver { idx: 1 },
                AliceSends { len: 16 },
                Splice {
                    a: 0,
                    b: 1,
                    at: 130,
                },
                Deliver { idx: 2 },
                Deliver { idx: 1 },
                BobSends { len: 1 },
                Reflect { idx: 1 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "storage-and-limits",
            vec![
                AliceSends { len: 3 },
                Deliver { idx: 0 },
                Reload {
                    side: Side::Bob,
                    sealed: true,
                },
                BobSends { len: 3 },
                BobSends { len: 3 },
                BobSends { len: 3 },
                SetLimits {
                    side: Side::Alice,
                    max_skip: 1,
                    max_stored: 1,
                },
                Deliver { idx: 2 },
                Deliver { idx: 0 },
                Reload {
                    side: Side::Alice,
                    sealed: false,
                },
                SetLimits {
                    side: Side::Bob,
                    max_skip: 255,
                    max_stored: 0,
                },
                Reorder { a: 0, b: 1 },
                Deliver { idx: 0 },
            ],
        ),
    ]
}

/// The seed corpora: small valid inputs for every target, all derived from fixed seeds,
/// so regenerating them gives the same bytes. Panics if an encoding helper of this file
/// disagrees with the crate or with `arbitrary`.
pub fn seeds() -> Vec<Seed> {
    // This file's plaintext encoding agrees with SPEC.md §4.9's examples and bounds.
    for (len, padme) in [(0, 64), (63, 64), (64, 72), (100, 104), (1000, 1024)] {
        assert_eq!(encoded_length(Padding::Padme, len), padme, "Padmé of {len}");
        assert_eq!(encoded_length(Padding::None, len), len + 1);
    }
    // SPEC.md §4.9 with part 2's largest prefix (1247 bytes): 2^20 - 1247 - 16 - 1.
    assert_eq!(MAX_PLAINTEXT_SIZE, 1_047_312);
    for padding in [Padding::Padme, Padding::None] {
        assert_eq!(encoded_length(padding, MAX_PLAINTEXT_SIZE), 1_047_313);
    }
    assert_eq!(
        [
            WIRE_VERSION,
            BUNDLE_VERSION,
            STORAGE_VERSION,
            SAFETY_NUMBER_VERSION
        ],
        [0x02, 0x02, 0x02, 0x01]
    );
    let fx = fixture();
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        out.push(Seed {
            target,
            name: name.to_string(),
            data,
        });
    };

    // decode_message: each message kind, and bundles. `fx.initial` holds three classical
    // messages with a one-time prekey, one without, two header-encrypted ones, then one
    // without padding; `fx.probes` a classical conversation, then a header-encrypted one,
    // then one without padding.
    add(
        "decode_message",
        "initial-with-opk",
        fx.initial[0].wire.clone(),
    );
    add(
        "decode_message",
        "initial-no-opk",
        fx.initial[3].wire.clone(),
    );
    add("decode_message", "initial-he", fx.initial[4].wire.clone());
    add("decode_message", "normal", fx.probes[1].0.clone());
    add("decode_message", "normal-he", fx.probes[4].0.clone());
    add("decode_message", "bundle", fx.bundle.to_bytes());
    #[cfg(feature = "pqxdh")]
    {
        let pq = |he: bool| fx.initial[genuine_pq(he, true)].wire.clone();
        add("decode_message", "initial-pq", pq(false));
        add("decode_message", "initial-pq-he", pq(true));
        add("decode_message", "bundle-pq", fx.pq.bundle.to_bytes());
    }

    // session: scripts in the target's input format.
    for (name, ops) in session_scripts() {
        let bytes = ops_to_bytes(&ops);
        assert_eq!(
            ops_from_bytes(&bytes),
            ops,
            "ops encoding of {name} is wrong"
        );
        // The first byte is the mode: bit 0 header encryption, bit 1 PQXDH, bit 2 Alice
        // and bit 3 Bob without padding.
        for (mode, prefix) in [
            (0u8, ""),
            (1, "he-"),
            (2, "pq-"),
            (3, "he-pq-"),
            (4, "nopad-alice-"),
            (0b1011, "he-pq-nopad-bob-"),
        ] {
            let data = [&[mode][..], &bytes].concat();
            add("session", &format!("{prefix}{name}"), data);
        }
    }

    // symmetric: scripts in the target's input format; the first byte is the mode (bit 0
    // header encryption).
    for (name, ops) in symmetric_scripts() {
        let bytes = sym_ops_to_bytes(&ops);
        assert_eq!(
            sym_ops_from_bytes(&bytes),
            ops,
            "symmetric ops encoding of {name} is wrong"
        );
        for (mode, prefix) in [(0u8, ""), (1, "he-")] {
            add(
                "symmetric",
                &format!("{prefix}{name}"),
                [&[mode][..], &bytes].concat(),
            );
        }
    }

    // respond: one input per mode.
    let with_mode = |mode: u8, rest: &[u8]| [&[mode][..], rest].concat();
    add("respond", "raw-with-opk", with_mode(0, &fx.initial[0].wire));
    add("respond", "raw-no-opk", with_mode(0, &fx.initial[3].wire));
    add("respond", "raw-he", with_mode(0, &fx.initial[4].wire));
    let unpadded = fx
        .initial
        .iter()
        .position(|g| g.padding == Padding::None)
        .unwrap();
    assert_eq!(unpadded, 6);
    add(
        "respond",
        "raw-unpadded",
        with_mode(0, &fx.initial[unpadded].wire),
    );
    add(
        "respond",
        "field-sealed-header",
        with_mode(2, &[4, 8, 0xff]),
    );
    // The one-time prekey flag (byte 74) of a message that has one, overwritten by 1.
    add(
        "respond",
        "overwrite",
        with_mode(1, &[2, INITIAL_OPK_FLAG as u8, 0, 1]),
    );
    // The id of Bob's second one-time prekey (held, but not the one Alice used).
    let field_opk_id = [&[0u8, 6][..], &fx.opk_ids[1].to_u64().to_be_bytes()].concat();
    add("respond", "field-opk-id", with_mode(2, &field_opk_id));
    add(
        "respond",
        "bit-flips",
        with_mode(3, &[1, 0x10, 0x02, 0x80, 0x03]),
    );
    // PQXDH: a one-time and a last-resort post-quantum prekey, a sealed header; then the
    // modes on PQXDH messages (picked by index into `fx.initial`).
    #[cfg(feature = "pqxdh")]
    {
        let one_time = genuine_pq(false, true);
        let last_resort = genuine_pq(false, false);
        let sealed = genuine_pq(true, true);
        let pick = |i: usize| u8::try_from(i).unwrap();
        add(
            "respond",
            "raw-pq-one-time",
            with_mode(0, &fx.initial[one_time].wire),
        );
        add(
            "respond",
            "raw-pq-last-resort",
            with_mode(0, &fx.initial[last_resort].wire),
        );
        add(
            "respond",
            "raw-pq-he",
            with_mode(0, &fx.initial[sealed].wire),
        );
        // The id of Bob's first one-time post-quantum prekey on a last-resort message:
        // decapsulation with the wrong key.
        let pq_field_id = [
            &[pick(last_resort), 7][..],
            &fx.pq.one_time_ids[0].to_u64().to_be_bytes(),
        ]
        .concat();
        add("respond", "pq-field-id", with_mode(2, &pq_field_id));
        add(
            "respond",
            "pq-field-kem",
            with_mode(2, &[pick(one_time), 9, 0xff]),
        );
        add(
            "respond",
            "pq-he-field-sealed-header",
            with_mode(2, &[pick(sealed), 11, 0xff]),
        );
        add(
            "respond",
            "pq-overwrite",
            with_mode(1, &[pick(last_resort), 0x00, 0x04, 0xaa]),
        );
        // Bit 0 of the KEM ciphertext's first byte (91), and a bit in its middle.
        let first_kem_bit = u16::try_from(KEM_CT.start * 8).unwrap().to_le_bytes();
        add(
            "respond",
            "pq-bit-flips",
            with_mode(
                3,
                &[pick(sealed), first_kem_bit[0], first_kem_bit[1], 0x00, 0x24],
            ),
        );
    }

    // load: every stored type, plain and sealed (with the first load context, a few with the
    // empty one).
    let key = &fx.storage_key;
    let [context, empty] = LOAD_CONTEXTS;
    let mut seal_rng = rng(11);
    for (mode, name, state) in fx.states.iter().filter(|(m, _, _)| !m.contains("pq")) {
        let s = Session::from_bytes(state, state_owner(name)).unwrap();
        if *mode == "nopad-" {
            // Sessions without padding (padding byte 0x00): two states, not sealed.
            assert_eq!(s.padding(), Padding::None);
            if matches!(*name, "alice-awaiting-reply" | "bob-after-ratchet") {
                add("load", &format!("{mode}session-{name}"), state.clone());
            }
            continue;
        }
        add("load", &format!("{mode}session-{name}"), state.clone());
        // Alice's states sealed with the load context, Bob's with the empty one.
        let c = if name.starts_with("alice") {
            context
        } else {
            empty
        };
        add(
            "load",
            &format!("sealed-{mode}session-{name}"),
            key.seal(&s, c, &mut seal_rng).unwrap(),
        );
    }
    add("load", "identity", fx.carol.to_bytes().to_vec());
    add(
        "load",
        "sealed-identity",
        key.seal(&fx.carol, context, &mut seal_rng).unwrap(),
    );
    add("load", "signed-prekey", fx.carol_spk.to_bytes().to_vec());
    add(
        "load",
        "sealed-signed-prekey",
        key.seal(&fx.carol_spk, context, &mut seal_rng).unwrap(),
    );
    add("load", "one-time-prekey", fx.carol_opk.to_bytes().to_vec());
    add(
        "load",
        "sealed-one-time-prekey",
        key.seal(&fx.carol_opk, empty, &mut seal_rng).unwrap(),
    );
    // Bob's classical device (type 0x2A): his identity, a current and a standby signed
    // prekey created at time 0, three unpublished one-time prekeys (sequence numbers
    // 0..=2), no records.
    add("load", "prekey-store", fx.classical_store_bytes.clone());
    let classical_store = LocalDevice::from_bytes(&fx.classical_store_bytes).unwrap();
    add(
        "load",
        "sealed-prekey-store",
        key.seal(&classical_store, context, &mut seal_rng).unwrap(),
    );
    // The same without its standby and with replay capacity 1: the `load` target's
    // probe without a one-time prekey fills the current signed prekey
    // (`SignedPreKeyFull`).
    let mut no_standby = without_standby(&fx.classical_store_bytes);
    no_standby[DEVICE_REPLAY_CAPACITY].copy_from_slice(&1u32.to_be_bytes());
    add("load", "prekey-store-no-standby", no_standby);
    // The same with a one-time prekey cap of 3 (the `load` target's generation evicts the
    // two oldest) and its first one-time prekey published.
    let mut small_cap = LocalDevice::from_bytes(&fx.classical_store_bytes).unwrap();
    small_cap.set_one_time_prekey_cap(3).unwrap();
    assert_eq!(
        small_cap.mark_one_time_prekeys_published(&fx.opk_ids[..1]),
        1
    );
    let small_cap = small_cap.to_bytes().to_vec();
    assert_eq!(small_cap[DEVICE_ONE_TIME_CAP], 3u32.to_be_bytes());
    add("load", "prekey-store-small-cap", small_cap);
    // Replay records under two signed prekeys: replay capacity 2, two sessions without a
    // one-time prekey filled the first (the store switched to its standby), `maintain` a
    // day later (the first replaced then, a new standby), a third session left a record
    // under the second; one-time prekeys generated since.
    let records = store_with_records(&fx.classical_store_bytes);
    add(
        "load",
        "sealed-prekey-store-records",
        key.seal(&records, context, &mut seal_rng).unwrap(),
    );
    add("load", "prekey-store-records", records.to_bytes().to_vec());
    // PQXDH: stored sessions (type 0x25, and 0x28 with the PQXDH flag), a post-quantum
    // prekey (0x26), devices with post-quantum prekeys and replay records (0x2A); some
    // sealed. Not every state: PQXDH states awaiting a reply are 1.4 KB.
    #[cfg(feature = "pqxdh")]
    {
        let mut seal_rng = rng(14);
        for (mode, name, state) in &fx.states {
            if !mode.contains("pq") {
                continue;
            }
            let keep = matches!(
                (*mode, *name),
                (
                    "pq-",
                    "alice-awaiting-reply" | "bob-after-reply" | "alice-one-skipped"
                ) | ("he-pq-", "alice-awaiting-reply" | "bob-after-ratchet")
            );
            if keep {
                add("load", &format!("{mode}session-{name}"), state.clone());
            }
            if (*mode, *name) == ("pq-", "bob-after-reply") {
                let s = Session::from_bytes(state, state_owner(name)).unwrap();
                add(
                    "load",
                    &format!("sealed-{mode}session-{name}"),
                    key.seal(&s, context, &mut seal_rng).unwrap(),
                );
            }
        }
        add("load", "pq-prekey", fx.pq.carol_pq.to_bytes().to_vec());
        add(
            "load",
            "sealed-pq-prekey",
            key.seal(&fx.pq.carol_pq, context, &mut seal_rng).unwrap(),
        );
        add("load", "prekey-store-pq", fx.store_bytes.clone());
        add(
            "load",
            "sealed-prekey-store-pq",
            key.seal(&fx.store, empty, &mut seal_rng).unwrap(),
        );
        add(
            "load",
            "prekey-store-replay-records",
            fx.pq.store_with_records.clone(),
        );
    }

    // bundle: Bob's (with and without a one-time prekey), a third party's, Alice's own,
    // and one with a broken signature.
    add("bundle", "bob", fx.bundle.to_bytes());
    add("bundle", "bob-last-resort", fx.bundle_no_opk.to_bytes());
    add(
        "bundle",
        "carol",
        bundle_of(&fx.carol, &fx.carol_spk, Some(&fx.carol_opk)).to_bytes(),
    );
    add(
        "bundle",
        "alice-own",
        bundle_of(&fx.alice, &fx.alice_spk, None).to_bytes(),
    );
    let mut forged = fx.bundle.to_bytes();
    forged[BUNDLE_SPK.end] ^= 1;
    add("bundle", "bad-signature", forged);
    // PQXDH bundles: Bob's (one-time and last-resort post-quantum prekey), a third party's,
    // one with a broken post-quantum signature.
    #[cfg(feature = "pqxdh")]
    {
        add("bundle", "bob-pq", fx.pq.bundle.to_bytes());
        add(
            "bundle",
            "bob-pq-last-resort",
            fx.pq.bundle_last_resort.to_bytes(),
        );
        add("bundle", "carol-pq", fx.pq.carol_bundle.to_bytes());
        let mut forged = fx.pq.bundle.to_bytes();
        forged[BUNDLE_PQ_SIGNATURE.start + 3] ^= 1;
        add("bundle", "bob-pq-bad-signature", forged);
    }

    // publish: each publishing encoding (every input is parsed as all four types), and
    // scripts of operations against the model server.
    let pfx = publish_fixture();
    let signed = SignedPreKeyPublic::from_key(&pfx.signed[0].0, 1_767_225_600).unwrap();
    add("publish", "signed-part", signed.to_bytes());
    add("publish", "one-time-part", pfx.one_time[0].to_bytes());
    let set = UploadSet::new(&pfx.identities[0], signed, pfx.one_time[..2].to_vec()).unwrap();
    add("publish", "upload-set", set.to_bytes());
    #[cfg(feature = "pqxdh")]
    {
        let one_time = PqPreKeyPublic::one_time(&pfx.pq[0].0).unwrap();
        let last_resort = PqPreKeyPublic::last_resort(&pfx.pq[3].0, 1_767_312_000).unwrap();
        add("publish", "pq-one-time-part", one_time.to_bytes());
        add("publish", "pq-last-resort-part", last_resort.to_bytes());
        let set = set
            .with_post_quantum(Some(last_resort), vec![one_time])
            .unwrap();
        add("publish", "pq-upload-set", set.to_bytes());
    }
    for (name, ops) in publish_scripts() {
        let bytes = publish_ops_to_bytes(&ops);
        assert_eq!(
            publish_ops_from_bytes(&bytes),
            ops,
            "publish ops encoding of {name} is wrong"
        );
        add("publish", name, bytes);
    }

    // record: scripts in the target's input format.
    for (name, ops) in record_scripts() {
        let bytes = record_ops_to_bytes(&ops);
        assert_eq!(
            record_ops_from_bytes(&bytes),
            ops,
            "record ops encoding of {name} is wrong"
        );
        add("record", name, bytes);
    }

    // record_load: Alice's record at each stage of the `record` target's fixture (empty,
    // after the simultaneous initiation, the fixture, after a reset, with small limits;
    // with PQXDH also the fixture with its PQXDH session), some sealed.
    let rfx = record_fixture();
    let mut seal_rng = rng(16);
    for (name, bytes) in &rfx.snapshots {
        add("record_load", &format!("record-{name}"), bytes.clone());
        let context = match name.as_str() {
            "fixture" | "pq-fixture" => Some(context),
            "reset" => Some(empty),
            _ => None,
        };
        if let Some(context) = context {
            let r = reload_record(bytes);
            add(
                "record_load",
                &format!("sealed-record-{name}"),
                key.seal(&r, context, &mut seal_rng).unwrap(),
            );
        }
    }

    // device_list: lists as bytes (A's first, B's, A's with 16 devices and with none), links
    // as bytes (key 3 as A's device 2; A's own key as its device 5, refused), and scripts in
    // the target's input format.
    let lfx = list_fixture();
    let mut a = lfx.account(false);
    add("device_list", "list-a", a.device_list().to_bytes());
    add(
        "device_list",
        "list-b",
        lfx.account(true).device_list().to_bytes(),
    );
    let account_a = *a.account_key();
    add(
        "device_list",
        "link-a-2",
        lfx.link(3, &account_a, 2).to_bytes().to_vec(),
    );
    add(
        "device_list",
        "link-account-key",
        lfx.link(18, &account_a, 5).to_bytes().to_vec(),
    );
    let first_a = a.device_list().clone();
    for id in 2..=16u32 {
        a.add_device(&lfx.link(id as u8 + 1, &account_a, id))
            .unwrap();
    }
    let full = a.device_list().clone();
    assert_eq!(full.len(), MAX_DEVICES);
    add("device_list", "list-full", full.to_bytes());
    let mut no_devices = lfx.account(false);
    no_devices.remove_device(DeviceId::new(1)).unwrap();
    add(
        "device_list",
        "list-empty",
        no_devices.device_list().to_bytes(),
    );
    for (name, ops) in list_scripts() {
        let bytes = list_ops_to_bytes(&ops);
        assert_eq!(
            list_ops_from_bytes(&bytes),
            ops,
            "device_list ops encoding of {name} is wrong"
        );
        add("device_list", name, bytes);
    }

    // contact_load: stored accounts (A, B, A with 16 devices and with none) and contacts
    // (first use; verified with the full list and small limits; with the post-quantum
    // memory; with an empty list), two of them sealed.
    let mut seal_rng = rng(17);
    add("contact_load", "account-a", lfx.accounts[0].clone());
    add("contact_load", "account-b", lfx.accounts[1].clone());
    add("contact_load", "account-full", a.to_bytes().to_vec());
    add(
        "contact_load",
        "account-empty",
        no_devices.to_bytes().to_vec(),
    );
    let account_a = lfx.account(false);
    add(
        "contact_load",
        "sealed-account-a",
        key.seal(&account_a, context, &mut seal_rng).unwrap(),
    );
    let local = lfx.local.public_key();
    let first_use = Contact::first_use(local, &first_a, RecordLimits::default()).unwrap();
    add(
        "contact_load",
        "contact-first-use",
        first_use.to_bytes().to_vec(),
    );
    let small = RecordLimits::default()
        .with_max_archived(2)
        .with_max_trials(1)
        .with_max_stored_skipped(0)
        .with_unacknowledged_after(60)
        .with_reset_interval(0);
    let verified = Contact::verified(local, full.account_key(), &full, small).unwrap();
    add(
        "contact_load",
        "contact-verified-full",
        verified.to_bytes().to_vec(),
    );
    let mut post_quantum = first_use.to_bytes().to_vec();
    post_quantum[crate::contact_load::CONTACT_POST_QUANTUM] = 1;
    add("contact_load", "contact-post-quantum", post_quantum);
    let empty_contact =
        Contact::first_use(local, no_devices.device_list(), RecordLimits::default()).unwrap();
    add(
        "contact_load",
        "contact-empty-list",
        empty_contact.to_bytes().to_vec(),
    );
    add(
        "contact_load",
        "sealed-contact-first-use",
        key.seal(&first_use, empty, &mut seal_rng).unwrap(),
    );

    // group_message: the fixture's messages (ahead, skipped, received already, before the
    // distribution, of a retired and of a pending chain, near 2^32 - 1, made by hand by A's
    // chain 4, signed by C's chain, of another group), two out of bounds, and
    // distributions (a pending chain, older ones of held chains, a retired chain's, a
    // conflicting one, an exhausted one, C's next chain, another group's).
    let gfx = group_fixture();
    for label in [
        "a-chain4-6",
        "a-chain4-3",
        "a-chain4-2",
        "a-chain5-0",
        "a-chain5-3",
        "a-chain0-0",
        "a-chain6-1",
        "c-chain0-max-3",
        "c-chain0-max-2",
        "c-chain0-max-1",
        "c-chain1-0",
        "a-chain4-3-other",
        "a-chain4-7-other",
        "a-chain4-4-no-end-marker",
        "a-chain4-6-wrong-commitment",
        "a-chain4-1-damaged",
        "a-chain4-6-signed-by-c",
        "a-other-group-0",
    ] {
        add(
            "group_message",
            &format!("msg-{label}"),
            gfx.message(label).to_vec(),
        );
    }
    // Chain 4 is at iteration 6: 25 001 ahead is too far; 2 100 ahead is not (signed again
    // by the target, it costs 2 100 steps and is refused).
    for (name, iteration) in [("too-far-ahead", 6 + 25_001u32), ("far-ahead", 6 + 2_100)] {
        let mut m = gfx.message("a-chain4-7").to_vec();
        m[MESSAGE_ITERATION..MESSAGE_ITERATION + 4].copy_from_slice(&iteration.to_be_bytes());
        add("group_message", &format!("msg-a-chain4-{name}"), m);
    }
    assert!(gfx.message("a-chain4-7").len() > GROUP_PREFIX + SIGNATURE);
    for label in [
        "a-chain6",
        "a-chain6-at-1",
        "a-chain4",
        "a-chain5-at-2",
        "a-chain5-at-5",
        "a-chain0",
        "a-chain4-conflicting",
        "a-chain6-exhausted",
        "c-chain1",
        "a-other-group",
    ] {
        add(
            "group_message",
            &format!("dist-{label}"),
            gfx.distribution(label).to_vec(),
        );
    }

    // Chain 5 (held at iteration 2) 25 001 iterations ahead: its chain key taken unchecked.
    let mut far = gfx.distribution("a-chain5-at-5").to_vec();
    far[crate::group_fixture::DIST_ITERATION..crate::group_fixture::DIST_ITERATION + 4]
        .copy_from_slice(&(2 + 25_001u32).to_be_bytes());
    add("group_message", "dist-a-chain5-far-ahead", far);

    // group_session: scripts in the target's input format.
    for (name, ops) in group_session_scripts() {
        let bytes = group_ops_to_bytes(&ops);
        assert_eq!(
            group_ops_from_bytes(&bytes),
            ops,
            "group_session ops encoding of {name} is wrong"
        );
        add("group_session", name, bytes);
    }

    // group_load: stored groups and member chains, B's group and A's chains sealed.
    for (name, bytes) in gfx.stored_groups.iter().chain(&gfx.stored_chains) {
        add("group_load", name, bytes.clone());
    }
    // A's chains with chain 4's signing key replaced by C's chain's: chain 4's genuine
    // messages are refused there, and its message signed by C's chain decrypts.
    let mut foreign = crate::group_fixture::ChainsView::parse(&gfx.stored_chains[0].1);
    let chain4 = be_u64(
        gfx.message("a-chain4-6"),
        crate::group_fixture::MESSAGE_CHAIN,
    );
    let c0 = be_u64(
        gfx.message("c-chain0-max-3"),
        crate::group_fixture::MESSAGE_CHAIN,
    );
    foreign
        .chains
        .iter_mut()
        .find(|c| c.id == chain4)
        .unwrap()
        .signing = gfx.registry.chains[&c0].signing;
    add(
        "group_load",
        "chains-a-chain4-signed-by-c",
        foreign.encode(),
    );
    let mut seal_rng = rng(18);
    let receiver = doubleratchet::Group::from_bytes(&gfx.stored_groups[0].1).unwrap();
    add(
        "group_load",
        "sealed-group-b",
        key.seal(&receiver, context, &mut seal_rng).unwrap(),
    );
    let chains_a = doubleratchet::MemberChains::from_bytes(&gfx.stored_chains[0].1).unwrap();
    add(
        "group_load",
        "sealed-chains-a",
        key.seal(&chains_a, empty, &mut seal_rng).unwrap(),
    );

    // safety_number: the genuine byte form, one that differs, one of a future version,
    // and Alice's and Bob's identity keys (which the target computes the number of).
    let genuine = fx.safety_number.to_bytes();
    add("safety_number", "genuine", genuine.to_vec());
    let mut mismatch = genuine;
    mismatch[40] ^= 1;
    add("safety_number", "mismatch", mismatch.to_vec());
    let mut future = genuine;
    future[0] = SAFETY_NUMBER_VERSION + 1;
    add("safety_number", "future-version", future.to_vec());
    let keys = [
        fx.alice.public_key().as_bytes(),
        fx.bob.public_key().as_bytes(),
    ]
    .map(|k| &k[..])
    .concat();
    add("safety_number", "keys", keys);
    out
}

/// Bob's classical store (`store_bytes`) with replay records under two signed prekeys:
/// replay capacity 2; two sessions without a one-time prekey fill the current signed
/// prekey, so the store switches to its standby; `maintain` a day later stamps the first
/// one's replacement time and generates a new standby (nothing is old enough to rotate or
/// retire); a third session leaves a record under the second; two more one-time prekeys.
pub(crate) fn store_with_records(store_bytes: &[u8]) -> LocalDevice {
    let fx = fixture();
    let mut store = LocalDevice::from_bytes(store_bytes).unwrap();
    let mut rng = rng(15);
    assert_eq!(store.set_replay_capacity(2), Ok(None));
    let first = store.current_signed_prekey().id();
    let standby = store.standby_signed_prekey().unwrap().id();
    let without_opk = store.bundle(None).unwrap();
    for i in 0..2 {
        let mut a =
            Session::initiate(&fx.alice, &without_opk, &SessionOptions::new(), &mut rng).unwrap();
        let m = a.encrypt(b"record", &mut rng).unwrap();
        let notice = store.accept(&m, &SessionOptions::new()).unwrap().notice;
        let expected = (i == 1).then_some(StoreNotice::SignedPreKeySwitched {
            previous: first,
            current: standby,
        });
        assert_eq!(notice, expected);
    }
    let day = 24 * 60 * 60;
    let report = store
        .maintain(day, &PreKeyPolicy::default(), &mut rng)
        .unwrap();
    assert!(report.replenished_standby && report.rotated_signed_prekey.is_none());
    assert!(report.retired_signed_prekeys.is_empty() && !report.clock_went_backwards);
    let second = store.bundle(None).unwrap();
    let mut a = Session::initiate(&fx.alice, &second, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"record", &mut rng).unwrap();
    assert_eq!(
        store.accept(&m, &SessionOptions::new()).unwrap().notice,
        None
    );
    store.generate_one_time_prekeys(2, &mut rng).unwrap();
    let view = store_view(&store.to_bytes());
    assert_eq!(view.signed.len(), 2);
    assert_eq!(view.records(first).map(<[_]>::len), Some(2));
    assert_eq!(view.signed(first).unwrap().superseded, Some(day));
    assert_eq!(view.records(standby).map(<[_]>::len), Some(1));
    assert_eq!(view.standby_created, Some(day));
    store
}

/// The index in `fixture().initial` of the first genuine PQXDH message with the header
/// encrypted or not, naming a one-time or a last-resort post-quantum prekey.
#[cfg(feature = "pqxdh")]
pub(crate) fn genuine_pq(header_encryption: bool, one_time: bool) -> usize {
    let fx = fixture();
    fx.initial
        .iter()
        .position(|g| {
            let Ok(Message::Initial(m)) = Message::parse(&g.wire) else {
                return false;
            };
            let id = m.post_quantum_prekey_id();
            g.post_quantum
                && g.header_encryption == header_encryption
                && id.is_some()
                && (id == Some(fx.pq.last_resort_id)) != one_time
        })
        .unwrap()
}
