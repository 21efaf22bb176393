//! Change points over a series' history: E-divisive means with a t-test, as Hunter and Apache
//! Otava run it. A per-commit verdict sees two points; a change point sees a level that held
//! before a commit and a different level that held after it, which finds small persistent
//! shifts the gate could not call and tells a lasting shift from a one-off.
//!
//! The algorithm, with Otava's defaults:
//!
//! 1. **Split** (weak pass): slide a window of 50 points in steps of 25 (jumping to the last
//!    change point found). In each window, repeatedly take the split `(tau, kappa)` that
//!    maximises the E-divisive divergence `Q` over the current segments, and keep `tau` while
//!    a two-sided Student t-test between the two sides of its segment gives p at most 10x the
//!    final threshold; stop at the first that does not.
//! 2. **Merge** (strong pass): recompute every candidate's t-test with the whole segments
//!    between its neighbours, then repeatedly drop the candidate with the largest p-value
//!    while it is not below the threshold (0.001), and then the smallest relative change while
//!    it is not above `min_magnitude`, recomputing the neighbours each time.
//!
//! Then two checks Otava does not make, each against a false change point it reports:
//! - Every level must hold for at least [`ChangePointOptions::min_segment`] points (3):
//!   Otava reports a single outlier as two change points, one in and one out.
//! - The segments on each side of a change point must also differ by a Mann-Whitney test at
//!   the same threshold: the t-test borrows the long segment's variance for a short one, so a
//!   few points holding one outlier (such as the last ones of the history) pass for a level;
//!   ranks do not let one value decide.
//!
//! A change point failing either is dropped (the one with the larger p-value first), its
//! neighbours recomputed, and the merge pass run again, so an outlier is absorbed by its
//! segment and a shift at the end of history is reported once the next commits confirm it.
//! And when the merge drops a candidate, its *left* neighbour is recomputed too (Otava
//! recomputes the right neighbour and the one after it, leaving the left one's p-value
//! stale).
//!
//! Written here because no maintained crate implements it; checked against Otava's
//! `compute_change_points` in `collector/tests/reference.rs`.

use super::mann_whitney::mann_whitney_u;
use super::t_test::{Side, student_t_p_value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangePointOptions {
    pub window: usize,
    /// Threshold of the strong pass; the weak pass uses 10x (2x above 0.05).
    pub max_p_value: f64,
    /// Smallest relative change kept (Otava's `min_magnitude`, 0 there): the practical floor,
    /// 1%, which also keeps most of the short noise excursions that E-divisive picks out.
    pub min_magnitude: f64,
    /// Fewest points a level must hold for (the first and last included).
    pub min_segment: usize,
    /// Whether the segments around a change point must also differ by a Mann-Whitney test.
    pub rank_check: bool,
}

impl Default for ChangePointOptions {
    fn default() -> Self {
        Self {
            window: 50,
            max_p_value: 0.001,
            min_magnitude: 0.01,
            min_segment: 3,
            rank_check: true,
        }
    }
}

/// A level shift: the series' points from `index` on differ from those before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangePoint {
    /// Position of the first point of the new level.
    pub index: usize,
    /// Two-sided Student t-test p-value between the segments on each side.
    pub p_value: f64,
    /// The segment before (from the previous change point) and after (to the next).
    pub before: Side,
    pub after: Side,
}

impl ChangePoint {
    /// Relative change of the mean: after / before - 1 (0 when before is 0).
    pub fn forward_change(&self) -> f64 {
        if self.before.mean == 0.0 {
            0.0
        } else {
            self.after.mean / self.before.mean - 1.0
        }
    }

    /// Otava's magnitude: the larger of the forward and backward relative changes.
    pub fn magnitude(&self) -> f64 {
        let backward = if self.after.mean == 0.0 {
            0.0
        } else {
            self.before.mean / self.after.mean - 1.0
        };
        self.forward_change().abs().max(backward.abs())
    }
}

