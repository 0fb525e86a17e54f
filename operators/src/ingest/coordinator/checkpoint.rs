//! Epoch checkpoints ([`EpochCheckpoint`]): the coordinator's state folded from epoch manifests
//! `1..=n`, written every `checkpoint-every` epochs under `landing/_epoch_checkpoints/`.
//!
//! Without them a cold reader (a replica opening, [`super::landed_offsets`]) reads every epoch
//! manifest ever written: at one epoch per 30 s that is about a million manifests a year. With
//! them it reads the newest checkpoint and at most `checkpoint-every` manifests after it. The
//! manifests stay the truth: a checkpoint is derived, written after its last manifest is
//! durable, and a missing one only means more manifests to read.

use ctrflow_schemas::{EpochCheckpoint, EpochManifest, KeyLayout, decode_manifest};
use ctrflow_storage::Storage;

use crate::OperatorError;

/// The newest checkpoint in `storage`, if any.
pub(super) async fn newest_checkpoint(
    storage: &Storage,
) -> Result<Option<EpochCheckpoint>, OperatorError> {
    // Keys are zero-padded epoch numbers: the greatest key is the newest checkpoint.
    let newest = storage
        .list(KeyLayout.epoch_checkpoints_dir())
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(".json"))
        .max();
    let Some(key) = newest else {
        return Ok(None);
    };
    let bytes = storage.get(&key).await?;
    Ok(Some(decode_manifest(&key, &bytes)?))
}

/// Keys of the epoch manifests after `after` (all of them for `None`), in epoch order.
pub(super) async fn epoch_keys_after(
    storage: &Storage,
    after: Option<&str>,
) -> Result<Vec<String>, OperatorError> {
    let dir = KeyLayout.epochs_dir();
    let listed = match after {
        Some(after) => storage.list_after(dir, after).await?,
        None => storage.list(dir).await?,
    };
    Ok(listed
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(".json"))
        .collect())
}

/// Reads one epoch manifest.
pub(super) async fn read_epoch(
    storage: &Storage,
    key: &str,
) -> Result<EpochManifest, OperatorError> {
    let bytes = storage.get(key).await?;
    Ok(decode_manifest(key, &bytes)?)
}
