//! Parakeet as a registered model family: which models it claims, the
//! decode settings that mean nothing to it, its stages, and the loaded
//! recognizer.

use std::path::Path;

use asr_models::parakeet::{Head, ParakeetConfig, CTC_TARGET, HYBRID_TARGET, RNNT_TARGET};
use asr_models::ModelConfig;

use super::{ParakeetTranscriber, CHUNK_SECONDS, OVERLAP_SECONDS};
use crate::config::decode::{DecodeOptions, Task};
use crate::stages::align::AlignStage;
use crate::stages::transcribe::{
    check_settings, claims, greedy_only_problems, quantization_note, Blocks, Recognizer,
    RecognizerFamily, RecognizerSettings, TranscribeError,
};
use crate::stages::{Data, StageInfo};
use crate::transcript::{Progress, Transcript};

/// NVIDIA's FastConformer CTC, RNN-T and TDT checkpoints (Parakeet).
pub struct ParakeetFamily;

impl RecognizerFamily for ParakeetFamily {
    fn name(&self) -> &'static str {
        "parakeet"
    }

    /// A `.nemo` file, a folder whose `config.json` names a NeMo ASR model
    /// class or a transformers Parakeet (a folder with another config is
    /// not Parakeet, whatever its name), or any other name (Hub repo) that
    /// says "parakeet".
    fn accepts(&self, model: &str) -> bool {
        Path::new(model).extension().is_some_and(|e| e == "nemo")
            || claims(model, is_parakeet_config, "parakeet")
    }

    fn plan(&self, settings: &RecognizerSettings<'_>) -> Result<Vec<StageInfo>, Vec<String>> {
        check_settings(settings, unsupported_options(settings.decode))?;
        let config = ParakeetConfig::load(&Path::new(settings.model).join("config.json")).ok();
        let quantization = quantization_note(settings.quantize);
        let (mels, encoder, decoder) = match &config {
            Some(c) => (
                format!("{} mel bins", c.preprocessor.features),
                format!(
                    "{} layers, d_model {}, {} heads",
                    c.encoder.n_layers, c.encoder.d_model, c.encoder.n_heads
                ),
                match c.head() {
                    Ok(Head::Ctc) => "greedy CTC decoding".to_string(),
                    Ok(Head::Rnnt) => "greedy RNN-T decoding (LSTM prediction network + joint)".into(),
                    Ok(Head::Tdt { durations }) => format!(
                        "greedy TDT decoding (LSTM prediction network + joint, durations {durations:?})"
                    ),
                    Err(e) => e,
                },
            ),
            None => (
                "mel bins as the checkpoint says".into(),
                "layers as the checkpoint says".into(),
                "greedy CTC or TDT decoding, as the checkpoint's head is".into(),
            ),
        };
        let mut stages = vec![
            StageInfo::new(
                "log-mel",
                format!(
                    "NeMo log-mel on MLX ({mels}), {CHUNK_SECONDS} s chunks overlapping by {OVERLAP_SECONDS} s"
                ),
                Data::Samples,
                Data::Features,
            ),
            StageInfo::new(
                "encoder",
                format!(
                    "FastConformer encoder ({}; {encoder}{quantization}), per chunk",
                    settings.model
                ),
                Data::Features,
                Data::AudioFeatures,
            ),
            StageInfo::new("decoder", decoder, Data::AudioFeatures, Data::Transcript),
        ];
        if settings.decode.word_timestamps {
            stages.push(AlignStage::info_for(
                "word times from the decoder's frame alignment".into(),
            ));
        }
        Ok(stages)
    }

    fn load(
        &self,
        settings: &RecognizerSettings<'_>,
    ) -> Result<Box<dyn Recognizer>, TranscribeError> {
        Ok(Box::new(ParakeetTranscriber::load_with(
            settings.model,
            settings.quantize,
        )?))
    }
}

impl Recognizer for ParakeetTranscriber {
    fn transcribe(
        &self,
        audio: Blocks<'_>,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        self.transcribe_blocks(audio, options.word_timestamps, progress)
    }
}

/// Whether a folder's `config.json` names a NeMo ASR class (`target`) or a
/// transformers Parakeet (`model_type`).
fn is_parakeet_config(config: &serde_json::Value) -> bool {
    let field = |key: &str| config.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    [CTC_TARGET, RNNT_TARGET, HYBRID_TARGET].contains(&field("target"))
        || field("model_type").starts_with("parakeet")
}

/// Decode settings Whisper reads that a Parakeet model cannot honour, so a
/// config that sets them fails at the check rather than being ignored.
fn unsupported_options(d: &DecodeOptions) -> Vec<String> {
    let mut out = Vec::new();
    if d.task == Task::Translate {
        out.push("decode.task: Parakeet models only transcribe".to_string());
    }
    if d.language.is_some() {
        out.push(
            "decode.language: Parakeet models take no language (English checkpoints, or \
             multilingual ones that detect it)"
                .into(),
        );
    }
    out.extend(greedy_only_problems(d, "Parakeet models decode greedily"));
    for (key, set) in [
        ("initial_prompt", d.initial_prompt.is_some()),
        ("prefix", d.prefix.is_some()),
        ("hotwords", d.hotwords.is_some()),
    ] {
        if set {
            out.push(format!("decode.{key}: Parakeet models take no prompt"));
        }
    }
    if d.max_new_tokens.is_some() {
        out.push("decode.max_new_tokens: Parakeet decodes every frame of the audio".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parakeet_claims_its_checkpoints_and_no_whisper_folder() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../converters/tests/fixtures");
        let accepts = |p: &Path| ParakeetFamily.accepts(&p.display().to_string());
        assert!(accepts(&fixtures.join("parakeet/tiny.nemo")));
        assert!(accepts(&fixtures.join("parakeet/mlx-community")));
        assert!(accepts(&fixtures.join("parakeet/hf-ctc")));
        assert!(!accepts(&fixtures.join("tiny-whisper/hf-safetensors")));
        let tmp = tempfile::tempdir().unwrap();
        let named = tmp.path().join("parakeet-but-whisper");
        std::fs::create_dir(&named).unwrap();
        std::fs::write(named.join("config.json"), r#"{"model_type": "whisper"}"#).unwrap();
        assert!(!accepts(&named));
        assert!(ParakeetFamily.accepts("nvidia/parakeet-tdt-0.6b-v2"));
        assert!(ParakeetFamily.accepts("hf:mlx-community/Parakeet-TDT-0.6b-v3@main"));
        assert!(!ParakeetFamily.accepts("openai/whisper-tiny"));
        assert!(!ParakeetFamily.accepts("tiny.en"));
    }
}
