//! openraft's state machine for both kinds of group.
//!
//! A shard group writes its records and its applied log id in one batch per `apply` call, unsynced:
//! the shared WAL makes a later fsync cover it, and after a crash openraft re-applies from the log,
//! which rewrites the same records at the same positions. The controller group keeps its state in
//! memory (in the [`ControllerApplier`]) and persists it through snapshots; after a restart it is
//! restored from the last snapshot and openraft replays the log after it.

use std::io;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use kinesin_storage::{Engine, StateTag, WriteBatch};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::shard::{self, ShardCounters, ShardCountersBeforeSeal, ShardView};
use crate::snapshot::{replace_records, Records, SnapshotData};
use crate::types::{Command, Response};
use crate::TypeConfig;

/// The controller's state machine logic, implemented by the controller crate. Must be
/// deterministic: every replica applies the same commands in the same order.
pub trait ControllerApplier: Send + Sync + 'static {
    /// Applies one command at `log_index`, returning the response bytes for the proposer.
    fn apply(&self, log_index: u64, command: &[u8]) -> Vec<u8>;
    /// The whole state, for a snapshot.
    fn snapshot(&self) -> Result<Vec<u8>, String>;
    /// Replaces the whole state with a snapshot's.
    fn restore(&self, snapshot: &[u8]) -> Result<(), String>;
}

pub(crate) enum Logic {
    Shard(Arc<ShardView>),
    Controller(Arc<dyn ControllerApplier>),
}

/// What the state machine persists about itself (under `StateTag::StateMachine`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    counters: ShardCounters,
}

/// [`Applied`] as written before shards could be sealed.
#[derive(Deserialize)]
struct AppliedBeforeSeal {
    log_id: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    counters: ShardCountersBeforeSeal,
}

impl Applied {
    /// Reads what this or an earlier version wrote (bincode is not self-describing, so the
    /// shorter, older layout is tried when the current one runs out of bytes).
    fn decode(bytes: &[u8]) -> Result<Applied, io::Error> {
        decode::<Applied>(bytes).or_else(|current| {
            decode::<AppliedBeforeSeal>(bytes)
                .map(|old| Applied {
                    log_id: old.log_id,
                    membership: old.membership,
                    counters: old.counters.into(),
                })
                .map_err(|_| current)
        })
    }
}

/// A shard snapshot's counters, in this or the earlier layout (see [`Applied::decode`]).
fn decode_counters(bytes: &[u8]) -> Result<ShardCounters, io::Error> {
    decode::<ShardCounters>(bytes).or_else(|current| {
        decode::<ShardCountersBeforeSeal>(bytes)
            .map(ShardCounters::from)
            .map_err(|_| current)
    })
}

/// A snapshot as stored under `StateTag::Snapshot`.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

pub struct GroupStateMachine {
    group: u64,
    engine: Arc<Engine>,
    logic: Logic,
    applied: Applied,
    /// See `LogStore::_lease`.
    lease: Arc<()>,
}

impl GroupStateMachine {
    /// Opens a shard group's state machine from disk.
    pub fn open_shard(
        group: u64,
        engine: Arc<Engine>,
    ) -> Result<(GroupStateMachine, Arc<ShardView>), io::Error> {
        let applied: Applied = match engine.state(group, StateTag::StateMachine)? {
            Some(bytes) => Applied::decode(&bytes)?,
            None => Applied::default(),
        };
        let view = Arc::new(ShardView::new(group, engine.clone(), &applied.counters));
        let sm = GroupStateMachine {
            group,
            engine,
            logic: Logic::Shard(view.clone()),
            applied,
            lease: Arc::new(()),
        };
        Ok((sm, view))
    }

    /// Opens the controller group's state machine, restoring the applier from the last snapshot.
    pub fn open_controller(
        group: u64,
        engine: Arc<Engine>,
        applier: Arc<dyn ControllerApplier>,
    ) -> Result<GroupStateMachine, io::Error> {
        let mut applied = Applied::default();
        if let Some(bytes) = engine.state(group, StateTag::Snapshot)? {
            let snapshot: StoredSnapshot = decode(&bytes)?;
            applier.restore(&snapshot.data).map_err(io::Error::other)?;
            applied.log_id = snapshot.meta.last_log_id;
            applied.membership = snapshot.meta.last_membership;
        }
        Ok(GroupStateMachine {
            group,
            engine,
            logic: Logic::Controller(applier),
            applied,
            lease: Arc::new(()),
        })
    }

    pub(crate) fn with_lease(mut self, lease: Arc<()>) -> GroupStateMachine {
        self.lease = lease;
        self
    }

