//! Synthetic benchmark noise with known truth, seeded, for the accuracy tests and the
//! accuracy example: samples around a known level with a known shape of noise.

use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal, StudentT};

/// The shape of the per-round noise. Every shape is scaled to a standard deviation of 1
/// before the coefficient of variation applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Normal,
    /// Student's t with 3 degrees of freedom: rare rounds far off (an interrupt, a page-cache
    /// miss).
    HeavyTailed,
    /// Two modes 3 standard deviations apart, the upper one taking 30% of rounds (a slow path
    /// hit in some rounds, such as a lock contended or not).
    Bimodal,
}

const BIMODAL_UPPER: f64 = 0.3;
const BIMODAL_GAP: f64 = 3.0;

impl Shape {
    fn unit(self, rng: &mut StdRng) -> f64 {
        match self {
            Shape::Normal => StandardNormal.sample(rng),
            Shape::HeavyTailed => {
                let t: f64 = StudentT::new(3.0).expect("valid").sample(rng);
                t / 3f64.sqrt()
            }
            Shape::Bimodal => {
                // Mixture variance: s^2 (1 + p (1 - p) gap^2); centred on its mean.
                let p = BIMODAL_UPPER;
                let s = 1.0 / (1.0 + p * (1.0 - p) * BIMODAL_GAP * BIMODAL_GAP).sqrt();
                let z: f64 = StandardNormal.sample(rng);
                let upper = rng.random_bool(p);
                s * (z + if upper { BIMODAL_GAP } else { 0.0 } - p * BIMODAL_GAP)
            }
        }
    }
}

/// How one series' samples scatter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseModel {
    /// Per-round coefficient of variation.
    pub cv: f64,
    pub shape: Shape,
    /// Standard deviation of a per-run level factor (the machine's state that day), relative
    /// to the level; every sample of a run shares it.
    pub run_cv: f64,
}

impl NoiseModel {
    pub fn normal(cv: f64) -> Self {
        Self {
            cv,
            shape: Shape::Normal,
            run_cv: 0.0,
        }
    }

    /// The samples of one run at the true `level`.
    pub fn run(&self, rng: &mut StdRng, level: f64, rounds: usize) -> Vec<f64> {
        let z: f64 = StandardNormal.sample(rng);
        let day = level * (1.0 + self.run_cv * z);
        (0..rounds)
            .map(|_| (day * (1.0 + self.cv * self.shape.unit(rng))).max(level * 1e-3))
            .collect()
    }
}

/// A realistic mix of series: CV uniform in 1-5%; half normal, a quarter heavy-tailed, a
/// quarter bimodal; and in a third of them a run-to-run level noise of up to a quarter of
/// the CV, as different days on the same machine give.
pub fn realistic_mix(rng: &mut StdRng, count: usize) -> Vec<NoiseModel> {
    (0..count)
        .map(|i| {
            let shape = match i % 4 {
                0 | 1 => Shape::Normal,
                2 => Shape::HeavyTailed,
                _ => Shape::Bimodal,
            };
            let cv = rng.random_range(0.01..0.05);
            let run_cv = if i % 3 == 0 {
                cv * rng.random_range(0.0..0.25)
            } else {
                0.0
            };
            NoiseModel { cv, shape, run_cv }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn shapes_have_unit_spread_and_the_model_its_cv() {
        let mut rng = StdRng::seed_from_u64(7);
        for shape in [Shape::Normal, Shape::HeavyTailed, Shape::Bimodal] {
            let m = NoiseModel {
                cv: 0.02,
                shape,
                run_cv: 0.0,
            };
            let v = m.run(&mut rng, 50.0, 200_000);
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!((mean / 50.0 - 1.0).abs() < 0.002, "{shape:?} mean {mean}");
            // t(3) has an infinite fourth moment: its sample sd converges slowly.
            let tolerance = if shape == Shape::HeavyTailed { 0.1 } else { 0.02 };
            assert!((sd / 50.0 / 0.02 - 1.0).abs() < tolerance, "{shape:?} sd {sd}");
        }
    }
}
