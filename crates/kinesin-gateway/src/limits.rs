/// Request limits, with AWS's defaults. Each is configurable on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest record: data + partition key bytes.
    pub max_record_bytes: usize,
    pub max_put_records: usize,
    /// Largest PutRecords request: sum of data + partition keys.
    pub max_put_records_bytes: usize,
    pub max_get_records: usize,
    pub max_get_records_bytes: usize,
    /// Open shards per account and region.
    pub shard_limit: u32,
    /// Enhanced fan-out consumers registered per stream.
    pub max_consumers_per_stream: u32,
    /// Request bytes held in memory at once across all requests (see `admission.rs`).
    pub max_inflight_request_bytes: usize,
    /// Bytes per second one SubscribeToShard subscription pushes at most (0: unlimited).
    pub subscription_bytes_per_sec: u64,
    /// Each shard's GetRecords limits, per gateway (see `read_quota.rs`).
    pub shard_read_quota: ReadQuota,
}

/// A shard's shared read limits: GetRecords calls and bytes returned per second. Zero in a field
/// switches that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadQuota {
    pub calls_per_sec: u64,
    pub bytes_per_sec: u64,
}

impl ReadQuota {
    /// Kinesis's per-shard read limits.
    pub const AWS: ReadQuota = ReadQuota {
        calls_per_sec: 5,
        bytes_per_sec: 2 << 20,
    };

    pub fn is_unlimited(&self) -> bool {
        self.calls_per_sec == 0 && self.bytes_per_sec == 0
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1 << 20,
            max_put_records: 500,
            max_put_records_bytes: 10 << 20,
            max_get_records: 10_000,
            max_get_records_bytes: 10 << 20,
            shard_limit: 500,
            max_consumers_per_stream: kinesin_controller::DEFAULT_MAX_CONSUMERS_PER_STREAM,
            max_inflight_request_bytes: 256 << 20,
            subscription_bytes_per_sec: 2 << 20,
            shard_read_quota: ReadQuota::AWS,
        }
    }
}

impl Limits {
    /// The HTTP body cap: the largest PutRecords request, base64-inflated, plus JSON overhead.
    pub fn max_body_bytes(&self) -> usize {
        self.max_put_records_bytes / 3 * 4 + 4 + self.max_put_records * 1024 + (1 << 20)
    }
}