/// Change points of `series`, ordered by index.
pub fn change_points(series: &[f64], options: &ChangePointOptions) -> Vec<ChangePoint> {
    assert!(options.window >= 2, "window must be at least 2 points");
    let p = options.max_p_value;
    let first_pass = if p < 0.05 {
        p * 10.0
    } else if p < 0.5 {
        p * 2.0
    } else {
        p
    };
    let weak = split(series, options.window, first_pass);
    let mut cps = merge(weak, series, p, options.min_magnitude);
    // Levels shorter than `min_segment`, and change points whose segments a rank test does
    // not tell apart, are dropped one at a time, the weakest first, merging again after each.
    loop {
        let mut bounds = vec![0];
        bounds.extend(cps.iter().map(|c| c.index));
        bounds.push(series.len());
        let drop = if let Some(k) = bounds.windows(2).position(|w| w[1] - w[0] < options.min_segment) {
            // Segment k runs from change point k - 1 (if any) to change point k (if any).
            match (k.checked_sub(1), (k < cps.len()).then_some(k)) {
                (Some(a), Some(b)) if cps[a].p_value >= cps[b].p_value => a,
                (_, Some(b)) => b,
                (Some(a), None) => a,
                (None, None) => break,
            }
        } else if options.rank_check {
            let ranks: Vec<f64> = (0..cps.len())
                .map(|k| {
                    let left = &series[bounds[k]..bounds[k + 1]];
                    let right = &series[bounds[k + 1]..bounds[k + 2]];
                    mann_whitney_u(left, right).map_or(1.0, |t| t.p_value)
                })
                .collect();
            match (0..cps.len()).max_by(|&a, &b| ranks[a].total_cmp(&ranks[b])) {
                Some(k) if ranks[k] > p => k,
                _ => break,
            }
        } else {
            break;
        };
        cps.remove(drop);
        recompute_neighbours(&mut cps, series, drop);
        cps = merge(cps, series, p, options.min_magnitude);
    }
    cps
}

/// After removing the change point at `removed`, the statistics of the two around the gap.
fn recompute_neighbours(cps: &mut [ChangePoint], series: &[f64], removed: usize) {
    let indices: Vec<usize> = cps.iter().map(|c| c.index).collect();
    for k in [removed.wrapping_sub(1), removed] {
        if k < cps.len() {
            cps[k] = stats_at(series, &indices, k);
        }
    }
}

/// Statistics of the change point at `cps[k]`, whose segments end at its neighbours.
fn stats_at(series: &[f64], cps: &[usize], k: usize) -> ChangePoint {
    let start = if k == 0 { 0 } else { cps[k - 1] };
    let stop = cps.get(k + 1).copied().unwrap_or(series.len());
    let index = cps[k];
    let before = Side::of(&series[start..index]);
    let after = Side::of(&series[index..stop]);
    ChangePoint {
        index,
        p_value: student_t_p_value(before, after),
        before,
        after,
    }
}

fn split(series: &[f64], window: usize, max_p: f64) -> Vec<ChangePoint> {
    let step = window / 2;
    let mut found: Vec<usize> = Vec::new();
    let mut start = 0;
    while start < series.len() {
        let end = (start + window).min(series.len());
        let new = detect_in_window(&series[start..end], max_p);
        let last = new.last().map_or(0, |&i| i + start);
        for i in new {
            if !found.contains(&(i + start)) {
                found.push(i + start);
            }
        }
        start = last.max(start + step);
    }
    found.sort_unstable();
    (0..found.len()).map(|k| stats_at(series, &found, k)).collect()
}

fn merge(mut cps: Vec<ChangePoint>, series: &[f64], max_p: f64, min_magnitude: f64) -> Vec<ChangePoint> {
    while !cps.is_empty() {
        let mut weakest = first_max_by(&cps, |c| c.p_value);
        if cps[weakest].p_value < max_p {
            weakest = first_max_by(&cps, |c| -c.magnitude());
            if cps[weakest].magnitude() > min_magnitude {
                return cps;
            }
        }
        cps.remove(weakest);
        recompute_neighbours(&mut cps, series, weakest);
    }
    cps
}

/// Index of the first element maximising `key`.
fn first_max_by(cps: &[ChangePoint], key: impl Fn(&ChangePoint) -> f64) -> usize {
    let mut best = 0;
    for (i, c) in cps.iter().enumerate().skip(1) {
        if key(c) > key(&cps[best]) {
            best = i;
        }
    }
    best
}

/// E-divisive with a t-test inside one window: change point positions relative to it.
fn detect_in_window(values: &[f64], max_p: f64) -> Vec<usize> {
    let divergence = Divergence::new(values);
    let mut cps: Vec<usize> = Vec::new();
    loop {
        let mut bounds = vec![0];
        bounds.extend(&cps);
        bounds.push(values.len());
        // The best split of every segment longer than one point; the best of those wins.
        let mut best: Option<(usize, usize, usize, f64)> = None;
        for w in bounds.windows(2) {
            let (s, e) = (w[0], w[1]);
            if e - s < 2 {
                continue;
            }
            let (tau, q) = divergence.best_split(s, e);
            if best.is_none_or(|b| q > b.3) {
                best = Some((s, e, tau, q));
            }
        }
        let Some((s, e, tau, _)) = best else { break };
        let p = student_t_p_value(Side::of(&values[s..tau]), Side::of(&values[tau..e]));
        if p <= max_p {
            let at = cps.partition_point(|&c| c < tau);
            cps.insert(at, tau);
        } else {
            break;
        }
    }
    cps
}

