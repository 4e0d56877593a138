//! mlx-asr: a speech-recognition pipeline whose tensors live in MLX arrays.
//!
//! This facade re-exports the workspace crates; the `pipeline` binary in
//! `src/main.rs` is its command-line front end.

pub mod build_info;

pub use mlx;

// Compiles and runs the README's Rust examples as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
