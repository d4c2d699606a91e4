//! Run-time device selection: `--device cpu|cuda:N|rocm:N|vulkan[:N]|metal|wgpu[:N]`.
//!
//! burn 0.22 dispatches every tensor operation at run time on the device the tensor lives on,
//! so one build can hold several backends and the user picks one per run. The default build
//! has only the pure-Rust `flex` CPU backend; the GPU backends are cargo features of this
//! crate (`cuda`, `rocm`, `wgpu`, `vulkan`, `metal`), forwarded by the `dfl` binary.

use crate::error::{NnError, Result};
use burn::tensor::{Device, Tensor};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Mutex;

/// A device named by the user, parsed from `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// burn's pure-Rust `flex` CPU backend (rayon + SIMD); always available.
    #[default]
    Cpu,
    /// NVIDIA GPU number N (feature `cuda`).
    Cuda(usize),
    /// AMD GPU number N through ROCm/HIP (feature `rocm`).
    Rocm(usize),
    /// Through Vulkan (feature `vulkan`): discrete GPU number N, or without a number the best
    /// adapter the machine has (an integrated GPU too).
    Vulkan(Option<usize>),
    /// The Apple GPU through Metal (feature `metal`).
    Metal,
    /// Through wgpu with whatever graphics API the machine offers (feature `wgpu`): discrete
    /// GPU number N, or without a number the best adapter.
    Wgpu(Option<usize>),
}

impl DeviceSpec {
    /// Device names this build can open, for help texts and error messages.
    pub fn available() -> Vec<&'static str> {
        let mut v = vec!["cpu"];
        if cfg!(feature = "cuda") {
            v.push("cuda:N");
        }
        if cfg!(feature = "rocm") {
            v.push("rocm:N");
        }
        if cfg!(feature = "vulkan") {
            v.push("vulkan[:N]");
        }
        if cfg!(feature = "metal") {
            v.push("metal");
        }
        if cfg!(feature = "wgpu") {
            v.push("wgpu[:N]");
        }
        v
    }

    /// Whether tensors on this device live in host memory (enables host-side fused kernels,
    /// e.g. the optimizer update).
    pub fn is_host(self) -> bool {
        matches!(self, DeviceSpec::Cpu)
    }

    /// The burn device (without autodiff). Fails for a backend this build was compiled without,
    /// and for a GPU that cannot be opened (checked once per process).
    pub fn device(self) -> Result<Device> {
        let device = self.backend_device()?;
        if !self.is_host() {
            probe(self, &device)?;
        }
        Ok(device)
    }

    fn backend_device(self) -> Result<Device> {
        let missing = |feature: &str| NnError::Device {
            spec: self.to_string(),
            message: format!(
                "this build has no {feature} support (rebuild with `--features {feature}`; available: {})",
                Self::available().join(", ")
            ),
        };
        match self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => Err(missing("cuda")),
            #[cfg(feature = "rocm")]
            DeviceSpec::Rocm(i) => Ok(Device::rocm(i)),
            #[cfg(not(feature = "rocm"))]
            DeviceSpec::Rocm(_) => Err(missing("rocm")),
            #[cfg(feature = "vulkan")]
            DeviceSpec::Vulkan(i) => Ok(Device::vulkan(wgpu_kind(i))),
            #[cfg(not(feature = "vulkan"))]
            DeviceSpec::Vulkan(_) => Err(missing("vulkan")),
            #[cfg(feature = "metal")]
            DeviceSpec::Metal => Ok(Device::metal(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "metal"))]
            DeviceSpec::Metal => Err(missing("metal")),
            #[cfg(feature = "wgpu")]
            DeviceSpec::Wgpu(i) => Ok(Device::wgpu(wgpu_kind(i))),
            #[cfg(not(feature = "wgpu"))]
            DeviceSpec::Wgpu(_) => Err(missing("wgpu")),
        }
    }
}

