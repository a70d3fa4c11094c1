//! MLflow's search grammar: `filter` strings and `order_by` clauses, parsed into a small AST.
//!
//! The grammar is `clause (AND clause)*` where a clause is `identifier comparator value`.
//! Identifiers are `prefix.key` (`metrics.`, `params.`, `tags.`, `attributes.`, `datasets.`
//! and their aliases); keys with spaces are quoted with backticks or double quotes. A bare
//! identifier names an attribute. Which comparators a kind of identifier admits is checked
//! here; which keys exist is up to the entity being searched (runs, experiments, models).

use std::fmt;

/// What an identifier refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "LIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
    fn is_numeric(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    List(Vec<String>),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub kind: Kind,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub kind: Kind,
    pub key: String,
    pub ascending: bool,
}

/// A filter or order_by string that does not parse; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// Parses a filter string; an empty or blank one yields no clauses.
pub fn parse_filter(input: &str) -> Result<Vec<Clause>, ParseError> {
    let mut p = Parser { s: input, i: 0 };
    let mut clauses = Vec::new();
    p.ws();
    if p.done() {
        return Ok(clauses);
    }
    loop {
        clauses.push(p.clause()?);
        p.ws();
        if p.done() {
            return Ok(clauses);
        }
        let word = p.word();
        if !word.eq_ignore_ascii_case("and") {
            return err(format!(
                "invalid clause(s) in filter string: expected 'AND' at position {}, found '{}'",
                p.i,
                if word.is_empty() { p.rest_preview() } else { word }
            ));
        }
    }
}

