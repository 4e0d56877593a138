//! A whole Parakeet model: samples → log-mel → FastConformer encoder →
//! greedy decoding with the checkpoint's head → timed words.

use std::path::Path;
use std::time::Instant;

use mlx::Array;

use super::{
    CtcHead, DecodedToken, Encoder, Head, ParakeetConfig, ParakeetFeatures, ParakeetTokenizer,
    Transducer,
};
use crate::model_config::{LoadError, ModelConfig};
use crate::quantization::Activations;
use crate::weights::{WeightError, Weights};

/// What turns encoder frames into tokens.
enum Decoder {
    Ctc(CtcHead),
    Transducer(Box<Transducer>),
}

impl Decoder {
    fn decode_greedy(&self, encoded: &Array) -> mlx::Result<Vec<DecodedToken>> {
        match self {
            Decoder::Ctc(head) => head.decode_greedy(encoded),
            Decoder::Transducer(head) => head.decode_greedy(encoded),
        }
    }
}

pub struct Parakeet {
    config: ParakeetConfig,
    features: ParakeetFeatures,
    encoder: Encoder,
    decoder: Decoder,
    tokenizer: ParakeetTokenizer,
}

/// A word of a recognized stretch of audio, in seconds from its start.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedWord {
    pub text: String,
    pub start: f64,
    pub end: f64,
    /// The mean of its tokens' confidences (see [`DecodedToken::confidence`]).
    pub confidence: f32,
    pub tokens: Vec<u32>,
}

impl TimedWord {
    /// The same word `seconds` later.
    pub fn shifted(self, seconds: f64) -> TimedWord {
        TimedWord {
            start: self.start + seconds,
            end: self.end + seconds,
            ..self
        }
    }
}

/// Seconds spent in each phase of [`Parakeet::transcribe_samples`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    pub mel: f64,
    pub encoder: f64,
    pub decoder: f64,
}

/// The words of one stretch of audio and what they cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recognized {
    pub words: Vec<TimedWord>,
    /// Tokens decoded (blank excluded).
    pub tokens: usize,
    pub times: PhaseTimes,
}

impl Parakeet {
    /// Loads a converted Parakeet folder (`config.json` +
    /// `weights.safetensors`), as `pipeline convert --family parakeet`
    /// writes it.
    pub fn load(dir: &Path) -> Result<Parakeet, LoadError> {
        Parakeet::load_with(dir, Activations::F32)
    }

    /// [`Parakeet::load`], the quantized matrices (if any) multiplying
    /// activations as `activations` says.
    pub fn load_with(dir: &Path, activations: Activations) -> Result<Parakeet, LoadError> {
        let config = ParakeetConfig::load(&dir.join("config.json")).map_err(LoadError::Config)?;
        let path = dir.join("weights.safetensors");
        let werr = |error| LoadError::weights(&path, error);
        let weights = Weights::load(&path, config.quantization)
            .map_err(werr)?
            .with_activations(activations);
        let encoder = Encoder::load(&weights, "encoder", &config.encoder).map_err(werr)?;
        let decoder = match config.head().map_err(LoadError::Config)? {
            Head::Ctc => {
                let super::config::DecoderConfig::Ctc(head) = &config.decoder else {
                    return Err(LoadError::Config("a CTC model needs a CTC decoder".into()));
                };
                Decoder::Ctc(CtcHead::load(&weights, "decoder", head).map_err(werr)?)
            }
            Head::Rnnt | Head::Tdt { .. } => Decoder::Transducer(Box::new(
                Transducer::load(&weights, &config).map_err(|e| e.in_folder(&path))?,
            )),
        };
        let all: Vec<&Array> = weights.arrays().map(|(_, a)| a).collect();
        mlx::eval(&all).map_err(|e| werr(WeightError::Mlx(e)))?;
        let tokenizer = ParakeetTokenizer::from_config(&config).map_err(|e| {
            LoadError::Config(format!("{}: {e}", dir.join("config.json").display()))
        })?;
        let features = ParakeetFeatures::new(config.preprocessor.clone())
            .map_err(|e| werr(WeightError::Mlx(e)))?;
        Ok(Parakeet {
            config,
            features,
            encoder,
            decoder,
            tokenizer,
        })
    }

    pub fn config(&self) -> &ParakeetConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &ParakeetTokenizer {
        &self.tokenizer
    }

    /// The encoder output `[1, T', d_model]` of 16 kHz mono `samples`.
    pub fn encode(&self, samples: &[f32]) -> mlx::Result<Array> {
        let mel = self.features.forward(samples)?;
        self.encoder.forward(&mel.expand_dims(&[0])?)
    }

    /// Recognizes 16 kHz mono `samples` as one utterance (the encoder's
    /// attention spans all of it): its words, timed from the decoder's
    /// frame alignment. Audio shorter than one FFT window has none.
    pub fn transcribe_samples(&self, samples: &[f32]) -> mlx::Result<Recognized> {
        if samples.len() <= self.config.preprocessor.n_fft {
            return Ok(Recognized::default());
        }
        let mut times = PhaseTimes::default();
        let clock = Instant::now();
        let mel = self.features.forward(samples)?.expand_dims(&[0])?;
        mel.eval()?;
        times.mel = clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        let encoded = self.encoder.forward(&mel)?;
        encoded.eval()?;
        times.encoder = clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        let tokens = self.decoder.decode_greedy(&encoded)?;
        times.decoder = clock.elapsed().as_secs_f64();
        let seconds_per_frame = self.config.seconds_per_frame();
        let words = self
            .tokenizer
            .words(&tokens)
            .into_iter()
            .map(|word| {
                let part = &tokens[word.tokens.clone()];
                TimedWord {
                    text: word.text,
                    start: word.start_frame as f64 * seconds_per_frame,
                    end: word.end_frame as f64 * seconds_per_frame,
                    confidence: part.iter().map(|t| t.confidence).sum::<f32>() / part.len() as f32,
                    tokens: part.iter().map(|t| t.id).collect(),
                }
            })
            .collect();
        Ok(Recognized {
            words,
            tokens: tokens.len(),
            times,
        })
    }
}
