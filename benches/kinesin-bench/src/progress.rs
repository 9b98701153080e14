//! The live progress line on stderr: what the last interval looked like (records/s, p99,
//! errors, throttling, consumer lag), so a run going wrong shows before it ends. Redrawn in
//! place once a second on a terminal, one line per `--progress-secs` otherwise (logs, CI).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::producer::Run;
use crate::stats::{ms, Recorder};

pub struct Progress {
    handle: tokio::task::JoinHandle<()>,
    tty: bool,
}

impl Progress {
    /// None when `every_secs` is 0.
    pub fn spawn(
        producers: Recorder,
        consumers: Option<Recorder>,
        run: Arc<Run>,
        every_secs: u64,
    ) -> Option<Progress> {
        if every_secs == 0 {
            return None;
        }
        let tty = std::io::stderr().is_terminal();
        let interval = Duration::from_secs(if tty { 1 } else { every_secs });
        let handle = tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            let (mut errors, mut throttled) = (0u64, 0u64);
            let mut last = Instant::now();
            loop {
                ticker.tick().await;
                let now = Instant::now();
                let secs = now.duration_since(last).as_secs_f64().max(1e-3);
                last = now;
                let put = producers.take_window();
                errors += put.errors.error_total();
                throttled += put.errors.throttled_total();
                let mut line = format!(
                    "{:>5}s put {:>8.0} rec/s p99 {:>7.2} ms err {errors} thr {throttled}",
                    run.started.elapsed().as_secs(),
                    put.records as f64 / secs,
                    if put.latency.is_empty() {
                        0.0
                    } else {
                        ms(put.latency.value_at_quantile(0.99))
                    },
                );
                if let Some(consumers) = &consumers {
                    let get = consumers.take_window();
                    let received = get.records + get.foreign;
                    line.push_str(&format!(
                        " | get {:>8.0} rec/s put→get p50 {:>7.2} ms lag {} ms err {}",
                        received as f64 / secs,
                        if get.put_get.is_empty() {
                            0.0
                        } else {
                            ms(get.put_get.value_at_quantile(0.5))
                        },
                        get.millis_behind_max,
                        get.errors.error_total() + get.errors.throttled_total(),
                    ));
                }
                if now < run.measure_from {
                    line.push_str(" (warm-up)");
                } else if run.over(now) {
                    line.push_str(" (draining)");
                }
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Some(Progress { handle, tty })
    }

    pub fn stop(self) {
        self.handle.abort();
        if self.tty {
            eprintln!();
        }
    }
}
