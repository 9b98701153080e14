//! Backpressure: a node holds at most `max_inflight_request_bytes` of requests in memory at once.
//! Each request takes its share (its declared length, before its body is read) for as long as it
//! is being served. Under overload requests wait briefly for room, then are refused with
//! ProvisionedThroughputExceededException, which every AWS SDK retries with backoff: clients slow
//! down, and the node's memory stays bounded whatever they send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kinesin_api::{ErrorKind, KinesisError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget is counted in units of this many bytes, so a large budget fits the semaphore's `u32`
/// permit counts.
const UNIT: usize = 1024;

/// How long a request waits for room before it is refused.
const ADMISSION_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct Admission {
    budget: Arc<Semaphore>,
    total_units: u32,
    /// Requests refused for want of room.
    pub refused: AtomicU64,
}

/// A request's share of the budget, given back when dropped.
pub(crate) struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    pub(crate) fn new(max_inflight_bytes: usize) -> Admission {
        let total_units = u32::try_from(max_inflight_bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        Admission {
            budget: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            refused: AtomicU64::new(0),
        }
    }

    /// Bytes currently held by requests being served.
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        let free = self.budget.available_permits() as u64;
        (u64::from(self.total_units).saturating_sub(free)) * UNIT as u64
    }

    /// Waits (briefly) for room for a request of `bytes`.
    pub(crate) async fn admit(&self, bytes: usize) -> Result<Admitted, KinesisError> {
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1))
            .unwrap_or(u32::MAX)
            .min(self.total_units);
        let wait = self.budget.clone().acquire_many_owned(units);
        match tokio::time::timeout(ADMISSION_WAIT, wait).await {
            Ok(Ok(permit)) => Ok(Admitted(permit)),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(KinesisError::new(
                    ErrorKind::ProvisionedThroughputExceeded,
                    format!(
                        "Rate exceeded: this node is serving its limit of {} bytes of requests (max_inflight_request_bytes); retry with backoff.",
                        u64::from(self.total_units) * UNIT as u64
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_wait_for_room_and_are_refused_when_none_comes() {
        let admission = Admission::new(10 * UNIT);
        let first = admission.admit(6 * UNIT).await.expect("room for the first");
        assert_eq!(admission.in_flight_bytes(), 6 * UNIT as u64);
        // Not enough room left: refused after the one-second wait.
        let refused = admission.admit(6 * UNIT).await.err().expect("refused");
        assert_eq!(refused.kind, ErrorKind::ProvisionedThroughputExceeded);
        assert_eq!(admission.refused.load(Ordering::Relaxed), 1);
        // Room given back lets a waiting request in.
        let waiting = tokio::spawn({
            let budget = admission.budget.clone();
            async move { budget.acquire_many_owned(6).await.is_ok() }
        });
        drop(first);
        assert!(waiting.await.expect("task"));
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let admission = Admission::new(4 * UNIT);
        let whole = admission.admit(100 * UNIT).await.expect("admitted");
        assert_eq!(admission.in_flight_bytes(), 4 * UNIT as u64);
        drop(whole);
        assert_eq!(admission.in_flight_bytes(), 0);
    }
}
