//! CPM -> A-CTR initialisation (E-CDCTR): A-CTR starts from every CPM parameter except the
//! batch-norm ones, which are re-initialised because ad traffic has a different distribution.
//!
//! "Batch-norm parameters" are all four tensors of every burn `BatchNorm`: `gamma` and `beta`
//! (reset to 1 and 0) and the running statistics `running_mean` and `running_var` (reset to 0
//! and 1). Everything else is copied bit for bit.
//!
//! Mechanism: a fresh A-CTR is built from its config (so its batch norms, including their
//! shared running-state cells, are new and never alias the CPM's), the CPM is read with a
//! [`ModuleVisitor`] into `path -> data`, and a [`ModuleMapper`] walks the fresh module, loading
//! the CPM's data into every parameter whose innermost container is not a `BatchNorm`. Paths are
//! burn's record paths (`mlp.blocks.0.linear.weight`), the same keys as in a checkpoint.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use thiserror::Error;

use super::{CtrNet, CtrNetConfig};

/// burn's container name for the fields of a `BatchNorm` (`Struct:` + type name).
const BATCH_NORM_CONTAINER: &str = "Struct:BatchNorm";

/// What the transfer did with one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamAction {
    /// Copied bit for bit from the source.
    Copied,
    /// Left freshly initialised (batch-norm parameter or running statistic).
    Reset,
}

/// One line per parameter of the target, in traversal order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferReport {
    /// `(path, action)` for every float parameter (including batch-norm running statistics).
    pub entries: Vec<(String, ParamAction)>,
}

impl TransferReport {
    /// Paths with the given action.
    pub fn paths(&self, action: ParamAction) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(move |(_, a)| *a == action)
            .map(|(p, _)| p.as_str())
    }

    /// Number of parameters with the given action.
    pub fn count(&self, action: ParamAction) -> usize {
        self.paths(action).count()
    }
}

impl std::fmt::Display for TransferReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (path, action) in &self.entries {
            writeln!(f, "{path}: {action:?}")?;
        }
        Ok(())
    }
}

/// Why a transfer failed: the source and target networks do not have the same structure.
#[derive(Debug, Error, PartialEq)]
pub enum TransferError {
    /// The target has a parameter the source lacks (configs differ).
    #[error("source has no parameter `{path}` (do the CPM and A-CTR configs match?)")]
    Missing {
        /// Parameter path.
        path: String,
    },
    /// A parameter has different shapes in source and target.
    #[error("parameter `{path}`: source shape {source_shape:?}, target shape {target_shape:?}")]
    Shape {
        /// Parameter path.
        path: String,
        /// Shape in the source.
        source_shape: Vec<usize>,
        /// Shape in the target.
        target_shape: Vec<usize>,
    },
    /// The source has parameters the target lacks (configs differ).
    #[error("target has no parameter for source paths {paths:?}")]
    Unused {
        /// The source paths nothing consumed.
        paths: Vec<String>,
    },
}

/// Builds an A-CTR from `config` on `device` and initialises it from `cpm`: every parameter is
/// copied except batch-norm parameters and running statistics, which stay freshly initialised.
///
/// `config` must describe the same network as the CPM's (E-CDCTR uses the identical config).
/// The CPM is only read. The report lists every parameter path with what was done to it.
pub fn init_actr_from_cpm(
    cpm: &CtrNet,
    config: &CtrNetConfig,
    device: &Device,
) -> Result<(CtrNet, TransferReport), TransferError> {
    copy_except_batch_norm(cpm, config.init(device))
}

/// Copies every float parameter of `source` into the matching path of `target` except those
/// inside a `BatchNorm`, which keep `target`'s values. Works for any pair of modules of the
/// same structure.
pub fn copy_except_batch_norm<M: Module>(
    source: &M,
    target: M,
) -> Result<(M, TransferReport), TransferError> {
    let mut reader = Reader::default();
    source.visit(&mut reader);
    let mut writer = Writer {
        source: reader.tensors,
        stack: Vec::new(),
        report: TransferReport::default(),
        error: None,
    };
    let target = target.map(&mut writer);
    if let Some(error) = writer.error {
        return Err(error);
    }
    // Batch-norm entries of the source are legitimately left over; anything else is not.
    let mut unused: Vec<String> = writer
        .source
        .into_iter()
        .filter(|(_, (_, in_batch_norm))| !in_batch_norm)
        .map(|(path, _)| path)
        .collect();
    if !unused.is_empty() {
        unused.sort();
        return Err(TransferError::Unused { paths: unused });
    }
    Ok((target, writer.report))
}

/// Tracks the module path and the innermost container type during a traversal.
fn path_of(stack: &[(String, String)]) -> String {
    stack
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

fn in_batch_norm(stack: &[(String, String)]) -> bool {
    stack
        .last()
        .is_some_and(|(_, container)| container == BATCH_NORM_CONTAINER)
}

/// Reads `path -> (data, inside a batch norm)` of every float parameter.
#[derive(Default)]
struct Reader {
    stack: Vec<(String, String)>,
    tensors: HashMap<String, (TensorData, bool)>,
}

impl ModuleVisitor for Reader {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        self.tensors
            .insert(path_of(&self.stack), (data, in_batch_norm(&self.stack)));
    }
}

