//! `slipway monitors ...`: monitors of a running server, their windows and alerts, and
//! ground truth uploaded from a CSV file. Tables for people, `--json` for scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::Api;
use crate::models::{print_json, print_table};
use slipway_types::time::utc;

#[derive(Args)]
pub struct MonitorsArgs {
    #[command(flatten)]
    server: crate::client::ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a monitor from a JSON spec (see docs/design/monitoring.md, part C).
    Create { spec: PathBuf },
    /// Replace a monitor's whole spec from a JSON file.
    Replace { spec: PathBuf },
    /// List monitors.
    List,
    /// Show one monitor and its latest window.
    Show { name: String },
    /// Delete a monitor with its windows and alerts.
    Delete { name: String },
    /// A monitor's evaluated windows, oldest first.
    Windows {
        name: String,
        /// Series to show as columns (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "drift.share,quality.violations,performance.accuracy")]
        series: Vec<String>,
    },
    /// Every firing of the monitor's alert rules and its delivery.
    Alerts { name: String },
    /// Evaluate the windows that have ended, now.
    Evaluate { name: String },
    /// Post labels for past requests of a deployment from a CSV file with the columns
    /// request_id and label (and row, for requests of several rows).
    Labels {
        deployment: String,
        #[arg(long)]
        file: PathBuf,
    },
}

const API: &str = "/api/v1/monitors";
/// Label sets per call (the server takes up to 100,000).
const LABELS_PER_CALL: usize = 50_000;

pub fn run(args: MonitorsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(dispatch(args))
}

fn read_spec(path: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() != 0.0 => format!("{x:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn monitor_row(m: &Value) -> Vec<String> {
    let reference = m["reference"]["uri"].as_str().or(m["reference"]["run_artifact"].as_str()).unwrap_or("-");
    let window = m["window_seconds"].as_u64().unwrap_or(slipway_types::monitoring::DEFAULT_WINDOW_SECONDS);
    let alerts = m["alerts"].as_array().map_or(0, Vec::len);
    vec![text(&m["name"]), text(&m["deployment"]), reference.to_string(), format!("{window}s"), alerts.to_string()]
}

const MONITOR_HEADERS: [&str; 5] = ["NAME", "DEPLOYMENT", "REFERENCE", "WINDOW", "ALERTS"];

/// A CSV cell as a label: numbers and booleans as such, anything else as text.
fn label(cell: &str) -> Value {
    if let Ok(i) = cell.parse::<i64>() {
        return json!(i);
    }
    match cell {
        "true" | "True" => return json!(true),
        "false" | "False" => return json!(false),
        _ => {}
    }
    match cell.parse::<f64>() {
        Ok(x) if x.is_finite() => json!(x),
        _ => json!(cell),
    }
}

/// The label sets of a CSV file: per request id, its labels in row order.
fn read_labels(path: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(id_col), Some(label_col)) = (col("request_id"), col("label")) else {
        bail!("{} must have the columns request_id and label (and optionally row)", path.display());
    };
    let row_col = col("row");
    let mut by_id: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let id = record.get(id_col).unwrap_or_default().to_string();
        let rows = by_id.entry(id).or_default();
        let row = match row_col.and_then(|c| record.get(c)) {
            Some(r) => r.parse().with_context(|| format!("{}: line {}: row '{r}'", path.display(), line + 2))?,
            None => rows.len(),
        };
        rows.push((row, label(record.get(label_col).unwrap_or_default())));
    }
    let mut sets = Vec::with_capacity(by_id.len());
    for (id, mut rows) in by_id {
        rows.sort_by_key(|(r, _)| *r);
        if rows.iter().enumerate().any(|(i, (r, _))| i != *r) {
            bail!("request {id}: the rows given are not 0, 1, 2, ... each once");
        }
        sets.push(json!({ "request_id": id, "labels": rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>() }));
    }
    Ok(sets)
}

