//! Benjamini-Hochberg: a run compares dozens of series at once, so some small p-values are
//! expected by chance alone. Adjusting them controls the false discovery rate across the run:
//! among the series called changed, at most a share `alpha` is expected to be wrong, and when
//! nothing changed at all, a run flags anything with probability at most `alpha`.

/// Benjamini-Hochberg adjusted p-values (q-values), in the order given: for the i-th smallest
/// of m p-values, `min over j >= i of (m / j) p(j)`, capped at 1, as R's
/// `p.adjust(p, "BH")` and scipy's `false_discovery_control(p)` compute them.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let adjusted = p_values[i] * m as f64 / (rank + 1) as f64;
        running = running.min(adjusted);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustment_is_monotone_and_capped() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        // m = 4: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5
        assert!((q[0] - 0.04).abs() < 1e-12);
        assert!((q[1] - 0.04 * 4.0 / 3.0).abs() < 1e-12);
        assert!((q[2] - 0.04 * 4.0 / 3.0).abs() < 1e-12);
        assert!((q[3] - 0.5).abs() < 1e-12);
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[0.9, 0.95]), [0.95, 0.95]);
    }
}
