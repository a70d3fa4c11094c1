//! A model's real performance once the ground truth is known: what scikit-learn's metrics
//! answer on the same labels and predictions.
//!
//! Classification labels are compared as text (numbers through [`crate::read::number_key`],
//! so the label `1` matches the prediction `1.0`). With two classes spelled `0`/`1` or
//! `false`/`true`, precision, recall and F1 are those of the positive class (sklearn's
//! `average="binary"`); otherwise they are macro averages over the classes seen in labels
//! or predictions (`average="macro"`, with a class never predicted scoring 0, as sklearn's
//! `zero_division=0`). ROC AUC is the Mann-Whitney statistic with ties ranked by their mean
//! (`roc_auc_score`); with more than two classes it is the one-vs-rest macro average over
//! the classes that have both positives and negatives.

use serde::Serialize;

/// Accuracy, precision, recall and F1 (and ROC AUC when scores are given).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub count: usize,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
}

/// Per-row scores for ROC AUC: `probabilities[row * classes.len() + k]` is the score of
/// `classes[k]`.
pub struct Scores<'a> {
    pub classes: &'a [String],
    pub probabilities: &'a [f64],
}

/// The positive class when the labels are binary in the usual spelling.
fn positive_class(classes: &[&str]) -> Option<&'static str> {
    let all = |set: &[&str]| classes.iter().all(|c| set.contains(c));
    if all(&["0", "1"]) {
        Some("1")
    } else if all(&["false", "true"]) {
        Some("true")
    } else {
        None
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

/// Precision, recall and F1 of one class.
fn per_class(labels: &[String], predictions: &[String], class: &str) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fneg) = (0, 0, 0);
    for (y, p) in labels.iter().zip(predictions) {
        match (y == class, p == class) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            (false, false) => {}
        }
    }
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fneg);
    let f1 = ratio(2 * tp, 2 * tp + fp + fneg);
    (precision, recall, f1)
}

/// Metrics over paired labels and predictions; `None` when there are no pairs.
pub fn classification(labels: &[String], predictions: &[String], scores: Option<Scores<'_>>) -> Option<Classification> {
    let n = labels.len().min(predictions.len());
    if n == 0 {
        return None;
    }
    let (labels, predictions) = (&labels[..n], &predictions[..n]);
    let correct = labels.iter().zip(predictions).filter(|(y, p)| y == p).count();
    let mut seen: Vec<&str> = labels.iter().chain(predictions).map(String::as_str).collect();
    seen.sort_unstable();
    seen.dedup();
    let (precision, recall, f1) = match positive_class(&seen) {
        Some(pos) => per_class(labels, predictions, pos),
        None => {
            let sums = seen
                .iter()
                .map(|c| per_class(labels, predictions, c))
                .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
            let k = seen.len() as f64;
            (sums.0 / k, sums.1 / k, sums.2 / k)
        }
    };
    let roc_auc = scores.and_then(|s| roc_auc(labels, &s));
    Some(Classification { count: n, accuracy: ratio(correct, n), precision, recall, f1, roc_auc })
}

