//! The metrics a gate can decide on: the ones `slipway_monitor::performance` computes, so a
//! gate and a monitor on the deployment report the same number for the same rows.

use serde::{Serialize, Serializer};

use crate::GateError;

/// A metric the gate compares, with the direction that counts as better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
    RocAuc,
    Mae,
    Rmse,
    R2,
}

/// Whether the model is scored as a classifier (labels compared as text) or a regressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Classification,
    Regression,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::RocAuc,
        Metric::Mae,
        Metric::Rmse,
        Metric::R2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
            Metric::Mae => "mae",
            Metric::Rmse => "rmse",
            Metric::R2 => "r2",
        }
    }

    /// The metric by its name (case-insensitive); the error lists every supported one.
    pub fn parse(s: &str) -> Result<Metric, GateError> {
        let lower = s.trim().to_ascii_lowercase();
        Metric::ALL.into_iter().find(|m| m.name() == lower).ok_or_else(|| GateError::UnsupportedMetric {
            given: s.to_string(),
            supported: Metric::ALL.map(Metric::name).join(", "),
        })
    }

    /// Errors shrink as models get better; every other metric grows.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::Mae | Metric::Rmse)
    }

    pub fn task(self) -> Task {
        match self {
            Metric::Accuracy | Metric::Precision | Metric::Recall | Metric::F1 | Metric::RocAuc => Task::Classification,
            Metric::Mae | Metric::Rmse | Metric::R2 => Task::Regression,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_supported() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()).unwrap(), m);
        }
        assert_eq!(Metric::parse("F1").unwrap(), Metric::F1);
        let err = Metric::parse("logloss").unwrap_err().to_string();
        assert!(err.contains("'logloss'") && err.contains("f1") && err.contains("rmse"), "{err}");
    }

    #[test]
    fn only_errors_are_lower_is_better() {
        let lower: Vec<Metric> = Metric::ALL.into_iter().filter(|m| m.lower_is_better()).collect();
        assert_eq!(lower, [Metric::Mae, Metric::Rmse]);
        assert_eq!(Metric::R2.task(), Task::Regression);
        assert_eq!(Metric::RocAuc.task(), Task::Classification);
    }
}
