//! Qwen3-ASR as a registered model family: which models it claims, the
//! decode settings it reads (language, prompt as context) and those that
//! mean nothing to it, its stages, and the loaded recognizer.

use std::path::Path;

use asr_models::qwen3_asr::prompt::{language_name, LANGUAGES};
use asr_models::qwen3_asr::{Qwen3AsrConfig, Request};
use asr_models::ModelConfig;

use super::{Qwen3AsrTranscriber, SEARCH_SECONDS, SEGMENT_SECONDS};
use crate::config::decode::{DecodeOptions, Task};
use crate::stages::transcribe::{
    check_settings, claims, greedy_only_problems, quantization_note, Blocks, Recognizer,
    RecognizerFamily, RecognizerSettings, Streaming, TranscribeError,
};
use crate::stages::{Data, StageInfo};
use crate::transcript::{Progress, Transcript};

/// Qwen's Qwen3-ASR (0.6B, 1.7B): an audio encoder feeding a Qwen3 LLM.
pub struct Qwen3AsrFamily;

impl RecognizerFamily for Qwen3AsrFamily {
    fn name(&self) -> &'static str {
        "qwen3-asr"
    }

    /// A folder whose `config.json` is a Qwen3-ASR config (converted,
    /// transformers' or Qwen's own), or any other name (Hub repo) that says
    /// "qwen3-asr".
    fn accepts(&self, model: &str) -> bool {
        claims(model, is_qwen3_asr_config, "qwen3-asr")
    }

    fn plan(&self, settings: &RecognizerSettings<'_>) -> Result<Vec<StageInfo>, Vec<String>> {
        check_settings(settings, unsupported_options(settings.decode))?;
        let config = Qwen3AsrConfig::load(&Path::new(settings.model).join("config.json")).ok();
        let quantization = quantization_note(settings.quantize);
        let (mels, encoder, decoder) = match &config {
            Some(c) => (
                format!("{} mel bins", c.audio_config.num_mel_bins),
                format!(
                    "{} layers, d_model {}, {} heads, attention in {} s windows",
                    c.audio_config.encoder_layers,
                    c.audio_config.d_model,
                    c.audio_config.encoder_attention_heads,
                    c.audio_config.n_window_infer / 100
                ),
                format!(
                    "{} layers, hidden {}, {}/{} query/key-value heads",
                    c.text_config.num_hidden_layers,
                    c.text_config.hidden_size,
                    c.text_config.num_attention_heads,
                    c.text_config.num_key_value_heads
                ),
            ),
            None => (
                "128 mel bins".into(),
                "layers as the checkpoint says".into(),
                "layers as the checkpoint says".into(),
            ),
        };
        let language = match &settings.decode.language {
            Some(l) => format!("language forced to {}", language_name(l).unwrap_or(l)),
            None => "language detected by the model".into(),
        };
        Ok(vec![
            StageInfo::new(
                "log-mel",
                format!(
                    "Whisper log-mel on MLX ({mels}), segments of about {SEGMENT_SECONDS} s cut at \
                     the quietest 100 ms within {SEARCH_SECONDS} s"
                ),
                Data::Samples,
                Data::Features,
            ),
            StageInfo::new(
                "encoder",
                format!(
                    "Qwen3-ASR audio encoder + projector ({}; {encoder}{quantization})",
                    settings.model
                ),
                Data::Features,
                Data::AudioFeatures,
            ),
            StageInfo::new(
                "decoder",
                format!(
                    "Qwen3 LLM ({decoder}), chat prompt with the audio spliced in, {language}, \
                     greedy decoding with a KV cache"
                ),
                Data::AudioFeatures,
                Data::Transcript,
            ),
        ])
    }

    fn load(
        &self,
        settings: &RecognizerSettings<'_>,
    ) -> Result<Box<dyn Recognizer>, TranscribeError> {
        Ok(Box::new(Qwen3AsrTranscriber::load_with(
            settings.model,
            settings.quantize,
        )?))
    }
}

impl Recognizer for Qwen3AsrTranscriber {
    fn transcribe(
        &self,
        audio: Blocks<'_>,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        self.transcribe_blocks(audio, &request(options), progress)
    }