/// The area under the ROC curve of `scores` for `positive`: the probability that a random
/// positive outranks a random negative, ties counting half. `None` without both kinds.
pub fn binary_auc(is_positive: &[bool], scores: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..is_positive.len().min(scores.len())).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0.0, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        for &k in &order[i..=j] {
            if is_positive[k] {
                rank_sum += mean_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = order.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

fn roc_auc(labels: &[String], s: &Scores<'_>) -> Option<f64> {
    let k = s.classes.len();
    if k == 0 || s.probabilities.len() < labels.len() * k {
        return None;
    }
    let column = |c: usize| -> Vec<f64> { (0..labels.len()).map(|r| s.probabilities[r * k + c]).collect() };
    let names: Vec<&str> = s.classes.iter().map(String::as_str).collect();
    if k == 2 {
        // The positive class is the second in the model's order, as sklearn's `[:, 1]`.
        let pos = positive_class(&names).and_then(|p| names.iter().position(|c| *c == p)).unwrap_or(1);
        let is_pos: Vec<bool> = labels.iter().map(|y| *y == s.classes[pos]).collect();
        return binary_auc(&is_pos, &column(pos));
    }
    let aucs: Vec<f64> = (0..k)
        .filter_map(|c| {
            let is_pos: Vec<bool> = labels.iter().map(|y| *y == s.classes[c]).collect();
            binary_auc(&is_pos, &column(c))
        })
        .collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

/// Mean absolute error, root mean squared error and R² of a regressor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    pub count: usize,
    pub mae: f64,
    pub rmse: f64,
    pub r2: f64,
}

/// Metrics over paired targets and predictions; `None` when there are no pairs. R² of a
/// constant target is 1 for a perfect fit and 0 otherwise, as sklearn's `force_finite`.
pub fn regression(targets: &[f64], predictions: &[f64]) -> Option<Regression> {
    let n = targets.len().min(predictions.len());
    if n == 0 {
        return None;
    }
    let mean = targets[..n].iter().sum::<f64>() / n as f64;
    let (mut abs, mut sq, mut tot) = (0.0, 0.0, 0.0);
    for (y, p) in targets.iter().zip(predictions).take(n) {
        abs += (y - p).abs();
        sq += (y - p) * (y - p);
        tot += (y - mean) * (y - mean);
    }
    let r2 = if tot == 0.0 { if sq == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - sq / tot };
    Some(Regression { count: n, mae: abs / n as f64, rmse: (sq / n as f64).sqrt(), r2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn binary_metrics_are_those_of_the_positive_class() {
        // sklearn: accuracy 4/6; positive "1": tp 2, fp 1, fn 1.
        let y = s(&["1", "0", "1", "1", "0", "0"]);
        let p = s(&["1", "0", "0", "1", "1", "0"]);
        let m = classification(&y, &p, None).unwrap();
        assert_eq!(m.count, 6);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-15);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-15);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(m.roc_auc, None);
    }

    #[test]
    fn multiclass_metrics_are_macro_averages() {
        // a: tp1 fp0 fn1 -> p1 r.5 f.667; b: tp1 fp1 fn0 -> p.5 r1 f.667; c: tp1 -> 1 1 1.
        let y = s(&["a", "a", "b", "c"]);
        let p = s(&["a", "b", "b", "c"]);
        let m = classification(&y, &p, None).unwrap();
        assert!((m.accuracy - 0.75).abs() < 1e-15);
        assert!((m.precision - (1.0 + 0.5 + 1.0) / 3.0).abs() < 1e-15);
        assert!((m.recall - (0.5 + 1.0 + 1.0) / 3.0).abs() < 1e-15);
        assert!((m.f1 - (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-15);
    }

    #[test]
    fn a_class_never_predicted_scores_zero_precision() {
        let m = classification(&s(&["x", "y"]), &s(&["x", "x"]), None).unwrap();
        // x: tp1 fp1 -> p .5, r 1; y: never predicted -> p 0, r 0.
        assert!((m.precision - 0.25).abs() < 1e-15);
        assert!((m.recall - 0.5).abs() < 1e-15);
    }

    #[test]
    fn auc_counts_pairs_and_halves_ties() {
        // Positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) (0.8>0.1) (0.4=0.4) (0.4>0.1).
        let auc = binary_auc(&[true, false, true, false], &[0.8, 0.4, 0.4, 0.1]).unwrap();
        assert!((auc - 3.5 / 4.0).abs() < 1e-15);
        assert_eq!(binary_auc(&[true, true], &[0.1, 0.2]), None);
        let perfect = binary_auc(&[false, false, true], &[0.1, 0.2, 0.9]).unwrap();
        assert_eq!(perfect, 1.0);
    }

    #[test]
    fn auc_from_class_probabilities_uses_the_positive_column() {
        let classes = s(&["0", "1"]);
        let probs = [0.9, 0.1, 0.3, 0.7, 0.6, 0.4, 0.2, 0.8];
        let y = s(&["0", "1", "1", "0"]);
        let m =
            classification(&y, &s(&["0", "1", "0", "1"]), Some(Scores { classes: &classes, probabilities: &probs }))
                .unwrap();
        // Positive scores 0.7, 0.4 against negatives 0.1, 0.8: 0.7>0.1, 0.4>0.1 -> 2 of 4.
        assert!((m.roc_auc.unwrap() - 0.5).abs() < 1e-15);
    }

    #[test]
    fn multiclass_auc_is_the_one_vs_rest_mean() {
        let classes = s(&["a", "b", "c"]);
        // Each row's own class scores highest: every one-vs-rest AUC is 1.
        let probs = [0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.1, 0.2, 0.7];
        let y = s(&["a", "b", "c"]);
        let m = classification(&y, &y, Some(Scores { classes: &classes, probabilities: &probs })).unwrap();
        assert_eq!(m.roc_auc, Some(1.0));
    }

    #[test]
    fn regression_metrics() {
        let m = regression(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]).unwrap();
        // sklearn's documented example: MAE 0.5, MSE 0.375, R² 0.9486081370449679.
        assert!((m.mae - 0.5).abs() < 1e-15);
        assert!((m.rmse - 0.375f64.sqrt()).abs() < 1e-15);
        assert!((m.r2 - 0.948_608_137_044_967_9).abs() < 1e-12);
        assert_eq!(regression(&[1.0, 1.0], &[1.0, 1.0]).unwrap().r2, 1.0);
        assert_eq!(regression(&[1.0, 1.0], &[1.0, 2.0]).unwrap().r2, 0.0);
        assert_eq!(regression(&[], &[]), None);
    }
}
