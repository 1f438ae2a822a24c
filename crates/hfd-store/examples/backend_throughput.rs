//! Measures write throughput of the mmap and pwrite backends.
//!
//! ```text
//! cargo run -p hfd-store --release --example backend_throughput -- [DIR] [MIB] [WRITERS]
//! ```
//!
//! Writes a file of MIB MiB (default 512) in DIR (default the system temp
//! dir) with WRITERS threads (default 4) each filling one contiguous segment
//! in 16 KiB frames (a typical HTTP body frame), then flushes. Reports MB/s
//! including the final `fdatasync`, and the process's peak RSS.

use std::time::Instant;

use hfd_store::{Backend, PartialFile, StoreConfig};
use hfd_types::ByteSize;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(std::env::temp_dir, Into::into);
    let mib: u64 = args.next().map_or(Ok(512), |s| s.parse())?;
    let writers: u64 = args.next().map_or(Ok(4), |s| s.parse())?;
    let size = mib << 20;
    let frame: Vec<u8> = (0..16 * 1024).map(|i| (i * 7 + 3) as u8).collect();
    for round in 0..2 {
        for backend in [Backend::Mmap, Backend::Pwrite] {
            let path = dir.join(format!("hfd-store-bench-{}", std::process::id()));
            let mut config = StoreConfig::default();
            config.backend = backend;
            config.window_size = ByteSize::mib(16);
            let partial = PartialFile::create(&path, size, None, &config)?;
            let started = Instant::now();
            std::thread::scope(|s| {
                for i in 0..writers {
                    let mut w = partial.writer();
                    let frame = &frame;
                    s.spawn(move || {
                        let (start, end) = (size * i / writers, size * (i + 1) / writers);
                        let mut pos = start;
                        while pos < end {
                            let n = (frame.len() as u64).min(end - pos) as usize;
                            w.write_at(pos, &frame[..n]).expect("write");
                            pos += n as u64;
                        }
                    });
                }
            });
            let copied = started.elapsed();
            partial.flush()?;
            let total = started.elapsed();
            drop(partial);
            std::fs::remove_file(&path)?;
            println!(
                "round {round} {backend:?}: {mib} MiB, {writers} writers: copy {:.0} MB/s, copy+fdatasync {:.0} MB/s",
                size as f64 / copied.as_secs_f64() / 1e6,
                size as f64 / total.as_secs_f64() / 1e6,
            );
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!("peak RSS {}", line.trim_start_matches("VmHWM:").trim());
    }
    Ok(())
}
