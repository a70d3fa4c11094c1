//! The two-sided two-sample Kolmogorov-Smirnov test, choosing between the exact and the
//! asymptotic p-value as `scipy.stats.ks_2samp(method="auto")` does: exact while both
//! samples have at most 10,000 values (falling back when the exact sum fails), otherwise the
//! one-sample distribution `kstwo` at n = round(n1 n2 / (n1 + n2)).

use super::kolmogorov::kstwo_sf;

/// scipy's `MAX_AUTO_N`.
const MAX_EXACT_N: usize = 10_000;

/// The statistic and p-value of the two-sided test on two sorted, non-empty samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    pub statistic: f64,
    pub pvalue: f64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Kolmogorov-Smirnov on two ascending samples. Both must be non-empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> KsResult {
    let (n1, n2) = (a.len(), b.len());
    // Walk both ECDFs over the merged values. `best` is the exact integer form of the largest
    // |F1 - F2| (in units of 1/(n1 n2)); the float form mirrors scipy's cdf1 - cdf2.
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max_int, mut min_int) = (0i128, 0i128);
    let (mut max_f, mut min_f) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < n1 || j < n2 {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        while i < n1 && a[i] <= v {
            i += 1;
        }
        while j < n2 && b[j] <= v {
            j += 1;
        }
        let diff = i as i128 * n2 as i128 - j as i128 * n1 as i128;
        max_int = max_int.max(diff);
        min_int = min_int.min(diff);
        let df = i as f64 / n1 as f64 - j as f64 / n2 as f64;
        max_f = max_f.max(df);
        min_f = min_f.min(df);
    }
    finish(n1, n2, (max_int, min_int), (max_f, min_f))
}

/// Kolmogorov-Smirnov on two weighted samples: (value, count) pairs, ascending, every count
/// positive. The same walk and the same p-value as [`ks_2samp`] on the expanded samples.
pub fn ks_2samp_weighted(a: &[(f64, u64)], b: &[(f64, u64)]) -> KsResult {
    let n1: u64 = a.iter().map(|p| p.1).sum();
    let n2: u64 = b.iter().map(|p| p.1).sum();
    let (mut i, mut j) = (0usize, 0usize);
    let (mut ri, mut rj) = (0u64, 0u64);
    let (mut max_int, mut min_int) = (0i128, 0i128);
    let (mut max_f, mut min_f) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.min(y.0),
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            (None, None) => break,
        };
        while i < a.len() && a[i].0 <= v {
            ri += a[i].1;
            i += 1;
        }
        while j < b.len() && b[j].0 <= v {
            rj += b[j].1;
            j += 1;
        }
        let diff = i128::from(ri) * i128::from(n2) - i128::from(rj) * i128::from(n1);
        max_int = max_int.max(diff);
        min_int = min_int.min(diff);
        let df = ri as f64 / n1 as f64 - rj as f64 / n2 as f64;
        max_f = max_f.max(df);
        min_f = min_f.min(df);
    }
    finish(n1 as usize, n2 as usize, (max_int, min_int), (max_f, min_f))
}

/// The statistic and p-value from the extremes of the ECDF difference, in integer form
/// (units of 1/(n1 n2)) and in scipy's float form.
fn finish(n1: usize, n2: usize, (max_int, min_int): (i128, i128), (max_f, min_f): (f64, f64)) -> KsResult {
    let min_s = (-min_f).clamp(0.0, 1.0);
    let mut d = if min_s > max_f { min_s } else { max_f };

    let g = gcd(n1 as u64, n2 as u64);
    if n1.max(n2) <= MAX_EXACT_N {
        let lcm = (n1 as u64 / g) * n2 as u64;
        let h = (max_int.max(-min_int) / g as i128) as u64;
        d = h as f64 / lcm as f64;
        if h == 0 {
            return KsResult { statistic: d, pvalue: 1.0 };
        }
        let prob =
            if n1 == n2 { prob_outside_square(n1 as u64, h) } else { outer_prob_inside(n1 as u64, n2 as u64, g, h) };
        if prob.is_finite() && (0.0..=1.0).contains(&prob) {
            return KsResult { statistic: d, pvalue: prob };
        }
    }
    let (m, n) = if n1 >= n2 { (n1 as f64, n2 as f64) } else { (n2 as f64, n1 as f64) };
    let en = m * n / (m + n);
    let p = kstwo_sf(d, en.round_ties_even());
    KsResult { statistic: d, pvalue: p.clamp(0.0, 1.0) }
}

