//! The `safety_number` target: `SafetyNumber::compare_scanned` on scanned bytes.

use crate::prelude::*;

/// `SafetyNumber::compare_scanned` of Alice and Bob's safety number on arbitrary scanned
/// bytes (SPEC.md §9.1): never panics; exactly the local byte form is `Match`; any other
/// 66 bytes of version `0x01` and type `0x40` are `Mismatch`; a first byte `v` other than
/// `0x01` is `DifferentVersion(v)` whatever the length; everything else (empty, wrong
/// length or type) is `Malformed`. And when the input's first two 32-byte slices parse as
/// identity keys `a` and `b`, `SafetyNumber::new(a, b) == SafetyNumber::new(b, a)`, and
/// its forms are well made.
pub fn safety_number(data: &[u8]) {
    let local = &fixture().safety_number;
    let local_bytes = local.to_bytes();
    let expected = match data.first() {
        _ if data == local_bytes => ScanResult::Match,
        None => ScanResult::Malformed,
        Some(&v) if v != SAFETY_NUMBER_VERSION => ScanResult::DifferentVersion(v),
        Some(_) if data.len() == SAFETY_NUMBER_LENGTH && data[1] == TYPE_SAFETY_NUMBER => {
            ScanResult::Mismatch
        }
        Some(_) => ScanResult::Malformed,
    };
    assert_eq!(
        local.compare_scanned(data),
        expected,
        "scanned {}",
        hex(data)
    );

    let key = |range: core::ops::Range<usize>| {
        let bytes = <&[u8; 32]>::try_from(data.get(range)?).ok()?;
        IdentityKey::from_bytes(bytes).ok()
    };
    if let (Some(a), Some(b)) = (key(0..32), key(32..64)) {
        check_safety_number_pair(&a, &b);
    }
}

/// The safety number of two identity keys is the same in either order, matches its own
/// byte form, and has the documented forms: 66 bytes `0x01 || 0x40 || ...`, and 12 groups
/// of 5 digits. For Alice and Bob it is the local number.
pub(crate) fn check_safety_number_pair(a: &IdentityKey, b: &IdentityKey) {
    let fx = fixture();
    let ab = SafetyNumber::new(a, b);
    let ba = SafetyNumber::new(b, a);
    assert_eq!(ab, ba, "the safety number depends on the order of the keys");
    let bytes = ab.to_bytes();
    assert_eq!(bytes, ba.to_bytes());
    assert_eq!(bytes[..2], [SAFETY_NUMBER_VERSION, TYPE_SAFETY_NUMBER]);
    assert_eq!(ba.compare_scanned(&bytes), ScanResult::Match);
    let digits = ab.to_digits();
    assert_eq!(digits, ba.to_digits());
    assert_eq!(digits.len(), 12 * 5 + 11);
    assert!(digits
        .split(' ')
        .all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit())));
    let pair = [fx.alice.public_key(), fx.bob.public_key()];
    if (pair == [a, b] || pair == [b, a]) != (ab == fx.safety_number) {
        panic!("Alice and Bob's number found for other keys, or not for theirs");
    }
}
