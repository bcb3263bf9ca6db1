//! Seeded randomness: the RNG of every fixture, shuffles, recognisable plaintexts, and an
//! RNG that fails after a given number of draws.

use std::sync::atomic::{AtomicU64, Ordering};

use doubleratchet::rand_core::{TryCryptoRng, TryRng};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// A deterministic RNG for one test, tool run or fuzz input.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A uniform index below `n` (`n > 0`); the tiny modulo bias does not matter here.
pub fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Fisher-Yates shuffle driven by the seeded RNG.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha20Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}

/// A distinct, recognisable plaintext for message `i` from `who`.
pub fn text(who: &str, i: usize) -> Vec<u8> {
    format!("{who} #{i}: {}", "x".repeat(i % 7)).into_bytes()
}

/// The error of [`FailingRng`].
#[derive(Debug)]
pub struct RngDown;

impl core::fmt::Display for RngDown {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("rng down")
    }
}

impl core::error::Error for RngDown {}

/// Serves `working_draws` requests from a real generator, then fails every request.
pub struct FailingRng {
    working_draws: usize,
    inner: ChaCha20Rng,
}

impl FailingRng {
    /// A generator that serves `working_draws` requests.
    pub fn new(working_draws: usize) -> FailingRng {
        // Every instance draws different bytes: two sessions given the same ratchet key
        // would see each other's messages as reflections.
        static NEXT_SEED: AtomicU64 = AtomicU64::new(9_000);
        FailingRng {
            working_draws,
            inner: rng(NEXT_SEED.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// A generator that serves `working_draws` requests from `rng(seed)`.
    pub fn with_seed(working_draws: usize, seed: u64) -> FailingRng {
        FailingRng {
            working_draws,
            inner: rng(seed),
        }
    }

    fn draw(&mut self) -> Result<(), RngDown> {
        match self.working_draws.checked_sub(1) {
            Some(left) => {
                self.working_draws = left;
                Ok(())
            }
            None => Err(RngDown),
        }
    }
}

impl TryRng for FailingRng {
    type Error = RngDown;

    fn try_next_u32(&mut self) -> Result<u32, RngDown> {
        self.draw()?;
        Ok(self.inner.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, RngDown> {
        self.draw()?;
        Ok(self.inner.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), RngDown> {
        self.draw()?;
        self.inner.fill_bytes(dst);
        Ok(())
    }
}

impl TryCryptoRng for FailingRng {}

/// Serves exactly the bytes given, each call filling what it asks for, and fails
/// ([`RngDown`]) once they run out; it records the length of every call. For draws a test
/// prescribes byte for byte: a seed, or one device's share of a fan-out.
pub struct ListedRng {
    bytes: Vec<u8>,
    /// The length of every call, failed ones included.
    pub calls: Vec<usize>,
}

impl ListedRng {
    /// An RNG serving `bytes`.
    pub fn new(bytes: &[u8]) -> ListedRng {
        ListedRng {
            bytes: bytes.to_vec(),
            calls: Vec::new(),
        }
    }
}

impl TryRng for ListedRng {
    type Error = RngDown;

    fn try_next_u32(&mut self) -> Result<u32, RngDown> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, RngDown> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), RngDown> {
        self.calls.push(dst.len());
        if dst.len() > self.bytes.len() {
            return Err(RngDown);
        }
        dst.copy_from_slice(&self.bytes[..dst.len()]);
        self.bytes.drain(..dst.len());
        Ok(())
    }
}

impl TryCryptoRng for ListedRng {}
