//! `when:` conditions: `OPERAND [OP OPERAND]`, where an operand is a number, `true`/`false`,
//! a quoted or bare string, `params.KEY`, or `steps.STEP.metrics.KEY` (a metric an earlier
//! step wrote; the step then runs after that one). One operand alone is true unless it is
//! false, 0, empty or missing. A step whose condition is false is skipped, and so is every
//! step that needs its outs.

use serde_json::Value;

use crate::params::Params;

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    text: String,
    lhs: Operand,
    rhs: Option<(Op, Operand)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Literal(Value),
    Param(String),
    Metric { step: String, key: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

const OPS: &[(&str, Op)] =
    &[("==", Op::Eq), ("!=", Op::Ne), (">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)];

impl Condition {
    pub fn parse(text: &str) -> Result<Self, String> {
        let found = OPS.iter().filter_map(|(sym, op)| text.find(sym).map(|i| (i, *sym, *op))).min_by_key(|f| f.0);
        let (lhs, rhs) = match found {
            Some((i, sym, op)) => (&text[..i], Some((op, &text[i + sym.len()..]))),
            None => (text, None),
        };
        Ok(Condition {
            text: text.trim().to_string(),
            lhs: operand(lhs)?,
            rhs: rhs.map(|(op, r)| operand(r).map(|o| (op, o))).transpose()?,
        })
    }

    /// The param keys it reads.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.operands().filter_map(|o| if let Operand::Param(k) = o { Some(k.as_str()) } else { None })
    }

    /// The steps whose metrics it reads.
    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.operands().filter_map(|o| if let Operand::Metric { step, .. } = o { Some(step.as_str()) } else { None })
    }

    fn operands(&self) -> impl Iterator<Item = &Operand> {
        std::iter::once(&self.lhs).chain(self.rhs.as_ref().map(|(_, o)| o))
    }

    /// Evaluates against the params and the metrics of finished steps.
    pub fn holds(&self, params: &Params, metric: &dyn Fn(&str, &str) -> Option<f64>) -> bool {
        let value = |o: &Operand| -> Value {
            match o {
                Operand::Literal(v) => v.clone(),
                Operand::Param(k) => params.get(k).cloned().unwrap_or(Value::Null),
                Operand::Metric { step, key } => {
                    metric(step, key).and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
                }
            }
        };
        let lhs = value(&self.lhs);
        let Some((op, rhs)) = &self.rhs else { return truthy(&lhs) };
        let rhs = value(rhs);
        if lhs.is_null() || rhs.is_null() {
            return false;
        }
        let ordering = match (lhs.as_f64(), rhs.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => Some(text_of(&lhs).cmp(&text_of(&rhs))),
        };
        let Some(ord) = ordering else { return false };
        match op {
            Op::Eq => ord.is_eq(),
            Op::Ne => ord.is_ne(),
            Op::Lt => ord.is_lt(),
            Op::Le => ord.is_le(),
            Op::Gt => ord.is_gt(),
            Op::Ge => ord.is_ge(),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn operand(raw: &str) -> Result<Operand, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("an operand is missing".into());
    }
    if let Some(k) = t.strip_prefix("params.") {
        return Ok(Operand::Param(k.to_string()));
    }
    if let Some(rest) = t.strip_prefix("steps.") {
        return match rest.split_once(".metrics.") {
            Some((step, key)) if !step.is_empty() && !key.is_empty() => {
                Ok(Operand::Metric { step: step.to_string(), key: key.to_string() })
            }
            _ => Err(format!("'{t}' should read steps.STEP.metrics.KEY")),
        };
    }
    for q in ['"', '\''] {
        if let Some(s) = t.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return Ok(Operand::Literal(Value::String(s.to_string())));
        }
    }
    Ok(Operand::Literal(match t {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            t.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::String(t.into()), Value::Number)
        }
    }))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != "false",
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_compare_params_and_metrics() {
        let p = Params::from_value(json!({"gate": {"on": true}, "mode": "full", "n": 5}));
        let m = |step: &str, key: &str| (step == "eval" && key == "drift_share").then_some(0.4);
        let holds = |t: &str| Condition::parse(t).unwrap().holds(&p, &m);
        assert!(holds("params.gate.on"));
        assert!(!holds("params.missing"));
        assert!(holds("params.n >= 5") && !holds("params.n > 5"));
        assert!(holds("params.mode == 'full'") && holds("params.mode != lite"));
        assert!(holds("steps.eval.metrics.drift_share > 0.3"));
        assert!(!holds("steps.eval.metrics.other > 0.3"), "a missing metric is false");
        assert_eq!(Condition::parse("steps.eval.metrics.x > 1").unwrap().steps().collect::<Vec<_>>(), ["eval"]);
        assert!(Condition::parse("params.n >").is_err());
        assert!(Condition::parse("steps.eval.x > 1").is_err());
    }
}
