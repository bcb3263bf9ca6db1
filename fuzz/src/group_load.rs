//! The `group_load` target: the storage encodings of a group (SPEC.md §7.11, type `0x2E`)
//! and of a member's chains (§7.12, type `0x2F`), plain and sealed.
//!
//! `Group::from_bytes` and `MemberChains::from_bytes` on the input, and
//! `StorageKey::open` of both with the `load` target's key and contexts: nothing panics;
//! each refuses exactly as a reading of its table in the order of SPEC.md §10.1 predicts
//! ([`expected_group`], [`expected_chains`]); what loads stores again to exactly the input,
//! agrees with it field by field and loads as no other type; a sealed object opens with its
//! context only and as one type only, and reseals. A loaded object is then used:
//!
//! - a group sends: its distribution carries the stored chain (id, iteration, chain key,
//!   the signing seed's public key) with a sender binding to its own identity; a receiver
//!   takes it (`InvalidEncoding` at the exhausted iteration) and decrypts the group's
//!   message, whose length is the padded one and whose fields are the chain's; the stored
//!   chain key steps as SPEC.md §11.1 says (`ChainExhausted` at 2^32 - 1, unchanged);
//!   `rotate`, `add_member` (`WrongRecord` for itself, `ChainExhausted` at 2^32 - 1,
//!   `DuplicateDevice`, `TooManyDevices` at the bound), `remove_member` (`NotGroupMember`)
//!   and `after_restore` (the new member list, a new chain; `WrongRecord` with itself
//!   listed) do as documented, changing nothing when they fail; every state stores and
//!   loads again;
//! - member chains, held by a receiver of their group that lists their member, decrypt the
//!   messages of the `group_message` fixture whose chain they hold and take the fixture's
//!   distributions of their member, each against the reference receiver
//!   ([`expect_decrypt`], [`expect_distribution`]); every state stores and loads again.

use crate::group_fixture::*;
use crate::prelude::*;
use doubleratchet::{Account, Contact, Group, GroupId, MemberChains, Storable};
use ed25519_dalek::SigningKey;

/// The errors of a stored object's header (SPEC.md §7): `TooLarge` above `max`, then the
/// version and type.
fn framing(data: &[u8], max: usize, kind: u8) -> Option<Error> {
    if data.len() > max {
        return Some(Error::TooLarge);
    }
    match data {
        [] | [STORAGE_VERSION] => Some(Error::Truncated),
        [v, ..] if *v != STORAGE_VERSION => Some(Error::UnsupportedVersion(*v)),
        [_, t, ..] if *t != kind => Some(Error::UnexpectedType(*t)),
        _ => None,
    }
}

/// An identity key at `at`: `Truncated` or `InvalidPublicKey`.
fn key_at(data: &[u8], at: usize) -> Result<[u8; 32], Error> {
    let bytes = data.get(at..at + 32).ok_or(Error::Truncated)?;
    IdentityKey::from_bytes(&arr32(bytes)).map_err(|_| Error::InvalidPublicKey)?;
    Ok(arr32(bytes))
}

/// What `Group::from_bytes` must say (SPEC.md §7.11, in the order of §10.1): `Ok` when it
/// must load.
pub(crate) fn expected_group(data: &[u8]) -> Result<(), Error> {
    use Error::{InvalidEncoding, TrailingData, Truncated};
    if let Some(e) = framing(data, MAX_STORED_GROUP, TYPE_GROUP) {
        return Err(e);
    }
    if data.len() < STORED_GROUP_OWN.start {
        return Err(Truncated);
    }
    let own = key_at(data, STORED_GROUP_OWN.start)?;
    match data.get(STORED_GROUP_PADDING) {
        None => return Err(Truncated),
        Some(0 | 1) => {}
        Some(_) => return Err(InvalidEncoding),
    }
    if data.len() < STORED_GROUP_MEMBERS {
        return Err(Truncated);
    }
    let count = be_u32(data, STORED_GROUP_COUNT) as usize;
    if count > doubleratchet::MAX_GROUP_MEMBERS {
        return Err(InvalidEncoding);
    }
    let mut last: Option<[u8; 32]> = None;
    for k in 0..count {
        // Each member's key, then at once: not the local identity, above the previous one.
        let member = key_at(data, STORED_GROUP_MEMBERS + 32 * k)?;
        if member == own || last.is_some_and(|l| l >= member) {
            return Err(InvalidEncoding);
        }
        last = Some(member);
    }
    if data.len() > STORED_GROUP_MEMBERS + 32 * count {
        return Err(TrailingData);
    }
    Ok(())
}

