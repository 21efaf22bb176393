//! The Wilcoxon signed-rank test: are paired differences centred on zero? Used on per-round
//! log ratios when two builds run interleaved, where each round pairs one A with one B run
//! under the same machine state.
//!
//! Written here because no maintained crate offers it with the exact distribution; checked
//! against scipy in `collector/tests/reference.rs`.

use statrs::distribution::ContinuousCDF;

use super::mann_whitney::{Method, standard_normal};
use super::ranks::{midranks, tie_term};

/// Largest number of non-zero differences for the exact distribution (as scipy's default).
pub const EXACT_MAX: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedRank {
    /// Sum of the ranks of the positive differences.
    pub r_plus: f64,
    /// Differences used: the zeros are dropped (Wilcoxon's treatment).
    pub n: usize,
    /// Two-sided p-value.
    pub p_value: f64,
    pub method: Method,
}

/// Two-sided signed-rank test of `d`, as `scipy.stats.wilcoxon(d)` computes it: zeros are
/// dropped; exact without ties among the remaining `|d|` when there are at most 50 of them,
/// otherwise the normal approximation with tie-corrected variance and no continuity
/// correction. `None` when no non-zero difference is left.
pub fn signed_rank(d: &[f64]) -> Option<SignedRank> {
    let nonzero: Vec<f64> = d.iter().copied().filter(|v| *v != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return None;
    }
    let zeros = d.len() - n;
    let abs: Vec<f64> = nonzero.iter().map(|v| v.abs()).collect();
    let (ranks, ties) = midranks(&abs);
    let r_plus: f64 = nonzero
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    if ties.is_empty() && zeros == 0 && n <= EXACT_MAX {
        let counts = subset_sum_counts(n);
        let total: f64 = counts.iter().sum();
        let r = r_plus as usize;
        let cdf: f64 = counts[..=r].iter().sum::<f64>() / total;
        let sf: f64 = counts[r..].iter().sum::<f64>() / total;
        return Some(SignedRank {
            r_plus,
            n,
            p_value: (2.0 * cdf.min(sf)).min(1.0),
            method: Method::Exact,
        });
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term(&ties) / 48.0;
    let p_value = if variance <= 0.0 {
        1.0
    } else {
        let z = (r_plus - mean) / variance.sqrt();
        (2.0 * standard_normal().cdf(-z.abs())).min(1.0)
    };
    Some(SignedRank {
        r_plus,
        n,
        p_value,
        method: Method::Normal,
    })
}

/// How many subsets of `{1, ..., n}` have each sum `0..=n(n+1)/2`: the null distribution of
/// `r_plus`. The counts are at most `2^n`, exact in an `f64` for `n <= 50`.
fn subset_sum_counts(n: usize) -> Vec<f64> {
    let top = n * (n + 1) / 2;
    let mut a = vec![0.0; top + 1];
    a[0] = 1.0;
    for i in 1..=n {
        for k in (i..=top).rev() {
            a[k] += a[k - i];
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_counts_sum_to_two_to_the_n() {
        assert_eq!(subset_sum_counts(3), [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]);
        assert_eq!(subset_sum_counts(50).iter().sum::<f64>(), 2f64.powi(50));
    }

    #[test]
    fn all_zero_differences_have_no_test() {
        assert!(signed_rank(&[0.0, 0.0]).is_none());
        let all_up = signed_rank(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        // Only one of 64 sign patterns is this extreme on each side.
        assert!((all_up.p_value - 2.0 / 64.0).abs() < 1e-15);
    }
}
