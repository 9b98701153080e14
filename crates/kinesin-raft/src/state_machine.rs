//! openraft's state machine for both kinds of group.
//!
//! A shard group's records are its log entries; apply writes its counters, time index and applied
//! log id in one batch per `apply` call, unsynced: the shared WAL makes a later fsync cover it, and
//! after a crash openraft re-applies from the log, which rewrites the same index entries. A shard's
//! snapshot sits at its retention cut (see `snapshot.rs`), never at the applied index. The
//! controller group keeps its state in memory (in the [`ControllerApplier`]) and persists it
//! through snapshots; after a restart it is restored from the last snapshot and openraft replays
//! the log after it.

use std::io;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use kinesin_storage::{Engine, StateTag, WriteBatch};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};

use crate::disk_format;
use crate::shard::{self, ShardCounters, ShardView, TrimPoint};
use crate::snapshot::SnapshotData;
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
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    pub(crate) log_id: Option<LogIdOf<TypeConfig>>,
    pub(crate) membership: StoredMembershipOf<TypeConfig>,
    pub(crate) counters: ShardCounters,
    /// Shard groups: where retention last cut the log, which is where the shard's snapshot is.
    pub(crate) cut: Option<Cut>,
    /// Shard groups: the membership in force at the cut and every one applied after it, oldest
    /// first, so the next cut finds the membership in force at its own index.
    pub(crate) memberships: Vec<StoredMembershipOf<TypeConfig>>,
}

/// A shard's state as of the last log entry retention removed: what its snapshot carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cut {
    pub(crate) log_id: LogIdOf<TypeConfig>,
    pub(crate) membership: StoredMembershipOf<TypeConfig>,
    pub(crate) counters: ShardCounters,
}

impl Applied {
    /// Moves the cut to the entry at `point.last_index` (whose log id is `log_id`). Keeps the cut
    /// where it was when no membership in force there is known (it cannot be placed exactly).
    fn move_cut(&mut self, point: TrimPoint, log_id: LogIdOf<TypeConfig>) {
        let Some(in_force) = self.memberships.iter().rposition(|m| {
            m.log_id()
                .as_ref()
                .is_none_or(|id| id.index() <= point.last_index)
        }) else {
            return;
        };
        self.memberships.drain(..in_force);
        let next = shard::first_position(point.last_index + 1);
        self.cut = Some(Cut {
            log_id,
            membership: self.memberships[0].clone(),
            counters: ShardCounters {
                last_arrival_ms: point.last_arrival_ms,
                trim_position: next,
                next_position: next,
                sealed_at: self
                    .counters
                    .sealed_at
                    .filter(|&at| at <= shard::first_position(point.last_index)),
            },
        });
    }
}

