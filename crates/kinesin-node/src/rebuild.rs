//! A node's life and its rebuild from its peers.
//!
//! The life (kinesin-raft's `life.rs`) says which copy of the node's data its data directory
//! holds. It lives in a small file beside the database, so that it is known before the database
//! opens (the join request announces it while the node starts): absent for a node founded with
//! the cluster (life 0), written when the node starts with an empty database to join, or to be
//! rebuilt after its data was found corrupt (`--rebuild-corrupt`).
//!
//! A rebuild moves the damaged database aside (`corrupt-<ms>`, kept for inspection) and leaves a
//! marker; the next start takes a new life, announces it to the controller, and the replicas the
//! node held are replaced by copies from the other nodes, under the same node id.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kinesin_controller::{Command, Controller};

use crate::config::ServerConfig;

/// Left in the data directory by a quarantine: the next start rebuilds the node.
pub const REBUILD_MARKER: &str = "REBUILD";
/// The data directory's life, in hex; absent for life 0.
const LIFE_FILE: &str = "LIFE";

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn write_durably(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(name))?;
    sync_dir(dir)
}

/// Decides the life of `config`'s data directory before the node starts: the recorded one, or a
/// new one when the node starts empty to join (`--join`) or to be rebuilt (the marker), which is
/// recorded first. Sets `config.life` (a node in a life other than 0 tells the controller of it).
pub fn settle_life(config: &mut ServerConfig) -> std::io::Result<()> {
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir)?;
    let marker = dir.join(REBUILD_MARKER);
    let rebuilding = marker.exists();
    let recorded = match std::fs::read_to_string(dir.join(LIFE_FILE)) {
        Ok(text) => Some(u64::from_str_radix(text.trim(), 16).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds no life: {text:?}", dir.join(LIFE_FILE).display()),
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let empty = !dir.join("db").exists();
    config.life = match recorded {
        Some(life) if !rebuilding => life,
        _ if rebuilding || (empty && config.join.is_some()) => {
            let life = kinesin_raft::new_life();
            write_durably(&dir, LIFE_FILE, format!("{life:x}\n").as_bytes())?;
            if rebuilding {
                std::fs::remove_file(&marker)?;
                sync_dir(&dir)?;
            }
            tracing::warn!(life = %format!("{life:x}"), rebuilding, "this node's data directory starts empty in a new life; its replicas will be copied from the other nodes");
            life
        }
        _ => 0,
    };
    Ok(())
}

/// Tells the controller this node's new life, through the peers its configuration names (a node
/// with a `--join` URL asks through that node instead: `ctl::join`). Asks until it is recorded.
pub async fn announce(
    controller: Arc<Controller>,
    node: u64,
    cluster_addr: String,
    life: u64,
    peers: BTreeMap<u64, String>,
) {
    let command = Command::AddNode {
        node,
        cluster_addr,
        life: Some(life),
    };
    let others: Vec<(u64, String)> = peers.into_iter().filter(|(id, _)| *id != node).collect();
    loop {
        match controller.propose_through(&command, &others).await {
            Ok(_) => {
                tracing::info!(life = %format!("{life:x}"), "the cluster knows this node's new life; its replicas are being copied to it");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not announce this node's new life yet; retrying");
                tokio::time::sleep(ANNOUNCE_RETRY).await;
            }
        }
    }
}

const ANNOUNCE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Moves the corrupt database aside and leaves the marker that makes the next start a rebuild.
/// Returns where the damaged database went.
pub fn quarantine(data_dir: &Path) -> std::io::Result<PathBuf> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let aside = data_dir.join(format!("corrupt-{now_ms}"));
    std::fs::rename(data_dir.join("db"), &aside)?;
    write_durably(data_dir, REBUILD_MARKER, b"")?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, join: bool) -> ServerConfig {
        crate::config::ServerArgs {
            data_dir: Some(dir.to_path_buf()),
            join: join.then(|| "http://127.0.0.1:1".to_string()),
            ..Default::default()
        }
        .resolve()
        .expect("a valid configuration")
    }

    #[test]
    fn a_founding_node_has_life_zero_a_joining_or_rebuilt_one_a_recorded_new_life() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut founder = config(dir.path(), false);
        settle_life(&mut founder).expect("settle");
        assert_eq!(founder.life, 0);

        let joining_dir = dir.path().join("joining");
        let mut joining = config(&joining_dir, true);
        settle_life(&mut joining).expect("settle");
        let first = joining.life;
        assert_ne!(first, 0);
        // A restart keeps it, with or without --join.
        let mut again = config(&joining_dir, false);
        settle_life(&mut again).expect("settle");
        assert_eq!(again.life, first);

        // Corrupt: the database goes aside, and the next start is a new life.
        std::fs::create_dir_all(joining_dir.join("db")).expect("db");
        let aside = quarantine(&joining_dir).expect("quarantine");
        assert!(aside.exists() && !joining_dir.join("db").exists());
        let mut rebuilt = config(&joining_dir, false);
        settle_life(&mut rebuilt).expect("settle");
        assert!(rebuilt.life != 0 && rebuilt.life != first);
        assert!(!joining_dir.join(REBUILD_MARKER).exists());
        let mut restarted = config(&joining_dir, false);
        settle_life(&mut restarted).expect("settle");
        assert_eq!(restarted.life, rebuilt.life);
    }
}
