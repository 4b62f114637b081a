//! Bootstrap duties of the controller leader: import the metadata of an
//! earlier release, and give the cluster its id.
//!
//! Releases before the controller kept metadata in `<meta-dir>/meta.log` +
//! `meta.snapshot` (see [`crate::meta::store`]) and the cluster id in
//! `<meta-dir>/cluster.id`. A single-voter controller that finds them
//! replays them with the same `apply` and proposes the resulting state as
//! one [`Command::ImportState`] (accepted only by an empty state, so it
//! happens once), then renames the files to `*.imported`; nothing is
//! deleted. A node of a multi-voter quorum refuses to start on such a
//! directory and names the command that migrates it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Controller, ControllerError};
use crate::meta::{Command, MetaState, MetaStore};

const LEGACY_FILES: [&str; 2] = ["meta.log", "meta.snapshot"];

/// Does `meta_dir` hold metadata of a release before the controller?
pub fn legacy_present(meta_dir: &Path) -> bool {
    LEGACY_FILES.iter().any(|f| meta_dir.join(f).exists())
}

fn load_legacy(meta_dir: &Path) -> Result<MetaState, ControllerError> {
    let store = MetaStore::open_with(meta_dir, 0).map_err(|e| {
        ControllerError::Config(format!(
            "cannot read the metadata of the earlier release in {}: {e}",
            meta_dir.display()
        ))
    })?;
    Ok(store.state().clone())
}

fn mark_imported(meta_dir: &Path) -> Result<(), ControllerError> {
    for f in LEGACY_FILES {
        let from = meta_dir.join(f);
        if from.exists() {
            let to = meta_dir.join(format!("{f}.imported"));
            std::fs::rename(&from, &to).map_err(|e| ControllerError::io("rename", &from, e))?;
        }
    }
    Ok(())
}

fn empty(s: &MetaState) -> bool {
    s.topics.is_empty() && s.groups.groups.is_empty() && s.tier.objects.is_empty()
}

/// The cluster id a pre-controller release left, if any.
fn legacy_cluster_id(meta_dir: &Path) -> Option<String> {
    let s = std::fs::read_to_string(meta_dir.join("cluster.id")).ok()?;
    let s = s.trim();
    (!s.is_empty() && s.len() <= 64).then(|| s.to_string())
}

/// Refuses a legacy directory on a node of a multi-voter quorum (before
/// anything starts).
pub fn check_quorum_start(meta_dir: &Path, single_voter: bool) -> Result<(), ControllerError> {
    if legacy_present(meta_dir) && !single_voter {
        return Err(ControllerError::Config(format!(
            "{} holds metadata of an earlier release (meta.log / meta.snapshot). Import it first by \
             starting this node once as a single controller: `strata serve --meta-dir {}` \
             (its default single-voter quorum imports it), then move it into a quorum",
            meta_dir.display(),
            meta_dir.display()
        )));
    }
    Ok(())
}

/// Runs the leader's bootstrap duties until the cluster has an id (and any
/// legacy metadata here is imported). Returns once done or on shutdown.
pub async fn bootstrap(
    controller: Arc<Controller>,
    meta_dir: std::path::PathBuf,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    loop {
        let view = controller.shared.view.borrow().clone();
        let legacy = legacy_present(&meta_dir);
        if !view.cluster_id.is_empty() && !legacy {
            return Ok(());
        }
        if controller.is_leader() {
            if legacy {
                if empty(&view) {
                    let dir = meta_dir.clone();
                    let state = tokio::task::spawn_blocking(move || load_legacy(&dir))
                        .await
                        .map_err(|e| ControllerError::Raft(e.to_string()))??;
                    let (topics, groups) = (state.topics.len(), state.groups.groups.len());
                    match controller
                        .submit(Command::ImportState {
                            state: Box::new(state),
                        })
                        .await
                    {
                        Ok((_, Ok(_))) => {
                            tracing::info!(topics, groups, dir = %meta_dir.display(), "imported metadata of the earlier release");
                        }
                        Ok((_, Err(e))) => {
                            return Err(ControllerError::Config(format!(
                                "the metadata of the earlier release in {} was refused: {e}",
                                meta_dir.display()
                            )))
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "import not committed yet; retrying");
                            continue;
                        }
                    }
                }
                mark_imported(&meta_dir)?;
                continue;
            }
            let id = legacy_cluster_id(&meta_dir).unwrap_or_else(|| {
                format!(
                    "strata-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..16]
                )
            });
            match controller
                .submit(Command::InitCluster { cluster_id: id })
                .await
            {
                Ok(_) => continue,
                Err(e) => tracing::warn!(error = %e, "cluster id not committed yet; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