async fn dispatch(args: MonitorsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    let one = match args.command {
        Command::Create { spec } => api.call("POST", API, &[], Some(read_spec(&spec)?)).await?,
        Command::Replace { spec } => {
            let body = read_spec(&spec)?;
            let name = body["name"].as_str().context("the spec has no name")?.to_string();
            api.call("PUT", &format!("{API}/{name}"), &[], Some(body)).await?
        }
        Command::Show { name } => {
            let v = api.call("GET", &format!("{API}/{name}"), &[], None).await?;
            if args.server.json {
                return print_json(&v);
            }
            v
        }
        Command::List => {
            let v = api.call("GET", API, &[], None).await?;
            if args.server.json {
                return print_json(&v["monitors"]);
            }
            print_table(&MONITOR_HEADERS, v["monitors"].as_array().into_iter().flatten().map(monitor_row).collect());
            return Ok(());
        }
        Command::Delete { name } => {
            api.call("DELETE", &format!("{API}/{name}"), &[], None).await?;
            println!("deleted monitor {name}");
            return Ok(());
        }
        Command::Windows { name, series } => {
            let v = api.call("GET", &format!("{API}/{name}/windows"), &[], None).await?;
            return print_windows(&v["windows"], &series, args.server.json);
        }
        Command::Evaluate { name } => {
            let v = api.call("POST", &format!("{API}/{name}/evaluate"), &[], None).await?;
            let default = ["drift.share", "quality.violations", "performance.accuracy"].map(String::from);
            return print_windows(&v["windows"], &default, args.server.json);
        }
        Command::Alerts { name } => {
            let v = api.call("GET", &format!("{API}/{name}/alerts"), &[], None).await?;
            if args.server.json {
                return print_json(&v["alerts"]);
            }
            let rows = v["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let window = a["window_start_ms"].as_i64().map_or_else(|| "-".into(), utc);
                    let error = text(&a["last_error"]);
                    vec![text(&a["rule"]), window, text(&a["value"]), text(&a["status"]), text(&a["attempts"]), error]
                })
                .collect();
            print_table(&["RULE", "WINDOW", "VALUE", "STATUS", "ATTEMPTS", "LAST ERROR"], rows);
            return Ok(());
        }
        Command::Labels { deployment, file } => {
            let sets = read_labels(&file)?;
            let path = format!("/api/v1/deployments/{deployment}/ground-truth");
            let mut accepted = 0;
            for chunk in sets.chunks(LABELS_PER_CALL) {
                let v = api.call("POST", &path, &[], Some(json!({ "labels": chunk }))).await?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
            if args.server.json {
                return print_json(&json!({ "accepted": accepted }));
            }
            println!("posted labels for {accepted} requests of {deployment}");
            return Ok(());
        }
    };
    if args.server.json {
        return print_json(&one["monitor"]);
    }
    print_table(&MONITOR_HEADERS, vec![monitor_row(&one["monitor"])]);
    Ok(())
}

fn print_windows(windows: &Value, series: &[String], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(windows);
    }
    let mut headers = vec!["START (UTC)".to_string(), "ROWS".to_string()];
    headers.extend(series.iter().cloned());
    let rows = windows
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["rows"].as_u64().unwrap_or(0) > 0)
        .map(|w| {
            let mut row = vec![w["start_ms"].as_i64().map_or_else(|| "-".into(), utc), text(&w["rows"])];
            row.extend(series.iter().map(|s| text(&w["series"][s.as_str()])));
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    print_table(&headers, rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_their_types_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, "request_id,row,label\nb,1,yes\na,0,1\nb,0,2.5\n").unwrap();
        let sets = read_labels(&path).unwrap();
        assert_eq!(
            sets,
            vec![json!({"request_id": "a", "labels": [1]}), json!({"request_id": "b", "labels": [2.5, "yes"]})]
        );
        std::fs::write(&path, "request_id,row,label\na,1,1\n").unwrap();
        assert!(read_labels(&path).is_err(), "a request's rows must start at 0");
        std::fs::write(&path, "id,label\na,1\n").unwrap();
        assert!(read_labels(&path).is_err());
    }
}
