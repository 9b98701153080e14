//! Runtime statistics collection.
//!
//! Everything here is reachable only through `Raft::runtime_stats`, which exists only under the
//! `runtime-stats` feature. With the feature off the whole module is legitimately unreachable, so
//! the allow below is conditioned on that rather than applied outright: with the feature on, dead
//! code here is real dead code and still warns.
#![cfg_attr(not(feature = "runtime-stats"), allow(dead_code))]

mod display_mode;
#[allow(clippy::module_inception)]
mod runtime_stats;
mod runtime_stats_display;

pub mod log_stage;

pub use self::display_mode::DisplayMode;
pub use self::runtime_stats::RuntimeStats;
pub use self::runtime_stats_display::RuntimeStatsDisplay;

/// Kinesin's patch (KINESIN.md): the runtime statistics' histograms at the coarsest bucket width,
/// 1, instead of the default 3 (2,016 bytes of buckets each, sixteen per Raft group, allocated
/// and recorded whether or not anything reads them).
pub(crate) fn small_histogram() -> base2histogram::Histogram {
    base2histogram::Histogram::with_log_scale(1, 1)
}
