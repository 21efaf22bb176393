//! Tukey's fences: how many samples lie unusually far from the middle half. They are counted
//! and reported, never dropped: a slow round is a measurement too, and the median is already
//! robust to it.

use super::quantile::quantile_of_sorted;

/// Samples beyond Tukey's fences, by side and severity. A mild outlier lies between 1.5 and
/// 3 interquartile ranges outside the quartiles, a severe one beyond 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outliers {
    pub low_severe: usize,
    pub low_mild: usize,
    pub high_mild: usize,
    pub high_severe: usize,
}

impl Outliers {
    pub fn total(&self) -> usize {
        self.low_severe + self.low_mild + self.high_mild + self.high_severe
    }
}

/// Classifies sorted samples against fences built on type-7 quartiles (as numpy computes
/// them). A sample exactly on a fence is not beyond it.
pub fn tukey(sorted: &[f64]) -> Outliers {
    if sorted.len() < 4 {
        return Outliers::default();
    }
    let q1 = quantile_of_sorted(sorted, 0.25);
    let q3 = quantile_of_sorted(sorted, 0.75);
    let iqr = q3 - q1;
    let (low_severe, low_mild) = (q1 - 3.0 * iqr, q1 - 1.5 * iqr);
    let (high_mild, high_severe) = (q3 + 1.5 * iqr, q3 + 3.0 * iqr);
    let mut out = Outliers::default();
    for &v in sorted {
        if v < low_severe {
            out.low_severe += 1;
        } else if v < low_mild {
            out.low_mild += 1;
        } else if v > high_severe {
            out.high_severe += 1;
        } else if v > high_mild {
            out.high_mild += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_classify_by_severity() {
        // Quartiles of 1..=8 plus two extremes: q1 = 3.25, q3 = 7.75, IQR = 4.5 (numpy).
        // Mild fences -3.5 and 14.5, severe -10.25 and 21.25.
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 15.0, 40.0];
        v.sort_by(f64::total_cmp);
        let q1 = quantile_of_sorted(&v, 0.25);
        let q3 = quantile_of_sorted(&v, 0.75);
        assert_eq!((q1, q3), (3.25, 7.75));
        let o = tukey(&v);
        assert_eq!(
            o,
            Outliers {
                low_severe: 0,
                low_mild: 0,
                high_mild: 1,
                high_severe: 1
            }
        );
        assert_eq!(o.total(), 2);
        let mut low = vec![-30.0, -5.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        low.sort_by(f64::total_cmp);
        let o = tukey(&low);
        assert_eq!((o.low_severe, o.low_mild), (1, 0));
        assert_eq!(tukey(&[1.0, 1.0, 1.0, 1.0, 1.0]), Outliers::default());
    }
}
