//! Devices, memory statistics and facts about the linked libraries.

use crate::ffi::ffi;
use crate::Result;

/// Where MLX runs operations.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// Metal on macOS, CUDA with the CUDA wheels.
    Gpu,
}

impl Device {
    fn code(self) -> u8 {
        match self {
            Device::Cpu => 0,
            Device::Gpu => 1,
        }
    }
}

/// The device operations run on unless told otherwise: MLX picks the GPU when
/// the loaded library supports one, else the CPU.
pub fn default_device() -> Device {
    if ffi::default_device() == 0 {
        Device::Cpu
    } else {
        Device::Gpu
    }
}

/// Fails when the loaded MLX has no such device.
pub fn set_default_device(device: Device) -> Result<()> {
    if !is_available(device) {
        return Err(crate::Error::Mlx(format!(
            "{device:?} is not available in this MLX build ({})",
            wheel()
        )));
    }
    Ok(ffi::set_default_device(device.code())?)
}

pub fn is_available(device: Device) -> bool {
    ffi::is_available(device.code())
}

/// Bytes held by MLX's allocator.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    pub active: usize,
    pub peak: usize,
    pub cache: usize,
    pub limit: usize,
}

pub fn memory_stats() -> Result<MemoryStats> {
    Ok(MemoryStats {
        active: ffi::memory_stat(0)?,
        peak: ffi::memory_stat(1)?,
        cache: ffi::memory_stat(2)?,
        limit: ffi::memory_stat(3)?,
    })
}

pub fn reset_peak_memory() {
    ffi::reset_peak_memory()
}

/// Returns cached buffers to the system.
pub fn clear_cache() {
    ffi::clear_cache()
}

/// Sets the allocator's limit; returns the previous one.
pub fn set_memory_limit(bytes: usize) -> usize {
    ffi::set_memory_limit(bytes)
}

/// Sets how much freed memory MLX may keep cached; returns the previous limit.
pub fn set_cache_limit(bytes: usize) -> usize {
    ffi::set_cache_limit(bytes)
}

/// Asks the C library to keep freed memory for the buffers that follow
/// rather than hand it back to the OS at once; `false` where that cannot be
/// asked (C libraries other than glibc). Process-wide, so for programs that
/// own their process, such as the CLI.
///
/// MLX caches 32 MiB of freed buffers and frees the rest. glibc then serves
/// buffers above a threshold (which moves with what was freed) by new
/// mappings, and returns any free heap top of more than twice that: each
/// encoder window's activations would arrive as fresh pages, one fault each.
/// With this, buffers up to 32 MiB come from the heap and up to 256 MiB of
/// free heap top is kept: the windows reuse the heap's pages, with the same
/// peak memory.
pub fn keep_freed_memory() -> bool {
    ffi::keep_freed_memory()
}

/// Version string of the loaded libmlx.
pub fn version() -> String {
    ffi::mlx_version()
}

/// Path of the shared object that serves `cblas_sgemm` in this process.
pub fn blas_provider() -> String {
    ffi::blas_provider()
}

/// The PyPI wheel that provides libmlx in this build (`mlx-cpu`,
/// `mlx-cuda-12`, ...).
pub fn wheel() -> &'static str {
    env!("MLX_BUILD_WHEEL")
}

/// The library this crate was built to link for `cblas_*` (Linux CPU builds:
/// the forwarder to the `scipy-openblas32` wheel's OpenBLAS), if any.
pub fn linked_openblas() -> Option<&'static str> {
    option_env!("MLX_BUILD_OPENBLAS")
}

/// OpenBLAS's build description when OpenBLAS was linked, else `None`.
pub fn openblas_config() -> Option<String> {
    Some(ffi::openblas_config()).filter(|s| !s.is_empty())
}
