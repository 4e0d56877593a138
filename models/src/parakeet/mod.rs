//! NVIDIA's Parakeet (FastConformer encoder with CTC or TDT heads) on MLX.
//! For now only its front end: NeMo's log-mel preprocessor.

pub mod features;

pub use features::{FeatureWindow, Normalization, ParakeetFeatures, PreprocessConfig};
