//! Distances between two distributions, each as Evidently 0.7.23 computes it: PSI, KL
//! (`scipy.stats.entropy`), Jensen-Shannon (`scipy.spatial.distance.jensenshannon`, natural
//! log), Hellinger, and the Wasserstein distance normed by the reference's population std.

/// `scipy.special.rel_entr` for non-negative inputs.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

fn normalised(p: &[f64]) -> Vec<f64> {
    let s: f64 = p.iter().sum();
    p.iter().map(|v| v / s).collect()
}

/// Population stability index over zero-filled percents.
pub fn psi(r: &[f64], c: &[f64]) -> f64 {
    r.iter().zip(c).map(|(r, c)| (r - c) * (r / c).ln()).sum()
}

/// Kullback-Leibler divergence KL(r || c) after normalising both.
pub fn kl_div(r: &[f64], c: &[f64]) -> f64 {
    let (r, c) = (normalised(r), normalised(c));
    r.iter().zip(&c).map(|(&r, &c)| rel_entr(r, c)).sum()
}

/// The Jensen-Shannon distance sqrt(JSD), natural log.
pub fn jensenshannon(r: &[f64], c: &[f64]) -> f64 {
    let (p, q) = (normalised(r), normalised(c));
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a + b) / 2.0).collect();
    let left: f64 = p.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).sum();
    let right: f64 = q.iter().zip(&m).map(|(&a, &b)| rel_entr(a, b)).sum();
    ((left + right) / 2.0).sqrt()
}

/// Hellinger distance from the Bhattacharyya sum of aligned probabilities (categorical
/// columns), clipped to [0, 1] first as Evidently does.
pub fn hellinger_from_probabilities(p: &[f64], q: &[f64]) -> f64 {
    let s: f64 = p.iter().zip(q).map(|(a, b)| (a * b).sqrt()).sum();
    (1.0 - s.clamp(0.0, 1.0)).sqrt()
}

/// Hellinger distance for numeric columns: density histograms over the same edges, the
/// Bhattacharyya sum weighted by the mean bin width (Evidently's formula).
pub fn hellinger_from_densities(ref_counts: &[u64], cur_counts: &[u64], edges: &[f64]) -> f64 {
    let density = |counts: &[u64]| -> Vec<f64> {
        let total: u64 = counts.iter().sum();
        counts.iter().zip(edges.windows(2)).map(|(&c, w)| c as f64 / (w[1] - w[0]) / total as f64).collect()
    };
    let (h1, h2) = (density(ref_counts), density(cur_counts));
    let (lo, hi) = (edges[0], edges[edges.len() - 1]);
    let width = (hi - lo) / (edges.len() - 1) as f64;
    let s: f64 = h1.iter().zip(&h2).map(|(a, b)| (a * b).sqrt() * width).sum();
    (1.0 - s.clamp(0.0, 1.0)).sqrt()
}

/// `numpy.std` (ddof = 0) with numpy's two passes.
pub fn population_std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// `scipy.stats.wasserstein_distance` (p = 1) between two ascending samples: the integral of
/// |U - V| over the merged values.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    let mut cdf_gap = 0.0;
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        if let Some(p) = prev {
            total += cdf_gap * (x - p);
        }
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        cdf_gap = (i as f64 / nu - j as f64 / nv).abs();
        prev = Some(x);
    }
    total
}

/// Evidently's normed Wasserstein: distance / max(std(reference), 0.001).
pub fn wasserstein_normed(reference: &[f64], current: &[f64]) -> f64 {
    wasserstein_sorted(reference, current) / population_std(reference).max(0.001)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
    }

    #[test]
    fn categorical_worked_example() {
        // drift-methods.md: ref a50 b30 c20, cur a30 b30 c30 d10.
        let mut r = vec![0.5, 0.3, 0.2, 0.0];
        let mut c = vec![0.3, 0.3, 0.3, 0.1];
        assert!(close(jensenshannon(&r, &c), 0.2287461789));
        crate::stats::binning::fill_zeros(&mut r);
        crate::stats::binning::fill_zeros(&mut c);
        assert!(close(psi(&r, &c), 0.8327963879));
        assert!(close(kl_div(&r, &c), 0.1735116586));
    }

    #[test]
    fn wasserstein_of_a_shift_is_the_shift() {
        let u: Vec<f64> = (0..100).map(f64::from).collect();
        let v: Vec<f64> = u.iter().map(|x| x + 10.0).collect();
        assert!(close(wasserstein_sorted(&u, &v), 10.0));
        // drift-methods.md: ref 0..99, cur 10..109 normed 0.3464274833.
        assert!(close(wasserstein_normed(&u, &v), 0.3464274833));
    }

    #[test]
    fn identical_distributions_are_at_distance_zero() {
        let p = vec![0.2, 0.3, 0.5];
        assert_eq!(psi(&p, &p), 0.0);
        assert_eq!(kl_div(&p, &p), 0.0);
        assert_eq!(jensenshannon(&p, &p), 0.0);
        assert!(hellinger_from_probabilities(&p, &p) < 1e-7);
    }

    proptest! {
        #[test]
        fn wasserstein_is_symmetric_and_matches_quantile_form(
            mut u in proptest::collection::vec(-50.0f64..50.0, 1..100),
        ) {
            u.sort_by(f64::total_cmp);
            let v: Vec<f64> = u.iter().map(|x| x * 0.5 + 3.0).collect();
            let mut vs = v.clone();
            vs.sort_by(f64::total_cmp);
            let d = wasserstein_sorted(&u, &vs);
            prop_assert!((d - wasserstein_sorted(&vs, &u)).abs() < 1e-9);
            // Equal sizes: W1 = mean |u_(i) - v_(i)| over order statistics.
            let q: f64 = u.iter().zip(&vs).map(|(a, b)| (a - b).abs()).sum::<f64>() / u.len() as f64;
            prop_assert!((d - q).abs() < 1e-9 * q.max(1.0));
        }

        #[test]
        fn js_is_bounded_by_sqrt_ln2(
            r in proptest::collection::vec(0.0f64..1.0, 2..30),
            c in proptest::collection::vec(0.0f64..1.0, 2..30),
        ) {
            let n = r.len().min(c.len());
            let (mut r, mut c) = (r[..n].to_vec(), c[..n].to_vec());
            r[0] += 0.01;
            c[0] += 0.01;
            let js = jensenshannon(&r, &c);
            prop_assert!((0.0..=std::f64::consts::LN_2.sqrt() + 1e-12).contains(&js));
        }
    }
}
