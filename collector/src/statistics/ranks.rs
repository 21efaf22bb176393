//! Ranks for the rank tests: tied values share the mean of the ranks they span.

/// Ranks (1-based) of `values`, ties sharing their mean rank, and the size of every group of
/// ties with more than one member (what the tie corrections of the normal approximations
/// need).
pub fn midranks(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; n];
    let mut ties = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && values[order[j]] == values[order[i]] {
            j += 1;
        }
        // Positions i..j (0-based) hold ranks i+1..=j; their mean is (i + 1 + j) / 2.
        let rank = (i + 1 + j) as f64 / 2.0;
        for &k in &order[i..j] {
            ranks[k] = rank;
        }
        if j - i > 1 {
            ties.push(j - i);
        }
        i = j;
    }
    (ranks, ties)
}

/// `sum(t^3 - t)` over tie groups: the variance correction both rank tests use.
pub fn tie_term(ties: &[usize]) -> f64 {
    ties.iter()
        .map(|&t| {
            let t = t as f64;
            t * t * t - t
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_mean_rank() {
        // scipy.stats.rankdata([3, 1, 4, 1, 5, 9, 2, 6, 5]) ==
        // [4., 1.5, 5., 1.5, 6.5, 9., 3., 8., 6.5]
        let (r, t) = midranks(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0]);
        assert_eq!(r, [4.0, 1.5, 5.0, 1.5, 6.5, 9.0, 3.0, 8.0, 6.5]);
        assert_eq!(t, [2, 2]);
        assert_eq!(tie_term(&t), 12.0);
        let (r, t) = midranks(&[]);
        assert!(r.is_empty() && t.is_empty());
    }
}
