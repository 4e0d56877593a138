//! A whole Qwen3-ASR model: samples → log-mel → audio encoder and projector
//! → embeddings spliced into the chat prompt → greedy decoding → the
//! detected language and the text.

use std::path::Path;
use std::time::{Duration, Instant};

use mlx::{Array, Dtype};

use super::audio_encoder::AudioEncoder;
use super::config::Qwen3AsrConfig;
use super::features::AudioFeatures;
use super::prompt::{parse_reply, Prompt};
use super::text_decoder::TextDecoder;
use super::tokenizer::Qwen3Tokenizer;
use crate::model_config::{LoadError, ModelConfig};
use crate::quantization::Activations;
use crate::weights::{WeightError, Weights};
use crate::whisper::constants::HOP_LENGTH;

/// Where the text model's weights sit in a converted folder.
const TEXT_PREFIX: &str = "model.language_model";
/// Where the audio tower's and projector's weights sit.
const AUDIO_PREFIX: &str = "model";

pub struct Qwen3Asr {
    config: Qwen3AsrConfig,
    features: AudioFeatures,
    encoder: AudioEncoder,
    decoder: TextDecoder,
    tokenizer: Qwen3Tokenizer,
}

/// What to ask of the model for one clip.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// A language to force (a name such as "English", or its ISO code);
    /// `None` lets the model name it.
    pub language: Option<String>,
    /// Text put in the system turn: names, terms, the topic, which bias
    /// the transcript towards them.
    pub context: String,
    /// Text the reply is made to begin with (the model continues it); it
    /// needs a forced `language`, which precedes it in the reply.
    pub prefix: String,
    pub max_new_tokens: usize,
    /// Stop at the end of the reply; off, exactly `max_new_tokens` are
    /// decoded (for benchmarks).
    pub stop_at_eos: bool,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            language: None,
            context: String::new(),
            prefix: String::new(),
            max_new_tokens: 448,
            stop_at_eos: true,
        }
    }
}

/// The encoder's output for the start of a growing clip, kept between
/// calls of [`Qwen3Asr::encode_cached`].
#[derive(Default)]
pub struct EncoderCache {
    /// The audio the cached windows were encoded from.
    samples: Vec<f32>,
    /// Their embeddings, a window's rows after another's.
    rows: Option<Array>,
    windows: usize,
}

impl EncoderCache {
    /// Attention windows held.
    pub fn windows(&self) -> usize {
        self.windows
    }
}

/// Time spent in each phase of [`Qwen3Asr::transcribe_samples`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    pub mel: Duration,
    pub encoder: Duration,
    /// The prompt through the decoder, up to the first token's logits.
    pub prefill: Duration,
    /// Each later token through the decoder's blocks.
    pub blocks: Duration,
    /// Each later token's logits over the vocabulary.
    pub output_layer: Duration,
    /// Picking each token from the logits.
    pub argmax: Duration,
    pub prompt_tokens: usize,
    pub decoded_tokens: usize,
}

/// The reply for one clip.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transcript {
    /// The language the model named (or was told), as it names it
    /// ("English"); `None` for silence or an unparsable reply.
    pub language: Option<String>,
    pub text: String,
    /// Every decoded token, the end of the reply included.
    pub tokens: Vec<i32>,
    pub times: PhaseTimes,
}

impl Qwen3Asr {
    /// Loads a converted Qwen3-ASR folder (`config.json`,
    /// `weights.safetensors` and the tokenizer files), as `pipeline convert
    /// --family qwen3-asr` writes it.
    pub fn load(dir: &Path) -> Result<Qwen3Asr, LoadError> {
        Qwen3Asr::load_with(dir, Activations::F32)
    }

