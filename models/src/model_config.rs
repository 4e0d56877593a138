//! A model folder's `config.json`: one way to read, check and write it for
//! every family that keeps its settings there.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

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
