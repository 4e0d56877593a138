//! Safe Rust bindings to the MLX C++ array framework, plus this crate's own
//! CPU kernels for the ops where MLX's CPU backend is slow.
//!
//! MLX itself comes from the official PyPI wheels (`mlx-cpu` on Linux,
//! `mlx-cuda-12`/`mlx-cuda-13` with the `cuda12`/`cuda13` features, `mlx-metal`
//! on macOS); `build.rs` finds or installs it. Every operation is lazy and
//! returns `Result`: MLX's C++ exceptions (shape mismatches, bad arguments)
//! come back as [`Error::Mlx`] instead of aborting the process.
//!
//! ```
//! use mlx::{Array, Dtype};
//! let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = a.matmul(&a)?.add_scalar(1.0)?;
//! assert_eq!(b.to_vec::<f32>()?, vec![8.0, 11.0, 16.0, 23.0]);
//! assert_eq!(b.dtype(), Dtype::F32);
//! # Ok::<(), mlx::Error>(())
//! ```
//!
//! At the top level: [`Array`] and its ops, devices and memory, [`eval`] and
//! [`compile`]. Modules:
//! - [`fast`]: MLX's fused ops (norms, RoPE, attention);
//! - [`kernels`]: this crate's CPU kernels (their switch and thread pool, the
//!   linear layer with its epilogue fused, cache row selection and copies);
//! - [`decoder_step`]: a transformer decoder layer's decoding step as one
//!   primitive of those kernels;
//! - [`quant`]: quantized matrices; [`fft`]; [`io`] (safetensors); [`random`].

mod array;
pub mod decoder_step;
mod device;
mod dtype;
mod error;
pub mod fast;
mod ffi;
pub mod fft;
pub mod io;
pub mod kernels;
mod ops;
pub mod quant;
pub mod random;
mod transforms;

pub use array::Array;
pub use device::{
    blas_provider, clear_cache, default_device, is_available, keep_freed_memory, linked_openblas,
    memory_stats, openblas_config, reset_peak_memory, set_cache_limit, set_default_device,
    set_memory_limit, version, wheel, Device, MemoryStats,
};
pub use dtype::{Dtype, Element};
pub use error::{Error, Result};
pub use ops::{concatenate, stack, BinaryOp, Reduction, UnaryOp};
pub use transforms::{async_eval, compile, eval, evaluating_created, unnoted, CompiledFn};