    /// [`Qwen3Asr::load`], the quantized matrices (if any) multiplying
    /// activations as `activations` says.
    pub fn load_with(dir: &Path, activations: Activations) -> Result<Qwen3Asr, LoadError> {
        let config_path = dir.join("config.json");
        let config = Qwen3AsrConfig::load(&config_path).map_err(LoadError::Config)?;
        let path = dir.join("weights.safetensors");
        let werr = |error| LoadError::weights(&path, error);
        // Building the BPE (150k merges) takes as long as reading the 8-bit
        // 0.6B's weights: the two run side by side.
        let (networks, tokenizer) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| Qwen3Tokenizer::load(dir));
            let networks = (|| {
                let weights =
                    Weights::load(&path, config.quantization)?.with_activations(activations);
                let encoder = AudioEncoder::load(&weights, AUDIO_PREFIX, &config.audio_config)?;
                let decoder = TextDecoder::load(&weights, TEXT_PREFIX, &config.text_config)?;
                let all: Vec<&Array> = weights.arrays().map(|(_, a)| a).collect();
                mlx::eval(&all)?;
                Ok((encoder, decoder))
            })()
            .map_err(werr);
            (networks, tokenizer.join())
        });
        let (encoder, decoder) = networks?;
        let tokenizer = tokenizer
            .map_err(|_| {
                LoadError::Config(format!(
                    "{}: the tokenizer's reader panicked",
                    dir.display()
                ))
            })?
            .map_err(LoadError::Config)?;
        if tokenizer.special.audio_pad != config.audio_token_id {
            return Err(LoadError::Config(format!(
                "{}: audio_token_id {} is not the tokenizer's <|audio_pad|> ({})",
                config_path.display(),
                config.audio_token_id,
                tokenizer.special.audio_pad
            )));
        }
        let features = AudioFeatures::new(config.audio_config.num_mel_bins)
            .map_err(|e| werr(WeightError::Mlx(e)))?;
        Ok(Qwen3Asr {
            config,
            features,
            encoder,
            decoder,
            tokenizer,
        })
    }

    pub fn config(&self) -> &Qwen3AsrConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &Qwen3Tokenizer {
        &self.tokenizer
    }

    pub fn decoder(&self) -> &TextDecoder {
        &self.decoder
    }

    /// The projected audio embeddings `[frames, hidden]` of 16 kHz mono
    /// `samples`.
    pub fn encode(&self, samples: &[f32]) -> mlx::Result<Array> {
        self.encoder.forward(&self.features.forward(samples)?)
    }

    /// The prompt's token ids for a clip giving `audio_frames` embeddings.
    pub fn prompt(&self, request: &Request, audio_frames: usize) -> mlx::Result<Prompt> {
        Prompt::new(&self.tokenizer, request, audio_frames).map_err(mlx::Error::Mlx)
    }

    /// The decoder's input `[1, L, hidden]`: the prompt's embeddings with
    /// the audio placeholders replaced by `audio` `[frames, hidden]`.
    pub fn prompt_embeddings(&self, prompt: &Prompt, audio: &Array) -> mlx::Result<Array> {
        let before = self.decoder.embed(prompt.before_audio())?;
        let after = self.decoder.embed(prompt.after_audio())?;
        mlx::concatenate(&[&before, &audio.expand_dims(&[0])?, &after], 1)
    }

    /// The audio embeddings of `samples`, reusing the attention windows
    /// `cache` holds when `samples` begins with the audio they were encoded
    /// from, and keeping this clip's complete windows for the next call (a
    /// growing clip: a live stream's buffer). A window is complete once
    /// audio follows it. The log-mel is scaled by the clip's loudest frame
    /// (Whisper's rule), so a reused window was scaled by the clip it was
    /// first encoded in: the approximation chunked streaming accepts.
    pub fn encode_cached(&self, samples: &[f32], cache: &mut EncoderCache) -> mlx::Result<Array> {
        self.encode_mel_cached(&self.features.forward(samples)?, samples, cache)
    }

    fn encode_mel_cached(
        &self,
        mel: &Array,
        samples: &[f32],
        cache: &mut EncoderCache,
    ) -> mlx::Result<Array> {
        let audio_config = &self.config.audio_config;
        let (window, rows_per_window) =
            (audio_config.n_window_infer, audio_config.attention_window());
        let frames = mel.dim(0)? as usize;
        let complete = frames.saturating_sub(1) / window;
        let reused = match &cache.rows {
            Some(rows) if samples.starts_with(&cache.samples) => {
                Some((rows, cache.windows.min(complete)))
            }
            _ => None,
        }
        .filter(|(_, windows)| *windows > 0);
        let from = reused.map_or(0, |(_, windows)| windows * window);
        let rest = self
            .encoder
            .forward(&mel.slice_axis(0, from as i32, frames as i32)?)?;
        let rows = match reused {
            Some((cached, windows)) => {
                let cached = cached.slice_axis(0, 0, (windows * rows_per_window) as i32)?;
                mlx::concatenate(&[&cached, &rest], 0)?
            }
            None => rest,
        };
        rows.eval()?;
        cache.rows = Some(rows.slice_axis(0, 0, (complete * rows_per_window) as i32)?);
        cache.windows = complete;
        cache.samples = samples[..(complete * window * HOP_LENGTH).min(samples.len())].to_vec();
        Ok(rows)
    }

    /// Transcribes 16 kHz mono `samples` as one clip (the encoder attends
    /// within 8 s windows; the decoder sees the whole clip).
    pub fn transcribe_samples(
        &self,
        samples: &[f32],
        request: &Request,
    ) -> mlx::Result<Transcript> {
        self.transcribe_with(samples, request, None)
    }

    /// [`Qwen3Asr::transcribe_samples`] with the encoder's windows kept in
    /// `cache` between calls ([`Qwen3Asr::encode_cached`]).
    pub fn transcribe_cached(
        &self,
        samples: &[f32],
        request: &Request,
        cache: &mut EncoderCache,
    ) -> mlx::Result<Transcript> {
        self.transcribe_with(samples, request, Some(cache))
    }

    fn transcribe_with(
        &self,
        samples: &[f32],
        request: &Request,
        cache: Option<&mut EncoderCache>,
    ) -> mlx::Result<Transcript> {
        let mut times = PhaseTimes::default();
        let clock = Instant::now();
        let mel = self.features.forward(samples)?;
        mel.eval()?;
        times.mel = clock.elapsed();

        let clock = Instant::now();
        let audio = match cache {
            Some(cache) => self.encode_mel_cached(&mel, samples, cache)?,
            None => self.encoder.forward(&mel)?,
        };
        audio.eval()?;
        times.encoder = clock.elapsed();

        let clock = Instant::now();
        let prompt = self.prompt(request, audio.dim(0)? as usize)?;
        let embeddings = self.prompt_embeddings(&prompt, &audio)?;
        times.prompt_tokens = prompt.len();
        let mut cache = self
            .decoder
            .new_cache((prompt.len() + request.max_new_tokens) as i32)?;
        let mut logits = self.decoder.prefill(&embeddings, &mut cache)?;
        logits.eval()?;
        times.prefill = clock.elapsed();

        let stop = self.tokenizer.end_of_reply();
        let mut tokens = Vec::with_capacity(request.max_new_tokens);
        while tokens.len() < request.max_new_tokens {
            let clock = Instant::now();
            let token = logits.argmax(0, false)?.astype(Dtype::I32)?.item::<i32>()?;
            times.argmax += clock.elapsed();
            tokens.push(token);
            if (request.stop_at_eos && stop.contains(&token))
                || tokens.len() == request.max_new_tokens
            {
                break;
            }
            // Two evaluations rather than one, so the profile can tell the
            // blocks from the vocabulary projection.
            let clock = Instant::now();
            let hidden = self
                .decoder
                .hidden(&self.decoder.embed(&[token])?, &mut cache)?;
            hidden.eval()?;
            times.blocks += clock.elapsed();
            let clock = Instant::now();
            logits = self
                .decoder
                .logits(&hidden.reshape(&[1, -1])?)?
                .reshape(&[-1])?;
            logits.eval()?;
            times.output_layer += clock.elapsed();
        }
        times.decoded_tokens = tokens.len();

        let reply = parse_reply(&self.tokenizer, &tokens, &prompt).map_err(mlx::Error::Mlx)?;
        Ok(Transcript {
            language: reply.language,
            text: reply.text,
            tokens,
            times,
        })
    }
}
