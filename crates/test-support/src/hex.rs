//! Lowercase hexadecimal, as the vector files and golden READMEs write bytes.

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The bytes of lowercase hex `s`; panics on odd length, upper case or any other character
/// (a vector file is written by our own tool, so anything else is a broken file).
#[track_caller]
pub fn decode(s: &str) -> Vec<u8> {
    assert!(
        s.len().is_multiple_of(2)
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "not lowercase hex: {s:?}"
    );
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// [`decode`] into an array of exactly `N` bytes.
#[track_caller]
pub fn decode_array<const N: usize>(s: &str) -> [u8; N] {
    let bytes = decode(s);
    match bytes.try_into() {
        Ok(array) => array,
        Err(bytes) => panic!("expected {N} bytes of hex, found {}", bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&bytes)), bytes);
        assert_eq!(super::encode(&[0x0a, 0xf0]), "0af0");
        assert_eq!(super::decode_array::<2>("0af0"), [0x0a, 0xf0]);
    }

    #[test]
    #[should_panic(expected = "not lowercase hex")]
    fn upper_case_is_refused() {
        super::decode("0A");
    }
}
