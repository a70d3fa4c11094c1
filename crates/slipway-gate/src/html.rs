//! The gate report as one self-contained HTML page (inline CSS, no external assets), in the
//! look of `slipway drift`'s report, so it can be attached to a run, a merge request or a
//! ticket as it is. It renders [`Report`] and nothing else: what the page says, the JSON says.

use std::fmt::Write;

use crate::report::Report;
use crate::score::Scored;

/// HTML-escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number short enough for a table cell.
fn num(v: f64) -> String {
    if v.is_nan() {
        "—".to_string()
    } else if v == 0.0 || (v.abs() >= 1e-4 && v.abs() < 1e6) {
        format!("{v:.6}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.4e}")
    }
}

const STYLE: &str =
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2933;background:#fafbfc}
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.summary{padding:1rem 1.25rem;border-radius:8px;margin:1rem 0 1.5rem;font-size:1.05rem}
.fail{background:#fde8e8;border:1px solid #f5a3a3}.pass{background:#e6f6ec;border:1px solid #9fd8b4}
table{border-collapse:collapse;margin-bottom:1rem;background:#fff}
th,td{padding:.35rem .75rem;border-bottom:1px solid #e4e7eb;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f0f2f5}.yes{color:#1b7f45;font-weight:600}.no{color:#b42318;font-weight:600}
.gated{background:#fff8e1}.muted{color:#52606d}";

fn verdict(passed: bool) -> &'static str {
    if passed { r#"<span class="yes">pass</span>"# } else { r#"<span class="no">fail</span>"# }
}

fn version_header(alias: &str, role: &str, s: Option<&Scored>) -> String {
    match s {
        Some(s) => format!("{role} (version {})", esc(&s.version)),
        None => format!("{role} (@{} unset)", esc(alias)),
    }
}

fn metric_rows(out: &mut String, r: &Report) {
    let champ = r.champion.as_ref();
    let names = r.candidate.metrics.keys().chain(champ.into_iter().flat_map(|c| c.metrics.keys()));
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if seen.contains(name) {
            continue;
        }
        seen.push(name);
        let cand = r.candidate.metrics.get(name).copied().unwrap_or(f64::NAN);
        let other = champ.and_then(|c| c.metrics.get(name).copied()).unwrap_or(f64::NAN);
        let class = if *name == r.metric.name() { r#" class="gated""# } else { "" };
        let _ = write!(
            out,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            num(cand),
            num(other),
            num(cand - other),
        );
    }
    let latency = |s: &Scored| [s.latency.p50_ms, s.latency.p95_ms, s.latency.max_ms];
    let (c, o) = (latency(&r.candidate), champ.map_or([f64::NAN; 3], latency));
    for (i, label) in ["p50", "p95", "max"].iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td>latency {label} (ms)</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(c[i]),
            num(o[i]),
            num(c[i] - o[i])
        );
    }
}

pub fn render(r: &Report) -> String {
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Slipway gate: {} version {}</title><style>{STYLE}</style></head><body>",
        esc(&r.model),
        esc(&r.candidate.version)
    );
    let _ = write!(
        out,
        r#"<h1>Gate: {model} version {v}</h1><div class="muted">against @{alias} &middot; holdout <code>{path}</code> ({rows} rows, {labelled} labelled, label <code>{label}</code>)</div>"#,
        model = esc(&r.model),
        v = esc(&r.candidate.version),
        alias = esc(&r.champion_alias),
        path = esc(&r.holdout.path.display().to_string()),
        rows = r.holdout.rows,
        labelled = r.holdout.labelled_rows,
        label = esc(&r.holdout.label),
    );
    let rule = format!(
        "{m} ({dir} is better) by at least {d}{lat}",
        m = r.metric.name(),
        dir = if r.lower_is_better { "lower" } else { "higher" },
        d = num(r.min_delta),
        lat = r.max_latency_ms.map_or_else(String::new, |ms| format!(", p95 latency at most {} ms", num(ms))),
    );
    let _ = write!(
        out,
        r#"<div class="summary {cls}"><strong>{word}.</strong> Required: {rule}.</div>"#,
        cls = if r.passed { "pass" } else { "fail" },
        word = if r.passed { "The candidate passes" } else { "The candidate is rejected" },
        rule = esc(&rule),
    );
    out.push_str("<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>detail</th></tr>");
    for c in &r.checks {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", c.name, verdict(c.passed), esc(&c.detail));
    }
    out.push_str("</table>");
    let _ = write!(
        out,
        "<h2>Metrics</h2><table><tr><th>metric</th><th>{}</th><th>{}</th><th>difference</th></tr>",
        version_header(&r.champion_alias, "candidate", Some(&r.candidate)),
        version_header(&r.champion_alias, "champion", r.champion.as_ref()),
    );
    metric_rows(&mut out, r);
    out.push_str("</table>");
    let _ = write!(
        out,
        r#"<p class="muted">Latency: {n} single-row requests per model through the serving runtime (decode and run, no network), after a short warm-up.</p>"#,
        n = r.candidate.latency.requests
    );
    if !r.actions.is_empty() || r.run_id.is_some() {
        out.push_str("<h2>Actions</h2><ul>");
        for a in &r.actions {
            let _ = write!(out, "<li>{}</li>", esc(a));
        }
        if let Some(run) = &r.run_id {
            let _ = write!(out, "<li>logged to run <code>{}</code></li>", esc(run));
        }
        out.push_str("</ul>");
    }
    let _ = write!(out, r#"<p class="muted">features: {}</p>"#, esc(&r.holdout.features.join(", ")));
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;

    #[test]
    fn the_page_states_the_verdict_and_escapes_names() {
        let page = render(&sample(false));
        assert!(page.contains("The candidate is rejected"));
        assert!(page.contains("fraud&lt;x&gt;") && !page.contains("fraud<x>"));
        assert!(page.contains(r#"<tr class="gated"><td>f1</td><td>0.5</td><td>0.8</td>"#), "{page}");
        assert!(!page.contains("http"), "the page must not load anything");
        let page = render(&sample(true));
        assert!(page.contains("The candidate passes") && page.contains("candidate (version 5)"));
    }
}