/// Pr(D_{n,n} >= h/n) for equal sample sizes: the alternating sum of binomial ratios in the
/// Horner-like form that avoids cancellation.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    while k >= 0 {
        let kh = k as u64 * h;
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n as f64 - kh as f64 - j as f64) * p1 / (n as f64 + kh as f64 + j as f64 + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The proportion of lattice paths from (0,0) to (m,n) that leave the band |x/m - y/n| <
/// h/lcm(m,n), by Hodges' inside method rewritten to carry 1 - p (Viehmann 2021).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (m, n, h) = (m as i64, n as i64, h as i64);
    let ceil_div = |a: i64, b: i64| -> i64 { -((-a).div_euclid(b)) };
    let mut minj = 0i64;
    let mut maxj = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for v in a.iter_mut().take(maxj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The exact p-value by brute force: enumerate every way to split the pooled sample
    /// (small sizes only) and count splits whose statistic reaches the observed one.
    fn brute_force_p(a: &[f64], b: &[f64]) -> f64 {
        let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
        let n = pooled.len();
        let observed = ks_2samp(a, b).statistic;
        let (mut hits, mut total) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != a.len() {
                continue;
            }
            let mut x: Vec<f64> = (0..n).filter(|i| mask >> i & 1 == 1).map(|i| pooled[i]).collect();
            let mut y: Vec<f64> = (0..n).filter(|i| mask >> i & 1 == 0).map(|i| pooled[i]).collect();
            x.sort_by(f64::total_cmp);
            y.sort_by(f64::total_cmp);
            total += 1;
            if ks_2samp(&x, &y).statistic >= observed - 1e-12 {
                hits += 1;
            }
        }
        hits as f64 / total as f64
    }

    #[test]
    fn exact_pvalue_equals_enumeration() {
        let a = [0.1, 0.5, 0.9, 1.3, 2.2, 2.4];
        let b = [1.0, 1.7, 2.5, 3.1, 3.3, 3.9, 4.4];
        let r = ks_2samp(&a, &b);
        assert!((r.pvalue - brute_force_p(&a, &b)).abs() < 1e-12);
        let c = [0.2, 0.6, 1.5, 2.8, 3.0, 3.5];
        let r = ks_2samp(&a, &c);
        assert!((r.pvalue - brute_force_p(&a, &c)).abs() < 1e-12);
    }

    #[test]
    fn worked_example_from_the_reference() {
        // drift-methods.md: ref = 0..99, cur = 10..109 gives KS p 0.7020569829.
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        let b: Vec<f64> = (10..110).map(f64::from).collect();
        let r = ks_2samp(&a, &b);
        assert!((r.statistic - 0.1).abs() < 1e-15);
        assert!((r.pvalue - 0.7020569829).abs() < 1e-9, "{}", r.pvalue);
    }

    #[test]
    fn identical_samples_do_not_drift() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        assert_eq!(ks_2samp(&a, &a), KsResult { statistic: 0.0, pvalue: 1.0 });
    }

    #[test]
    fn disjoint_large_samples_have_tiny_pvalues() {
        let a: Vec<f64> = (0..20_000).map(f64::from).collect();
        let b: Vec<f64> = (30_000..50_000).map(f64::from).collect();
        let r = ks_2samp(&a, &b);
        assert_eq!(r.statistic, 1.0);
        assert!(r.pvalue < 1e-100);
    }

    proptest! {
        #[test]
        fn pvalue_is_a_probability_and_symmetric(
            mut a in proptest::collection::vec(-5.0f64..5.0, 1..300),
            mut b in proptest::collection::vec(-5.0f64..5.0, 1..300),
        ) {
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let r = ks_2samp(&a, &b);
            let s = ks_2samp(&b, &a);
            prop_assert!((0.0..=1.0).contains(&r.pvalue));
            prop_assert!((0.0..=1.0).contains(&r.statistic));
            prop_assert!((r.pvalue - s.pvalue).abs() < 1e-12);
            prop_assert_eq!(r.statistic, s.statistic);
        }
    }
}
