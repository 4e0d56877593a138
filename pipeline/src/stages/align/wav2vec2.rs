//! Word times from a wav2vec2 CTC model, the way WhisperX aligns: each
//! segment's audio through the model, its text spelled in the model's
//! characters, the best CTC path of that spelling through the frames
//! ([`super::ctc::forced_align`]), and each word timed by its first and last
//! character's frames.
//!
//! Per segment, as WhisperX's `align` does: the text lower-cased, spaces as
//! the `|` word delimiter, its leading and trailing spaces dropped, and every
//! other character the vocabulary lacks (digits, punctuation) a wildcard
//! whose score in a frame is the best non-blank log-probability there. A
//! character's times are its frames × (segment duration / frames) from the
//! segment start, rounded to the millisecond; its score is the mean
//! probability over its frames. Words are split at spaces; a word spans its
//! characters, scores their mean, and a word none of whose characters could
//! be aligned takes the times of the nearest word that was (pandas'
//! `nearest` interpolation). The segment is tightened to its characters.
//! Each segment is aligned as one sentence (WhisperX further splits
//! segments into sentences with a Punkt model; a segment that is one
//! sentence comes out the same). A segment that cannot be aligned (no
//! alignable characters, fewer frames than its spelling needs, starting
//! past the end of the audio) keeps its times and gets no words.
//!
//! Two choices of ours: a character that the vocabulary maps to the blank
//! (torchaudio's labels spell the blank `-`) is a wildcard, and the samples
//! go through the model as they are, as WhisperX passes them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use asr_converters::registry;
use asr_converters::state_dict::hf_checkpoint;
use asr_converters::wav2vec2::{
    convert_torchaudio_wav2vec2, convert_wav2vec2, read_vocabulary, CONVERTER_VERSION,
    TORCHAUDIO_ENGLISH_LABELS, VOCAB_FILE,
};
use asr_models::wav2vec2::Wav2Vec2;
use mlx::Array;

use super::ctc::forced_align;
use super::Aligner;
use crate::stages::StageError;
use crate::transcript::{Segment, Transcript, Word};

const SAMPLE_RATE: f64 = 16_000.0;
/// The fewest samples the feature encoder turns into a frame; shorter
/// slices are padded with silence, as WhisperX pads them.
const MIN_SAMPLES: usize = 400;
/// The word delimiter of wav2vec2 character vocabularies.
const DELIMITER: &str = "|";

/// The stage name of an aligner whose model `spec` names.
pub fn describe(spec: &str) -> String {
    format!("wav2vec2 CTC forced alignment ({spec})")
}

/// A wav2vec2 CTC model and its character vocabulary, as an [`Aligner`].
pub struct Wav2Vec2Aligner {
    /// Recordings take turns on it (MLX arrays are not `Sync`).
    model: Mutex<Wav2Vec2>,
    /// Its outputs.
    outputs: usize,
    /// Each lower-cased token's output; for case variants of one token
    /// the highest output wins (WhisperX keeps the last).
    dictionary: HashMap<String, usize>,
    blank: usize,
    name: String,
}

impl Wav2Vec2Aligner {
    /// The aligner of `spec`: a converted MLX folder (with `vocab.json`), a
    /// Hugging Face `Wav2Vec2ForCTC` folder, or a torchaudio state dict file
    /// whose outputs are `labels` (torchaudio's English ASR bundles' labels
    /// when `None`); the last two are converted into the cache once.
    pub fn from_spec(spec: &str, labels: Option<&[String]>) -> Result<Self, StageError> {
        // A conversion's arrays are not held for the load that follows.
        let folder = mlx::unnoted(|| converted_folder(spec, labels))?;
        let mut aligner = Wav2Vec2Aligner::load(&folder)?;
        aligner.name = describe(spec);
        Ok(aligner)
    }

