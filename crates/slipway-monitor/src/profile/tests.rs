//! Profiles against the rows they summarise: merge of parts against the whole, JSON round
//! trips, and drift from profiles against drift from rows.

use super::drift::Numeric;
use super::*;
use crate::drift::{DriftOptions, compare};
use crate::read::{ColumnSink, ColumnValues, SourceKind};
use crate::stats::{ColumnType, Method, binning, distance, ks};
use crate::typing::DeclaredTypes;

#[derive(Clone)]
enum V {
    Null,
    Num(f64, bool),
    Text(String),
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Roughly normal: a sum of four uniforms.
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.unit()).sum();
        mean + sd * (s - 2.0) * 3f64.sqrt()
    }
}

const NAMES: [&str; 6] = ["num", "num_nulls", "int_wide", "few", "cat", "int_cat"];

/// Rows of six columns; `shift` moves every distribution.
fn rows(n: usize, seed: u64, shift: f64) -> Vec<Vec<V>> {
    let mut r = Rng(seed | 1);
    let cats = ["a", "b", "c", "d", "e", "f"];
    (0..n)
        .map(|_| {
            let num_nulls = match r.unit() {
                u if u < 0.05 => V::Null,
                u if u < 0.06 => V::Num(f64::INFINITY, false),
                _ => V::Num(r.normal(10.0 + shift, 3.0), false),
            };
            let cat = cats[((r.unit() + shift * 0.2).fract() * cats.len() as f64) as usize % cats.len()];
            vec![
                V::Num(r.normal(shift, 1.0), false),
                num_nulls,
                V::Num((r.unit() * (400.0 + 100.0 * shift)).floor(), true),
                V::Num([0.5, 1.5, 2.5, 3.5][(r.unit() * (4.0 - shift.min(1.0))) as usize], false),
                if r.unit() < 0.03 { V::Null } else { V::Text(cat.into()) },
                V::Num((r.unit() * 4.0).floor(), true),
            ]
        })
        .collect()
}

fn fill<S: ColumnSink>(rows: &[Vec<V>], config: &S::Config) -> Vec<S> {
    let mut cols: Vec<S> = NAMES.iter().map(|n| S::for_column(n.to_string(), config)).collect();
    for row in rows {
        for (c, v) in cols.iter_mut().zip(row) {
            match v {
                V::Null => c.push_null(),
                V::Num(x, i) => c.push_number(*x, *i),
                V::Text(s) => c.push_text(s),
            }
        }
    }
    cols
}

fn profile(rows: &[Vec<V>], options: &ProfileOptions) -> DatasetProfile {
    DatasetProfile::from_columns(fill(rows, options))
}