    fn persist_applied(&self, batch: &mut WriteBatch) -> Result<(), io::Error> {
        if let Logic::Shard(_) = self.logic {
            self.engine.put_state(
                batch,
                self.group,
                StateTag::StateMachine,
                &encode(&self.applied)?,
            );
        }
        Ok(())
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, io::Error> {
        match &self.logic {
            // A shard's records stay in the record store; see `SnapshotData`.
            Logic::Shard(_) => encode(&self.applied.counters),
            Logic::Controller(applier) => applier.snapshot().map_err(io::Error::other),
        }
    }

    fn snapshot_data(&self, state: Vec<u8>) -> SnapshotData {
        let records = match &self.logic {
            Logic::Shard(_) => Records::InStore {
                group: self.group,
                engine: self.engine.clone(),
            },
            Logic::Controller(_) => Records::None,
        };
        SnapshotData { state, records }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for GroupStateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: self.applied.log_id,
            last_membership: self.applied.membership.clone(),
        };
        let data = self.snapshot_state()?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let mut batch = WriteBatch::default();
        self.persist_applied(&mut batch)?;
        self.engine.put_state(
            &mut batch,
            self.group,
            StateTag::Snapshot,
            &encode(&stored)?,
        );
        self.engine.write(batch)?;
        // openraft purges the log up to the snapshot next: the snapshot must be on disk first.
        self.engine.sync().await?;
        Ok(SnapshotOf::<TypeConfig, SnapshotData> {
            meta,
            snapshot: self.snapshot_data(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for GroupStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        Ok((self.applied.log_id, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let response = match &entry.payload {
                EntryPayload::Blank => Response::None,
                EntryPayload::Membership(membership) => {
                    self.applied.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(log_id), membership.clone());
                    Response::None
                }
                EntryPayload::Normal(command) => {
                    self.apply_command(&mut batch, log_id.index(), command)?
                }
            };
            self.applied.log_id = Some(log_id);
            self.applied.counters.next_position = shard::first_position(log_id.index() + 1);
            if let Some(responder) = responder {
                responders.push((responder, response));
            }
        }
        self.persist_applied(&mut batch)?;
        self.engine.write(batch)?;
        if let Logic::Shard(view) = &self.logic {
            view.publish(&self.applied.counters);
        }
        for (responder, response) in responders {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        GroupStateMachine {
            group: self.group,
            engine: self.engine.clone(),
            logic: match &self.logic {
                Logic::Shard(view) => Logic::Shard(view.clone()),
                Logic::Controller(applier) => Logic::Controller(applier.clone()),
            },
            applied: self.applied.clone(),
            lease: self.lease.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        match (&self.logic, &snapshot.records) {
            (Logic::Controller(applier), _) => {
                applier.restore(&snapshot.state).map_err(io::Error::other)?
            }
            (Logic::Shard(_), Records::Received(records)) => {
                tracing::info!(
                    group = self.group,
                    records = records.len(),
                    last_log_id = ?meta.last_log_id,
                    "installing a shard snapshot from the leader"
                );
                replace_records(&self.engine, &mut batch, self.group, records);
                self.applied.counters = decode_counters(&snapshot.state)?;
            }
            (Logic::Shard(_), _) => {
                return Err(io::Error::other(
                    "a shard snapshot arrived without its records",
                ));
            }
        }
        self.applied.log_id = meta.last_log_id;
        self.applied.membership = meta.last_membership.clone();
        self.persist_applied(&mut batch)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.state,
        };
        self.engine.put_state(
            &mut batch,
            self.group,
            StateTag::Snapshot,
            &encode(&stored)?,
        );
        self.engine.write(batch)?;
        self.engine.sync().await?;
        if let Logic::Shard(view) = &self.logic {
            view.publish(&self.applied.counters);
        }
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        match self.engine.state(self.group, StateTag::Snapshot)? {
            Some(bytes) => {
                let stored: StoredSnapshot = decode(&bytes)?;
                Ok(Some(SnapshotOf::<TypeConfig, SnapshotData> {
                    meta: stored.meta,
                    snapshot: self.snapshot_data(stored.data),
                }))
            }
            None => Ok(None),
        }
    }
}

impl GroupStateMachine {
    fn apply_command(
        &mut self,
        batch: &mut WriteBatch,
        log_index: u64,
        command: &Command,
    ) -> Result<Response, io::Error> {
        let counters = &mut self.applied.counters;
        Ok(match (&self.logic, command) {
            (
                Logic::Shard(view),
                Command::Put {
                    arrival_ms,
                    records,
                },
            ) => {
                let response = shard::apply_put(
                    &self.engine,
                    batch,
                    self.group,
                    counters,
                    log_index,
                    *arrival_ms,
                    records,
                );
                if matches!(response, Response::Put { .. }) {
                    view.count_written(records);
                }
                response
            }
            (Logic::Shard(_), Command::Seal) => shard::apply_seal(counters, log_index),
            (Logic::Shard(_), Command::Trim { before_ms }) => {
                // The trim point is found by reading the store, so earlier entries of this batch
                // must be in it first.
                self.engine.write(std::mem::take(batch))?;
                shard::apply_trim(&self.engine, batch, self.group, counters, *before_ms)?
            }
            (Logic::Controller(applier), Command::Controller(bytes)) => {
                Response::Controller(applier.apply(log_index, bytes))
            }
            (_, other) => Response::Rejected(format!("command not for this group: {other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;

    /// The layout data directories written before sealing existed hold.
    #[derive(Serialize)]
    struct OldApplied {
        log_id: Option<LogIdOf<TypeConfig>>,
        membership: StoredMembershipOf<TypeConfig>,
        counters: (u64, u64, u64),
    }

    #[test]
    fn state_written_before_seals_existed_still_opens_as_an_open_shard() {
        let old = crate::codec::encode(&OldApplied {
            log_id: None,
            membership: Default::default(),
            counters: (7, 3 << 20, 9 << 20),
        })
        .unwrap();
        let applied = Applied::decode(&old).unwrap();
        assert_eq!(
            applied.counters,
            ShardCounters {
                last_arrival_ms: 7,
                trim_position: 3 << 20,
                next_position: 9 << 20,
                sealed_at: None,
            }
        );
        let counters =
            decode_counters(&crate::codec::encode(&(1u64, 2u64, 3u64)).unwrap()).unwrap();
        assert_eq!(counters.next_position, 3);

        let current = Applied {
            counters: ShardCounters {
                sealed_at: Some(5 << 20),
                ..applied.counters
            },
            ..Applied::default()
        };
        let reread = Applied::decode(&crate::codec::encode(&current).unwrap()).unwrap();
        assert_eq!(reread.counters.sealed_at, Some(5 << 20));
    }
}
