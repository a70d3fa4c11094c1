//! Where the time of one request goes: decode, run, encode, timed separately in a loop.
//! `cargo run --release -p slipway-serving --example stages -- MODEL_DIR BODY.json`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
use std::path::Path;
use std::time::Instant;

use slipway_serving::model::{LoadOptions, ModelId, OnnxModel};
use slipway_serving::{decode, encode};

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let id = ModelId { name: "m".into(), version: "1".into() };
    let model =
        OnnxModel::load(Path::new(&args[1]), id, &LoadOptions { sessions: 1, ..LoadOptions::default() }).unwrap();
    let body = std::fs::read(&args[2]).unwrap();
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20000);
    let (mut td, mut tr, mut te, mut ts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t0 = Instant::now();
        let d = decode::mlflow_json(&model, &body).unwrap();
        let t1 = Instant::now();
        let out = model.run(&d.inputs).unwrap();
        let t2 = Instant::now();
        let t3 = Instant::now();
        let s = serde_json::to_vec(&encode::mlflow(&out, d.rows, d.layout)).unwrap();
        let t4 = Instant::now();
        std::hint::black_box(s);
        td.push((t1 - t0).as_secs_f64() * 1e6);
        tr.push((t2 - t1).as_secs_f64() * 1e6);
        te.push((t3 - t2).as_secs_f64() * 1e6);
        ts.push((t4 - t3).as_secs_f64() * 1e6);
    }
    println!("decode {:.1}us run {:.1}us encode {:.1}us serialize {:.1}us", p50(td), p50(tr), p50(te), p50(ts));
}
