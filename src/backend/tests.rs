//! Known answers of the interface's primitives not covered elsewhere (X25519, HKDF and the
//! AEAD have their RFC vectors in `rfc_vectors` and `aead`), and the check that keeps every
//! routed primitive behind this module.

extern crate std;

use std::path::Path;
use std::string::String;
use std::vec::Vec;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// RFC 4231 test cases 2 (a key shorter than the hash) and 6 (a key longer than the block).
#[test]
fn hmac_sha256_rfc_4231() {
    let short = Active::hmac_sha256_once(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        short[..],
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")[..]
    );
    let long = Active::hmac_sha256_once(
        &[0xaa; 131],
        b"Test Using Larger Than Block-Size Key - Hash Key First",
    );
    assert_eq!(
        long[..],
        hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")[..]
    );
    // Incremental updates and a cloned keyed state give the same tags.
    let keyed = hmac_sha256(b"Jefe");
    let mut split = keyed.clone();
    split.update(b"what do ya want ");
    split.update(b"for nothing?");
    let mut out = [0u8; 32];
    split.finalize_into(&mut out);
    assert_eq!(out, *short);
}

/// FIPS 180-4 example "abc", given in one part and in three.
#[test]
fn sha256_known_answer() {
    let expected = hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(sha256(&[b"abc"])[..], expected[..]);
    assert_eq!(sha256(&[b"a", b"", b"bc"])[..], expected[..]);
}

/// The public key is the DH with the base point, and the DH of the all-zero point is
/// refused.
#[test]
fn x25519_public_and_contributory_check() {
    let secret = [0x42u8; 32];
    let mut base = [0u8; 32];
    base[0] = 9;
    assert_eq!(*x25519(&secret, &base).unwrap(), x25519_public(&secret));
    assert_eq!(
        x25519(&secret, &[0u8; 32]).map(|_| ()),
        Err(Error::NonContributoryKey)
    );
}

/// What code outside `src/backend/` must not contain: the crates of the routed primitives
/// and the X25519 operations of `x25519-dalek` (its key types may still hold bytes).
const FORBIDDEN: &[&str] = &[
    "hmac::",
    "hkdf::",
    "aes_gcm_siv",
    "Aes256GcmSiv",
    "sha2::Sha256",
    "Sha256::",
    "<Sha256>",
    "{Sha256",
    " Sha256}",
    "x25519_dalek::x25519",
    ".diffie_hellman(",
    "EphemeralSecret",
    "ReusableSecret",
    "SharedSecret",
    "mul_clamped",
    "mul_base",
];

/// `x25519-dalek`'s `PublicKey::from(&secret)` is X25519 with the base point. Its key
/// types may still carry bytes outside this module (`PublicKey::from(bytes)`), so a call
/// is refused when its argument is a reference or names a secret without a path (a path,
/// as in `PublicKey::from(backend::x25519_public(..))`, is a function of this crate).
fn derives_a_public_key(code: &str) -> bool {
    code.match_indices("PublicKey::from(").any(|(at, call)| {
        let rest = &code[at + call.len()..];
        let mut depth = 1usize;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let arg = rest[..end].trim();
        arg.starts_with('&') || (arg.to_lowercase().contains("secret") && !arg.contains("::"))
    })
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_public_key_heuristic() {
    assert!(derives_a_public_key("let p = PublicKey::from(&secret);"));
    assert!(derives_a_public_key("PublicKey::from(id.dh_secret())"));
    assert!(derives_a_public_key(
        "x: PublicKey::from(keys.signed_prekey.secret().clone()),"
    ));
    assert!(!derives_a_public_key("Ok(PublicKey::from(*bytes))"));
    assert!(!derives_a_public_key(
        "PublicKey::from(backend::x25519_public(secret.as_bytes()))"
    ));
    assert!(!derives_a_public_key(
        "PublicKey::from(verifying.to_montgomery().to_bytes())"
    ));
}

/// Every X25519, HMAC, HKDF, SHA-256 and AEAD call of the protocol code goes through this
/// module: no other file under `src/` names those primitives' crates or calls X25519.
/// Comment lines are skipped, so module docs may name the crates.
#[test]
fn crypto_only_through_the_backend() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let backend = src.join("backend");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "the scan must see the sources");
    let mut found: Vec<String> = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&backend)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for pattern in FORBIDDEN.iter().filter(|p| code.contains(*p)) {
                found.push(std::format!("{}:{}: {pattern}", file.display(), n + 1));
            }
            if derives_a_public_key(code) {
                found.push(std::format!(
                    "{}:{}: PublicKey::from(secret)",
                    file.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(found.is_empty(), "crypto outside src/backend/:\n{found:#?}");
}
