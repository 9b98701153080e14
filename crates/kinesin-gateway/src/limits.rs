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
        }
    }
}

impl Limits {
    /// The HTTP body cap: the largest PutRecords request, base64-inflated, plus JSON overhead.
    pub fn max_body_bytes(&self) -> usize {
        self.max_put_records_bytes / 3 * 4 + 4 + self.max_put_records * 1024 + (1 << 20)
    }
}
