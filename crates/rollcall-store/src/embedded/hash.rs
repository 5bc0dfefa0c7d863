//! The hasher of the index's maps: a folded multiply keyed with a per-process random seed.
//!
//! The standard SipHash showed up as a tenth of the writer thread's time (several lookups per
//! appended event). Keys here are event ids and stream names, which callers choose, so the
//! hasher is still keyed with a random seed: without it nobody can aim collisions at it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Two odd constants from the digits of pi, as in other folded-multiply hashers.
const MULTIPLIER_A: u64 = 0x243f_6a88_85a3_08d3;
const MULTIPLIER_B: u64 = 0x1319_8a2e_0370_7344 | 1;

/// Builds [`FoldHasher`]s sharing one random seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeededHash {
    seed: u64,
}

impl Default for SeededHash {
    fn default() -> SeededHash {
        // The standard library's random keys, drawn once per map, are the seed.
        let seed = RandomState::new().hash_one(0x5eed_u64);
        SeededHash { seed }
    }
}

impl BuildHasher for SeededHash {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { state: self.seed }
    }
}

/// The hasher state; see the module documentation.
pub(crate) struct FoldHasher {
    state: u64,
}

fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl FoldHasher {
    fn mix(&mut self, word: u64) {
        self.state = fold_multiply(self.state ^ word, MULTIPLIER_A);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length goes into the last word so that trailing zero bytes still count.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        fold_multiply(self.state, MULTIPLIER_B)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn distinct_keys_spread_over_buckets() {
        let build = SeededHash::default();
        let streams: HashSet<u64> = (0..10_000).map(|i| build.hash_one(format!("calls-{i}")) & 0xfff).collect();
        assert!(streams.len() > 3500, "only {} of 4096 buckets used", streams.len());
        let ids: HashSet<u64> = (0..10_000u64).map(|i| build.hash_one(uuid::Uuid::from_u64_pair(0, i)) >> 52).collect();
        assert!(ids.len() > 3500, "only {} of 4096 buckets used", ids.len());
    }

    #[test]
    fn trailing_zeros_change_the_hash() {
        let build = SeededHash::default();
        assert_ne!(build.hash_one(&b"ab"[..]), build.hash_one(&b"ab\0"[..]));
        assert_ne!(build.hash_one("stream"), build.hash_one("stream\0"));
    }
}
