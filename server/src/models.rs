//! The models a server serves: the configuration's own `model` and those
//! under `[serve.models]`, each a loaded [`Pipeline`] with the same
//! `[decode]`, `[vad]`, `[align]` and `[diarization]` settings, found by
//! the id a request names.

use std::path::Path;

use asr_pipeline::{Config, Pipeline, PipelineError};

/// What OpenAI's clients name their transcription model: the default one.
pub const OPENAI_MODEL: &str = "whisper-1";

pub struct Model {
    pub id: String,
    pub pipeline: Pipeline,
}

pub struct Models {
    /// The configuration's own model first: the default.
    entries: Vec<Model>,
}

impl Models {
    /// Loads every model of `config` (fetching or converting first, when
    /// needed).
    pub fn load(config: &Config) -> Result<Models, PipelineError> {
        let mut entries = vec![Model {
            id: model_id(&config.model),
            pipeline: Pipeline::from_config(config)?,
        }];
        for (id, spec) in &config.serve.models {
            if entries.iter().any(|m| &m.id == id) || id == OPENAI_MODEL {
                return Err(PipelineError::Invalid(vec![format!(
                    "serve.models: {id:?} names the configuration's own model; pick another id"
                )]));
            }
            tracing::info!(id, spec, "loading a model");
            let mut config = config.clone();
            config.model = spec.clone();
            entries.push(Model {
                id: id.clone(),
                pipeline: Pipeline::from_config(&config)?,
            });
        }
        Ok(Models { entries })
    }

    /// The index of the model a request names: the default one when it
    /// names none or [`OPENAI_MODEL`].
    pub fn find(&self, requested: Option<&str>) -> Option<usize> {
        match requested.map(str::trim) {
            None | Some("") | Some(OPENAI_MODEL) => Some(0),
            Some(id) => self.entries.iter().position(|m| m.id == id),
        }
    }

    pub fn get(&self, index: usize) -> &Model {
        &self.entries[index]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Model> {
        self.entries.iter()
    }
}

/// A model's id: a folder or file by its name, a registry name or Hub repo
/// as written.
fn model_id(spec: &str) -> String {
    let path = Path::new(spec);
    match path.file_name() {
        Some(name) if path.exists() => name.to_string_lossy().into_owned(),
        _ => spec.to_string(),
    }
}
