//! Account settings (UpdateAccountSettings' minimum throughput billing commitment) and the warm
//! throughput of on-demand streams that the commitment unlocks.
//!
//! Kinesin bills nothing: the commitment is recorded with AWS's rules (it runs at least 24 hours;
//! disabling it earlier schedules its end at the earliest allowed time, and enabling it again
//! before then cancels that), and warm throughput is a floor under an on-demand stream's shard
//! count. A commitment's status depends on the time it is read at, so it is stored as times and
//! evaluated with [`Commitment::status_at`]: no background step has to end it.

use serde::{Deserialize, Serialize};

use crate::state::{ClusterState, StreamKey, StreamMeta, StreamMode};
use crate::ControllerError;

/// A commitment runs at least this long before it can end.
pub const MIN_COMMITMENT_MS: u64 = 24 * 3_600_000;
/// AWS's default cap on an on-demand stream's warm throughput: 10 GiB/s.
pub const MAX_WARM_THROUGHPUT_MIBPS: u32 = 10 * 1024;
/// What one shard takes in writes (AWS's per-shard limit), in MiB/s: a stream's write capacity
/// is its open shards times this.
pub const SHARD_WRITE_MIBPS: u32 = 1;

/// Account settings are per account and region, as streams are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountKey {
    pub account: String,
    pub region: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// The latest minimum throughput billing commitment; `None` if there never was one.
    pub commitment: Option<Commitment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    pub started_ms: u64,
    pub earliest_end_ms: u64,
    /// When the commitment ends (or ended); `None` while it runs until disabled.
    pub ends_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitmentStatus {
    Enabled,
    /// Disabled before its earliest end: it runs until then.
    EnabledUntilEarliestAllowedEnd,
    Disabled,
}

impl CommitmentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CommitmentStatus::Enabled => "ENABLED",
            CommitmentStatus::EnabledUntilEarliestAllowedEnd => {
                "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
            }
            CommitmentStatus::Disabled => "DISABLED",
        }
    }
}

impl Commitment {
    pub fn status_at(&self, now_ms: u64) -> CommitmentStatus {
        match self.ends_ms {
            None => CommitmentStatus::Enabled,
            Some(end) if end > now_ms => CommitmentStatus::EnabledUntilEarliestAllowedEnd,
            Some(_) => CommitmentStatus::Disabled,
        }
    }
}

impl AccountSettings {
    /// Whether the commitment is in force at `now_ms` (ENABLED, or ENABLED until its earliest
    /// end): what warm throughput requires.
    pub fn committed_at(&self, now_ms: u64) -> bool {
        self.commitment
            .as_ref()
            .is_some_and(|c| c.status_at(now_ms) != CommitmentStatus::Disabled)
    }

    /// UpdateAccountSettings. Returns whether anything changed.
    pub(crate) fn set_commitment(&mut self, enable: bool, now_ms: u64) -> bool {
        let status = self.commitment.as_ref().map(|c| c.status_at(now_ms));
        match (enable, status, self.commitment.as_mut()) {
            (true, Some(CommitmentStatus::Enabled), _) => false,
            (true, Some(CommitmentStatus::EnabledUntilEarliestAllowedEnd), Some(c)) => {
                c.ends_ms = None;
                true
            }
            (true, _, _) => {
                self.commitment = Some(Commitment {
                    started_ms: now_ms,
                    earliest_end_ms: now_ms.saturating_add(MIN_COMMITMENT_MS),
                    ends_ms: None,
                });
                true
            }
            (false, Some(CommitmentStatus::Enabled), Some(c)) => {
                c.ends_ms = Some(c.earliest_end_ms.max(now_ms));
                true
            }
            (false, _, _) => false,
        }
    }
}

impl ClusterState {
    /// The settings of an account in a region (the defaults if it never changed them).
    pub fn account_settings(&self, account: &str, region: &str) -> AccountSettings {
        self.accounts
            .get(&AccountKey {
                account: account.to_string(),
                region: region.to_string(),
            })
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `key`'s account has a commitment in force at `now_ms`.
    pub fn committed_at(&self, key: &StreamKey, now_ms: u64) -> bool {
        self.account_settings(&key.account, &key.region)
            .committed_at(now_ms)
    }
}

impl StreamMeta {
    /// The write throughput the stream's open shards take, in MiB/s (warm throughput's
    /// `CurrentMiBps`).
    pub fn write_capacity_mibps(&self) -> u32 {
        (self.open_shards().count() as u32).saturating_mul(SHARD_WRITE_MIBPS)
    }

