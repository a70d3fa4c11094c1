//! Count-based p-value tests: Pearson's chi-square against reference proportions
//! (`scipy.stats.chisquare` as Evidently calls it) and the pooled two-proportion Z test.

use super::special::{chi2_sf, ndtr};

/// Chi-square p-value of current counts against reference counts rescaled to the current
/// total, over the union of categories. A category absent from the reference has expected
/// count 0, so the statistic is infinite and p = 0.
pub fn chisquare(aligned: &[(u64, u64)]) -> f64 {
    let n_ref: u64 = aligned.iter().map(|a| a.0).sum();
    let n_cur: u64 = aligned.iter().map(|a| a.1).sum();
    let k_norm = n_cur as f64 / n_ref as f64;
    let stat: f64 = aligned
        .iter()
        .map(|&(r, c)| {
            let expected = r as f64 * k_norm;
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum();
    let df = aligned.len() as f64 - 1.0;
    if df <= 0.0 {
        // scipy answers NaN for zero degrees of freedom; one shared category is no drift.
        return 1.0;
    }
    if stat.is_nan() {
        return 1.0;
    }
    chi2_sf(stat, df)
}

/// Two-sided pooled Z test of "is the first category" between the samples, as Evidently's
/// `z_stat_test`: the first sorted category maps to 0, all others to 1; p = 2 (1 - Phi(|z|)).
/// `first` is (reference count, current count) of the first category; `totals` the sizes.
pub fn z_test(first: (u64, u64), totals: (u64, u64), both_same_constant: bool) -> f64 {
    if both_same_constant {
        return 1.0;
    }
    let (n1, n2) = (totals.0 as f64, totals.1 as f64);
    let p1 = (totals.0 - first.0) as f64 / n1;
    let p2 = (totals.1 - first.1) as f64 / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    2.0 * (1.0 - ndtr(z.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_worked_example() {
        // drift-methods.md: ref 60 x 0 / 40 x 1, cur 40 x 0 / 60 x 1: p 0.004677734981.
        let p = z_test((60, 40), (100, 100), false);
        assert!((p - 0.004677734981).abs() < 1e-11, "{p}");
    }

    #[test]
    fn chisquare_with_a_new_category_is_zero() {
        // drift-methods.md: ref a50 b30 c20, cur a30 b30 c30 d10 gives p = 0.
        assert_eq!(chisquare(&[(50, 30), (30, 30), (20, 30), (0, 10)]), 0.0);
    }

    #[test]
    fn chisquare_matches_the_closed_form_for_two_categories() {
        // With df = 1, Q(1/2, s/2) = erfc(sqrt(s/2)); s computed by hand here.
        let aligned = [(50u64, 40u64), (50, 60)];
        let s = (40.0f64 - 50.0).powi(2) / 50.0 + (60.0f64 - 50.0).powi(2) / 50.0;
        let want = crate::stats::special::erfc((s / 2.0).sqrt());
        assert!((chisquare(&aligned) - want).abs() < 1e-14);
    }

    #[test]
    fn same_proportions_give_p_one() {
        assert!((z_test((30, 60), (100, 200), false) - 1.0).abs() < 1e-15);
        assert_eq!(z_test((100, 50), (100, 50), true), 1.0);
    }
}