    /// Loads a converted folder, which must hold `vocab.json`.
    pub fn load(dir: &Path) -> Result<Self, StageError> {
        let vocab_path = dir.join(VOCAB_FILE);
        if !vocab_path.is_file() {
            return Err(error(&format!(
                "{}: no {VOCAB_FILE}: an aligner needs the model's characters",
                dir.display()
            )));
        }
        let vocab = read_vocabulary(&vocab_path).map_err(|e| error(&e))?;
        let model = Wav2Vec2::load(dir).map_err(|e| error(&e))?;
        let outputs = model.config.vocab_size as usize;
        if let Some((token, &id)) = vocab.iter().find(|(_, &id)| id >= outputs) {
            return Err(error(&format!(
                "{}: token {token:?} is output {id}, but the model has {outputs} outputs",
                vocab_path.display()
            )));
        }
        let mut by_id: Vec<(&String, usize)> = vocab.iter().map(|(t, &id)| (t, id)).collect();
        by_id.sort_by_key(|&(_, id)| id);
        let dictionary: HashMap<String, usize> = by_id
            .into_iter()
            .map(|(token, id)| (token.to_lowercase(), id))
            .collect();
        let blank = ["[pad]", "<pad>"]
            .iter()
            .find_map(|pad| dictionary.get(*pad).copied())
            .unwrap_or(0);
        Ok(Wav2Vec2Aligner {
            model: Mutex::new(model),
            outputs,
            dictionary,
            blank,
            name: describe(&dir.display().to_string()),
        })
    }

    /// Log-probabilities `frames × outputs` (row-major) of `samples`.
    fn log_probs(&self, samples: &[f32]) -> mlx::Result<(Vec<f32>, usize)> {
        let mut padded = samples.to_vec();
        if padded.len() < MIN_SAMPLES {
            padded.resize(MIN_SAMPLES, 0.0);
        }
        let x = Array::from_slice(&padded, &[1, padded.len() as i32])?;
        let model = self
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let log_probs = model.forward(&x)?.log_softmax(-1)?;
        let frames = log_probs.shape()[1] as usize;
        Ok((log_probs.to_vec::<f32>()?, frames))
    }

    /// Times the words of `segment` (see the module doc); `samples` is the
    /// whole recording.
    pub fn align_segment(&self, samples: &[f32], segment: &mut Segment) -> Result<(), StageError> {
        let duration = samples.len() as f64 / SAMPLE_RATE;
        let text: Vec<char> = segment.text.chars().collect();
        let spelling = self.spell(&text);
        if spelling.is_empty() || segment.start >= duration {
            return Ok(());
        }
        let (t1, t2) = (segment.start, segment.end);
        let from = ((t1 * SAMPLE_RATE) as usize).min(samples.len());
        let to = ((t2 * SAMPLE_RATE) as usize).clamp(from, samples.len());
        let (mut log_probs, frames) = self.log_probs(&samples[from..to]).map_err(|e| error(&e))?;
        let mut outputs = self.outputs;
        let wildcard = outputs;
        if spelling.iter().any(|&(_, token)| token.is_none()) {
            log_probs = self.with_wildcard(&log_probs, outputs);
            outputs += 1;
        }
        let tokens: Vec<usize> = spelling
            .iter()
            .map(|&(_, token)| token.unwrap_or(wildcard))
            .collect();
        let Some((spans, _)) = forced_align(&log_probs, outputs, &tokens, self.blank) else {
            return Ok(());
        };
        let ratio = (t2 - t1) / frames as f64;
        // Per character of the text: its times and score, when aligned.
        let mut timed: Vec<Option<CharTime>> = vec![None; text.len()];
        for span in &spans {
            let (position, token) = (spelling[span.index].0, tokens[span.index]);
            let probability = (span.start..span.end)
                .map(|t| log_probs[t * outputs + token].exp() as f64)
                .sum::<f64>()
                / (span.end - span.start) as f64;
            timed[position] = Some(CharTime {
                start: round_ms(span.start as f64 * ratio + t1),
                end: round_ms(span.end as f64 * ratio + t1),
                score: round_ms(probability),
            });
        }
        let words = words(&text, &timed);
        if words.is_empty() {
            return Ok(());
        }
        if let Some(start) = timed.iter().flatten().map(|c| c.start).reduce(f64::min) {
            segment.start = start;
        }
        let ends = text.iter().zip(&timed).filter(|(c, _)| **c != ' ');
        if let Some(end) = ends.flat_map(|(_, t)| t).map(|c| c.end).reduce(f64::max) {
            segment.end = end;
        }
        segment.words = interpolate(words, segment.start, segment.end)
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(())
    }

