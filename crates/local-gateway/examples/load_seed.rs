//! The load benchmark's data (`scripts/bench load`): for each `SUB TOKEN` line of TOKENS
//! (`devtoken mint-many`), FILES READY files of FILE's bytes named after dishes, as an upload
//! leaves them (testkit's `stored_file`: granted, in the bucket, settled, READY, its name's words
//! indexed), in the environment's table and bucket (`TABLE_NAME`, `BUCKET_NAME`, moto at
//! `AWS_ENDPOINT_URL`); then a share link of the user's first file, asked of the API at GATEWAY
//! as the web app would.
//!
//!   cargo run --release -p local-gateway --example load_seed -- GATEWAY TOKENS FILES FILE
//!
//! Prints one line per user for the load script: `TOKEN FILE_ID,FILE_ID,... SHARE_PATH`.

use futures_util::StreamExt;
use serde_json::Value;
use testkit::{Harness, Options};

/// What the files are called; the load script searches for their first letters.
const DISHES: [&str; 8] = ["falafel", "hummus", "shawarma", "tabbouleh", "kibbeh", "manakish", "fattoush", "baklava"];
/// Users seeded at once.
const IN_FLIGHT: usize = 16;

async fn seed(
    harness: &Harness,
    http: &reqwest::Client,
    gateway: &str,
    line: &str,
    files: usize,
    bytes: &[u8],
) -> String {
    let (sub, token) = line.split_once(' ').expect("a TOKENS line is `SUB TOKEN`");
    let mut ids = Vec::new();
    for i in 0..files {
        // Few words a name: moto's queries read every item of the table, and each word is one.
        let dish = DISHES[i % DISHES.len()];
        let name = if i < DISHES.len() { format!("{dish}.jpg") } else { format!("{dish} {i}.jpg") };
        let at = time::OffsetDateTime::now_utc();
        ids.push(harness.stored_file(sub, &name, "image/jpeg", bytes.to_vec(), at).await.to_string());
    }
    let resp = http
        .post(format!("{gateway}/v1/files/{}/shares", ids[0]))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("the gateway answers");
    let status = resp.status();
    let share: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "sharing {sub}'s first file: {share}");
    let path = format!("/v1/shares/{}", share["token"].as_str().expect("the share's token"));
    format!("{token} {} {path}", ids.join(","))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [gateway, tokens, files, file] = args.as_slice() else {
        panic!("usage: load_seed GATEWAY TOKENS FILES FILE");
    };
    let files: usize = files.parse().expect("FILES is a number");
    assert!(files > 0, "FILES is at least 1");
    let bytes = std::fs::read(file).expect("FILE is readable");
    let tokens = std::fs::read_to_string(tokens).expect("TOKENS is readable");
    let table = std::env::var("TABLE_NAME").expect("TABLE_NAME is set (the functions' environment)");
    let harness = Harness::new(presign::router, Options { table: Some(table), ..Options::default() }).await;
    let http = reqwest::Client::builder().no_proxy().build().expect("an HTTP client");
    let lines = futures_util::stream::iter(tokens.lines().filter(|l| !l.trim().is_empty()))
        .map(|line| seed(&harness, &http, gateway.trim_end_matches('/'), line, files, &bytes))
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<String>>()
        .await;
    for line in lines {
        println!("{line}");
    }
}
