//! The survival function of the two-sided one-sample Kolmogorov-Smirnov statistic D_n
//! (scipy's `kstwo`), which `ks_2samp` uses for its asymptotic p-value. The branches follow
//! Simard and L'Ecuyer (2011) exactly as scipy takes them, so the same approximation is used
//! for the same (n, x): Ruben-Gambino at the ends, the Durbin matrix (Marsaglia-Tsang-Wang),
//! Pomeranz's recursion, the Pelz-Good series, and Smirnov's one-sided sum doubled.

use std::f64::consts::PI;

const E128: i32 = 128;
const EP128: f64 = 3.402_823_669_209_385e38; // 2^128
const EM128: f64 = 2.938_735_877_055_719e-39; // 2^-128
const MIN_LOG: f64 = -708.396_418_532_264_1;

/// Pr(D_n > x) for integer n >= 1 given as f64 (scipy passes `np.round(en)`).
pub fn kstwo_sf(x: f64, n: f64) -> f64 {
    if n.is_nan() || n < 1.0 || x.is_nan() {
        return f64::NAN;
    }
    // rv_continuous: at or below the support's lower end 0.5/n the sf is 1, at 1 it is 0.
    if x <= 0.5 / n {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    kolmogn_sf(n as u64, x).clamp(0.0, 1.0)
}

fn kolmogn_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |p, i| p * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0)))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return 1.0 - cdf;
    }
    if t >= nf - 1.0 {
        return 2.0 * (1.0 - x).powf(nf);
    }
    if x >= 0.5 {
        return 2.0 * smirnov_sf(n, x);
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754693 {
            return 1.0 - durbin_matrix_cdf(n, x);
        }
        if nxsquared <= 4.0 {
            return 1.0 - pomeranz_cdf(n, x);
        }
        return 2.0 * smirnov_sf(n, x);
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return 2.0 * smirnov_sf(n, x);
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 { durbin_matrix_cdf(n, x) } else { pelz_good_cdf(nf, x) };
    1.0 - cdf
}

// The series coefficients as scipy publishes them.
#[allow(clippy::excessive_precision)]
const STIRLING: [f64; 8] = [
    -2.955_065_359_477_124_2e-2,
    6.410_256_410_256_410_3e-3,
    -1.917_526_917_526_917_5e-3,
    8.417_508_417_508_417_5e-4,
    -5.952_380_952_380_952_4e-4,
    7.936_507_936_507_936_5e-4,
    -2.777_777_777_777_777_8e-3,
    8.333_333_333_333_333_3e-2,
];

/// ln(n! / n^n) by Stirling's series.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    let rn = 1.0 / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * (rn / n) + c);
    n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * poly
}

/// The one-sided Smirnov survival Pr(D+_n > x) by the Birnbaum-Tingey sum. Every term is
/// positive, so it is summed in log space: no cancellation, no overflow.
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    if n == 1 {
        return 1.0 - x;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    // n*x exactly, as floor plus fraction (scipy uses double-double here).
    let p = nf * x;
    let err = nf.mul_add(x, -p);
    let mut fl = p.floor();
    let mut alpha = (p - fl) + err;
    if alpha < 0.0 {
        fl -= 1.0;
        alpha += 1.0;
    }
    if alpha >= 1.0 {
        fl += 1.0;
        alpha -= 1.0;
    }
    let nxfl = fl as u64;
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let cdf = x * (1.0 + x).powf(nf - 1.0);
        return 1.0 - cdf;
    }
    if -2.0 * nf * x * x < MIN_LOG {
        return 0.0;
    }
    if nxfl >= n - 1 {
        return (1.0 - x).powf(nf);
    }
    if n > 1_000_000 {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 { logp.exp() } else { 1.0 + logp.exp_m1() };
    }
    // sf = x * sum_{j=0}^{n-nxfl-1} C(n,j) (x + j/n)^(j-1) (1 - x - j/n)^(n-j)
    let last = n - nxfl - 1;
    let mut logs = Vec::with_capacity(last as usize + 1);
    let mut ln_binom = 0.0f64;
    for j in 0..=last {
        if j > 0 {
            ln_binom += ((nf - (j - 1) as f64) / j as f64).ln();
        }
        let jf = j as f64;
        let up = (jf + fl + alpha) / nf; // x + j/n
        let down = ((nf - jf - fl) - alpha) / nf; // 1 - x - j/n
        logs.push(ln_binom + (jf - 1.0) * up.ln() + (nf - jf) * down.ln());
    }
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logs.iter().map(|l| (l - top).exp()).sum();
    (x.ln() + top + sum.ln()).exp()
}

fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    c
}

/// Pr(D_n <= d) by Durbin's matrix, raised to the n-th power with rescaling.
fn durbin_matrix_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let mut pwr: Vec<f64> = (0..m * m).map(|i| if i / m == i % m { 1.0 } else { 0.0 }).collect();
    let (mut nn, mut expnt, mut hexpnt) = (n, 0i32, 0i32);
    while nn > 0 {
        if nn % 2 == 1 {
            pwr = matmul(&pwr, &hm, m);
            expnt += hexpnt;
        }
        hm = matmul(&hm, &hm, m);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            for v in &mut hm {
                *v /= EP128;
            }
            hexpnt += E128;
        }
        nn /= 2;
    }
    let mut p = pwr[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / n as f64;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    p * 2f64.powi(expnt)
}

fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (ip1div2, ip1mod2) = ((i + 1) / 2, (i + 1) % 2);
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// Pr(D_n <= x) by Pomeranz's recursion (n <= 140 only).
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let ni = n as i64;
    let nf = n as f64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let (mut gp, mut tgp, mut omp) = (vec![1.0; npwrs], vec![1.0; npwrs], vec![1.0; npwrs]);
    for m in 1..npwrs {
        gp[m] = gp[m - 1] * (g / nf) / m as f64;
        tgp[m] = tgp[m - 1] * (2.0 * g / nf) / m as f64;
        omp[m] = omp[m - 1] * ((1.0 - 2.0 * g) / nf) / m as f64;
    }
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt = 0i32;
    let (mut j1, _) = pomeranz_j1j2(0, ni, ll, ceilf, roundf);
    let mut j2;
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|v| *v = 0.0);
        (j1, j2) = pomeranz_j1j2(i, ni, ll, ceilf, roundf);
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &gp
        } else if i % 2 == 1 {
            &tgp
        } else {
            &omp
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            // numpy slicing clips at the end of the row; so does this.
            let start = ((k1 - v0s).max(0) as usize).min(v0.len());
            let src = &v0[start..(start + ln2).min(v0.len())];
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1) as usize;
            // The slice of the full convolution src * pwrs[..ln2] that the row keeps.
            for (o, out) in v1.iter_mut().take(conv_len).enumerate() {
                let idx = conv_start + o;
                let mut s = 0.0;
                for (a, sv) in src.iter().enumerate().take(idx + 1) {
                    let b = idx - a;
                    if b < ln2 {
                        s += sv * pwrs[b];
                    }
                }
                *out = s;
            }
            let mx = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < mx && mx < EM128 {
                v1.iter_mut().for_each(|v| *v *= EP128);
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(ni - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    ans * 2f64.powi(expnt)
}

/// The Pelz-Good asymptotic series for Pr(D_n <= x).
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -PI * PI / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
        for (kv, c) in k.iter_mut().zip(coeffs) {
            *kv = *kv * qpower + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let denom = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (kv, dn) in k.iter_mut().zip(denom) {
        *kv = *kv * q * sqrt2pi / dn;
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let ks = kk as f64;
        let ks2 = ks * ks;
        let qp = q2.powf(ks2);
        k2extra += ks2 * qp;
        let kspi = PI * ks;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    k.iter().enumerate().map(|(i, kv)| kv / n.powf(i as f64 / 2.0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pr(D_n <= x) by simulation-free brute force: the exact distribution for tiny n via
    /// the Durbin matrix is cross-checked against Pomeranz on the region both cover.
    #[test]
    fn durbin_and_pomeranz_agree() {
        for n in [5u64, 12, 40, 90, 140] {
            for &c in &[0.6f64, 0.8, 1.0, 1.3] {
                let x = c / (n as f64).sqrt();
                if n as f64 * x <= 1.0 || x >= 0.5 {
                    continue;
                }
                let a = durbin_matrix_cdf(n, x);
                let b = pomeranz_cdf(n, x);
                assert!((a - b).abs() < 1e-11, "n={n} x={x}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn pelz_good_is_close_to_exact_for_large_n() {
        // Pelz-Good is an asymptotic series: at n = 5000 it agrees with the exact matrix to
        // well under 1e-6.
        let n = 5000u64;
        for &c in &[0.4f64, 0.7, 1.0] {
            let x = c / (n as f64).sqrt();
            let a = durbin_matrix_cdf(n, x);
            let b = pelz_good_cdf(n as f64, x);
            assert!((a - b).abs() < 1e-6, "x={x}: {a} vs {b}");
        }
    }

    #[test]
    fn smirnov_matches_its_closed_form_for_n_two() {
        // For n = 2 and 1/2 <= x < 1: Pr(D+ > x) = (1 - x)^2.
        for &x in &[0.55f64, 0.7, 0.9] {
            assert!((smirnov_sf(2, x) - (1.0 - x).powi(2)).abs() < 1e-15);
        }
        // For 0 < x < 1/2 and n = 2: Pr(D+ > x) = 1 - x(1+x)  ... from the x <= 1/n branch.
        assert!((smirnov_sf(2, 0.3) - (1.0 - 0.3 * 1.3)).abs() < 1e-15);
    }

    #[test]
    fn smirnov_sum_matches_direct_summation_for_moderate_n() {
        // Direct (non-log) evaluation of the same sum in f64 is safe for n = 30.
        let n = 30u64;
        for &x in &[0.12f64, 0.2, 0.33, 0.45] {
            let nf = n as f64;
            let last = (nf * (1.0 - x)).floor() as u64;
            let mut binom = 1.0;
            let mut s = 0.0;
            for j in 0..=last {
                if j > 0 {
                    binom *= (nf - (j - 1) as f64) / j as f64;
                }
                let jf = j as f64;
                s += binom * (x + jf / nf).powf(jf - 1.0) * (1.0 - x - jf / nf).powf(nf - jf);
            }
            let direct = x * s;
            assert!((smirnov_sf(n, x) - direct).abs() < 1e-13 * direct.max(1e-300), "x={x}");
        }
    }

    #[test]
    fn sf_is_monotone_and_bounded() {
        for n in [3.0f64, 50.0, 141.0, 700.0, 20_000.0] {
            let mut last = 1.0;
            for i in 1..200 {
                let x = i as f64 / 200.0;
                let s = kstwo_sf(x, n);
                assert!((0.0..=1.0).contains(&s));
                assert!(s <= last + 1e-9, "n={n} x={x}: {s} > {last}");
                last = s;
            }
        }
    }
}