    /// The characters of `text` the path spells, by position: each with its
    /// output, or `None` for a wildcard.
    fn spell(&self, text: &[char]) -> Vec<(usize, Option<usize>)> {
        let leading = text.iter().take_while(|c| c.is_whitespace()).count();
        let trailing = text.iter().rev().take_while(|c| c.is_whitespace()).count();
        let kept = leading..text.len().saturating_sub(trailing).max(leading);
        text.iter()
            .enumerate()
            .filter(|(position, _)| kept.contains(position))
            .filter_map(|(position, c)| {
                let lower = if *c == ' ' {
                    DELIMITER.to_string()
                } else {
                    c.to_lowercase().collect()
                };
                match self.dictionary.get(&lower) {
                    Some(&id) if id != self.blank => Some((position, Some(id))),
                    _ if lower == DELIMITER => None,
                    _ => Some((position, None)),
                }
            })
            .collect()
    }

    /// `log_probs` with one more column per frame: its best non-blank
    /// log-probability, the score of a wildcard.
    fn with_wildcard(&self, log_probs: &[f32], outputs: usize) -> Vec<f32> {
        log_probs
            .chunks(outputs)
            .flat_map(|row| {
                let best = row
                    .iter()
                    .enumerate()
                    .filter(|&(id, _)| id != self.blank)
                    .map(|(_, &lp)| lp)
                    .fold(f32::NEG_INFINITY, f32::max);
                row.iter().copied().chain(std::iter::once(best))
            })
            .collect()
    }
}

impl Aligner for Wav2Vec2Aligner {
    fn name(&self) -> &str {
        &self.name
    }

    fn align(&self, samples: &[f32], transcript: &mut Transcript) -> Result<(), StageError> {
        for segment in &mut transcript.segments {
            self.align_segment(samples, segment)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct CharTime {
    start: f64,
    end: f64,
    score: f64,
}

/// A word of a segment, its times missing when none of its characters
/// were aligned.
#[derive(Debug, PartialEq)]
struct AlignedWord {
    text: String,
    times: Option<(f64, f64)>,
    score: f64,
}

/// The words of `text` (split at spaces, each with its punctuation), timed
/// by their aligned characters.
fn words(text: &[char], timed: &[Option<CharTime>]) -> Vec<AlignedWord> {
    let mut out = Vec::new();
    let mut start = 0;
    for position in 0..text.len() {
        let last = position + 1 == text.len() || text[position + 1] == ' ';
        if !last {
            continue;
        }
        let range = start..position + 1;
        start = position + 1;
        let word: String = text[range.clone()].iter().collect();
        let word = word.trim();
        if word.is_empty() {
            continue;
        }
        let chars: Vec<CharTime> = range
            .filter(|&p| text[p] != ' ')
            .filter_map(|p| timed[p])
            .collect();
        let start = chars.iter().map(|c| c.start).reduce(f64::min);
        let end = chars.iter().map(|c| c.end).reduce(f64::max);
        let score = if chars.is_empty() {
            0.0
        } else {
            round_ms(chars.iter().map(|c| c.score).sum::<f64>() / chars.len() as f64)
        };
        out.push(AlignedWord {
            text: word.to_string(),
            times: start.zip(end),
            score,
        });
    }
    out
}

/// The transcript's words: each untimed word takes the times of the
/// nearest timed word (the earlier one on a tie), or the segment's when
/// none is timed. Words carry their leading space, as Whisper's do.
fn interpolate(words: Vec<AlignedWord>, start: f64, end: f64) -> Vec<Word> {
    let timed: Vec<(usize, (f64, f64))> = words
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.times.map(|t| (i, t)))
        .collect();
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let (start, end) = w.times.unwrap_or_else(|| {
                timed
                    .iter()
                    .min_by_key(|(j, _)| i.abs_diff(*j))
                    .map_or((start, end), |&(_, t)| t)
            });
            Word {
                word: format!(" {}", w.text),
                start,
                end,
                probability: w.score as f32,
            }
        })
        .collect()
}

