//! Whisper as a registered model family: its settings checked and its
//! stages described without loading it, and the loaded recognizer.

use asr_models::Activations;

use super::WhisperTranscriber;
use crate::config::decode::DecodeOptions;
use crate::model_source;
use crate::stages::align::AlignStage;
use crate::stages::transcribe::{
    Batching, Blocks, Recognizer, RecognizerFamily, RecognizerSettings, Streaming, TranscribeError,
};
use crate::stages::{Data, StageInfo};
use crate::transcript::{Progress, Transcript};

/// Whisper checkpoints of every published size and format.
pub struct WhisperFamily;

impl RecognizerFamily for WhisperFamily {
    fn name(&self) -> &'static str {
        "whisper"
    }

    /// Every model the converters read is a Whisper checkpoint today; a
    /// family registered before this one claims its own models first.
    fn accepts(&self, _model: &str) -> bool {
        true
    }

    fn plan(&self, settings: &RecognizerSettings<'_>) -> Result<Vec<StageInfo>, Vec<String>> {
        let mut problems = settings.decode.problems();
        if settings.decode.max_new_tokens.is_some() {
            problems.push(
                "decode.max_new_tokens: Whisper decodes at most n_text_ctx / 2 tokens per window"
                    .into(),
            );
        }
        let quantize = settings.quantize;
        problems.extend(model_source::problem(settings.model, quantize.weights));
        if quantize.activations == Activations::Int8
            && quantize.weights.is_some_and(|q| q.bits != 8)
        {
            problems.push("activations: int8 activations need 8-bit weights".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut stages = vec![
            StageInfo::new(
                "log-mel",
                "Whisper log-mel on MLX, 5-minute chunks".into(),
                Data::Samples,
                Data::Features,
            ),
            StageInfo::new(
                "encoder",
                format!(
                    "Whisper encoder ({}{}{}), per 30 s window",
                    settings.model,
                    quantize.weights.map_or(String::new(), |q| format!(
                        ", {}-bit weights in groups of {}",
                        q.bits, q.group_size
                    )),
                    activations_note(quantize.activations)
                ),
                Data::Features,
                Data::AudioFeatures,
            ),
            StageInfo::new(
                "decoder",
                format!(
                    "{}{}",
                    decoder_description(settings.decode),
                    batching_note(settings.decode, settings.batching)
                ),
                Data::AudioFeatures,
                Data::Transcript,
            ),
        ];
        if settings.decode.word_timestamps {
            stages.push(AlignStage::info_for(
                "Whisper cross-attention of the alignment heads + DTW, per window in the seek loop"
                    .into(),
            ));
        }
        Ok(stages)
    }

    fn load(
        &self,
        settings: &RecognizerSettings<'_>,
    ) -> Result<Box<dyn Recognizer>, TranscribeError> {
        let transcriber = WhisperTranscriber::load_with(settings.model, settings.quantize)?;
        Ok(Box::new(transcriber))
    }
}

impl Recognizer for WhisperTranscriber {
    fn transcribe(
        &self,
        audio: Blocks<'_>,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        self.transcribe_blocks(audio, options, progress)
    }

    fn transcribe_many(
        &self,
        recordings: Vec<Blocks<'_>>,
        options: &DecodeOptions,
        progress: &dyn Fn(usize, Progress),
    ) -> Vec<Result<Transcript, TranscribeError>> {
        WhisperTranscriber::transcribe_many(self, recordings, options, progress)
    }

    fn hypothesis(
        &self,
        samples: &[f32],
        options: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError> {
        self.transcribe_first_window(samples, options)
    }

    fn streaming(&self) -> Streaming {
        Streaming::TimedWords { prompt: true }
    }
}

fn decoder_description(d: &DecodeOptions) -> String {
    let mode = if d.without_timestamps {
        "text only"
    } else {
        "timestamps, seek loop"
    };
    let language = d.language.as_deref().unwrap_or("detected");
    let search = match d.beam_size {
        Some(beams) if beams > 1 => format!("beam search ({beams} beams)"),
        _ => "greedy decoding".to_string(),
    };
    format!(
        "Whisper {search} ({mode}; {:?}; language {language}; temperatures {:?})",
        d.task, d.temperature
    )
}

/// What is decoded side by side: only greedy first attempts are batched
/// (see `WhisperTranscriber::transcribe_many`).
fn batching_note(d: &DecodeOptions, batching: Batching) -> String {
    if !d.greedy_first() || d.batch_size < 2 {
        return String::new();
    }
    match batching {
        Batching::Files => format!(
            ", first windows of up to {} files side by side",
            d.batch_size
        ),
        Batching::SpeechPieces => format!(", up to {} speech pieces side by side", d.batch_size),
        Batching::Single => String::new(),
    }
}

/// What int8 activations become on this machine.
fn activations_note(activations: Activations) -> String {
    match activations {
        Activations::F32 => String::new(),
        Activations::Int8 => match mlx::kernels::int8_products_isa() {
            Some(isa) => format!(", int8 activations ({isa} kernels)"),
            None => format!(
                ", int8 activations unavailable here (no int8 kernel at {}): f32",
                mlx::kernels::active_isa()
            ),
        },
    }
}
