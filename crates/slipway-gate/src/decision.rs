//! The verdict, apart from any model or server so every rule can be tested on numbers: the
//! candidate must beat the champion by `min_delta` on the metric (in the metric's good
//! direction), and, when a bound is given, answer single-row requests within it at p95.

use serde::Serialize;

use crate::metric::Metric;

/// Slack for a delta that equals `min_delta` on paper: 0.12 - 0.11 is 0.009999999999999995
/// in floating point, and a gate must not reject a candidate for the rounding of a
/// subtraction. Far below any difference a holdout can show.
pub const TOLERANCE: f64 = 1e-9;

/// What the gate requires.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub metric: Metric,
    /// How much better the candidate must be, in the metric's units (0 allows a tie).
    pub min_delta: f64,
    /// The most the candidate's p95 single-row latency may be, in milliseconds.
    pub max_latency_ms: Option<f64>,
}

/// One model's numbers the rule reads.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub version: &'a str,
    pub value: f64,
    pub latency_p95_ms: Option<f64>,
}

/// One requirement and whether it held, with the numbers that decided it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `metric` or `latency`.
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    /// How much better the candidate is than the champion, in the metric's units: candidate
    /// minus champion, or champion minus candidate for a lower-is-better metric. `None` with
    /// nothing to compare with.
    pub delta: Option<f64>,
    pub checks: Vec<Check>,
}