/// Parses one order_by clause: `identifier [ASC|DESC]`.
pub fn parse_order_by(input: &str) -> Result<OrderBy, ParseError> {
    let mut p = Parser { s: input, i: 0 };
    p.ws();
    let (kind, key) = p.identifier()?;
    p.ws();
    let dir = p.word();
    let ascending = match dir.to_ascii_uppercase().as_str() {
        "" | "ASC" => true,
        "DESC" => false,
        other => return err(format!("invalid order_by clause '{input}': unexpected '{other}'")),
    };
    p.ws();
    if !p.done() {
        return err(format!("invalid order_by clause '{input}'"));
    }
    Ok(OrderBy { kind, key, ascending })
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }
    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }
    fn rest_preview(&self) -> &'a str {
        let rest = &self.s[self.i..];
        let end = rest.char_indices().nth(20).map_or(rest.len(), |(i, _)| i);
        &rest[..end]
    }
    /// A run of identifier characters.
    fn word(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        &self.s[start..self.i]
    }
    fn quoted(&mut self, q: char) -> Result<String, ParseError> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return err(format!("unterminated quoted string in filter, expected {q}")),
                Some('\\') if q != '`' => match self.bump() {
                    Some(c) => out.push(c),
                    None => return err("unterminated escape in filter"),
                },
                Some(c) if c == q => {
                    // A doubled quote stands for the quote itself, as in SQL.
                    if self.peek() == Some(q) && q == '\'' {
                        self.bump();
                        out.push(q);
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }
    fn identifier(&mut self) -> Result<(Kind, String), ParseError> {
        let start = self.i;
        if matches!(self.peek(), Some('`' | '"')) {
            let q = self.peek().unwrap_or('`');
            let key = self.quoted(q)?;
            return Ok((Kind::Attribute, key));
        }
        let head = self.word();
        if head.is_empty() {
            return err(format!("expected an identifier at '{}'", self.rest_preview()));
        }
        if self.peek() != Some('.') {
            return Ok((Kind::Attribute, head.to_string()));
        }
        self.bump();
        let kind = match head.to_ascii_lowercase().as_str() {
            "metric" | "metrics" => Kind::Metric,
            "param" | "params" | "parameter" | "parameters" => Kind::Param,
            "tag" | "tags" => Kind::Tag,
            "attribute" | "attributes" | "attr" | "run" => Kind::Attribute,
            "dataset" | "datasets" => Kind::Dataset,
            _ => return err(format!("invalid entity type '{head}' in '{}'", &self.s[start..])),
        };
        let key = match self.peek() {
            Some(q @ ('`' | '"')) => self.quoted(q)?,
            _ => {
                let k0 = self.i;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':')) {
                    self.bump();
                }
                self.s[k0..self.i].to_string()
            }
        };
        if key.is_empty() {
            return err(format!("missing key after '{head}.'"));
        }
        Ok((kind, key))
    }
    fn op(&mut self) -> Result<Op, ParseError> {
        self.ws();
        for (sym, op) in [("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("=", Op::Eq), ("<", Op::Lt), (">", Op::Gt)] {
            if self.s[self.i..].starts_with(sym) {
                self.i += sym.len();
                return Ok(op);
            }
        }
        let w = self.word().to_ascii_uppercase();
        Ok(match w.as_str() {
            "LIKE" => Op::Like,
            "ILIKE" => Op::ILike,
            "IN" => Op::In,
            "NOT" => {
                self.ws();
                if !self.word().eq_ignore_ascii_case("in") {
                    return err("expected 'IN' after 'NOT'");
                }
                Op::NotIn
            }
            "IS" => {
                self.ws();
                let w2 = self.word().to_ascii_uppercase();
                match w2.as_str() {
                    "NULL" => Op::IsNull,
                    "NOT" => {
                        self.ws();
                        if !self.word().eq_ignore_ascii_case("null") {
                            return err("expected 'NULL' after 'IS NOT'");
                        }
                        Op::IsNotNull
                    }
                    _ => return err("expected 'NULL' or 'NOT NULL' after 'IS'"),
                }
            }
            "" => return err(format!("expected a comparator at '{}'", self.rest_preview())),
            other => return err(format!("invalid comparator '{other}'")),
        })
    }
    fn number(&mut self) -> Result<f64, ParseError> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')) {
            self.bump();
        }
        let text = &self.s[start..self.i];
        text.parse().or_else(|_| err(format!("expected a number, found '{text}'")))
    }
    fn string(&mut self) -> Result<String, ParseError> {
        self.ws();
        match self.peek() {
            Some(q @ ('\'' | '"')) => self.quoted(q),
            _ => err(format!("expected a quoted string at '{}'", self.rest_preview())),
        }
    }
    fn list(&mut self) -> Result<Vec<String>, ParseError> {
        self.ws();
        if self.bump() != Some('(') {
            return err("expected '(' to start a list of values");
        }
        let mut items = Vec::new();
        loop {
            items.push(self.string()?);
            self.ws();
            match self.bump() {
                Some(',') => continue,
                Some(')') => return Ok(items),
                _ => return err("expected ',' or ')' in a list of values"),
            }
        }
    }
    fn clause(&mut self) -> Result<Clause, ParseError> {
        self.ws();
        let (kind, key) = self.identifier()?;
        let op = self.op()?;
        let allowed = match kind {
            Kind::Metric => op.is_numeric(),
            Kind::Param | Kind::Tag => {
                matches!(op, Op::Eq | Op::Ne | Op::Like | Op::ILike | Op::IsNull | Op::IsNotNull)
            }
            Kind::Dataset => matches!(op, Op::Eq | Op::Ne | Op::Like | Op::ILike | Op::In | Op::NotIn),
            Kind::Attribute => !matches!(op, Op::IsNull | Op::IsNotNull),
        };
        if !allowed {
            return err(format!("invalid comparator '{}' for {kind:?} '{key}'", op.sql()));
        }
        self.ws();
        let value = match op {
            Op::IsNull | Op::IsNotNull => Value::Null,
            Op::In | Op::NotIn => Value::List(self.list()?),
            _ if kind == Kind::Metric => Value::Num(self.number()?),
            _ => match self.peek() {
                Some('\'' | '"') => Value::Str(self.string()?),
                Some(c) if c.is_ascii_digit() || c == '-' || c == '.' => Value::Num(self.number()?),
                _ => return err(format!("expected a value at '{}'", self.rest_preview())),
            },
        };
        Ok(Clause { kind, key, op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_kind() {
        let c = parse_filter(
            "metrics.acc > 0.5 and params.`lr rate` = '0.1' AND tags.\"my tag\" LIKE '%x%' \
             AND attributes.run_id IN ('a', 'b') AND tags.t IS NOT NULL AND status = 'FINISHED' \
             AND datasets.digest NOT IN ('d1')",
        )
        .unwrap();
        assert_eq!(c.len(), 7);
        assert_eq!(c[0], Clause { kind: Kind::Metric, key: "acc".into(), op: Op::Gt, value: Value::Num(0.5) });
        assert_eq!(c[1].key, "lr rate");
        assert_eq!(c[2].key, "my tag");
        assert_eq!(c[3].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(c[4].op, Op::IsNotNull);
        assert_eq!((c[5].kind, c[5].key.as_str()), (Kind::Attribute, "status"));
        assert_eq!(c[6].op, Op::NotIn);
    }

    #[test]
    fn dotted_tag_keys_and_escaped_quotes() {
        let c = parse_filter("tags.mlflow.runName = 'it''s'").unwrap();
        assert_eq!(c[0].key, "mlflow.runName");
        assert_eq!(c[0].value, Value::Str("it's".into()));
    }

    #[test]
    fn rejects_or_and_bad_comparators() {
        assert!(parse_filter("metrics.a > 1 OR metrics.b > 2").is_err());
        assert!(parse_filter("metrics.a LIKE '1'").is_err());
        assert!(parse_filter("params.p > 'a'").is_err());
        assert!(parse_filter("foo.bar = 'x'").is_err());
        assert!(parse_filter("params.p = 'unterminated").is_err());
        assert!(parse_filter("metrics.a >").is_err());
    }

    #[test]
    fn order_by_clauses() {
        assert_eq!(
            parse_order_by("metrics.`a b` DESC").unwrap(),
            OrderBy { kind: Kind::Metric, key: "a b".into(), ascending: false }
        );
        assert!(parse_order_by("start_time").unwrap().ascending);
        assert!(parse_order_by("start_time sideways").is_err());
    }

    proptest! {
        #[test]
        fn filter_parser_never_panics(s in "\\PC{0,80}") {
            let _ = parse_filter(&s);
            let _ = parse_order_by(&s);
        }

        #[test]
        fn filter_parser_never_panics_on_grammar_like_input(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("metrics."), Just("params."), Just("tags."), Just("`"), Just("\""), Just("'"),
                    Just(" AND "), Just(" = "), Just(" IN "), Just("("), Just(")"), Just(","),
                    Just(" IS NOT NULL"), Just("1.5e3"), Just("-"), Just("x"), Just("é"), Just("\\"),
                ],
                0..24,
            )
        ) {
            let s: String = parts.concat();
            let _ = parse_filter(&s);
            let _ = parse_order_by(&s);
        }

        #[test]
        fn well_formed_clauses_round_trip(key in "[a-z][a-z0-9_]{0,10}", v in "[a-zA-Z0-9 %_]{0,12}") {
            let c = parse_filter(&format!("params.`{key}` = '{v}' AND tags.{key} != \"{v}\"")).unwrap();
            prop_assert_eq!(c.len(), 2);
            prop_assert_eq!(&c[0].key, &key);
            prop_assert_eq!(&c[0].value, &Value::Str(v.clone()));
            prop_assert_eq!(&c[1].value, &Value::Str(v));
        }
    }
}
