//! `hfd-rs bench`: every endpoint at every connection count, a table (or
//! JSON), and a recommendation.

#![expect(
    clippy::print_stdout,
    reason = "the bench table is the command's output"
)]

use hfd::bench::{BenchConnections, BenchResult, bench_endpoint};
use hfd_types::ByteSize;

use crate::args::BenchArgs;
use crate::exit::Failure;
use crate::output;

pub(crate) async fn run(args: &BenchArgs) -> Result<(), Failure> {
    let settings = crate::settings::resolve_bench(args).map_err(Failure::from_anyhow)?;
    if !args.json {
        for note in &settings.notes {
            output::note_line(note);
        }
    }
    let mut results: Vec<BenchResult> = Vec::new();
    // Endpoints that failed, with why: a row each, the others still measured.
    let mut dead: Vec<(String, Failure)> = Vec::new();
    for hub in &settings.endpoints {
        // Each count, then the download's ramp up to the largest of them:
        // the count a download would settle on.
        let most = settings.threads.iter().copied().max().unwrap_or(1);
        let runs = settings
            .threads
            .iter()
            .map(|&n| BenchConnections::Fixed(n))
            .chain((most > 1).then_some(BenchConnections::Ramp(most)));
        for connections in runs {
            if !args.json {
                let what = match connections {
                    BenchConnections::Fixed(n) => format!("{n} connection(s)"),
                    BenchConnections::Ramp(n) => format!("the connection ramp (up to {n})"),
                };
                output::note_line(&format!(
                    "measuring {} with {what} for up to {:.0} s",
                    hub.endpoint.as_str(),
                    settings.config.duration.as_secs_f64()
                ));
            }
            let result = bench_endpoint(
                &settings.http,
                hub,
                &settings.repo,
                &settings.revision,
                settings.file.as_deref(),
                connections,
                &settings.config,
            )
            .await;
            match result {
                Ok(result) => results.push(result),
                Err(e) => {
                    let failure = Failure::from_hfd(e);
                    if !args.json {
                        output::note_line(&format!(
                            "{} failed: {}",
                            hub.endpoint.as_str(),
                            failure.message
                        ));
                    }
                    dead.push((hub.endpoint.as_str().to_owned(), failure));
                    break;
                }
            }
        }
    }
    if results.is_empty()
        && let Some((_, failure)) = dead.pop()
    {
        return Err(failure);
    }
    if args.json {
        print_json(&results, &dead);
    } else {
        print_table(&results, &dead);
    }
    Ok(())
}

/// The results, failed endpoints and recommendation as one JSON document.
fn print_json(results: &[BenchResult], dead: &[(String, Failure)]) {
    let best = recommend(results);
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "endpoint": r.endpoint,
                "file": r.file,
                "connections": r.connections,
                "ramp_settled": r.settled,
                "ttfb_ms": r.time_to_first_byte.map(|t| t.as_millis() as u64),
                "bytes": r.bytes,
                "elapsed_secs": r.elapsed.as_secs_f64(),
                "bytes_per_sec": r.bytes_per_sec() as u64,
                "bytes_per_sec_per_connection": (r.bytes_per_sec() / r.settled.unwrap_or(r.connections).max(1) as f64) as u64,
                "errors": r.errors,
                "connections_opened": r.connections_opened,
            })
        })
        .collect();
    let failed: Vec<serde_json::Value> = dead
        .iter()
        .map(|(endpoint, failure)| {
            serde_json::json!({
                "endpoint": endpoint, "error": failure.message, "exit_code": failure.code,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "results": rows,
        "failed": failed,
        "recommended": best.map(|b| serde_json::json!({
            "endpoint": b.endpoint, "connections": b.connections,
        })),
    });
    println!("{doc}");
}

/// The results as a table, then the failed endpoints and the recommendation.
fn print_table(results: &[BenchResult], dead: &[(String, Failure)]) {
    let best = recommend(results);
    println!(
        "{:<40} {:>7} {:>9} {:>12} {:>14} {:>6}",
        "endpoint", "conns", "ttfb", "speed", "per conn", "errors"
    );
    for r in results {
        let conns = r
            .settled
            .map_or_else(|| r.connections.to_string(), |n| format!("ramp {n}"));
        let per_conn = r.settled.unwrap_or(r.connections).max(1);
        let ttfb = r
            .time_to_first_byte
            .map_or_else(|| "-".to_owned(), |t| format!("{} ms", t.as_millis()));
        println!(
            "{:<40} {:>7} {:>9} {:>10}/s {:>12}/s {:>6}",
            r.endpoint,
            conns,
            ttfb,
            ByteSize::new(r.bytes_per_sec() as u64),
            ByteSize::new((r.bytes_per_sec() / per_conn as f64) as u64),
            r.errors
        );
    }
    for (endpoint, failure) in dead {
        println!("{endpoint:<40} failed: {}", failure.message);
    }
    if let Some(best) = best {
        println!(
            "fastest: {} with -x {} ({}/s); use: HF_ENDPOINT={} hfd-rs REPO -x {}",
            best.endpoint,
            best.connections,
            ByteSize::new(best.bytes_per_sec() as u64),
            best.endpoint,
            best.connections
        );
    }
    for r in results.iter().filter(|r| r.settled.is_some()) {
        println!(
            "ramp: {} settled on {} of up to {} connections ({}/s), as a download does",
            r.endpoint,
            r.settled.unwrap_or(r.connections),
            r.connections,
            ByteSize::new(r.bytes_per_sec() as u64),
        );
    }
}

/// The fastest fixed setting, preferring fewer connections when within 5 %
/// of it (more connections cost the mirror and buy nothing).
fn recommend(results: &[BenchResult]) -> Option<&BenchResult> {
    let fixed = || results.iter().filter(|r| r.settled.is_none());
    let top = fixed()
        .map(BenchResult::bytes_per_sec)
        .fold(0.0_f64, f64::max);
    if top <= 0.0 {
        return None;
    }
    fixed()
        .filter(|r| r.errors == 0 || r.bytes_per_sec() >= top)
        .filter(|r| r.bytes_per_sec() >= top * 0.95)
        .min_by_key(|r| r.connections)
}