/// A number as the report's sentences show it.
fn show(v: f64) -> String {
    format!("{v:.6}").trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn decide(rule: &Rule, alias: &str, candidate: &Observed<'_>, champion: Option<&Observed<'_>>) -> Verdict {
    let m = rule.metric;
    let (delta, metric_check) = match champion {
        None => (
            None,
            Check {
                name: "metric",
                passed: true,
                detail: format!(
                    "no version holds @{alias}: the candidate passes on its own ({m} {})",
                    show(candidate.value)
                ),
            },
        ),
        Some(champ) if champ.version == candidate.version => (
            None,
            Check {
                name: "metric",
                passed: true,
                detail: format!("version {} already holds @{alias} ({m} {})", champ.version, show(candidate.value)),
            },
        ),
        Some(champ) => {
            let delta = if m.lower_is_better() { champ.value - candidate.value } else { candidate.value - champ.value };
            // NaN compares false, so a metric that could not be computed never passes.
            let passed = delta >= rule.min_delta - TOLERANCE;
            let how = if delta.is_nan() {
                "cannot be compared".to_string()
            } else if delta < 0.0 {
                format!("worse by {}", show(-delta))
            } else if passed {
                format!("better by {}", show(delta))
            } else {
                format!("better by only {}", show(delta))
            };
            let detail = format!(
                "{m} {cand} vs {champ_v} for version {v} (@{alias}{lower}): {how}; at least {min} better required",
                cand = show(candidate.value),
                champ_v = show(champ.value),
                v = champ.version,
                lower = if m.lower_is_better() { "; lower is better" } else { "" },
                min = show(rule.min_delta),
            );
            (Some(delta), Check { name: "metric", passed, detail })
        }
    };
    let mut checks = vec![metric_check];
    if let Some(bound) = rule.max_latency_ms {
        let check = match candidate.latency_p95_ms {
            Some(p95) => Check {
                name: "latency",
                passed: p95 <= bound,
                detail: format!(
                    "p95 single-row latency {} ms, {} the bound of {} ms",
                    show(p95),
                    if p95 <= bound { "within" } else { "over" },
                    show(bound)
                ),
            },
            None => Check { name: "latency", passed: false, detail: "latency was not measured".to_string() },
        };
        checks.push(check);
    }
    Verdict { passed: checks.iter().all(|c| c.passed), delta, checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(metric: Metric, min_delta: f64, max_latency_ms: Option<f64>) -> Rule {
        Rule { metric, min_delta, max_latency_ms }
    }

    fn seen(version: &str, value: f64) -> Observed<'_> {
        Observed { version, value, latency_p95_ms: Some(1.0) }
    }

    #[test]
    fn higher_is_better_needs_the_delta_above_the_champion() {
        let r = rule(Metric::F1, 0.01, None);
        let pass = decide(&r, "champion", &seen("5", 0.90), Some(&seen("3", 0.85)));
        assert!(pass.passed);
        assert!((pass.delta.unwrap() - 0.05).abs() < 1e-12);
        let fail = decide(&r, "champion", &seen("5", 0.855), Some(&seen("3", 0.85)));
        assert!(!fail.passed);
        assert_eq!(
            fail.checks[0].detail,
            "f1 0.855 vs 0.85 for version 3 (@champion): better by only 0.005; at least 0.01 better required"
        );
        // Worse is never better, whatever the sign of min_delta's neighbourhood.
        assert!(!decide(&r, "champion", &seen("5", 0.80), Some(&seen("3", 0.85))).passed);
    }

    #[test]
    fn lower_is_better_needs_the_error_below_the_champion() {
        let r = rule(Metric::Rmse, 0.1, None);
        let pass = decide(&r, "champion", &seen("2", 1.0), Some(&seen("1", 1.2)));
        assert!(pass.passed);
        assert!((pass.delta.unwrap() - 0.2).abs() < 1e-12);
        // A higher error is a regression even though the number grew.
        let fail = decide(&r, "champion", &seen("2", 1.5), Some(&seen("1", 1.2)));
        assert!(!fail.passed);
        assert!(fail.delta.unwrap() < 0.0);
        assert!(fail.checks[0].detail.contains("lower is better): worse by 0.3;"), "{}", fail.checks[0].detail);
        assert!(!decide(&r, "champion", &seen("2", 1.15), Some(&seen("1", 1.2))).passed);
    }

    #[test]
    fn a_delta_equal_to_min_delta_passes_despite_rounding() {
        // 0.12 - 0.11 < 0.01 in binary floating point.
        assert!(std::hint::black_box(0.12) - 0.11 < 0.01, "the premise of this test");
        let r = rule(Metric::Accuracy, 0.01, None);
        assert!(decide(&r, "champion", &seen("2", 0.12), Some(&seen("1", 0.11))).passed);
        let r = rule(Metric::Mae, 0.01, None);
        assert!(decide(&r, "champion", &seen("2", 0.11), Some(&seen("1", 0.12))).passed);
        // Just short of the edge fails.
        let r = rule(Metric::Accuracy, 0.01, None);
        assert!(!decide(&r, "champion", &seen("2", 0.1199), Some(&seen("1", 0.11))).passed);
        // A tie passes only when no improvement is asked for.
        assert!(decide(&rule(Metric::F1, 0.0, None), "c", &seen("2", 0.7), Some(&seen("1", 0.7))).passed);
    }

    #[test]
    fn without_a_champion_the_candidate_passes_on_its_own() {
        let v = decide(&rule(Metric::F1, 0.5, None), "prod", &seen("1", 0.1), None);
        assert!(v.passed);
        assert_eq!(v.delta, None);
        assert!(v.checks[0].detail.contains("no version holds @prod"), "{}", v.checks[0].detail);
        // The latency bound still applies.
        let slow = Observed { version: "1", value: 0.9, latency_p95_ms: Some(12.0) };
        assert!(!decide(&rule(Metric::F1, 0.0, Some(5.0)), "prod", &slow, None).passed);
    }

    #[test]
    fn the_champion_itself_is_not_compared_with_itself() {
        let v = decide(&rule(Metric::F1, 0.01, None), "champion", &seen("3", 0.8), Some(&seen("3", 0.8)));
        assert!(v.passed);
        assert!(v.checks[0].detail.contains("already holds"), "{}", v.checks[0].detail);
    }

    #[test]
    fn latency_bound_is_inclusive_and_required_when_asked() {
        let r = rule(Metric::F1, 0.0, Some(5.0));
        let at = Observed { version: "2", value: 0.9, latency_p95_ms: Some(5.0) };
        let over = Observed { version: "2", value: 0.9, latency_p95_ms: Some(5.01) };
        let unmeasured = Observed { version: "2", value: 0.9, latency_p95_ms: None };
        let champ = seen("1", 0.8);
        assert!(decide(&r, "champion", &at, Some(&champ)).passed);
        let v = decide(&r, "champion", &over, Some(&champ));
        assert!(!v.passed);
        assert_eq!(
            v.checks.iter().map(|c| (c.name, c.passed)).collect::<Vec<_>>(),
            [("metric", true), ("latency", false)]
        );
        assert!(!decide(&r, "champion", &unmeasured, Some(&champ)).passed);
        // Without a bound, latency never decides.
        let slow = Observed { version: "2", value: 0.9, latency_p95_ms: Some(1e6) };
        assert!(decide(&rule(Metric::F1, 0.0, None), "champion", &slow, Some(&champ)).passed);
    }

    #[test]
    fn a_metric_that_could_not_be_computed_never_passes() {
        let r = rule(Metric::R2, 0.0, None);
        assert!(!decide(&r, "champion", &seen("2", f64::NAN), Some(&seen("1", 0.5))).passed);
    }
}
