//! A flat map of named arrays, as stored in `weights.safetensors`, from which
//! layers take their parameters by prefix.

use std::collections::BTreeMap;
use std::path::Path;

use mlx::Array;

use crate::quantization::{Activations, Quantization};

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("missing weight `{0}`")]
    Missing(String),
    #[error("weight `{name}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        name: String,
        actual: Vec<i32>,
        expected: Vec<i32>,
    },
    #[error("weight `{name}` is quantized but the model config has no `quantization` entry")]
    NoQuantization { name: String },
    #[error(transparent)]
    Mlx(#[from] mlx::Error),
}

/// Named arrays plus the quantization they were written with.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    arrays: BTreeMap<String, Array>,
    quantization: Option<Quantization>,
    activations: Activations,
}

impl Weights {
    pub fn new(arrays: BTreeMap<String, Array>, quantization: Option<Quantization>) -> Weights {
        Weights {
            arrays,
            quantization,
            activations: Activations::F32,
        }
    }

    /// The same weights, their quantized matrices multiplying activations
    /// as `activations` says.
    pub fn with_activations(self, activations: Activations) -> Weights {
        Weights {
            activations,
            ..self
        }
    }

    /// Reads a safetensors file into memory of its own, one read per tensor
    /// (see [`mlx::io::load_safetensors`] for why not by mapping it).
    pub fn load(path: &Path, quantization: Option<Quantization>) -> Result<Weights, WeightError> {
        Ok(Weights::new(
            mlx::io::load_safetensors(path)?.tensors,
            quantization,
        ))
    }

    pub fn quantization(&self) -> Option<Quantization> {
        self.quantization
    }

    pub fn activations(&self) -> Activations {
        self.activations
    }

    pub fn contains(&self, name: &str) -> bool {
        self.arrays.contains_key(name)
    }

    /// The array called `name`.
    pub fn get(&self, name: &str) -> Result<Array, WeightError> {
        self.arrays
            .get(name)
            .cloned()
            .ok_or_else(|| WeightError::Missing(name.to_string()))
    }

    /// The array called `name`, checked against `shape`.
    pub fn get_shaped(&self, name: &str, shape: &[i32]) -> Result<Array, WeightError> {
        let array = self.get(name)?;
        let actual = array.shape();
        if actual != shape {
            return Err(WeightError::Shape {
                name: name.to_string(),
                actual,
                expected: shape.to_vec(),
            });
        }
        Ok(array)
    }

    /// Every array, for evaluating them all at once after loading.
    pub fn arrays(&self) -> impl Iterator<Item = (&String, &Array)> {
        self.arrays.iter()
    }
}
