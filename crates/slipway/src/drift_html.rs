//! The drift report as one self-contained HTML page: inline CSS, one inline SVG per column
//! with the reference and current distributions overlaid, and no external assets, so it can
//! be mailed or attached to a ticket as it is. The page helpers (`esc`, `num`, `STYLE`,
//! `page_start`) are shared with `slipway validate`'s report.

use std::fmt::Write;
use std::path::Path;

use slipway_monitor::drift::{ColumnDrift, DriftReport, Histogram};

/// HTML-escapes text for element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
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
pub(crate) fn num(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 1e-4 && v.abs() < 1e6) {
        format!("{v:.6}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.4e}")
    }
}

/// The one stylesheet of every report page.
pub(crate) const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2933;background:#fafbfc}
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:0 0 .5rem}
.summary{padding:1rem 1.25rem;border-radius:8px;margin:1rem 0 1.5rem;font-size:1.05rem}
.drift{background:#fde8e8;border:1px solid #f5a3a3}.nodrift{background:#e6f6ec;border:1px solid #9fd8b4}
table{border-collapse:collapse;margin-bottom:2rem;background:#fff}
th,td{padding:.35rem .75rem;border-bottom:1px solid #e4e7eb;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f0f2f5}.yes{color:#b42318;font-weight:600}.no{color:#1b7f45}
.col{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:1rem;margin-bottom:1rem}
.meta{color:#52606d;font-size:.9rem;margin-bottom:.5rem}.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}
.muted{color:#52606d}";

const W: f64 = 640.0;
const H: f64 = 180.0;
const PAD_L: f64 = 40.0;
const PAD_B: f64 = 36.0;
const REF_COLOR: &str = "#3b6fd4";
const CUR_COLOR: &str = "#e8833a";

fn svg(h: &Histogram) -> String {
    let (reference, current, labels): (&[f64], &[f64], Vec<String>) = match h {
        Histogram::Numeric { edges, reference, current } => {
            let lo = edges.first().copied().unwrap_or(0.0);
            let hi = edges.last().copied().unwrap_or(0.0);
            (reference, current, vec![num(lo), num(hi)])
        }
        Histogram::Categorical { labels, reference, current } => (reference, current, labels.clone()),
    };
    let n = reference.len().max(current.len());
    if n == 0 {
        return String::new();
    }
    let top = reference.iter().chain(current).copied().fold(0.0f64, f64::max).max(1e-12);
    let plot_w = W - PAD_L - 10.0;
    let plot_h = H - PAD_B - 10.0;
    let bw = plot_w / n as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">"#
    );
    let _ = write!(
        s,
        r##"<line x1="{PAD_L}" y1="{y}" x2="{x2}" y2="{y}" stroke="#9aa5b1"/><text x="{tx}" y="16" font-size="10" text-anchor="end" fill="#52606d">{top}</text>"##,
        y = 10.0 + plot_h,
        x2 = PAD_L + plot_w,
        tx = PAD_L - 4.0,
        top = num(top)
    );
    for (series, color) in [(reference, REF_COLOR), (current, CUR_COLOR)] {
        for (i, v) in series.iter().enumerate() {
            let bh = v / top * plot_h;
            let _ = write!(
                s,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{bh:.2}" fill="{color}" fill-opacity="0.45"><title>{v}</title></rect>"#,
                x = PAD_L + i as f64 * bw + 0.5,
                y = 10.0 + plot_h - bh,
                w = (bw - 1.0).max(0.5),
                v = num(*v),
            );
        }
    }
    let ly = H - PAD_B + 16.0;
    match h {
        Histogram::Numeric { .. } => {
            let _ = write!(
                s,
                r##"<text x="{PAD_L}" y="{ly}" font-size="11" fill="#52606d">{}</text><text x="{}" y="{ly}" font-size="11" text-anchor="end" fill="#52606d">{}</text>"##,
                esc(&labels[0]),
                PAD_L + plot_w,
                esc(&labels[1])
            );
        }
        Histogram::Categorical { .. } => {
            for (i, l) in labels.iter().enumerate() {
                let short: String = l.chars().take(12).collect();
                let _ = write!(
                    s,
                    r##"<text x="{x:.2}" y="{ly}" font-size="10" text-anchor="middle" fill="#52606d"><title>{full}</title>{short}</text>"##,
                    x = PAD_L + (i as f64 + 0.5) * bw,
                    full = esc(l),
                    short = esc(&short),
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// The document head with the inline stylesheet, up to the opened body.
pub(crate) fn page_start(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    )
}

fn verdict(drifted: bool) -> &'static str {
    if drifted { r#"<span class="yes">drift</span>"# } else { r#"<span class="no">no drift</span>"# }
}

fn column_section(out: &mut String, c: &ColumnDrift) {
    let rule = if c.method.is_pvalue() { "drift when p-value" } else { "drift when score" };
    let cmp = match c.method.name() {
        "ks" => "&le;",
        "chisquare" | "z" => "&lt;",
        _ => "&ge;",
    };
    let _ = write!(
        out,
        r#"<div class="col" id="col-{id}"><h2>{name} &mdash; {v}</h2><div class="meta">{kind}, {method}: {stat} ({rule} {cmp} {thr}); reference {rc} values ({rn} null), current {cc} values ({cn} null)</div>{svg}</div>"#,
        id = esc(&c.column),
        name = esc(&c.column),
        v = verdict(c.drifted),
        kind = c.column_type.name(),
        method = c.method.name(),
        stat = num(c.statistic),
        thr = num(c.threshold),
        rc = c.reference_count,
        rn = c.reference_nulls,
        cc = c.current_count,
        cn = c.current_nulls,
        svg = svg(&c.histogram),
    );
}

pub fn render(report: &DriftReport, reference: &Path, current: &Path) -> String {
    let mut out = page_start("Slipway drift report");
    let _ = write!(
        out,
        r#"<h1>Data drift</h1><div class="muted">reference <code>{}</code> &middot; current <code>{}</code></div>"#,
        esc(&reference.display().to_string()),
        esc(&current.display().to_string())
    );
    let _ = write!(
        out,
        r#"<div class="summary {cls}"><strong>Dataset drift {what}.</strong> {d} of {n} columns drifted ({share:.1}%); the dataset drifts at {th:.0}% or more.</div>"#,
        cls = if report.dataset_drift { "drift" } else { "nodrift" },
        what = if report.dataset_drift { "detected" } else { "not detected" },
        d = report.number_of_drifted_columns,
        n = report.number_of_columns,
        share = report.share_of_drifted_columns * 100.0,
        th = report.drift_share * 100.0,
    );
    out.push_str(
        "<table><tr><th>column</th><th>type</th><th>test</th><th>statistic</th><th>threshold</th><th>verdict</th></tr>",
    );
    for c in &report.columns {
        let _ = write!(
            out,
            r##"<tr><td><a href="#col-{id}">{name}</a></td><td>{kind}</td><td>{m}</td><td>{s}</td><td>{t}</td><td>{v}</td></tr>"##,
            id = esc(&c.column),
            name = esc(&c.column),
            kind = c.column_type.name(),
            m = c.method.name(),
            s = num(c.statistic),
            t = num(c.threshold),
            v = verdict(c.drifted),
        );
    }
    out.push_str("</table>");
    for s in &report.skipped {
        let _ = write!(out, r#"<p class="muted">skipped {}: {}</p>"#, esc(&s.column), esc(&s.reason));
    }
    let _ = write!(
        out,
        r#"<div class="legend muted">distributions (share of values):<span style="background:{REF_COLOR};opacity:.6"></span>reference<span style="background:{CUR_COLOR};opacity:.6"></span>current</div><br>"#
    );
    for c in &report.columns {
        column_section(&mut out, c);
    }
    out.push_str("</body></html>\n");
    out
}
