//! A small HTTP load generator for `bench/serve.sh` (GET only, keep-alive, N concurrent
//! clients on 127.0.0.1).
//!
//! ```text
//! serve_load --base http://127.0.0.1:PORT --clients 8 --seconds 10 --paths FILE
//! serve_load --base http://127.0.0.1:PORT --clients 8 --seconds 10 --page-from PATH
//! ```
//! `--paths`: one request path per line, taken round-robin. `--page-from`: each client pages
//! from PATH following `next` links (to the end, or `--max-pages N`), over and over (each page
//! is one sample, each walk one completed paging).
//! Prints one JSON line: requests, errors, req/s, p50/p99/max latency in ms (and, when paging,
//! complete walks and their median time).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn next_link(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == "next")
        .and_then(|l| l["href"].as_str().map(str::to_string))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = arg(&args, "--base").expect("--base URL");
    let clients: usize = arg(&args, "--clients").map_or(1, |c| c.parse().expect("--clients N"));
    let seconds: f64 = arg(&args, "--seconds").map_or(10.0, |s| s.parse().expect("--seconds S"));
    let paths: Vec<String> = match arg(&args, "--paths") {
        Some(f) => std::fs::read_to_string(&f)
            .expect("read --paths")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    let page_from = arg(&args, "--page-from");
    let max_pages: usize =
        arg(&args, "--max-pages").map_or(usize::MAX, |m| m.parse().expect("--max-pages N"));
    assert!(
        !paths.is_empty() || page_from.is_some(),
        "give --paths FILE or --page-from PATH"
    );
    let paths = Arc::new(paths);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, base, paths, next, page_from) = (
            http.clone(),
            base.clone(),
            Arc::clone(&paths),
            Arc::clone(&next),
            page_from.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut walks = Vec::new();
            let mut errors = 0usize;
            'outer: while Instant::now() < deadline {
                if let Some(first) = &page_from {
                    let walk = Instant::now();
                    let mut url = format!("{base}{first}");
                    for _ in 0..max_pages {
                        let t = Instant::now();
                        let r = http.get(&url).send().await;
                        let body = match r {
                            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
                            _ => None,
                        };
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        let Some(body) = body else {
                            errors += 1;
                            continue 'outer;
                        };
                        match next_link(&body) {
                            Some(n) => url = n,
                            None => break,
                        }
                    }
                    walks.push(walk.elapsed().as_secs_f64() * 1000.0);
                } else {
                    let i = next.fetch_add(1, Ordering::Relaxed) % paths.len();
                    let t = Instant::now();
                    let ok = match http.get(format!("{base}{}", paths[i])).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    if !ok {
                        errors += 1;
                    }
                }
            }
            (lat, walks, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut walks = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, w, e) = t.await.expect("client task");
        lat.extend(l);
        walks.extend(w);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    walks.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "clients": clients,
        "requests": lat.len(),
        "errors": errors,
        "rps": lat.len() as f64 / elapsed,
        "p50_ms": percentile(&lat, 0.5),
        "p99_ms": percentile(&lat, 0.99),
        "max_ms": lat.last().copied().unwrap_or(f64::NAN),
        "walks": walks.len(),
        "walk_p50_ms": percentile(&walks, 0.5),
    });
    println!("{out}");
}
