//! `slipway labeling …`: labeling queues on a server (docs/design/data.md): make one on a
//! deployment, see how far it got, take and label items from the shell, export the labels
//! as a data version.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Api, ServerArgs};
use crate::models::{print_json, print_table, text};

const QUEUES: &str = "/api/v1/labeling";

#[derive(Args)]
pub struct LabelingArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a queue on a deployment.
    Create {
        name: String,
        #[arg(long)]
        deployment: String,
        /// Which of the deployment's predictions the queue is offered: sample (a share
        /// --rate), margin (two likeliest classes closer than --threshold), flagged (a value
        /// a monitor's schema refuses), or manual (items offered through the API).
        #[arg(long, default_value = "manual")]
        mode: String,
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long)]
        threshold: Option<f64>,
        /// The labels to pick from, comma-separated (free text when none).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(long, default_value_t = 300)]
        lease_seconds: i64,
    },
    /// Every queue with its counts.
    List,
    /// One queue.
    Show { name: String },
    /// Offer a fed queue what its deployment logged since it was last fed, now (the server
    /// does this on every monitor pass).
    Feed { name: String },
    /// Lease the next item of a queue (printed with its lease token).
    Next { name: String },
    /// Label a leased item.
    Label { name: String, item_id: i64, lease_token: String, label: String },
    /// Store the labelled items as a new version of a data set.
    Export {
        name: String,
        #[arg(long)]
        data_set: String,
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
}

pub fn run(args: LabelingArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(dispatch(args))
}

fn queue_row(q: &Value) -> Vec<String> {
    let c = &q["counts"];
    vec![
        text(&q["name"]),
        text(&q["deployment"]),
        text(&q["mode"]),
        text(&c["queued"]),
        text(&c["leased"]),
        text(&c["labelled"]),
    ]
}

const HEADERS: [&str; 6] = ["NAME", "DEPLOYMENT", "MODE", "QUEUED", "LEASED", "LABELLED"];

async fn dispatch(args: LabelingArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    let json = args.server.json;
    let path = |name: &str, rest: &str| {
        format!("{QUEUES}/{}{rest}", percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC))
    };
    let v = match args.command {
        Command::Create { name, deployment, mode, rate, threshold, labels, lease_seconds } => {
            let body = json!({"name": name, "deployment": deployment, "mode": mode, "rate": rate,
                              "threshold": threshold, "labels": labels, "lease_seconds": lease_seconds});
            api.call("POST", QUEUES, &[], Some(body)).await?["queue"].clone()
        }
        Command::List => {
            let v = api.call("GET", QUEUES, &[], None).await?;
            if json {
                return print_json(&v["queues"]);
            }
            print_table(&HEADERS, v["queues"].as_array().into_iter().flatten().map(queue_row).collect());
            return Ok(());
        }
        Command::Show { name } => api.call("GET", &path(&name, ""), &[], None).await?["queue"].clone(),
        Command::Feed { name } => {
            let fed = api.call("POST", &path(&name, "/feed"), &[], None).await?;
            if json {
                return print_json(&fed);
            }
            println!("{} new items", text(&fed["added"]));
            fed["queue"].clone()
        }
        Command::Next { name } => {
            let item = api.call("GET", &path(&name, "/next"), &[], None).await?["item"].clone();
            if item.is_null() && !json {
                bail!("nothing waits in queue '{name}'");
            }
            item
        }
        Command::Label { name, item_id, lease_token, label } => {
            let label: Value = serde_json::from_str(&label).unwrap_or(Value::String(label));
            let body = json!({"item_id": item_id, "lease_token": lease_token, "label": label});
            api.call("POST", &path(&name, "/label"), &[], Some(body)).await?["item"].clone()
        }
        Command::Export { name, data_set, aliases } => {
            let body = json!({"data_set": data_set, "aliases": aliases});
            api.call("POST", &path(&name, "/export"), &[], Some(body)).await?["version"].clone()
        }
    };
    if json || v.get("item_id").is_some() || v.get("manifest").is_some() {
        return print_json(&v);
    }
    print_table(&HEADERS, vec![queue_row(&v)]);
    Ok(())
}
