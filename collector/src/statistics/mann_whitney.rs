//! The Mann-Whitney U test (Wilcoxon rank-sum): do two sets of samples come from the same
//! distribution, or is one shifted? It uses only ranks, so one disturbed round cannot decide
//! it, and it assumes nothing about the shape of the noise.
//!
//! Written here because no maintained crate offers it with the exact small-sample
//! distribution; checked against scipy in `collector/tests/reference.rs`.

use statrs::distribution::{ContinuousCDF, Normal};

use super::ranks::{midranks, tie_term};

/// Largest `m + n` for the exact distribution: its counts, up to `C(m+n, m)`, stay below 2^53
/// and so are exact in an `f64`.
pub const EXACT_MAX_TOTAL: usize = 50;

/// How the p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// From the exact permutation distribution of U (no ties, small samples).
    Exact,
    /// From the normal approximation with tie correction and continuity correction.
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: the number of pairs (x, y) with x > y, ties counting one half.
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    pub method: Method,
}

/// Two-sided Mann-Whitney U test of `x` against `y`, as `scipy.stats.mannwhitneyu(x, y)`
/// computes it with `method="exact"` when there are no ties and `len(x) + len(y) <= 50`, and
/// with `method="asymptotic"` (tie-corrected variance, continuity correction) otherwise.
/// `None` if either side is empty.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let (m, n) = (x.len(), y.len());
    if m == 0 || n == 0 {
        return None;
    }
    let combined: Vec<f64> = x.iter().chain(y).copied().collect();
    let (ranks, ties) = midranks(&combined);
    let r1: f64 = ranks[..m].iter().sum();
    let u1 = r1 - (m * (m + 1)) as f64 / 2.0;
    let u2 = (m * n) as f64 - u1;
    let u = u1.max(u2);
    if ties.is_empty() && m + n <= EXACT_MAX_TOTAL {
        let counts = u_distribution(m, n);
        let total: f64 = counts.iter().sum();
        // u is an integer here: without ties every pair counts 0 or 1.
        let upper: f64 = counts[u as usize..].iter().sum();
        return Some(MannWhitney {
            u: u1,
            p_value: (2.0 * upper / total).min(1.0),
            method: Method::Exact,
        });
    }
    let total = (m + n) as f64;
    let mn = (m * n) as f64;
    let variance = mn / 12.0 * ((total + 1.0) - tie_term(&ties) / (total * (total - 1.0)));
    let p_value = if variance <= 0.0 {
        // Every value is the same: no evidence of any difference.
        1.0
    } else {
        let z = (u - mn / 2.0 - 0.5) / variance.sqrt();
        (2.0 * standard_normal().sf(z)).min(1.0)
    };
    Some(MannWhitney {
        u: u1,
        p_value,
        method: Method::Normal,
    })
}

pub(crate) fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("standard normal")
}

/// The number of arrangements of `m` and `n` distinct values giving each `U = 0..=m*n`: the
/// coefficients of the Gaussian binomial `[m+n choose m]_q`, built as the product over
/// `i = 1..=m` of `(1 - q^(n+i)) / (1 - q^i)`. Every intermediate polynomial has integer
/// coefficients no larger than `C(m+n, m)`, which keeps them exact for `m + n <= 50`.
pub(crate) fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    let top = m * n;
    let mut a = vec![0.0; top + 1];
    a[0] = 1.0;
    for i in 1..=m {
        let s = n + i;
        for k in (s..=top).rev() {
            a[k] -= a[k - s];
        }
        for k in i..=top {
            a[k] += a[k - i];
        }
    }
    a
}

/// `P(U <= k)` for sizes `m`, `n` without ties (the CDF R's `pwilcox` gives).
pub(crate) fn u_cdf(counts: &[f64], k: usize) -> f64 {
    let total: f64 = counts.iter().sum();
    counts[..=k.min(counts.len() - 1)].iter().sum::<f64>() / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_counts_are_binomial_totals() {
        // C(6, 3) = 20 arrangements of 3 + 3, symmetric, U from 0 to 9.
        let c = u_distribution(3, 3);
        assert_eq!(c, [1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 2.0, 1.0, 1.0]);
        let c = u_distribution(25, 25);
        assert_eq!(c.iter().sum::<f64>(), 126_410_606_437_752.0);
        assert_eq!(u_distribution(1, 4), [1.0; 5]);
    }

    #[test]
    fn empty_sides_have_no_test() {
        assert!(mann_whitney_u(&[], &[1.0]).is_none());
        let same = mann_whitney_u(&[1.0; 5], &[1.0; 5]).unwrap();
        assert_eq!(same.p_value, 1.0);
        assert_eq!(same.method, Method::Normal);
    }
}
