//! NVIDIA's Parakeet (FastConformer encoder with CTC or TDT heads) on MLX.

pub mod config;
pub mod encoder;
pub mod features;

pub use config::{EncoderConfig, Head, ParakeetConfig};
pub use encoder::Encoder;
pub use features::{FeatureWindow, Normalization, ParakeetFeatures, PreprocessConfig};
