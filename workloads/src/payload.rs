//! Deterministic, incompressible payloads and the fixed keys of the benchmark user.

use rand::{Rng, SeedableRng};

/// The bytes of blob `index`: the same for every run with the same seed, and random-looking
/// so that no layer can compress them away.
pub fn generate(seed: u64, index: u64, size: u64) -> Vec<u8> {
    let mut rng =
        rand::rngs::SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = vec![0u8; size as usize];
    rng.fill_bytes(&mut out);
    out
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
/// server never collide.
pub fn nonce() -> String {
    format!("{:08x}", rand::random::<u32>())
}
