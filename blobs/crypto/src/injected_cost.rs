//! A known cost added on purpose, for calibrating the benchmarks only: with the cargo
//! feature `injected-cost` (never in a shipped or benchmarked build), every KiB of plaintext
//! encrypted or decrypted and every request the server answers spin a loop whose length the
//! environment sets. A build with it is a build that is slower by a known amount, to measure
//! which series see that and how often (`docs/statistics.md`, "Calibration").
//!
//! - `SOLEDAD_BENCH_INJECTED_CRYPTO`: loop iterations per KiB of crypto (0 if unset);
//! - `SOLEDAD_BENCH_INJECTED_REQUEST`: loop iterations per request (0 if unset).
//!
//! One iteration is about 4 instructions. Without the feature both functions are empty and
//! inlined away.

/// Environment variable: loop iterations per KiB encrypted or decrypted.
pub const CRYPTO_ENV: &str = "SOLEDAD_BENCH_INJECTED_CRYPTO";
/// Environment variable: loop iterations per request answered.
pub const REQUEST_ENV: &str = "SOLEDAD_BENCH_INJECTED_REQUEST";

/// The cost of `bytes` of crypto.
#[inline(always)]
pub fn crypto(bytes: usize) {
    #[cfg(feature = "injected-cost")]
    imp::spin(imp::per(CRYPTO_ENV, &imp::CRYPTO) * bytes.div_ceil(1024) as u64);
    #[cfg(not(feature = "injected-cost"))]
    let _ = bytes;
}

/// The cost of one request.
#[inline(always)]
pub fn request() {
    #[cfg(feature = "injected-cost")]
    imp::spin(imp::per(REQUEST_ENV, &imp::REQUEST));
}

#[cfg(feature = "injected-cost")]
mod imp {
    use std::sync::OnceLock;

    pub static CRYPTO: OnceLock<u64> = OnceLock::new();
    pub static REQUEST: OnceLock<u64> = OnceLock::new();

    /// The iterations `name` asks for, read once.
    pub fn per(name: &str, cell: &OnceLock<u64>) -> u64 {
        *cell.get_or_init(|| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// A loop the optimiser cannot remove or shorten.
    pub fn spin(iterations: u64) {
        let mut x = 0u64;
        for i in 0..iterations {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        std::hint::black_box(x);
    }
}

#[cfg(all(test, feature = "injected-cost"))]
mod tests {
    #[test]
    fn the_cost_is_read_from_the_environment() {
        assert_eq!(
            super::imp::per("SOLEDAD_BENCH_INJECTED_NOT_SET", &std::sync::OnceLock::new()),
            0
        );
        // SAFETY: this test's own variable; no other thread reads it.
        unsafe { std::env::set_var("SOLEDAD_BENCH_INJECTED_TEST", "40") };
        assert_eq!(
            super::imp::per("SOLEDAD_BENCH_INJECTED_TEST", &std::sync::OnceLock::new()),
            40
        );
    }
}
