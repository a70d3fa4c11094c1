//! The validation report as one self-contained HTML page, in the drift report's style (its
//! helpers and stylesheet): a verdict, the violations, and what was seen of each column.

use std::fmt::Write;
use std::path::Path;

use slipway_monitor::validate::ValidationReport;

use crate::drift_html::{esc, num, page_start};

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

pub fn render(report: &ValidationReport, source: &Path, from_schema: bool, current: &Path) -> String {
    let mut out = page_start("Slipway validation report");
    let _ = write!(
        out,
        r#"<h1>Data validation</h1><div class="muted">{what} <code>{src}</code> &middot; current <code>{cur}</code> &middot; {rows} rows</div>"#,
        what = if from_schema { "schema" } else { "schema inferred from" },
        src = esc(&source.display().to_string()),
        cur = esc(&current.display().to_string()),
        rows = report.rows,
    );
    let _ = write!(
        out,
        r#"<div class="summary {cls}"><strong>Validation {what}.</strong> {n} violations in {c} columns.</div>"#,
        cls = if report.passed { "nodrift" } else { "drift" },
        what = if report.passed { "passed" } else { "failed" },
        n = report.number_of_violations,
        c = report.number_of_columns,
    );
    if !report.violations.is_empty() {
        out.push_str(
            "<h2>Violations</h2><table><tr><th>column</th><th>rule</th><th>observed</th><th>expected</th></tr>",
        );
        for v in &report.violations {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td class="yes">{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>"#,
                esc(&v.column),
                v.rule.name(),
                esc(&v.observed.to_string()),
                esc(&v.expected.to_string()),
            );
        }
        out.push_str("</table>");
    }
    out.push_str(
        "<h2>Columns</h2><table><tr><th>column</th><th>type</th><th>values</th><th>nulls</th><th>null share</th><th>min</th><th>max</th><th>distinct</th><th>status</th></tr>",
    );
    for c in &report.columns {
        let status = if c.violations == 0 {
            r#"<span class="no">ok</span>"#.to_string()
        } else {
            format!(r#"<span class="yes">{} violations</span>"#, c.violations)
        };
        let _ = write!(
            out,
            "<tr><td>{name}</td><td>{t}</td><td>{n}</td><td>{nulls}</td><td>{share}</td><td>{lo}</td><td>{hi}</td><td>{d}{approx}</td><td>{status}</td></tr>",
            name = esc(&c.column),
            t = c.value_type.map_or("empty", |t| t.name()),
            n = c.count,
            nulls = c.nulls,
            share = num(c.null_fraction),
            lo = opt(c.min),
            hi = opt(c.max),
            d = num(c.distinct.round()),
            approx = if c.distinct_exact { "" } else { " (approx.)" },
        );
    }
    out.push_str("</table>");
    out.push_str("</body></html>\n");
    out
}