/// What `MemberChains::from_bytes` must say (SPEC.md §7.12, in the order of §10.1): `Ok`
/// when it must load.
pub(crate) fn expected_chains(data: &[u8]) -> Result<(), Error> {
    use Error::{InvalidEncoding, TrailingData, Truncated};
    if let Some(e) = framing(data, MAX_STORED_CHAINS, TYPE_MEMBER_CHAINS) {
        return Err(e);
    }
    if data.len() < CHAINS_MEMBER.start {
        return Err(Truncated);
    }
    key_at(data, CHAINS_MEMBER.start)?;
    // `r` and `c`, then their bounds.
    if data.len() <= CHAINS_COUNT {
        return Err(Truncated);
    }
    let retired_count = data[CHAINS_RETIRED_COUNT] as usize;
    let count = data[CHAINS_COUNT] as usize;
    if retired_count > doubleratchet::MAX_RETIRED_CHAINS || count > doubleratchet::MAX_MEMBER_CHAINS
    {
        return Err(InvalidEncoding);
    }
    let mut ids: Vec<u64> = Vec::new();
    let mut at = CHAINS_RETIRED;
    for _ in 0..retired_count {
        if data.len() < at + 8 {
            return Err(Truncated);
        }
        let id = be_u64(data, at);
        if ids.contains(&id) {
            return Err(InvalidEncoding);
        }
        ids.push(id);
        at += 8;
    }
    for _ in 0..count {
        // The id, then at once: neither retired nor held already.
        if data.len() < at + 8 {
            return Err(Truncated);
        }
        let id = be_u64(data, at);
        if ids.contains(&id) {
            return Err(InvalidEncoding);
        }
        ids.push(id);
        key_at(data, at + 8)?;
        if data.len() < at + CHAIN_FIXED {
            return Err(Truncated);
        }
        let next = be_u32(data, at + 40);
        let skipped = be_u32(data, at + 76) as usize;
        if skipped > doubleratchet::MAX_GROUP_SKIPPED {
            return Err(InvalidEncoding);
        }
        at += CHAIN_FIXED;
        let mut last: Option<u32> = None;
        for _ in 0..skipped {
            if data.len() < at + 4 {
                return Err(Truncated);
            }
            let i = be_u32(data, at);
            if last.is_some_and(|l| l >= i) || i >= next {
                return Err(InvalidEncoding);
            }
            last = Some(i);
            if data.len() < at + SKIPPED_ENTRY {
                return Err(Truncated);
            }
            at += SKIPPED_ENTRY;
        }
    }
    if data.len() > at {
        return Err(TrailingData);
    }
    Ok(())
}

/// A result agrees with what was expected; what loads is never `Internal`.
fn check_result<T>(
    what: &str,
    expected: Result<(), Error>,
    result: &Result<T, Error>,
    data: &[u8],
) {
    match (expected, result) {
        (Ok(()), Ok(_)) => {}
        (Ok(()), Err(e)) => panic!("a valid {what} refused: {e:?}: {}", hex(data)),
        (Err(e), Ok(_)) => panic!("{what} loaded, expected {e:?}: {}", hex(data)),
        (Err(e), Err(got)) => assert_eq!(*got, e, "{what}: {}", hex(data)),
    }
}

