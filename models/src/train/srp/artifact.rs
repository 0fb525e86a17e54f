//! [`SrpArtifact`]: what a TPM job publishes for `CtrNet`'s SRP4CTR branch (the pre-trained
//! encoder and its input tables), and [`SrpTables`], the frozen tables a `CtrNet` trainer reads
//! its behaviour tokens from.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};

use super::{SrpPretrainConfig, blobs, tensor_error};
use crate::embedding::EmbeddingTable;
use crate::error::Result;
use crate::nn::{SrpEncoder, SrpPretrainNet, SrpPretrainNetConfig};

/// The pre-trained SRP4CTR encoder and its item and category tables, as bytes (the blobs
/// [`blobs::ARTIFACT`] of a TPM checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct SrpArtifact {
    /// The pre-training settings (the encoder's shape).
    pub config: SrpPretrainConfig,
    /// The pre-training network's weights (encoder, `[MASK]` token, heads), burnpack.
    pub model: Vec<u8>,
    /// The item table ([`EmbeddingTable::to_bytes`]).
    pub item: Vec<u8>,
    /// The category table.
    pub category: Vec<u8>,
}

/// The frozen SRP item and category tables a `CtrNet` trainer reads tokens from (read-only
/// lookups: ids without a row read the default row, as in pre-training).
#[derive(Debug)]
pub struct SrpTables {
    /// Item ids -> `d_s` vectors.
    pub item: EmbeddingTable,
    /// Category ids -> `d_s` vectors.
    pub category: EmbeddingTable,
}

impl SrpArtifact {
    /// The artifact from its blobs; `get` returns a blob by name (an error names a missing
    /// one).
    pub fn from_blobs<'a>(get: impl Fn(&str) -> Result<&'a [u8]>) -> Result<Self> {
        let config: SrpPretrainConfig = serde_json::from_slice(get(blobs::CONFIG)?)
            .map_err(|e| tensor_error(blobs::CONFIG, e))?;
        config
            .validate()
            .map_err(|e| tensor_error(blobs::CONFIG, e))?;
        Ok(SrpArtifact {
            config,
            model: get(blobs::MODEL)?.to_vec(),
            item: get(blobs::ITEM_TABLE)?.to_vec(),
            category: get(blobs::CATEGORY_TABLE)?.to_vec(),
        })
    }

    /// The artifact's blobs by name.
    pub fn to_blobs(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let config =
            serde_json::to_vec_pretty(&self.config).map_err(|e| tensor_error(blobs::CONFIG, e))?;
        Ok(vec![
            (blobs::CONFIG, config),
            (blobs::MODEL, self.model.clone()),
            (blobs::ITEM_TABLE, self.item.clone()),
            (blobs::CATEGORY_TABLE, self.category.clone()),
        ])
    }

    /// The pre-training network on `device`.
    pub fn restore_net(&self, device: &Device) -> Result<SrpPretrainNet> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model.clone()))
            .map_err(|e| tensor_error(blobs::MODEL, e))?;
        SrpPretrainNetConfig::new(self.config.encoder())
            .init(device)
            .try_load_record(record)
            .map_err(|e| tensor_error(blobs::MODEL, e))
    }

    /// The pre-trained encoder on `device`.
    pub fn encoder(&self, device: &Device) -> Result<SrpEncoder> {
        Ok(self.restore_net(device)?.encoder)
    }

    /// The item and category tables, checked to be `d_s` wide.
    pub fn tables(&self) -> Result<(EmbeddingTable, EmbeddingTable)> {
        let read = |bytes: &[u8], blob: &str| {
            let table = EmbeddingTable::from_bytes(bytes).map_err(|e| tensor_error(blob, e))?;
            if table.dim() != self.config.d_model {
                return Err(tensor_error(
                    blob,
                    format!(
                        "width {} differs from d-model {}",
                        table.dim(),
                        self.config.d_model
                    ),
                ));
            }
            Ok(table)
        };
        Ok((
            read(&self.item, blobs::ITEM_TABLE)?,
            read(&self.category, blobs::CATEGORY_TABLE)?,
        ))
    }
}
