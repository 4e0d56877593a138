//! Recognition: audio in, a transcript with segments, words and language
//! out. A model family plugs in with two types: a [`RecognizerFamily`]
//! that checks settings and describes its stages without loading anything
//! (what `pipeline check` prints), and the [`Recognizer`] it loads. Its
//! family is then listed in [`FAMILIES`]; the plan picks the first that
//! accepts the configured model.
//!
//! A recognizer takes samples rather than features so that each family
//! owns its front end (Whisper's log-mel and 30 s windows, a CTC model's
//! own mel and subsampling, an LLM decoder's audio encoder) and streams it
//! as it likes; its stages show the parts.

pub mod parakeet;
pub mod qwen3_asr;
pub mod whisper;

use asr_converters::ConvertError;
use asr_models::LoadError;
use asr_models::{Activations, Quantize};

use super::audio::{AudioBlocks, AudioError};
use super::features::FrameError;
use super::StageInfo;
use crate::config::decode::DecodeOptions;
use crate::model_source;
use crate::transcript::{Progress, Transcript};

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("{0}")]
    Tokenizer(String),
    #[error("{0}")]
    Options(String),
    #[error("MLX: {0}")]
    Mlx(#[from] mlx::Error),
}

impl From<FrameError> for TranscribeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Audio(e) => TranscribeError::Audio(e),
            FrameError::Mlx(e) => TranscribeError::Mlx(e),
        }
    }
}

/// 16 kHz mono audio as consecutive blocks, behind a pointer so that any
/// source (a file stream, voice-activity output, a buffer) fits one trait.
pub type Blocks<'a> = Box<dyn AudioBlocks + 'a>;

/// A loaded model that turns audio into transcripts.
pub trait Recognizer: Send {
    /// Transcribes one recording arriving block by block.
    fn transcribe(
        &self,
        audio: Blocks<'_>,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError>;

    /// Transcribes several recordings, one result each in order; a family
    /// that decodes recordings side by side overrides this. `progress`
    /// hears of recording i as `(i, progress)`.
    fn transcribe_many(
        &self,
        recordings: Vec<Blocks<'_>>,
        options: &DecodeOptions,
        progress: &dyn Fn(usize, Progress),
    ) -> Vec<Result<Transcript, TranscribeError>> {
        recordings
            .into_iter()
            .enumerate()
            .map(|(i, audio)| self.transcribe(audio, options, &|p| progress(i, p)))
            .collect()
    }

    /// A live stream's hypothesis of a buffer ([`crate::stream`]): one
    /// decoding pass where a family would decode more to be sure (another
    /// hypothesis follows a step later).
    fn hypothesis(
        &self,
        samples: &[f32],
        options: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError> {
        self.transcribe(
            Box::new(std::iter::once(Ok(samples.to_vec()))),
            options,
            &|_| {},
        )
    }

    /// How a live stream ([`crate::stream`]) is transcribed with this
    /// recognizer.
    fn streaming(&self) -> Streaming {
        Streaming::TimedWords { prompt: false }
    }
}

/// What a recognizer offers a live stream, which picks its policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streaming {
    /// Its transcripts time their words (with `decode.word_timestamps`):
    /// words are confirmed by local agreement of consecutive hypotheses.
    /// `prompt`: it takes earlier text as `decode.initial_prompt`.
    TimedWords { prompt: bool },
    /// It times no words but continues a given text (`decode.prefix`, with
    /// `decode.language` set): confirmed words are forced as the next
    /// hypothesis's prefix.
    Prefix,
}

/// How recordings reach the recognizer, which its stage description states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// One recording at a time.
    Single,
    /// Whole files handed over together ([`Recognizer::transcribe_many`]).
    Files,
    /// A file's speech pieces handed over together.
    SpeechPieces,
}

/// The settings a recognizer is planned and loaded from.
#[derive(Clone, Copy, Debug)]
pub struct RecognizerSettings<'a> {
    /// A registry name, Hugging Face repo id, MLX folder or checkpoint.
    pub model: &'a str,
    pub quantize: Quantize,
    pub decode: &'a DecodeOptions,
    pub batching: Batching,
}

/// A model family, before anything is loaded.
pub trait RecognizerFamily: Sync {
    fn name(&self) -> &'static str;
    /// Whether this family reads the model `settings.model` names.
    fn accepts(&self, model: &str) -> bool;
    /// The stages its recognizer runs, from samples to a transcript, or
    /// every problem with the settings.
    fn plan(&self, settings: &RecognizerSettings<'_>) -> Result<Vec<StageInfo>, Vec<String>>;
    /// Loads (fetching or converting first, when needed) the recognizer.
    fn load(
        &self,
        settings: &RecognizerSettings<'_>,
    ) -> Result<Box<dyn Recognizer>, TranscribeError>;
}

/// The registered model families, asked in order (Whisper, which takes
/// any model, last).
pub static FAMILIES: &[&dyn RecognizerFamily] = &[
    &parakeet::ParakeetFamily,
    &qwen3_asr::Qwen3AsrFamily,
    &whisper::WhisperFamily,
];

/// The family that reads `model`, if any does.
pub fn family_for(model: &str) -> Option<&'static dyn RecognizerFamily> {
    FAMILIES.iter().copied().find(|f| f.accepts(model))
}

/// A family's check of `settings`: the decode settings' own problems, then
/// those the family names (`refused`), then the model source's.
pub(crate) fn check_settings(
    settings: &RecognizerSettings<'_>,
    refused: Vec<String>,
) -> Result<(), Vec<String>> {
    let mut problems = settings.decode.problems();
    problems.extend(refused);
    problems.extend(model_source::problem(
        settings.model,
        settings.quantize.weights,
    ));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// How quantized weights are stored and multiplied, as a stage description
/// continues: ", 8-bit weights in groups of 64, int8 activations", or
/// nothing for float weights.
pub(crate) fn quantization_note(quantize: Quantize) -> String {
    let Some(q) = quantize.weights else {
        return String::new();
    };
    let activations = match quantize.activations {
        Activations::Int8 => ", int8 activations",
        Activations::F32 => "",
    };
    format!(
        ", {}-bit weights in groups of {}{activations}",
        q.bits, q.group_size
    )
}

/// The sampling and beam-search settings a greedy decoder cannot honour,
/// each named with `why` (a first temperature of 0 is greedy; Whisper's
/// fallback temperatures after it never apply and are let be).
pub(crate) fn greedy_only_problems(d: &DecodeOptions, why: &str) -> Vec<String> {
    [
        (
            "temperature",
            d.temperature.first().is_some_and(|&t| t > 0.0),
        ),
        ("beam_size", d.beam_size.is_some_and(|b| b > 1)),
        ("best_of", d.best_of.is_some_and(|b| b > 1)),
        ("patience", d.patience.is_some()),
        ("length_penalty", d.length_penalty.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(key, _)| format!("decode.{key}: {why}"))
    .collect()
}

/// Whether a family claims the model `model` names: a folder by what its
/// `config.json` holds (`config_says`; a folder with another config is not
/// the family's, whatever its name), any other spec (a Hub repo) by its last
/// part containing `name` (any case, `_` read as `-`).
pub(crate) fn claims(
    model: &str,
    config_says: impl Fn(&serde_json::Value) -> bool,
    name: &str,
) -> bool {
    let config = std::path::Path::new(model).join("config.json");
    if config.is_file() {
        return std::fs::read_to_string(&config)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|c| config_says(&c));
    }
    let last = model.rsplit(['/', '\\']).find(|s| !s.is_empty());
    last.is_some_and(|n| n.to_ascii_lowercase().replace('_', "-").contains(name))
}