/// No other stored type loads `data`.
fn no_other_type(data: &[u8]) {
    assert!(!loads_as_session(data));
    assert!(IdentityKeyPair::from_bytes(data).is_err());
    assert!(SignedPreKey::from_bytes(data).is_err());
    assert!(OneTimePreKey::from_bytes(data).is_err());
    assert!(LocalDevice::from_bytes(data).is_err());
    assert!(SessionRecord::from_bytes(data).is_err());
    assert!(Account::from_bytes(data).is_err());
    assert!(Contact::from_bytes(data).is_err());
    #[cfg(feature = "pqxdh")]
    assert!(PqPreKey::from_bytes(data).is_err());
}

/// A loaded group agrees with its encoding `data` field by field.
fn check_group_fields(g: &Group, data: &[u8]) {
    assert_eq!(*g.to_bytes(), data, "a group re-encodes differently");
    assert_eq!(g.id().as_bytes()[..], data[STORED_GROUP_ID]);
    assert_eq!(g.own_identity().as_bytes()[..], data[STORED_GROUP_OWN]);
    let padding = if data[STORED_GROUP_PADDING] == 0 {
        Padding::None
    } else {
        Padding::Padme
    };
    assert_eq!(g.padding(), padding);
    assert_eq!(g.chain_id(), be_u64(data, STORED_GROUP_CHAIN));
    assert_eq!(g.iteration(), be_u32(data, STORED_GROUP_ITERATION));
    let members: Vec<&[u8]> = data[STORED_GROUP_MEMBERS..].chunks(32).collect();
    assert_eq!(members.len(), be_u32(data, STORED_GROUP_COUNT) as usize);
    assert_eq!(
        g.members()
            .iter()
            .map(|m| &m.as_bytes()[..])
            .collect::<Vec<_>>(),
        members
    );
    for m in g.members() {
        assert!(g.is_member(m));
    }
    assert!(!g.is_member(g.own_identity()));
    let _ = format!("{g:?}");
}

/// Seals `object` (whose encoding is `encoded`) again for `context`: it opens with that
/// context to the same encoding, with no other context (the other load context, the
/// context one byte longer), and as no other type.
fn check_reseal<T: Storable>(
    object: &T,
    encoded: &[u8],
    context: &[u8],
    open: impl Fn(&[u8], &[u8]) -> Result<Vec<u8>, Error>,
) {
    let key = &fixture().storage_key;
    let blob = key.seal(object, context, &mut rng(4)).unwrap();
    assert_eq!(open(&blob, context).unwrap(), encoded);
    let longer = [context, &[0u8][..]].concat();
    for other in LOAD_CONTEXTS
        .iter()
        .copied()
        .filter(|c| *c != context)
        .chain([&longer[..]])
    {
        assert_eq!(
            open(&blob, other).err(),
            Some(Error::DecryptionFailed),
            "a sealed blob opened with another context"
        );
    }
    assert_eq!(
        opened_types(&blob, context),
        1,
        "a sealed blob opens as several types"
    );
}

/// How many stored types `blob` opens as with `context`.
fn opened_types(blob: &[u8], context: &[u8]) -> usize {
    let key = &fixture().storage_key;
    [
        opens_as_session(blob, context),
        key.open::<IdentityKeyPair>(blob, context).is_ok(),
        key.open::<SignedPreKey>(blob, context).is_ok(),
        key.open::<OneTimePreKey>(blob, context).is_ok(),
        key.open::<LocalDevice>(blob, context).is_ok(),
        key.open::<SessionRecord>(blob, context).is_ok(),
        key.open::<Account>(blob, context).is_ok(),
        key.open::<Contact>(blob, context).is_ok(),
        key.open::<Group>(blob, context).is_ok(),
        key.open::<MemberChains>(blob, context).is_ok(),
        #[cfg(feature = "pqxdh")]
        key.open::<PqPreKey>(blob, context).is_ok(),
    ]
    .iter()
    .filter(|o| **o)
    .count()
}

