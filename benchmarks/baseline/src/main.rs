//! Baseline readers for the FDW benchmarks (benchmarks/fdw.py runs them).
//!
//! `kafka <brokers> <topic> [parse]`: reads every partition from its low to its high watermark
//! by assignment (what the FDW does), optionally parsing each value as JSON.
//! `es <url> <index> <page_size>`: reads the whole index with a point in time + search_after,
//! parsing every hit's `_source` (what the FDW does).
//! Prints one JSON line: {"rows": n, "seconds": s, "rows_per_s": r}.
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn kafka(brokers: &str, topic: &str, parse: bool) -> u64 {
    let c = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "pg_flink-baseline")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        .set("queued.max.messages.kbytes", "16384")
        // Same as the FDW: without it a slower consumer (JSON parsing) stalls for up to 1 s
        // whenever its fetch queue fills.
        .set("fetch.queue.backoff.ms", "5")
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Error)
        .clone();
    let mut cfg = c;
    for kv in std::env::var("BASELINE_EXTRA").unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap();
        cfg.set(k, v);
    }
    let c: BaseConsumer = cfg.create().expect("consumer");
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let t = &md.topics()[0];
    let mut tpl = TopicPartitionList::new();
    let mut ends = vec![];
    for p in t.partitions() {
        let (lo, hi) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks");
        if hi > lo {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(lo)).unwrap();
            ends.push((p.id(), hi, false));
        }
    }
    c.assign(&tpl).expect("assign");
    let mut open = ends.len();
    let mut n = 0u64;
    let mut bytes = 0usize;
    while open > 0 {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let e = ends.iter_mut().find(|e| e.0 == m.partition()).unwrap();
            if e.2 || m.offset() >= e.1 {
                continue;
            }
            n += 1;
            if parse {
                if let Some(p) = m.payload() {
                    let v: Value = serde_json::from_slice(p).unwrap_or(Value::Null);
                    bytes += v.as_object().map(|o| o.len()).unwrap_or(0);
                }
            } else {
                bytes += m.payload().map(|p| p.len()).unwrap_or(0);
            }
            if m.offset() + 1 >= e.1 {
                e.2 = true;
                open -= 1;
            }
        }
    }
    std::hint::black_box(bytes);
    n
}

async fn es(url: &str, index: &str, page: usize) -> u64 {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let pit: Value = http
        .post(format!("{url}/{index}/_pit?keep_alive=2m"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut pit_id = pit["id"].as_str().unwrap().to_string();
    let mut after: Option<Value> = None;
    let mut n = 0u64;
    let mut fields = 0usize;
    loop {
        let mut body = json!({"size": page, "query": {"match_all": {}}, "sort": [{"_shard_doc": "asc"}],
                              "track_total_hits": false, "pit": {"id": pit_id, "keep_alive": "2m"}});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let bytes = http
            .post(format!("{url}/_search?filter_path=pit_id,hits.hits._id,hits.hits._index,hits.hits._score,hits.hits._source,hits.hits.sort"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        if let Some(p) = v["pit_id"].as_str() {
            pit_id = p.to_string();
        }
        let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
        for h in &hits {
            n += 1;
            fields += h["_source"].as_object().map(|o| o.len()).unwrap_or(0);
        }
        if hits.len() < page {
            break;
        }
        after = hits.last().map(|h| h["sort"].clone());
    }
    let _ = http
        .delete(format!("{url}/_pit"))
        .header("Content-Type", "application/json")
        .body(json!({"id": pit_id}).to_string())
        .send()
        .await;
    std::hint::black_box(fields);
    n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t = Instant::now();
    let n = match args.get(1).map(String::as_str) {
        Some("kafka") => kafka(&args[2], &args[3], args.get(4).map(String::as_str) == Some("parse")),
        Some("es") => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(es(&args[2], &args[3], args[4].parse().unwrap()))
        }
        _ => {
            eprintln!("usage: pg_flink_baseline kafka <brokers> <topic> [parse] | es <url> <index> <page_size>");
            std::process::exit(2);
        }
    };
    let s = t.elapsed().as_secs_f64();
    println!("{}", json!({"rows": n, "seconds": s, "rows_per_s": n as f64 / s}));
}
