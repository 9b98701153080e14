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

/// Kinesin's patch (KINESIN.md): the runtime statistics' histograms. They are allocated and
/// recorded whether or not anything can read them, sixteen per Raft group; only the
/// `runtime-stats` feature can read them, so without it they are [`Unrecorded`], and with it
/// they are made at the coarsest bucket width, 1, instead of the default 3 (2,016 bytes of
/// buckets each).
#[cfg(feature = "runtime-stats")]
pub(crate) type StatsHistogram = base2histogram::Histogram;
#[cfg(not(feature = "runtime-stats"))]
pub(crate) type StatsHistogram = Unrecorded;

/// See [`StatsHistogram`].
pub(crate) fn small_histogram() -> StatsHistogram {
    #[cfg(feature = "runtime-stats")]
    {
        base2histogram::Histogram::with_log_scale(1, 1)
    }
    #[cfg(not(feature = "runtime-stats"))]
    {
        Unrecorded
    }
}

/// A histogram nothing reads: records nothing, holds nothing (Kinesin's patch, KINESIN.md).
#[cfg(not(feature = "runtime-stats"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unrecorded;

#[cfg(not(feature = "runtime-stats"))]
impl Unrecorded {
    pub fn record(&mut self, _value: u64) {}

    pub fn record_n(&mut self, _value: u64, _count: u64) {}

    /// The statistics of an empty histogram.
    pub fn percentile_stats(&self) -> base2histogram::PercentileStats {
        base2histogram::Histogram::<()>::with_log_scale(1, 1).percentile_stats()
    }
}