/// Loads the source data into every non-batch-norm float parameter of the target.
struct Writer {
    source: HashMap<String, (TensorData, bool)>,
    stack: Vec<(String, String)>,
    report: TransferReport,
    error: Option<TransferError>,
}

impl ModuleMapper for Writer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = path_of(&self.stack);
        if in_batch_norm(&self.stack) {
            self.source.remove(&path);
            self.report.entries.push((path, ParamAction::Reset));
            return param;
        }
        let Some((data, _)) = self.source.remove(&path) else {
            self.error.get_or_insert(TransferError::Missing { path });
            return param;
        };
        let target_shape = param.lazy_shape();
        if data.shape() != &target_shape {
            self.error.get_or_insert(TransferError::Shape {
                path,
                source_shape: data.shape().to_vec(),
                target_shape: target_shape.to_vec(),
            });
            return param;
        }
        // Same mechanism as loading a record: the target's device and gradient setting and its
        // own parameter id are kept, only the value is replaced.
        let device = param.lazy_device();
        let id = param.id;
        let tensor = Tensor::from_data(data, &device);
        self.report.entries.push((path, ParamAction::Copied));
        param.transform_for_load(tensor, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::bce_with_logits;
    use crate::nn::ctr_net::tests::{random_input, small_config};
    use crate::nn::test_util::device;
    use burn::optim::{AdamConfig, GradientsParams};

    /// `path -> values` of every float parameter (running statistics synced first).
    fn params(module: &CtrNet) -> HashMap<String, Vec<f32>> {
        let mut reader = Reader::default();
        module.valid().visit(&mut reader);
        reader
            .tensors
            .into_iter()
            .map(|(path, (data, _))| (path, data.try_to_vec::<f32>().expect("f32")))
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn copies_everything_but_batch_norm_which_is_fresh() {
        let device = device(71).autodiff();
        let config = small_config();
        // A CPM that has trained a few steps: BN gamma/beta and running statistics moved.
        let mut cpm = config.init(&device);
        let mut optim = AdamConfig::new().init();
        for _ in 0..3 {
            let input = random_input(&config, 8, 5, 4, &device);
            let labels = Tensor::<2>::from_floats(
                [[1.0], [0.0], [1.0], [0.0], [1.0], [1.0], [0.0], [0.0]],
                &device,
            );
            let loss = bce_with_logits(cpm.forward(input), labels);
            let grads = GradientsParams::from_grads(loss.backward(), &cpm);
            cpm = optim.step(1e-2, cpm, grads);
        }
        let cpm_params = params(&cpm);

        let (actr, report) = init_actr_from_cpm(&cpm, &config, &device).expect("same config");
        let actr_params = params(&actr);

        // The report covers every parameter exactly once.
        assert_eq!(report.entries.len(), actr_params.len());
        assert_eq!(report.entries.len(), cpm_params.len());
        // Two hidden MLP layers with batch norm: 4 tensors each are reset.
        assert_eq!(report.count(ParamAction::Reset), 8);
        for (path, action) in &report.entries {
            let (a, c) = (&actr_params[path], &cpm_params[path]);
            match action {
                ParamAction::Copied => {
                    assert!(!path.contains(".norm."), "{path}");
                    assert_eq!(bits(a), bits(c), "{path} copied bitwise");
                }
                ParamAction::Reset => {
                    let fresh = if path.ends_with("gamma") || path.ends_with("running_var") {
                        1.0
                    } else {
                        assert!(path.ends_with("beta") || path.ends_with("running_mean"));
                        0.0
                    };
                    assert!(a.iter().all(|&x| x == fresh), "{path} = {a:?}");
                    assert!(c.iter().any(|&x| x != fresh), "{path} had moved in the CPM");
                }
            }
        }
        // The A-CTR trains: its parameters require grad like a fresh network's...
        assert!(actr.mlp.output.weight.val().is_require_grad());
        // ...and training it (batch-norm running statistics included) leaves the CPM alone.
        let input = random_input(&config, 8, 5, 4, &device);
        let _ = actr.forward(input);
        assert_ne!(params(&actr), actr_params, "running statistics moved");
        assert_eq!(params(&cpm), cpm_params, "no state shared with the CPM");
    }

    #[test]
    fn mismatched_configs_are_rejected() {
        let device = device(72);
        let cpm = small_config().init(&device);
        let err = init_actr_from_cpm(&cpm, &small_config().with_d_context(0), &device)
            .expect_err("different MLP input width");
        assert!(matches!(err, TransferError::Shape { .. }), "{err}");
        let err = init_actr_from_cpm(&cpm, &small_config().with_use_historical(false), &device)
            .expect_err("historical branch missing in the target");
        assert!(matches!(
            err,
            TransferError::Shape { .. } | TransferError::Unused { .. }
        ));
    }
}
