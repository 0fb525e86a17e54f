//! What the store holds for the daily job: the published model manifests, the `LATEST`
//! pointers and the closed days of each landing table. Only manifests are trusted: a version
//! directory without `manifest.json` (a publish that crashed half-way) does not exist here.

use std::collections::{BTreeMap, BTreeSet};

use ctrflow_schedule::{PublishedModel, StoreState};
use ctrflow_schemas::{
    Domain, EventDate, GateVerdict, KeyLayout, LatestPointer, ModelKind, ModelManifest,
    ModelVersion, decode_manifest,
};
use ctrflow_storage::{PointerVersion, Storage};

use super::error::Result;

/// The `LATEST` pointer of one model as read, with the version token needed to swap it.
#[derive(Debug, Clone)]
pub struct Latest {
    /// Its content.
    pub pointer: LatestPointer,
    /// The token for a conditional swap.
    pub token: PointerVersion,
}

/// The published state of a store.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Every model manifest, by model and version.
    pub manifests: BTreeMap<(ModelKind, ModelVersion), ModelManifest>,
    /// The `LATEST` pointer of each model that has one.
    pub latest: BTreeMap<ModelKind, Latest>,
    /// Closed days (`_SUCCESS` present) of each landing table.
    pub closed: BTreeMap<Domain, BTreeSet<EventDate>>,
}

impl Published {
    /// Reads the manifests and pointers of `storage` and the closed days of `landing`
    /// (often the same store).
    pub async fn load(storage: &Storage, landing: &Storage) -> Result<Published> {
        let layout = KeyLayout;
        let mut published = Published::default();
        for kind in ModelKind::ALL {
            for obj in storage.list(&layout.models_of(kind)).await? {
                if !obj.key.ends_with("/manifest.json") {
                    continue;
                }
                let bytes = storage.get(&obj.key).await?;
                let manifest: ModelManifest = decode_manifest(&obj.key, &bytes)?;
                published
                    .manifests
                    .insert((manifest.model, manifest.version.clone()), manifest);
            }
            let key = layout.model_latest(kind);
            if let Some(p) = storage.read_pointer(&key).await? {
                let pointer: LatestPointer = decode_manifest(&key, &p.bytes)?;
                published.latest.insert(
                    kind,
                    Latest {
                        pointer,
                        token: p.version,
                    },
                );
            }
        }
        for domain in Domain::ALL {
            let days = published.closed.entry(domain).or_default();
            for obj in landing.list(&layout.landing_table(domain)).await? {
                if obj.key.ends_with("/_SUCCESS")
                    && let Some(date) = layout.date_of(&obj.key)
                {
                    days.insert(date);
                }
            }
        }
        Ok(published)
    }

    /// The manifest of `kind`/`version`, if published.
    pub fn manifest(&self, kind: ModelKind, version: &ModelVersion) -> Option<&ModelManifest> {
        self.manifests.get(&(kind, version.clone()))
    }

    /// The live version of `kind` (its `LATEST`).
    pub fn live(&self, kind: ModelKind) -> Option<&ModelManifest> {
        let latest = self.latest.get(&kind)?;
        self.manifest(kind, &latest.pointer.version)
    }

    /// Versions of `kind`, oldest first.
    pub fn versions(&self, kind: ModelKind) -> impl Iterator<Item = &ModelManifest> {
        self.manifests
            .iter()
            .filter(move |((k, _), _)| *k == kind)
            .map(|(_, m)| m)
    }

    /// The input of the schedule policy.
    pub fn schedule_state(&self) -> StoreState {
        StoreState {
            published: self
                .manifests
                .values()
                .map(|m| PublishedModel {
                    model: m.model,
                    version: m.version.clone(),
                    date: m.date,
                    window: Some((m.data_window.from, m.data_window.to)),
                    parents: m.parents.clone(),
                    accepted: !matches!(m.gate, GateVerdict::Rejected { .. }),
                })
                .collect(),
            latest: self
                .latest
                .iter()
                .map(|(k, l)| (*k, l.pointer.version.clone()))
                .collect(),
            closed: self.closed.clone(),
        }
    }
}
