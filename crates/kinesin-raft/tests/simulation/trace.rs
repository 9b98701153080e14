//! What happened in a run: a digest of every event (two runs of one seed must end with the same
//! digest) and the last events in full, for the report of a failing seed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Events kept in full for a failure report.
const TAIL: usize = 400;

#[derive(Default)]
struct Inner {
    /// FNV-1a over every event's text.
    digest: u64,
    events: u64,
    tail: VecDeque<String>,
}

pub struct Trace {
    started: tokio::time::Instant,
    /// Keep every event, not only the last few (`SIM_TRACE` set).
    keep_all: bool,
    inner: Mutex<Inner>,
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            started: tokio::time::Instant::now(),
            keep_all: std::env::var_os("SIM_TRACE").is_some(),
            inner: Mutex::new(Inner {
                digest: 0xcbf2_9ce4_8422_2325,
                ..Inner::default()
            }),
        }
    }

    /// Milliseconds of simulated time since the run began.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn event(&self, what: std::fmt::Arguments<'_>) {
        let mut line = String::with_capacity(64);
        let _ = write!(line, "{:>7}ms {what}", self.now_ms());
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for byte in line.bytes() {
            inner.digest = (inner.digest ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
        inner.events += 1;
        if inner.tail.len() == TAIL && !self.keep_all {
            inner.tail.pop_front();
        }
        inner.tail.push_back(line);
    }

    pub fn digest(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.digest, inner.events)
    }

    pub fn tail(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tail.iter().map(|l| format!("  {l}\n")).collect()
    }
}