/// WhisperX rounds times and scores to 3 decimals.
fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn error(message: &dyn std::fmt::Display) -> StageError {
    StageError {
        stage: "align".into(),
        message: message.to_string(),
    }
}

/// The MLX folder of `spec`, converted into the cache once when it is a
/// checkpoint.
fn converted_folder(spec: &str, labels: Option<&[String]>) -> Result<PathBuf, StageError> {
    let path = Path::new(spec);
    let cache = registry::cache_dir();
    let folder = if path.join("weights.safetensors").is_file() {
        Ok(path.to_path_buf())
    } else if path.join("config.json").is_file() {
        let checkpoint = hf_checkpoint(path).map_err(|e| error(&e))?;
        let source = path.to_path_buf();
        registry::convert_file_cached(&checkpoint, CONVERTER_VERSION, &cache, |_, out| {
            convert_wav2vec2(&source, out)
        })
    } else if path.is_file() {
        let labels: Vec<&str> = match labels {
            Some(labels) => labels.iter().map(String::as_str).collect(),
            None => TORCHAUDIO_ENGLISH_LABELS.to_vec(),
        };
        let version = format!("{CONVERTER_VERSION} labels {labels:?}");
        registry::convert_file_cached(path, &version, &cache, |file, out| {
            convert_torchaudio_wav2vec2(file, &labels, out)
        })
    } else {
        return Err(error(&format!(
            "align.model: {spec}: not an MLX wav2vec2 folder, a Hugging Face \
             Wav2Vec2ForCTC folder or a torchaudio state dict file"
        )));
    };
    folder.map_err(|e| error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, times: Option<(f64, f64)>) -> AlignedWord {
        AlignedWord {
            text: text.into(),
            times,
            score: 0.5,
        }
    }

    #[test]
    fn untimed_words_take_the_nearest_timed_words_times() {
        let words = vec![
            word("a", None),
            word("b", Some((1.0, 1.5))),
            word("c", None),
            word("d", Some((3.0, 3.5))),
            word("e", None),
            word("f", None),
        ];
        let times: Vec<(f64, f64)> = interpolate(words, 0.0, 9.0)
            .iter()
            .map(|w| (w.start, w.end))
            .collect();
        assert_eq!(
            times,
            [
                (1.0, 1.5),
                (1.0, 1.5),
                (1.0, 1.5),
                (3.0, 3.5),
                (3.0, 3.5),
                (3.0, 3.5)
            ]
        );
        let alone = interpolate(vec![word("x", None)], 2.0, 4.0);
        assert_eq!((alone[0].start, alone[0].end), (2.0, 4.0));
        assert_eq!(alone[0].word, " x");
    }

    #[test]
    fn words_split_at_spaces_and_keep_their_punctuation() {
        let text: Vec<char> = " so,  my 1961".chars().collect();
        let at = |start, end| {
            Some(CharTime {
                start,
                end,
                score: 0.25,
            })
        };
        let mut timed = vec![None; text.len()];
        timed[1] = at(0.1, 0.2);
        timed[3] = at(0.3, 0.4);
        timed[6] = at(0.6, 0.7);
        timed[7] = at(0.7, 0.8);
        let words = words(&text, &timed);
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["so,", "my", "1961"]);
        assert_eq!(words[0].times, Some((0.1, 0.4)));
        assert_eq!(words[1].times, Some((0.6, 0.8)));
        assert_eq!(words[2].times, None);
        assert_eq!(words[2].score, 0.0);
    }
}