/// The target: see the module documentation.
pub fn group_load(data: &[u8]) {
    let group = Group::from_bytes(data);
    check_result("group", expected_group(data), &group, data);
    let chains = MemberChains::from_bytes(data);
    check_result("member chains", expected_chains(data), &chains, data);
    if group.is_ok() || chains.is_ok() {
        no_other_type(data);
    }
    if let Ok(g) = group {
        check_group_fields(&g, data);
        exercise_group(g);
    }
    if let Ok(c) = chains {
        check_chains_fields(&c, data);
        exercise_chains(c);
    }

    let key = &fixture().storage_key;
    let mut opened = 0;
    for context in LOAD_CONTEXTS {
        if let Ok(g) = key.open::<Group>(data, context) {
            let bytes = g.to_bytes();
            assert_eq!(expected_group(&bytes), Ok(()));
            check_group_fields(&g, &bytes);
            check_reseal(&g, &bytes, context, |b, c| {
                key.open::<Group>(b, c).map(|g| g.to_bytes().to_vec())
            });
            exercise_group(g);
            opened += 1;
        }
        if let Ok(m) = key.open::<MemberChains>(data, context) {
            let bytes = m.to_bytes();
            assert_eq!(expected_chains(&bytes), Ok(()));
            check_chains_fields(&m, &bytes);
            check_reseal(&m, &bytes, context, |b, c| {
                key.open::<MemberChains>(b, c)
                    .map(|m| m.to_bytes().to_vec())
            });
            exercise_chains(m);
            opened += 1;
        }
    }
    assert!(opened <= 1, "a sealed blob opens {opened} times");
}

/// A group's encoding loads and stores again to the same bytes.
fn check_group_reloads(g: &Group) {
    let bytes = g.to_bytes();
    let loaded = Group::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("a group's own encoding does not load: {e:?}"));
    assert_eq!(*loaded.to_bytes(), *bytes, "a group re-encodes differently");
}

/// Runs `f` on `g`; if it fails, `g` is unchanged.
fn unchanged_on_error<T>(
    g: &mut Group,
    what: &str,
    f: impl FnOnce(&mut Group) -> Result<T, Error>,
) -> Result<T, Error> {
    let before = g.to_bytes();
    let result = f(g);
    if let Err(e) = &result {
        assert_eq!(
            *g.to_bytes(),
            *before,
            "a failed {what} ({e:?}) changed the group"
        );
    }
    result
}