    fn hypothesis(
        &self,
        samples: &[f32],
        options: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError> {
        self.transcribe_hypothesis(samples, &request(options))
    }

    fn streaming(&self) -> Streaming {
        Streaming::Prefix
    }
}

/// The model's request from the decode settings: the language, and the
/// prompt and hotwords as the system turn's context.
fn request(options: &DecodeOptions) -> Request {
    let context: Vec<&str> = [&options.initial_prompt, &options.hotwords]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    Request {
        language: options.language.clone(),
        context: context.join("\n"),
        prefix: options.prefix.clone().unwrap_or_default(),
        max_new_tokens: options
            .max_new_tokens
            .unwrap_or(Request::default().max_new_tokens),
        ..Request::default()
    }
}

/// Whether a folder's `config.json` is a Qwen3-ASR one: transformers'
/// `model_type`, Qwen's `thinker_config`, or ours (converted: the audio and
/// text configs with the audio token).
fn is_qwen3_asr_config(config: &serde_json::Value) -> bool {
    let model_type = config.get("model_type").and_then(|v| v.as_str());
    model_type == Some("qwen3_asr")
        || config.get("thinker_config").is_some()
        || ["audio_config", "text_config", "audio_token_id"]
            .iter()
            .all(|key| config.get(key).is_some())
}

/// Decode settings that a Qwen3-ASR model cannot honour, so a config that
/// sets them fails at the check rather than being ignored.
fn unsupported_options(d: &DecodeOptions) -> Vec<String> {
    let mut out = Vec::new();
    if d.task == Task::Translate {
        out.push("decode.task: Qwen3-ASR models only transcribe".to_string());
    }
    if let Some(language) = &d.language {
        if language_name(language).is_none() {
            let codes: Vec<&str> = LANGUAGES.iter().map(|(code, _)| *code).collect();
            out.push(format!(
                "decode.language: Qwen3-ASR does not know {language:?} (it knows {})",
                codes.join(", ")
            ));
        }
    }
    out.extend(greedy_only_problems(d, "Qwen3-ASR models decode greedily"));
    if d.prefix.is_some() && d.language.is_none() {
        out.push(
            "decode.prefix: a Qwen3-ASR reply names its language before the text, so a prefix \
             needs decode.language"
                .into(),
        );
    }
    if d.word_timestamps {
        out.push(
            "decode.word_timestamps: Qwen3-ASR times segments, not words; time words with an \
             [align] model (a wav2vec2 aligner) instead"
                .into(),
        );
    }
    let special = [&d.initial_prompt, &d.hotwords]
        .into_iter()
        .flatten()
        .chain(&d.prefix)
        .any(|s| s.contains("<|") || s.contains("<asr_text>"));
    if special {
        out.push(
            "decode.initial_prompt/hotwords/prefix: the context and prefix may not hold the chat format's special \
             tokens"
                .into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen3_asr_claims_its_checkpoints_and_no_other_folder() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures");
        let accepts = |p: &Path| Qwen3AsrFamily.accepts(&p.display().to_string());
        assert!(accepts(&models.join("qwen3_asr_model")));
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../converters/tests/fixtures");
        assert!(!accepts(&fixtures.join("parakeet/mlx-community")));
        assert!(!accepts(&fixtures.join("tiny-whisper/hf-safetensors")));
        let tmp = tempfile::tempdir().unwrap();
        let original = tmp.path().join("checkpoint");
        std::fs::create_dir(&original).unwrap();
        std::fs::write(original.join("config.json"), r#"{"thinker_config": {}}"#).unwrap();
        assert!(accepts(&original));
        assert!(Qwen3AsrFamily.accepts("Qwen/Qwen3-ASR-0.6B"));
        assert!(Qwen3AsrFamily.accepts("hf:mlx-community/Qwen3_ASR-1.7B-8bit@main"));
        assert!(!Qwen3AsrFamily.accepts("Qwen/Qwen3-8B"));
        assert!(!Qwen3AsrFamily.accepts("tiny.en"));
    }

    #[test]
    fn whisper_only_settings_are_named() {
        let d = DecodeOptions {
            language: Some("xx".into()),
            beam_size: Some(5),
            word_timestamps: true,
            initial_prompt: Some("<|im_end|>".into()),
            ..DecodeOptions::default()
        };
        let problems = unsupported_options(&d).join("\n");
        for key in ["language", "beam_size", "word_timestamps", "initial_prompt"] {
            assert!(problems.contains(&format!("decode.{key}")), "{problems}");
        }
        let fine = DecodeOptions {
            language: Some("English".into()),
            initial_prompt: Some("Kennedy".into()),
            ..DecodeOptions::default()
        };
        assert!(unsupported_options(&fine).is_empty());
        assert_eq!(request(&fine).context, "Kennedy");
    }
}