/// burn's adapter choice for `vulkan[:N]` / `wgpu[:N]`.
#[cfg(any(feature = "vulkan", feature = "wgpu"))]
fn wgpu_kind(index: Option<usize>) -> burn::tensor::DeviceKind {
    match index {
        Some(i) => burn::tensor::DeviceKind::DiscreteGpu(i),
        None => burn::tensor::DeviceKind::DefaultDevice,
    }
}

/// Opens a GPU with a one-value round trip, once per process and device. The GPU backends
/// panic on a device they cannot open (no such adapter, no driver) from their own thread;
/// this turns that into an error naming the device instead of a crash later in a model.
fn probe(spec: DeviceSpec, device: &Device) -> Result<()> {
    static OPENED: Mutex<Vec<DeviceSpec>> = Mutex::new(Vec::new());
    let mut opened = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if opened.contains(&spec) {
        return Ok(());
    }
    let round_trip = std::panic::catch_unwind(AssertUnwindSafe(|| {
        Tensor::<1>::from_floats([1.0f32], device).into_scalar::<f32>()
    }));
    match round_trip {
        Ok(1.0) => {
            opened.push(spec);
            Ok(())
        }
        Ok(v) => Err(NnError::Device {
            spec: spec.to_string(),
            message: format!("a test value came back as {v} instead of 1"),
        }),
        Err(_) => Err(NnError::Device {
            spec: spec.to_string(),
            message: "the GPU could not be opened (no such device, or its driver failed to \
                      load: see the backend's message above)"
                .to_string(),
        }),
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Rocm(i) => write!(f, "rocm:{i}"),
            DeviceSpec::Vulkan(Some(i)) => write!(f, "vulkan:{i}"),
            DeviceSpec::Vulkan(None) => write!(f, "vulkan"),
            DeviceSpec::Metal => write!(f, "metal"),
            DeviceSpec::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
            DeviceSpec::Wgpu(None) => write!(f, "wgpu"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = NnError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |message: String| NnError::Device {
            spec: s.to_string(),
            message,
        };
        let lower = s.trim().to_ascii_lowercase();
        let (name, index) = match lower.split_once(':') {
            Some((n, i)) => {
                let idx = i
                    .parse::<usize>()
                    .map_err(|_| bad(format!("'{i}' is not a device number")))?;
                (n.to_string(), Some(idx))
            }
            None => (lower.clone(), None),
        };
        let idx = index.unwrap_or(0);
        match name.as_str() {
            "cpu" | "flex" if index.is_none() => Ok(DeviceSpec::Cpu),
            "metal" if index.is_none() => Ok(DeviceSpec::Metal),
            "cuda" => Ok(DeviceSpec::Cuda(idx)),
            "rocm" | "hip" => Ok(DeviceSpec::Rocm(idx)),
            "vulkan" => Ok(DeviceSpec::Vulkan(index)),
            "wgpu" => Ok(DeviceSpec::Wgpu(index)),
            _ => Err(bad(
                "unknown device (expected one of cpu, cuda:N, rocm:N, vulkan[:N], metal, wgpu[:N])"
                    .to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("CUDA:1", DeviceSpec::Cuda(1)),
            ("cuda", DeviceSpec::Cuda(0)),
            ("rocm:2", DeviceSpec::Rocm(2)),
            ("vulkan:0", DeviceSpec::Vulkan(Some(0))),
            ("vulkan", DeviceSpec::Vulkan(None)),
            ("metal", DeviceSpec::Metal),
            ("wgpu:3", DeviceSpec::Wgpu(Some(3))),
            ("wgpu", DeviceSpec::Wgpu(None)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
        }
        for d in ["cpu", "cuda:1", "vulkan", "vulkan:2", "wgpu", "metal"] {
            assert_eq!(d.parse::<DeviceSpec>().unwrap().to_string(), d);
        }
        assert!("tpu:0".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("cpu:1".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn cpu_always_opens_and_missing_backends_say_so() {
        assert!(DeviceSpec::Cpu.device().is_ok());
        if !cfg!(feature = "cuda") {
            let e = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