/// A snapshot as stored under `StateTag::Snapshot`.
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn encode(&self) -> Vec<u8> {
        disk_format::encode_snapshot(&self.meta, &self.data)
    }

    fn decode(bytes: &[u8]) -> io::Result<StoredSnapshot> {
        let (meta, data) = disk_format::decode_snapshot(bytes)?;
        Ok(StoredSnapshot { meta, data })
    }
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
            Some(bytes) => disk_format::decode_applied(&bytes)?,
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
            let snapshot = StoredSnapshot::decode(&bytes)?;
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
                &disk_format::encode_applied(&self.applied),
            );
        }
        Ok(())
    }

    /// The snapshot this group would send now: for a shard, its state at the cut (nothing before
    /// the first cut); for the controller, its whole state as applied.
    fn current_snapshot(&self) -> Result<Option<StoredSnapshot>, io::Error> {
        Ok(match &self.logic {
            Logic::Shard(_) => self.applied.cut.as_ref().map(|cut| StoredSnapshot {
                meta: SnapshotMetaOf::<TypeConfig> {
                    last_log_id: Some(cut.log_id),
                    last_membership: cut.membership.clone(),
                },
                data: disk_format::encode_counters(&cut.counters),
            }),
            Logic::Controller(applier) => Some(StoredSnapshot {
                meta: SnapshotMetaOf::<TypeConfig> {
                    last_log_id: self.applied.log_id,
                    last_membership: self.applied.membership.clone(),
                },
                data: applier.snapshot().map_err(io::Error::other)?,
            }),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for GroupStateMachine {
    type SnapshotData = SnapshotData;

    /// For a shard, openraft's policy asks every so many entries; the answer is the snapshot at
    /// the cut, which openraft ignores unless the cut moved (it only keeps newer snapshots).
    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let Some(stored) = self.current_snapshot()? else {
            return Ok(SnapshotOf::<TypeConfig, SnapshotData> {
                meta: SnapshotMetaOf::<TypeConfig> {
                    last_log_id: None,
                    last_membership: Default::default(),
                },
                snapshot: SnapshotData { state: Vec::new() },
            });
        };
        let mut batch = WriteBatch::default();
        self.persist_applied(&mut batch)?;
        self.engine
            .put_state(&mut batch, self.group, StateTag::Snapshot, &stored.encode());
        self.engine.write(batch)?;
        // openraft purges the log up to the snapshot next: the snapshot must be on disk first.
        self.engine.sync().await?;
        Ok(SnapshotOf::<TypeConfig, SnapshotData> {
            meta: stored.meta,
            snapshot: SnapshotData { state: stored.data },
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
                    if let Logic::Shard(_) = self.logic {
                        self.applied
                            .memberships
                            .push(self.applied.membership.clone());
                    }
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

    /// openraft's policy asks every so many entries (`force` false); a shard's snapshot changes
    /// only when retention moves its cut, so until then there is nothing to build.
    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        if !force && matches!(self.logic, Logic::Shard(_)) {
            let cut = self.applied.cut.as_ref().map(|cut| cut.log_id);
            if cut.is_none() || cut == self.stored_snapshot_log_id() {
                return None;
            }
        }
        Some(self.get_snapshot_builder().await)
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
        match &self.logic {
            Logic::Controller(applier) => {
                applier.restore(&snapshot.state).map_err(io::Error::other)?
            }
            Logic::Shard(_) => {
                let counters = disk_format::decode_counters(&snapshot.state)?;
                let log_id = meta.last_log_id.ok_or_else(|| {
                    io::Error::other("a shard snapshot arrived without its log id")
                })?;
                tracing::info!(
                    group = self.group,
                    cut = ?log_id,
                    "installing a shard snapshot (its retention cut) from the leader"
                );
                // Only entries this replica never applied follow (openraft installs a snapshot
                // only above the committed index), so none of its own index entries stays valid.
                self.engine.trim_index(
                    &mut batch,
                    self.group,
                    counters.trim_position >> crate::types::POSITIONS_PER_ENTRY_BITS,
                    u64::MAX,
                );
                self.applied.cut = Some(Cut {
                    log_id,
                    membership: meta.last_membership.clone(),
                    counters: counters.clone(),
                });
                self.applied.memberships = vec![meta.last_membership.clone()];
                self.applied.counters = counters;
            }
        }
        self.applied.log_id = meta.last_log_id;
        self.applied.membership = meta.last_membership.clone();
        self.persist_applied(&mut batch)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.state,
        };
        self.engine
            .put_state(&mut batch, self.group, StateTag::Snapshot, &stored.encode());
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
                let stored = StoredSnapshot::decode(&bytes)?;
                Ok(Some(SnapshotOf::<TypeConfig, SnapshotData> {
                    meta: stored.meta,
                    snapshot: SnapshotData { state: stored.data },
                }))
            }
            None => Ok(None),
        }
    }
}

impl GroupStateMachine {
    /// The log id of the snapshot on disk, if any (unreadable counts as none: a rebuild fixes it).
    fn stored_snapshot_log_id(&self) -> Option<LogIdOf<TypeConfig>> {
        let bytes = self.engine.state(self.group, StateTag::Snapshot).ok()??;
        StoredSnapshot::decode(&bytes).ok()?.meta.last_log_id
    }

    /// Moves the shard's cut to retention's new trim point, reading the log id there from the log.
    fn cut_at(&mut self, point: TrimPoint) -> Result<(), io::Error> {
        let entries =
            self.engine
                .log_entries(self.group, point.last_index, point.last_index + 1)?;
        // None: already purged, so a cut at or past it exists (a snapshot installed here): kept.
        if let Some((_, bytes)) = entries.first() {
            let entry = disk_format::decode_entry(bytes)?;
            self.applied.move_cut(point, entry.log_id());
        }
        Ok(())
    }

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
                // The trim point is found by reading the time index, so earlier entries of this
                // batch must be in it first.
                self.engine.write(std::mem::take(batch))?;
                let (response, point) =
                    shard::apply_trim(&self.engine, batch, self.group, counters, *before_ms)?;
                if let Some(point) = point {
                    self.cut_at(point)?;
                }
                response
            }
            (Logic::Controller(applier), Command::Controller(bytes)) => {
                Response::Controller(applier.apply(log_index, bytes))
            }
            (_, other) => Response::Rejected(format!("command not for this group: {other:?}")),
        })
    }
}