/// Uses a loaded group (see the module documentation).
fn exercise_group(mut g: Group) {
    let fx = group_fixture();
    let stored = g.to_bytes().to_vec();
    let own = *g.own_identity();
    let id = *g.id();
    let iteration = g.iteration();
    let mut r = rng(0x6_10ad);

    // Its distribution: the stored chain, bound to its own identity.
    let d = g.distribution();
    let bytes = d.to_bytes();
    assert_eq!(bytes[DIST_GROUP], stored[STORED_GROUP_ID]);
    assert_eq!(be_u64(&bytes, DIST_CHAIN), g.chain_id());
    assert_eq!(be_u32(&bytes, DIST_ITERATION), iteration);
    assert_eq!(bytes[DIST_KEY], stored[STORED_GROUP_KEY]);
    let signing = SigningKey::from_bytes(&arr32(&stored[STORED_GROUP_SEED])).verifying_key();
    assert_eq!(bytes[DIST_SIGNING], signing.to_bytes());
    let bound = [
        GROUP_SENDER_LABEL,
        &bytes[DIST_GROUP],
        &bytes[DIST_CHAIN..DIST_CHAIN + 8],
        &bytes[DIST_SIGNING],
        own.as_bytes(),
    ]
    .concat();
    let binding = ed25519_dalek::Signature::from_bytes(&bytes[DIST_BINDING].try_into().unwrap());
    assert!(
        signing.verify_strict(&bound, &binding).is_ok(),
        "a distribution's binding does not verify"
    );
    assert_eq!(
        *g.to_bytes(),
        stored,
        "making a distribution changed the group"
    );

    // A receiver that lists the group's device takes it.
    let other = if own == fx.keys[B] {
        fx.keys[D]
    } else {
        fx.keys[B]
    };
    let receiver = Group::new(id, &other, &[own], &mut r).unwrap();
    let mut chains = MemberChains::new(&id, &own);
    let taken = receiver.process_distribution(&own, &bytes, &mut chains);
    if iteration == u32::MAX {
        assert_eq!(taken, Err(Error::InvalidEncoding));
    } else {
        assert_eq!(
            taken,
            Ok(doubleratchet::DistributionOutcome::Added { evicted: None })
        );
    }

    // It sends; the receiver decrypts; the chain key steps as SPEC.md §11.1 says.
    let sent = unchanged_on_error(&mut g, "encrypt", |g| g.encrypt(b"probe"));
    if iteration == u32::MAX {
        assert_eq!(sent, Err(Error::ChainExhausted));
    } else {
        let m = sent.unwrap();
        assert_eq!(m.len(), GROUP_OVERHEAD + encoded_length(g.padding(), 5));
        assert_eq!(m[MESSAGE_GROUP], stored[STORED_GROUP_ID]);
        assert_eq!(
            be_u64(&m, MESSAGE_CHAIN),
            be_u64(&stored, STORED_GROUP_CHAIN)
        );
        assert_eq!(be_u32(&m, MESSAGE_ITERATION), iteration);
        let ((_, cm), next) = step(&arr32(&stored[STORED_GROUP_KEY]));
        assert_eq!(m[MESSAGE_COMMITMENT], cm);
        let after = g.to_bytes();
        assert_eq!(after[STORED_GROUP_KEY], next);
        assert_eq!(be_u32(&after, STORED_GROUP_ITERATION), iteration + 1);
        assert_eq!(
            receiver.decrypt(&mut chains, &m).as_deref(),
            Ok(&b"probe"[..])
        );
        check_group_reloads(&g);
    }

    // Membership: itself, a member, a new device (an exhausted chain adds no one: its
    // distribution would be refused); removing a stranger, then a member.
    let members: Vec<IdentityKey> = g.members().to_vec();
    let chain = g.chain_id();
    let exhausted = g.iteration() == u32::MAX;
    assert_eq!(
        unchanged_on_error(&mut g, "add_member", |g| g.add_member(&own).map(|_| ())),
        Err(Error::WrongRecord)
    );
    if let Some(m) = members.first() {
        assert_eq!(
            unchanged_on_error(&mut g, "add_member", |g| g.add_member(m).map(|_| ())),
            Err(if exhausted {
                Error::ChainExhausted
            } else {
                Error::DuplicateDevice
            })
        );
    }
    let fresh = fx.keys.iter().find(|k| **k != own && !members.contains(k));
    if let Some(fresh) = fresh {
        let added = unchanged_on_error(&mut g, "add_member", |g| g.add_member(fresh));
        if exhausted {
            assert_eq!(added.err(), Some(Error::ChainExhausted));
        } else if members.len() >= doubleratchet::MAX_GROUP_MEMBERS {
            assert_eq!(added.err(), Some(Error::TooManyDevices));
        } else {
            let d = added.unwrap();
            assert_eq!(d.chain_id(), chain, "adding a member rotated the chain");
            assert!(g.is_member(fresh));
            assert_eq!(g.members().len(), members.len() + 1);
            assert!(g
                .members()
                .windows(2)
                .all(|w| w[0].as_bytes() < w[1].as_bytes()));
            check_group_reloads(&g);
        }
    }
    let stranger = fx.keys.iter().find(|k| **k != own && !g.is_member(k));
    if let Some(stranger) = stranger {
        assert_eq!(
            unchanged_on_error(&mut g, "remove_member", |g| g
                .remove_member(stranger, &mut r)
                .map(|_| ())),
            Err(Error::NotGroupMember)
        );
    }
    if let Some(m) = g.members().first().copied() {
        let count = g.members().len();
        let d = g.remove_member(&m, &mut r).unwrap();
        assert!(!g.is_member(&m));
        assert_eq!(g.members().len(), count - 1);
        assert_ne!(g.chain_id(), chain, "removing a member did not rotate");
        assert_eq!((d.chain_id(), d.iteration()), (g.chain_id(), 0));
        check_group_reloads(&g);
    }
    let before = g.chain_id();
    let d = g.rotate(&mut r).unwrap();
    assert_ne!(g.chain_id(), before, "a rotation kept the chain id");
    assert_eq!(
        (d.chain_id(), d.iteration(), g.iteration()),
        (g.chain_id(), 0, 0)
    );
    check_group_reloads(&g);

    // Restored from the stored copy: the current member list (with the local identity
    // among it: refused, unchanged; then the stored one and a fixture key more) and a new
    // chain.
    let mut restored = Group::from_bytes(&stored).unwrap();
    let mut list = members.clone();
    list.push(own);
    assert_eq!(
        unchanged_on_error(&mut restored, "after_restore", |g| g
            .after_restore(&list, &mut r)
            .map(|_| ())),
        Err(Error::WrongRecord)
    );
    list.pop();
    if let Some(extra) = fresh {
        if list.len() < doubleratchet::MAX_GROUP_MEMBERS {
            list.push(*extra);
        }
    }
    let d = restored.after_restore(&list, &mut r).unwrap();
    assert_ne!(restored.chain_id(), be_u64(&stored, STORED_GROUP_CHAIN));
    assert_eq!((d.chain_id(), d.iteration()), (restored.chain_id(), 0));
    let mut sorted: Vec<[u8; 32]> = list.iter().map(|k| *k.as_bytes()).collect();
    sorted.sort_unstable();
    let listed: Vec<[u8; 32]> = restored.members().iter().map(|k| *k.as_bytes()).collect();
    assert_eq!(listed, sorted);
    check_group_reloads(&restored);
}

