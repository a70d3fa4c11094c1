//! Column-level tests: the worked examples of drift-methods.md and the default-test table.

use std::collections::HashMap;

use super::*;

fn numeric(values: impl IntoIterator<Item = f64>, integer: bool) -> Sample {
    let mut sorted: Vec<f64> = values.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    Sample::Numeric { sorted, integer }
}

fn categorical(pairs: &[(&str, u64)]) -> Sample {
    Sample::Categorical { counts: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect() }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs()
}

#[test]
fn numeric_worked_example() {
    let r = numeric((0..100).map(f64::from), true);
    let c = numeric((10..110).map(f64::from), true);
    let s = |m| statistic(m, "x", &r, &c).unwrap();
    assert!(close(s(Method::Psi), 0.2932674138), "{}", s(Method::Psi));
    assert!(close(s(Method::JensenShannon), 0.1835514600), "{}", s(Method::JensenShannon));
    assert!(close(s(Method::KlDiv), 0.1466337069), "{}", s(Method::KlDiv));
    assert!(close(s(Method::Wasserstein), 0.3464274833));
    assert!((s(Method::Ks) - 0.7020569829).abs() < 1e-9);
}

#[test]
fn categorical_worked_example() {
    let r = categorical(&[("a", 50), ("b", 30), ("c", 20)]);
    let c = categorical(&[("a", 30), ("b", 30), ("c", 30), ("d", 10)]);
    let s = |m| statistic(m, "x", &r, &c).unwrap();
    assert!(close(s(Method::Psi), 0.8327963879));
    assert!(close(s(Method::JensenShannon), 0.2287461789));
    assert!(close(s(Method::KlDiv), 0.1735116586));
    assert_eq!(s(Method::ChiSquare), 0.0);
    assert!(Method::ChiSquare.drifted(s(Method::ChiSquare), 0.05));
}

#[test]
fn z_worked_example_on_a_numeric_column() {
    let r = numeric(std::iter::repeat_n(0.0, 60).chain(std::iter::repeat_n(1.0, 40)), true);
    let c = numeric(std::iter::repeat_n(0.0, 40).chain(std::iter::repeat_n(1.0, 60)), true);
    assert_eq!(default_method(ColumnType::Numeric, &r, &c), Method::Z);
    let p = statistic(Method::Z, "x", &r, &c).unwrap();
    assert!((p - 0.004677734981).abs() < 1e-11);
}

#[test]
fn default_table() {
    let many = |n: u32, distinct: u32| numeric((0..n).map(|i| f64::from(i % distinct)), false);
    let cats = |n: u64, distinct: u64| -> Sample {
        let mut counts = HashMap::new();
        for i in 0..distinct {
            counts.insert(format!("k{i}"), n / distinct);
        }
        Sample::Categorical { counts }
    };
    let num = ColumnType::Numeric;
    let cat = ColumnType::Categorical;
    assert_eq!(default_method(num, &many(1000, 6), &many(10, 6)), Method::Ks);
    assert_eq!(default_method(num, &many(1000, 5), &many(10, 3)), Method::ChiSquare);
    assert_eq!(default_method(num, &many(1000, 2), &many(10, 2)), Method::Z);
    assert_eq!(default_method(num, &many(1001, 6), &many(10, 6)), Method::Wasserstein);
    assert_eq!(default_method(num, &many(1001, 5), &many(10, 5)), Method::JensenShannon);
    assert_eq!(default_method(num, &many(1001, 2), &many(10, 2)), Method::JensenShannon);
    assert_eq!(default_method(cat, &cats(1000, 3), &cats(10, 3)), Method::ChiSquare);
    assert_eq!(default_method(cat, &cats(1000, 2), &cats(10, 2)), Method::Z);
    assert_eq!(default_method(cat, &cats(2000, 2), &cats(10, 2)), Method::JensenShannon);
    // u counts both samples together: two values in each, three in all.
    assert_eq!(default_method(num, &many(100, 2), &numeric([1.0, 2.0], false)), Method::ChiSquare);
}

#[test]
fn thresholds_and_verdicts() {
    assert!(Method::Ks.drifted(0.05, 0.05));
    assert!(!Method::ChiSquare.drifted(0.05, 0.05));
    assert!(!Method::Z.drifted(0.05, 0.05));
    assert!(Method::Psi.drifted(0.1, 0.1));
    assert!(!Method::Wasserstein.drifted(0.0999, 0.1));
    for m in Method::ALL {
        assert_eq!(Method::parse(m.name()).unwrap(), m);
        assert_eq!(m.default_threshold(), if m.is_pvalue() { 0.05 } else { 0.1 });
    }
    assert!(Method::parse("t_test").is_err());
}

#[test]
fn ks_on_a_categorical_column_is_refused() {
    let r = categorical(&[("a", 5)]);
    let err = statistic(Method::Ks, "city", &r, &r).unwrap_err();
    assert!(err.to_string().contains("city"));
}

#[test]
fn hellinger_of_equal_samples_is_zero_and_of_disjoint_is_one() {
    let r = numeric((0..500).map(f64::from), true);
    assert!(statistic(Method::Hellinger, "x", &r, &r).unwrap() < 1e-7);
    let a = categorical(&[("a", 10)]);
    let b = categorical(&[("b", 10)]);
    assert_eq!(statistic(Method::Hellinger, "x", &a, &b).unwrap(), 1.0);
}
