//! A converted model folder — `config.json` and `weights.safetensors` —
//! read the same way for every family: the config checked, errors naming
//! the file.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::weights::{WeightError, Weights};

/// Why a converted model folder did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {error}")]
    Weights { path: String, error: WeightError },
}

impl LoadError {
    /// `error` reading the weights file `path`, or building the model from it.
    pub fn weights(path: &Path, error: WeightError) -> LoadError {
        LoadError::Weights {
            path: path.display().to_string(),
            error,
        }
    }
}

/// A converted model folder of an unquantized family: its checked config
/// and its weights.
pub struct ModelFolder<C> {
    pub config: C,
    pub weights: Weights,
    /// Where the weights came from, for errors ([`LoadError::weights`]).
    pub weights_path: PathBuf,
}

impl<C: ModelConfig> ModelFolder<C> {
    /// Reads `dir/config.json` and `dir/weights.safetensors`.
    pub fn open(dir: &Path) -> Result<ModelFolder<C>, LoadError> {
        let config = C::load(&dir.join("config.json")).map_err(LoadError::Config)?;
        let weights_path = dir.join("weights.safetensors");
        let weights =
            Weights::load(&weights_path, None).map_err(|e| LoadError::weights(&weights_path, e))?;
        Ok(ModelFolder {
            config,
            weights,
            weights_path,
        })
    }
}

/// The settings a converted model folder stores in `config.json`.
pub trait ModelConfig: Serialize + DeserializeOwned {
    /// What the file holds, for errors ("a segmentation config").
    const WHAT: &'static str;

    /// Values that cannot describe a model of this family.
    fn validate(&self) -> Result<(), String>;

    /// Reads and checks `path`; errors name the file.
    fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not {}: {e}", path.display(), Self::WHAT))?;
        config
            .validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// The file's text.
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config serializes") + "\n"
    }
}