fn numbers(rows: &[Vec<V>], col: usize) -> Vec<f64> {
    let mut v: Vec<f64> = rows
        .iter()
        .filter_map(|r| match r[col] {
            V::Num(x, _) if x.is_finite() => Some(x),
            _ => None,
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn ulps(a: f64, b: f64) -> u64 {
    (a.to_bits() as i64).abs_diff(b.to_bits() as i64)
}

fn small() -> ProfileOptions {
    ProfileOptions { quantile_k: 128, ..ProfileOptions::default() }
}

#[test]
fn merge_of_parts_equals_the_profile_of_the_whole() {
    let data = rows(40_000, 17, 0.0);
    let options = small();
    let whole = profile(&data, &options);
    let cuts = [0, 1, 999, 15_000, 15_001, 40_000];
    let parts: Vec<DatasetProfile> = cuts.windows(2).map(|w| profile(&data[w[0]..w[1]], &options)).collect();
    let mut chain = parts[0].clone();
    parts[1..].iter().for_each(|p| chain.merge(p).unwrap());
    let mut rev = parts[4].clone();
    parts[..4].iter().rev().for_each(|p| rev.merge(p).unwrap());
    for merged in [&chain, &rev] {
        assert_eq!(merged.rows, whole.rows);
        for (i, (m, w)) in merged.columns.iter().zip(&whole.columns).enumerate() {
            // Integer counts, the kind and the register-wise HyperLogLog are exactly equal.
            assert_eq!((m.count, m.nulls, m.kind), (w.count, w.nulls, w.kind), "{}", w.name);
            assert_eq!(m.distinct, w.distinct, "{}", w.name);
            assert_eq!(m.moments.count, w.moments.count);
            // Few-valued columns: frequent items exact on both sides, so identical.
            if w.items_exact() {
                assert_eq!((&m.numbers, &m.strings), (&w.numbers, &w.strings), "{}", w.name);
            }
            if w.is_numeric() {
                // Mean and M2: Welford's stream and Chan's merges round differently. On this
                // well-conditioned data both stay within a few hundred ulps (relative ~1e-13);
                // we assert 512 ulps, far below any statistical meaning, far above rounding.
                assert!(ulps(m.moments.mean, w.moments.mean) <= 512, "{}: mean", w.name);
                assert!(ulps(m.moments.m2, w.moments.m2) <= 512, "{}: m2", w.name);
                assert_eq!((m.min(), m.max()), (w.min(), w.max()));
                // The quantile sketch differs, but both keep the certified bound.
                let values = numbers(&data, i);
                for s in [&m.quantiles, &w.quantiles] {
                    assert_eq!(s.count(), values.len() as u64);
                    let worst = values
                        .iter()
                        .map(|&x| s.rank(x).abs_diff(values.partition_point(|&v| v <= x) as u64))
                        .max()
                        .unwrap_or(0);
                    assert!(worst <= s.rank_error(), "{}: {worst} > {}", w.name, s.rank_error());
                }
            }
        }
    }
}

#[test]
fn text_in_one_part_turns_the_merged_column_to_text() {
    let opts = ProfileOptions::default();
    let (mut a, mut b, mut whole) =
        (ColumnProfile::new("x".into(), &opts), ColumnProfile::new("x".into(), &opts), ColumnValues::new("x".into()));
    for v in [1.0, 2.5, 1.0] {
        a.push_number(v, v == 1.0);
        ColumnSink::push_number(&mut whole, v, v == 1.0);
    }
    b.push_text("z");
    b.push_null();
    ColumnSink::push_text(&mut whole, "z");
    ColumnSink::push_null(&mut whole);
    a.merge(&b).unwrap();
    assert_eq!(a.kind, SourceKind::Text);
    assert_eq!(a.strings.counts(), &whole.strings);
    assert_eq!((a.count, a.nulls), (4, 1));
    assert_eq!(a.distinct_count(), (3.0, true));
    // Parts with different sketch sizes do not merge.
    let other = ColumnProfile::new("x".into(), &small());
    assert!(a.merge(&other).is_err());
}

#[test]
fn profiles_round_trip_through_json_and_bad_json_is_refused() {
    let p = profile(&rows(5_000, 3, 0.5), &small());
    let text = p.to_json().unwrap();
    assert_eq!(DatasetProfile::from_json(&text).unwrap(), p);
    let err = DatasetProfile::from_json(&text.replacen("slipway-profile/1", "other/9", 1)).unwrap_err();
    assert!(err.to_string().contains("unknown format"), "{err}");
    assert!(DatasetProfile::from_json("{\"format\":\"slipway-profile/1\"}").is_err());
}

#[test]
fn profiles_from_files_merge_like_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let whole = write("all.csv", "a,b\n1,x\n2,\n3,y\nNA,x\n");
    let p1 = write("p1.csv", "a,b\n1,x\n2,\n");
    let p2 = write("p2.csv", "a,b,c\n3,y,7\nNA,x,8\n");
    let opts = ProfileOptions::default();
    let read = |p| DatasetProfile::from_file(p, None, &Default::default(), &opts, &crate::read::NoProgress).unwrap();
    let mut merged = read(&p1);
    merged.merge(&read(&p2)).unwrap();
    let w = read(&whole);
    assert_eq!(merged.rows, 4);
    assert_eq!(merged.columns[..2], w.columns[..2]);
    // The column only the second part has is null in the first part's rows.
    assert_eq!((merged.columns[2].count, merged.columns[2].nulls), (2, 2));
}

fn options_with(method: Option<Method>) -> DriftOptions {
    let mut o = DriftOptions::default();
    if let Some(m) = method {
        for name in ["num", "num_nulls", "int_wide", "few"] {
            o.methods.insert(name.into(), m);
        }
    }
    o
}

#[test]
fn exact_profiles_give_the_drift_of_the_rows() {
    // Below k values per side nothing is compacted: every column is exact.
    for (nr, nc, seed) in [(600, 400, 1), (900, 900, 2)] {
        let (r, c) = (rows(nr, seed, 0.0), rows(nc, seed + 10, 0.4));
        let opts = ProfileOptions::default();
        for method in std::iter::once(None).chain(Method::ALL.map(Some)) {
            let o = options_with(method);
            let want = compare(fill::<ColumnValues>(&r, &()), fill::<ColumnValues>(&c, &()), &o).unwrap();
            let got =
                compare_profiles(&profile(&r, &opts), &profile(&c, &opts), &o, &DeclaredTypes::default()).unwrap();
            for (g, w) in got.columns.iter().zip(&want.columns) {
                assert!(g.exact, "{}", w.column);
                assert_eq!((g.drift.method, g.drift.column_type), (w.method, w.column_type), "{}", w.column);
                // Only the Wasserstein norm's std differs (Chan's moments, not numpy's two
                // passes), by rounding.
                let tol = 1e-12 * w.statistic.abs();
                assert!(
                    (g.drift.statistic - w.statistic).abs() <= tol,
                    "{} {:?}: {} vs {}",
                    w.column,
                    method,
                    g.drift.statistic,
                    w.statistic
                );
                assert_eq!(g.drift.drifted, w.drifted);
            }
            assert_eq!(got.dataset_drift, want.dataset_drift);
        }
    }
}

#[test]
fn approximate_profile_drift_stays_within_the_documented_bounds() {
    let mut checked = [0usize; 3];
    for (nr, nc, seed, shift, k) in
        [(30_000, 20_000, 5, 0.0, 128), (50_000, 30_000, 6, 0.3, 256), (25_000, 40_000, 7, 1.0, 64)]
    {
        let (r, c) = (rows(nr, seed, 0.0), rows(nc, seed + 100, shift));
        let opts = ProfileOptions { quantile_k: k, ..ProfileOptions::default() };
        let (pr, pc) = (profile(&r, &opts), profile(&c, &opts));
        for (col, name) in [(0, "num"), (1, "num_nulls"), (2, "int_wide")] {
            let (a, b) = (numbers(&r, col), numbers(&c, col));
            let (sr, sc) = (pr.column(name).unwrap(), pc.column(name).unwrap());
            let (nr_, nc_) = (Numeric::new(sr), Numeric::new(sc));
            let eps = nr_.eps() + nc_.eps();
            assert!(eps > 0.0, "{name} should be approximate");
            let one = |m: Method| {
                let mut o = DriftOptions::default();
                o.methods.insert(name.into(), m);
                o.columns = Some(vec![name.into()]);
                let got = compare_profiles(&pr, &pc, &o, &DeclaredTypes::default()).unwrap().columns.remove(0);
                assert!(!got.exact);
                got
            };
            // KS: |D̂ - D| <= ε_r + ε_c.
            let g = one(Method::Ks);
            let d = ks::ks_2samp(&a, &b).statistic;
            let bound = g.error_bound.unwrap();
            assert!((bound - eps).abs() < 1e-15);
            assert!((g.ks_statistic.unwrap() - d).abs() <= bound, "{name}: D {} vs {d}", g.ks_statistic.unwrap());
            // Wasserstein: |Ŵ - W| <= (ε_r + ε_c)(max - min)/std.
            let g = one(Method::Wasserstein);
            let w = distance::wasserstein_normed(&a, &b);
            assert!((g.drift.statistic - w).abs() <= g.error_bound.unwrap(), "{name}: W {} vs {w}", g.drift.statistic);
            // Bin shares: each within 2ε of the rows' share.
            let edges = crate::stats::numeric_edges(&a, &b, sr.is_integer_dtype() && sc.is_integer_dtype());
            for (side, values, num) in [(0, &a, &nr_), (1, &b, &nc_)] {
                let exact = binning::histogram_sorted(values, &edges);
                let est = num.histogram(&edges);
                assert_eq!(est.iter().sum::<u64>(), values.len() as u64);
                for (e, x) in est.iter().zip(&exact) {
                    assert!(e.abs_diff(*x) as f64 <= 2.0 * num.eps() * values.len() as f64, "{name} side {side}");
                }
            }
            // Jensen-Shannon: certified bound through total variation.
            let g = one(Method::JensenShannon);
            let (p, q) = crate::stats::binned_percents(
                &crate::stats::Sample::Numeric { sorted: a.clone(), integer: false },
                &crate::stats::Sample::Numeric { sorted: b.clone(), integer: false },
                false,
            );
            let js = distance::jensenshannon(&p, &q);
            assert!((g.drift.statistic - js).abs() <= g.error_bound.unwrap(), "{name}: JS");
            // PSI, KL, Hellinger: no worst-case bound. docs/design/monitoring.md states what is
            // observed, and this asserts it: within 3 (ε_r + ε_c) of the rows' value.
            for m in [Method::Psi, Method::KlDiv, Method::Hellinger] {
                let g = one(m);
                let want = compare(fill::<ColumnValues>(&r, &()), fill::<ColumnValues>(&c, &()), &{
                    let mut o = DriftOptions::default();
                    o.methods.insert(name.into(), m);
                    o.columns = Some(vec![name.into()]);
                    o
                })
                .unwrap()
                .columns
                .remove(0);
                assert!(g.error_bound.is_none());
                let (got, row) = (g.drift.statistic, want.statistic);
                assert!((got - row).abs() <= 3.0 * eps, "{name} {m:?}: {got} vs {row}, eps {eps}");
                checked[2] += 1;
            }
            checked[0] += 1;
        }
        // Default methods: the same tests are chosen, and categorical columns are exact.
        let want =
            compare(fill::<ColumnValues>(&r, &()), fill::<ColumnValues>(&c, &()), &DriftOptions::default()).unwrap();
        let got = compare_profiles(&pr, &pc, &DriftOptions::default(), &DeclaredTypes::default()).unwrap();
        for (g, w) in got.columns.iter().zip(&want.columns) {
            assert_eq!((g.drift.method, g.drift.column_type), (w.method, w.column_type), "{}", w.column);
            if g.exact {
                assert!((g.drift.statistic - w.statistic).abs() <= 1e-12 * w.statistic.abs().max(1e-300));
                checked[1] += 1;
            }
        }
    }
    assert_eq!(checked[0], 9);
    assert!(checked[1] >= 9, "categorical and few-valued columns should be exact");
}

#[test]
fn profile_drift_errors_match_row_drift() {
    let opts = ProfileOptions::default();
    let mut text = ColumnProfile::new("x".into(), &opts);
    text.push_text("a");
    let mut num = ColumnProfile::new("x".into(), &opts);
    num.push_number(0.5, false);
    let mut empty = ColumnProfile::new("x".into(), &opts);
    empty.push_null();
    let d = |c: ColumnProfile| DatasetProfile::from_columns(vec![c]);
    let o = DriftOptions::default();
    assert!(matches!(
        compare_profiles(&d(text), &d(num.clone()), &o, &DeclaredTypes::default()),
        Err(crate::MonitorError::TypeMismatch { .. })
    ));
    assert!(matches!(
        compare_profiles(&d(empty), &d(num.clone()), &o, &DeclaredTypes::default()),
        Err(crate::MonitorError::EmptyColumn { dataset: "reference", .. })
    ));
    let o2 = DriftOptions { columns: Some(vec!["nope".into()]), ..DriftOptions::default() };
    assert!(compare_profiles(&d(num.clone()), &d(num), &o2, &DeclaredTypes::default()).is_err());
}

#[test]
fn declared_types_give_the_drift_of_the_rows() {
    let (r, c) = (rows(700, 5, 0.0), rows(500, 6, 0.3));
    let opts = ProfileOptions::default();
    // int_cat (4 integer values) inferred categorical, declared numerical; few (4 float
    // values) inferred numeric, declared categorical.
    let types = DeclaredTypes::new(vec!["int_cat".into()], vec!["few".into()]).unwrap();
    let o = DriftOptions::default();
    let want = crate::drift::compare_typed(fill(&r, &()), fill(&c, &()), &o, &types).unwrap();
    let got = compare_profiles(&profile(&r, &opts), &profile(&c, &opts), &o, &types).unwrap();
    let by = |n: &str| got.columns.iter().find(|g| g.drift.column == n).unwrap();
    assert_eq!((by("int_cat").drift.column_type, by("int_cat").drift.method), (ColumnType::Numeric, Method::ChiSquare));
    assert_eq!(by("few").drift.column_type, ColumnType::Categorical);
    for (g, w) in got.columns.iter().zip(&want.columns) {
        assert_eq!((g.drift.method, g.drift.column_type), (w.method, w.column_type), "{}", w.column);
        assert!(g.exact, "{}", w.column);
        assert!((g.drift.statistic - w.statistic).abs() <= 1e-12 * w.statistic.abs(), "{}", w.column);
    }
    // Declared numerical, but the current profile holds text.
    let text = DeclaredTypes::new(vec!["cat".into()], vec![]).unwrap();
    let err = compare_profiles(&profile(&r, &opts), &profile(&c, &opts), &o, &text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column 'cat' is declared numerical but holds text in the reference dataset (such as 'a')"
    );
    let missing = DeclaredTypes::new(vec![], vec!["nope".into()]).unwrap();
    let err = compare_profiles(&profile(&r, &opts), &profile(&c, &opts), &o, &missing).unwrap_err();
    assert_eq!(err.to_string(), "column 'nope' is declared categorical but is missing from the current dataset");
}