/// Uses loaded member chains (see the module documentation).
fn exercise_chains(mut chains: MemberChains) {
    let fx = group_fixture();
    let reg = &fx.registry;
    let id = *chains.group_id();
    let member = *chains.member();
    // The fixture's receiver when it fits; else a receiver of this group listing the
    // member (an own identity other than the member's).
    let made;
    let receiver = if id == fx.id && fx.receiver.is_member(&member) {
        &fx.receiver
    } else {
        let own = if member == fx.keys[B] {
            fx.keys[D]
        } else {
            fx.keys[B]
        };
        made = Group::new(
            GroupId::from_bytes(*id.as_bytes()),
            &own,
            &[member],
            &mut rng(0x6_10ae),
        )
        .unwrap();
        &made
    };
    let held: Vec<u64> = chains.chain_ids().collect();
    for (_, m) in &fx.messages {
        if held.contains(&be_u64(m, MESSAGE_CHAIN)) {
            let _ = group_decrypt_checked(receiver, &mut chains, m, reg.signer(m), reg);
        }
    }
    for (_, sender, d) in &fx.distributions {
        if fx.keys[*sender] == member {
            let _ = distribution_checked(receiver, &member, &mut chains, d, reg);
        }
    }
    let bytes = chains.to_bytes();
    let loaded = MemberChains::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("member chains' own encoding does not load: {e:?}"));
    assert_eq!(
        *loaded.to_bytes(),
        *bytes,
        "member chains re-encode differently"
    );
}
