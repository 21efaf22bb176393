//! Deterministic, incompressible payloads, the mail-size distribution, and the fixed keys of
//! the benchmark user.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

/// The bytes of blob `index`: the same for every run with the same seed, and random-looking
/// so that no layer can compress them away.
pub fn generate(seed: u64, index: u64, size: u64) -> Vec<u8> {
    let mut rng = rng_for(seed, index, 0);
    let mut out = vec![0u8; size as usize];
    rng.fill_bytes(&mut out);
    out
}

fn rng_for(seed: u64, index: u64, stream: u64) -> rand::rngs::SmallRng {
    let mix = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    rand::rngs::SmallRng::seed_from_u64(mix)
}

/// A log-normal fit of a week of a mail provider's messages (Soledad's benchmark notes:
/// median 5-15 KB, mean 110-250 KB, largest about 25 MB, smallest about 460 bytes), clamped
/// to the observed range. With the median at 10,000 bytes and sigma 2.4 the clamped
/// distribution has a mean of about 159 KB and 2.7% of messages over 1 MB.
pub struct MailSizes {
    median: f64,
    sigma: f64,
    min: u64,
    max: u64,
}

pub const MAIL: MailSizes = MailSizes {
    median: 10_000.0,
    sigma: 2.4,
    min: 461,
    max: 25_000_000,
};

impl MailSizes {
    /// Size of message `index`, deterministic in `seed`.
    pub fn size(&self, seed: u64, index: u64) -> u64 {
        let dist = LogNormal::new(self.median.ln(), self.sigma).expect("valid parameters");
        let drawn: f64 = dist.sample(&mut rng_for(seed, index, 1));
        (drawn.round() as u64).clamp(self.min, self.max)
    }
}

/// The benchmark user's `remote_secret`: fixed, because its value does not affect speed and a
/// fixed one makes failures reproducible.
pub fn secret() -> blobs_crypto::BlobSecret {
    blobs_crypto::BlobSecret::new((0..512u32).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>())
        .expect("512 bytes is a valid secret")
}

/// The benchmark user's local store key.
pub fn store_key() -> [u8; 32] {
    [0x5e; 32]
}

/// A random run-unique prefix for ids and namespaces, so that rounds against a long-lived
/// server never collide. In the count round (a fresh server every time) the same sequence in
/// every run: the ids decide which shard directories a round makes and fsyncs, and their
/// digits and letters what checking and hashing them costs.
pub fn nonce() -> String {
    if std::env::var_os(crate::COUNT_ROUND_ENV).is_some() {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(1);
        // Spread over the id space like random ones (Fibonacci hashing of 1, 2, 3 ...).
        return format!("{:08x}", NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9));
    }
    format!("{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_deterministic_and_distinct() {
        assert_eq!(generate(1, 2, 100), generate(1, 2, 100));
        assert_ne!(generate(1, 2, 100), generate(1, 3, 100));
        assert_ne!(generate(1, 2, 100), generate(2, 2, 100));
    }

    #[test]
    fn mail_sizes_match_the_observed_statistics() {
        let mut sizes: Vec<u64> = (0..20_000).map(|i| MAIL.size(1337, i)).collect();
        assert_eq!(MAIL.size(1337, 5), sizes[5], "deterministic");
        sizes.sort();
        let median = sizes[sizes.len() / 2];
        let mean = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
        assert!((5_000..=15_000).contains(&median), "median {median}");
        assert!((110_000.0..=250_000.0).contains(&mean), "mean {mean}");
        assert!(*sizes.first().unwrap() >= 461 && *sizes.last().unwrap() <= 25_000_000);
    }
}
