//! Where the networks compute: burn's pure-Rust CPU backend `flex` (the default, no native
//! library) or libtorch through burn-tch (cargo feature `tch`: its CPU device or a CUDA GPU).
//!
//! Embedding tables, ETA's SimHash top-k and the metrics are plain Rust and always run on the
//! CPU; only the dense networks move. A [`ComputeDevice`] is a runtime choice (config key
//! `device`, CLI `--device`), parsed from `flex`, `libtorch` (or `libtorch:cpu`) and `cuda:N`
//! (or `libtorch:cuda:N`). Choosing a libtorch device in a build without the feature is a
//! config error that says how to build it, never a silent fall-back.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ModelsError, Result};

/// The device the dense networks train and predict on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ComputeDevice {
    /// burn's pure-Rust CPU backend (`Device::flex()`), always compiled in.
    #[default]
    Flex,
    /// libtorch on the CPU (feature `tch`).
    LibTorchCpu,
    /// libtorch on CUDA device `N` (feature `tch`, a CUDA build of libtorch and a GPU).
    LibTorchCuda(usize),
}

impl ComputeDevice {
    /// Whether this is the default `flex` device (for `skip_serializing_if`).
    pub fn is_flex(&self) -> bool {
        matches!(self, ComputeDevice::Flex)
    }

    /// Whether this build can compute on the device.
    pub fn is_compiled_in(&self) -> bool {
        match self {
            ComputeDevice::Flex => true,
            ComputeDevice::LibTorchCpu | ComputeDevice::LibTorchCuda(_) => cfg!(feature = "tch"),
        }
    }

    /// Checks that this build has the device's backend, without touching the backend.
    ///
    /// # Errors
    /// [`ModelsError::InvalidConfig`] naming `device` and the build flag it needs.
    pub fn ensure_available(&self) -> Result<()> {
        if self.is_compiled_in() {
            return Ok(());
        }
        Err(ModelsError::config(
            "device",
            format!(
                "`{self}` needs the libtorch backend: build ctrflow with `--features tch` \
                 (LIBTORCH pointing at a libtorch 2.9.0, see docs/models.md)"
            ),
        ))
    }

    /// The CPU devices compiled into this build (what the backend conformance test trains on).
    pub fn compiled_cpu_devices() -> Vec<ComputeDevice> {
        let mut devices = vec![ComputeDevice::Flex];
        if cfg!(feature = "tch") {
            devices.push(ComputeDevice::LibTorchCpu);
        }
        devices
    }

    /// The burn device (without autodiff).
    ///
    /// # Errors
    /// [`ModelsError::InvalidConfig`] naming `device` when the build lacks the backend.
    pub fn burn_device(&self) -> Result<Device> {
        match self {
            ComputeDevice::Flex => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            ComputeDevice::LibTorchCpu => {
                libtorch_threads();
                #[allow(deprecated)] // burn 0.22 deprecates burn-tch; issue 5 asks for it
                Ok(Device::libtorch())
            }
            #[cfg(feature = "tch")]
            ComputeDevice::LibTorchCuda(index) => {
                libtorch_threads();
                #[allow(deprecated)]
                Ok(Device::libtorch_cuda(*index))
            }
            #[cfg(not(feature = "tch"))]
            // Without the feature every libtorch device is an error here.
            other => other.ensure_available().map(|()| Device::flex()),
        }
    }
}

/// libtorch's intra-op threads: `OMP_NUM_THREADS` when set, else the cores available. Set
/// once per process; libtorch's own default oversubscribes a busy machine (5-10x slower).
#[cfg(feature = "tch")]
fn libtorch_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let threads = std::env::var("OMP_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as i32));
        tch::set_num_threads(threads);
        tch::set_num_interop_threads(1);
    });
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Flex => f.write_str("flex"),
            ComputeDevice::LibTorchCpu => f.write_str("libtorch"),
            ComputeDevice::LibTorchCuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = ModelsError;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let cuda = s.strip_prefix("libtorch:").unwrap_or(s);
        match s {
            "flex" => return Ok(ComputeDevice::Flex),
            "libtorch" | "libtorch:cpu" | "tch" => return Ok(ComputeDevice::LibTorchCpu),
            _ => {}
        }
        if let Some(index) = cuda.strip_prefix("cuda:") {
            return index.parse().map(ComputeDevice::LibTorchCuda).map_err(|_| {
                ModelsError::config(
                    "device",
                    format!("`{s}`: the CUDA device index must be a number, e.g. cuda:0"),
                )
            });
        }
        Err(ModelsError::config(
            "device",
            format!("`{s}` is not a device: use flex, libtorch or cuda:N"),
        ))
    }
}

impl TryFrom<String> for ComputeDevice {
    type Error = ModelsError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ComputeDevice> for String {
    fn from(device: ComputeDevice) -> String {
        device.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_device() {
        for (text, device) in [
            ("flex", ComputeDevice::Flex),
            ("libtorch", ComputeDevice::LibTorchCpu),
            ("libtorch:cpu", ComputeDevice::LibTorchCpu),
            ("cuda:0", ComputeDevice::LibTorchCuda(0)),
            ("libtorch:cuda:3", ComputeDevice::LibTorchCuda(3)),
        ] {
            assert_eq!(text.parse::<ComputeDevice>().expect(text), device);
            assert_eq!(
                device.to_string().parse::<ComputeDevice>().expect(text),
                device
            );
        }
        for bad in ["gpu", "cuda:x", "cuda:", ""] {
            let err = bad.parse::<ComputeDevice>().expect_err(bad).to_string();
            assert!(err.contains("device"), "{bad}: {err}");
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        let json = serde_json::to_string(&ComputeDevice::LibTorchCuda(1)).expect("json");
        assert_eq!(json, "\"cuda:1\"");
        let back: ComputeDevice = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, ComputeDevice::LibTorchCuda(1));
        assert!(serde_json::from_str::<ComputeDevice>("\"tpu\"").is_err());
    }

    #[test]
    fn flex_is_always_available_and_libtorch_only_with_the_feature() {
        assert!(ComputeDevice::Flex.burn_device().is_ok());
        let libtorch = ComputeDevice::LibTorchCpu.burn_device();
        assert_eq!(libtorch.is_ok(), cfg!(feature = "tch"));
        if let Err(e) = libtorch {
            assert!(e.to_string().contains("--features tch"), "{e}");
        }
        assert_eq!(
            ComputeDevice::compiled_cpu_devices().len(),
            1 + usize::from(cfg!(feature = "tch"))
        );
    }
}