    /// The fewest open shards that carry the stream's warm throughput target.
    pub fn warm_shard_floor(&self) -> usize {
        self.warm_throughput_mibps
            .map_or(0, |mibps| mibps.div_ceil(SHARD_WRITE_MIBPS) as usize)
    }
}

/// Checks a warm throughput request against the stream's mode and the account's commitment.
pub(crate) fn check_warm_throughput(
    state: &ClusterState,
    key: &StreamKey,
    mode: StreamMode,
    mibps: u32,
    now_ms: u64,
) -> Result<(), ControllerError> {
    if mode != StreamMode::OnDemand {
        return Err(ControllerError::Validation(format!(
            "Request is invalid. Stream {} under account {} is in Provisioned mode: warm throughput is supported for on-demand streams only.",
            key.name, key.account
        )));
    }
    if !state.committed_at(key, now_ms) {
        return Err(ControllerError::Validation(format!(
            "Request is invalid. Warm throughput requires MinimumThroughputBillingCommitment to be enabled for account {}.",
            key.account
        )));
    }
    if mibps > MAX_WARM_THROUGHPUT_MIBPS {
        return Err(ControllerError::LimitExceeded(format!(
            "Requested warm throughput {mibps} MiBps for stream {} under account {} exceeds the limit of {MAX_WARM_THROUGHPUT_MIBPS} MiBps.",
            key.name, key.account
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::test_support::*;
    use crate::{Command, Outcome, StreamStatus};

    const HOUR: u64 = 3_600_000;

    fn account() -> AccountKey {
        AccountKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
        }
    }

    fn commit(enable: bool, now_ms: u64) -> Command {
        Command::SetAccountCommitment {
            account: account(),
            enable,
            now_ms,
        }
    }

    fn status(state: &ClusterState, now_ms: u64) -> Option<CommitmentStatus> {
        let settings = state.account_settings("000000000000", "us-east-1");
        settings.commitment.map(|c| c.status_at(now_ms))
    }

    #[test]
    fn a_commitment_runs_at_least_a_day() {
        let mut state = bootstrapped();
        assert_eq!(status(&state, NOW), None);
        assert_eq!(commit(false, NOW).apply(&mut state), Ok(Outcome::Unchanged));
        assert_eq!(commit(true, NOW).apply(&mut state), Ok(Outcome::Done));
        assert_eq!(
            commit(true, NOW + HOUR).apply(&mut state),
            Ok(Outcome::Unchanged)
        );
        let started = state.account_settings("000000000000", "us-east-1");
        let c = started.commitment.clone().unwrap();
        assert_eq!((c.started_ms, c.earliest_end_ms), (NOW, NOW + 24 * HOUR));
        assert!(
            state
                .account_settings("000000000000", "eu-west-1")
                .commitment
                .is_none(),
            "settings are per region"
        );

        // Disabled early: it runs until its earliest end, then is disabled by itself.
        commit(false, NOW + HOUR).apply(&mut state).unwrap();
        assert_eq!(
            status(&state, NOW + 2 * HOUR),
            Some(CommitmentStatus::EnabledUntilEarliestAllowedEnd)
        );
        assert!(state.committed_at(&key("a"), NOW + 24 * HOUR - 1));
        assert_eq!(
            status(&state, NOW + 24 * HOUR),
            Some(CommitmentStatus::Disabled)
        );
        assert!(!state.committed_at(&key("a"), NOW + 24 * HOUR));

        // Enabled again before then: the pending end is cancelled, the commitment continues.
        commit(true, NOW + 3 * HOUR).apply(&mut state).unwrap();
        assert_eq!(
            status(&state, NOW + 30 * HOUR),
            Some(CommitmentStatus::Enabled)
        );
        assert_eq!(
            state
                .account_settings("000000000000", "us-east-1")
                .commitment
                .map(|c| c.started_ms),
            Some(NOW)
        );

        // Disabled after its earliest end: at once.
        commit(false, NOW + 30 * HOUR).apply(&mut state).unwrap();
        assert_eq!(
            status(&state, NOW + 30 * HOUR),
            Some(CommitmentStatus::Disabled)
        );
        // A new commitment starts afresh.
        commit(true, NOW + 31 * HOUR).apply(&mut state).unwrap();
        let c = state
            .account_settings("000000000000", "us-east-1")
            .commitment
            .unwrap();
        assert_eq!(
            (c.started_ms, c.earliest_end_ms, c.ends_ms),
            (NOW + 31 * HOUR, NOW + 55 * HOUR, None)
        );
    }

    fn on_demand(name: &str, warm: Option<u32>, now_ms: u64) -> Command {
        Command::CreateStream {
            key: key(name),
            arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
            now_ms,
            shard_count: 4,
            mode: StreamMode::OnDemand,
            tags: BTreeMap::new(),
            max_record_size_kib: 1024,
            replication_factor: 3,
            shard_limit: 100,
            warm_throughput_mibps: warm,
        }
    }

    fn warm(name: &str, mibps: u32, now_ms: u64) -> Command {
        Command::SetWarmThroughput {
            key: key(name),
            mibps,
            now_ms,
        }
    }

    #[test]
    fn warm_throughput_needs_an_on_demand_stream_and_a_commitment() {
        let mut state = active("p");
        assert!(matches!(
            warm("p", 10, NOW).apply(&mut state),
            Err(ControllerError::Validation(m)) if m.contains("Provisioned mode")
        ));
        on_demand("d", None, NOW).apply(&mut state).unwrap();
        assert!(
            matches!(
                warm("d", 10, NOW).apply(&mut state),
                Err(ControllerError::InUse(_))
            ),
            "not ACTIVE yet"
        );
        activate(&mut state, "d");
        assert!(matches!(
            warm("d", 10, NOW).apply(&mut state),
            Err(ControllerError::Validation(m)) if m.contains("MinimumThroughputBillingCommitment")
        ));
        assert!(matches!(
            warm("zz", 10, NOW).apply(&mut state),
            Err(ControllerError::NotFound(_))
        ));
        commit(true, NOW).apply(&mut state).unwrap();
        assert_eq!(warm("d", 10, NOW).apply(&mut state), Ok(Outcome::Done));
        assert_eq!(warm("d", 10, NOW).apply(&mut state), Ok(Outcome::Unchanged));
        let stream = &state.streams[&key("d")];
        assert_eq!(stream.warm_throughput_mibps, Some(10));
        assert_eq!(
            (stream.warm_shard_floor(), stream.write_capacity_mibps()),
            (10, 4)
        );
        assert!(matches!(
            warm("d", MAX_WARM_THROUGHPUT_MIBPS + 1, NOW).apply(&mut state),
            Err(ControllerError::LimitExceeded(_))
        ));
        warm("d", 0, NOW).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("d")].warm_shard_floor(), 0);
    }

    #[test]
    fn streams_are_created_and_switched_with_warm_throughput() {
        let mut state = bootstrapped();
        assert!(matches!(
            on_demand("d", Some(8), NOW).apply(&mut state),
            Err(ControllerError::Validation(_))
        ));
        commit(true, NOW).apply(&mut state).unwrap();
        on_demand("d", Some(8), NOW).apply(&mut state).unwrap();
        assert_eq!(state.streams[&key("d")].warm_throughput_mibps, Some(8));
        let mut provisioned = create("p", 1, 100);
        if let Command::CreateStream {
            warm_throughput_mibps,
            ..
        } = &mut provisioned
        {
            *warm_throughput_mibps = Some(8);
        }
        assert!(matches!(
            provisioned.apply(&mut state),
            Err(ControllerError::Validation(_))
        ));

        activate(&mut state, "d");
        let switch = |name: &str, mode, warm| Command::SetStreamMode {
            key: key(name),
            mode,
            now_ms: NOW,
            warm_throughput_mibps: warm,
        };
        assert!(matches!(
            switch("d", StreamMode::Provisioned, Some(1)).apply(&mut state),
            Err(ControllerError::Validation(_))
        ));
        switch("d", StreamMode::Provisioned, None)
            .apply(&mut state)
            .unwrap();
        assert_eq!(
            state.streams[&key("d")].warm_throughput_mibps,
            None,
            "a provisioned stream has no warm throughput"
        );
        switch("d", StreamMode::OnDemand, Some(20))
            .apply(&mut state)
            .unwrap();
        let stream = &state.streams[&key("d")];
        assert_eq!(
            (stream.mode, stream.status, stream.warm_throughput_mibps),
            (StreamMode::OnDemand, StreamStatus::Active, Some(20))
        );
    }
}
