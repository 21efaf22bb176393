//! Size buckets of format v2: the server learns which bucket a blob falls in, not its size.
//!
//! Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication
//! with PURBs", 2019): a length L is rounded up so that only its top
//! floor(log2(floor(log2 L))) + 1 bits may be non-zero. That leaks O(log log L) bits of the
//! size and costs at most 11.1% of overhead (less for large blobs). Below [`MIN_BUCKET`]
//! everything is padded to it, so small messages are indistinguishable from each other.

/// The smallest padded size.
pub const MIN_BUCKET: u64 = 4096;

/// The padded size of a stream of `len` bytes.
pub fn bucket(len: u64) -> u64 {
    if len <= MIN_BUCKET {
        return MIN_BUCKET;
    }
    let e = 63 - len.leading_zeros() as u64; // floor(log2 len)
    let s = 64 - e.leading_zeros() as u64; // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    (len + mask) & !mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sizes_share_one_bucket() {
        for len in [0, 1, 100, 4096] {
            assert_eq!(bucket(len), MIN_BUCKET);
        }
    }

    #[test]
    fn buckets_cover_the_length_with_bounded_overhead() {
        let mut len = MIN_BUCKET + 1;
        while len < 1 << 40 {
            let b = bucket(len);
            assert!(b >= len, "{len} -> {b}");
            assert!((b - len) as f64 / len as f64 <= 0.112, "{len} -> {b}");
            assert_eq!(bucket(b), b, "a bucket is its own bucket");
            len = len * 13 / 11 + 7;
        }
    }

    #[test]
    fn matches_the_published_examples() {
        // Few distinct sizes: all of 10,000..=10,239 look alike.
        assert_eq!(bucket(10_000), 10_240);
        assert_eq!(bucket(10_239), 10_240);
        assert_eq!(bucket(1_000_000), 1_015_808);
        assert_eq!(bucket(1 << 20), 1 << 20);
    }
}