/// The E-divisive divergence `Q` of Matteson and James with alpha = 1, over prefix sums of
/// the pairwise distance matrix so that each `Q(tau, kappa)` costs O(1).
struct Divergence {
    n: usize,
    /// `prefix[i * (n + 1) + j]`: sum of `|x[a] - x[b]|` over `a < i`, `b < j`.
    prefix: Vec<f64>,
}

impl Divergence {
    fn new(values: &[f64]) -> Self {
        let n = values.len();
        let w = n + 1;
        let mut prefix = vec![0.0; w * w];
        for i in 0..n {
            let mut row = 0.0;
            for j in 0..n {
                row += (values[i] - values[j]).abs();
                prefix[(i + 1) * w + j + 1] = prefix[i * w + j + 1] + row;
            }
        }
        Self { n, prefix }
    }

    /// Sum of distances between rows `r0..r1` and columns `c0..c1`.
    fn block(&self, r0: usize, r1: usize, c0: usize, c1: usize) -> f64 {
        let w = self.n + 1;
        self.prefix[r1 * w + c1] - self.prefix[r0 * w + c1] - self.prefix[r1 * w + c0] + self.prefix[r0 * w + c0]
    }

    /// `Q(X, Y)` for `X = x[s..tau]`, `Y = x[tau..kappa]`:
    /// `2/(n+m) sum|X-Y| - 2m/((n+m)(n-1)) sum_within|X| - 2n/((n+m)(m-1)) sum_within|Y|`
    /// with `n = |X|`, `m = |Y|`, each within-sum over unordered pairs.
    fn q(&self, s: usize, tau: usize, kappa: usize) -> f64 {
        let n = (tau - s) as f64;
        let m = (kappa - tau) as f64;
        let between = self.block(s, tau, tau, kappa);
        let within_x = self.block(s, tau, s, tau) / 2.0;
        let within_y = self.block(tau, kappa, tau, kappa) / 2.0;
        let mut q = 2.0 / (n + m) * between;
        if n > 1.0 {
            q -= 2.0 * m / ((n + m) * (n - 1.0)) * within_x;
        }
        if m > 1.0 {
            q -= 2.0 * n / ((n + m) * (m - 1.0)) * within_y;
        }
        q
    }

    /// The `tau` of the segment `s..e` maximising `Q` over `s < tau < kappa <= e` (the first
    /// such in (tau, kappa) order), with that maximum.
    fn best_split(&self, s: usize, e: usize) -> (usize, f64) {
        let mut best = (s + 1, f64::NEG_INFINITY);
        for tau in s + 1..e {
            for kappa in tau + 1..=e {
                let q = self.q(s, tau, kappa);
                if q > best.1 {
                    best = (tau, q);
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_step_is_found_where_it_is() {
        let mut series: Vec<f64> = (0..60).map(|i| 100.0 + if i % 3 == 0 { 0.5 } else { -0.25 }).collect();
        for v in &mut series[37..] {
            *v += 10.0;
        }
        let cps = change_points(&series, &ChangePointOptions::default());
        assert_eq!(cps.len(), 1, "{cps:?}");
        assert_eq!(cps[0].index, 37);
        assert!((cps[0].forward_change() - 0.1).abs() < 0.01);
        assert!(cps[0].p_value < 1e-10);
    }

    #[test]
    fn the_divergence_matches_its_definition() {
        let v = [1.0, 3.0, 2.0, 8.0, 9.0, 7.5];
        let d = Divergence::new(&v);
        let (x, y) = (&v[0..3], &v[3..6]);
        let between: f64 = x.iter().flat_map(|a| y.iter().map(move |b| (a - b).abs())).sum();
        let wx = (1.0f64 - 3.0).abs() + (1.0f64 - 2.0).abs() + (3.0f64 - 2.0).abs();
        let wy = 1.0 + 0.5 + 1.5;
        let expected = 2.0 / 6.0 * between - 2.0 * 3.0 / (6.0 * 2.0) * wx - 2.0 * 3.0 / (6.0 * 2.0) * wy;
        assert!((d.q(0, 3, 6) - expected).abs() < 1e-12);
        assert_eq!(d.best_split(0, 6).0, 3);
    }
}
