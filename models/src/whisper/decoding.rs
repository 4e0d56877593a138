//! Decoding one 30-second window, whisper.cpp-style: an explicit loop that
//! filters the logits of the last position on the host, picks a token and
//! feeds it back until end-of-text. The filters are openai-whisper's: token
//! suppression, no blank at the start, and the timestamp grammar.

use std::time::Instant;

use mlx::{Array, Dtype};
use rand::Rng;

use super::tokenizer::{SpecialTokens, WhisperTokenizer};
use super::Whisper;

/// Seconds per timestamp token: 3000 mel frames become 1500 encoder
/// positions over 30 s.
pub const TIME_PRECISION: f64 = 0.02;

/// Token suppression as openai-whisper's `SuppressTokens` and
/// `SuppressBlank` filters apply it.
#[derive(Clone, Debug, Default)]
pub struct Suppression {
    /// Never sampled (non-speech symbols, other control tokens).
    pub always: Vec<u32>,
    /// Not sampled as the first token (the blank and end-of-text).
    pub at_begin: Vec<u32>,
}

/// The rules every pick obeys, in openai-whisper's order: suppression at
/// the start, suppression everywhere, then (when timestamps are on) the
/// timestamp grammar, which reads the already filtered logits.
#[derive(Clone, Debug)]
pub struct TokenRules {
    special: SpecialTokens,
    suppression: Suppression,
    /// `None` decodes text only; otherwise the latest allowed first
    /// timestamp, as an index (`None` inside: no limit).
    timestamps: Option<Option<u32>>,
}

impl TokenRules {
    /// `max_initial_timestamp` in seconds (openai-whisper's default is 1.0).
    pub fn new(
        special: &SpecialTokens,
        suppression: &Suppression,
        timestamps: bool,
        max_initial_timestamp: Option<f64>,
    ) -> TokenRules {
        let max_initial = max_initial_timestamp.map(|s| (s / TIME_PRECISION).round() as u32);
        TokenRules {
            special: special.clone(),
            suppression: suppression.clone(),
            timestamps: timestamps.then_some(max_initial),
        }
    }

    pub fn timestamps(&self) -> bool {
        self.timestamps.is_some()
    }

    /// Filters `logits` (one per vocabulary entry) for the pick that follows
    /// `sampled`, the tokens decoded so far after the prompt.
    pub fn apply(&self, logits: &mut [f32], sampled: &[u32]) {
        let forbid = |logits: &mut [f32], ids: &[u32]| {
            for &id in ids {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        };
        if sampled.is_empty() {
            forbid(logits, &self.suppression.at_begin);
        }
        forbid(logits, &self.suppression.always);
        if let Some(max_initial) = self.timestamps {
            forbid(logits, &[self.special.no_timestamps]);
            self.timestamp_grammar(logits, sampled, max_initial);
        }
    }

    /// Timestamps come in pairs around text (a lone one only before
    /// end-of-text), never decrease, and open the window early enough.
    fn timestamp_grammar(&self, logits: &mut [f32], sampled: &[u32], max_initial: Option<u32>) {
        let begin = (self.special.timestamp_begin as usize).min(logits.len());
        let eot = self.special.eot as usize;
        let is_timestamp = |t: u32| t as usize >= begin;
        let last_was_timestamp = sampled.last().is_some_and(|&t| is_timestamp(t));
        let penultimate_was_timestamp =
            sampled.len() < 2 || is_timestamp(sampled[sampled.len() - 2]);
        if last_was_timestamp {
            if penultimate_was_timestamp {
                logits[begin..].fill(f32::NEG_INFINITY);
            } else {
                logits[..eot].fill(f32::NEG_INFINITY);
            }
        }
        if let Some(&last) = sampled.iter().rev().find(|&&t| is_timestamp(t)) {
            // A closing timestamp may repeat the opening one's value only
            // right after text; otherwise time must move forward.
            let floor = if last_was_timestamp && !penultimate_was_timestamp {
                last
            } else {
                last + 1
            };
            let floor = (floor as usize).min(logits.len());
            logits[begin..floor].fill(f32::NEG_INFINITY);
        }
        if sampled.is_empty() {
            logits[..begin].fill(f32::NEG_INFINITY);
            if let Some(m) = max_initial {
                let first_forbidden = (begin + m as usize + 1).min(logits.len());
                logits[first_forbidden..].fill(f32::NEG_INFINITY);
            }
        }
        // Take a timestamp when all of them together outweigh every text token.
        let timestamp_mass = log_sum_exp(&logits[begin..]);
        let best_text = logits[..begin]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if timestamp_mass > best_text {
            logits[..begin].fill(f32::NEG_INFINITY);
        }
    }
}

/// `log Σ exp(x)`, computed stably; `-inf` for an empty or all `-inf` slice.
fn log_sum_exp(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let sum: f64 = x.iter().map(|&v| f64::from(v - max).exp()).sum();
    max + sum.ln() as f32
}

/// How tokens are picked from the filtered logits.
pub enum Sampling<'a> {
    /// The most likely token (temperature 0).
    Greedy,
    /// A draw from `softmax(logits / temperature)`.
    Temperature(f32, &'a mut dyn rand::RngCore),
}

impl Sampling<'_> {
    pub fn temperature(&self) -> f32 {
        match self {
            Sampling::Greedy => 0.0,
            Sampling::Temperature(t, _) => *t,
        }
    }

    fn pick(&mut self, logits: &[f32]) -> u32 {
        match self {
            Sampling::Greedy => argmax(logits),
            Sampling::Temperature(t, rng) => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let weights: Vec<f64> = logits
                    .iter()
                    .map(|&l| f64::from((l - max) / *t).exp())
                    .collect();
                let mut target = rng.random::<f64>() * weights.iter().sum::<f64>();
                for (i, w) in weights.iter().enumerate() {
                    if target < *w {
                        return i as u32;
                    }
                    target -= w;
                }
                argmax(logits)
            }
        }
    }
}

/// The first index of the largest value.
fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// One decoded window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowResult {
    /// Sampled tokens, timestamps included (prompt and end-of-text excluded).
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the picks (end-of-text included).
    pub sum_logprob: f32,
    /// `sum_logprob / (tokens + 1)`, as openai-whisper reports it.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the start-of-transcript position.
    pub no_speech_prob: f32,
    pub temperature: f32,
    /// Where the decoding time went.
    pub times: StepTimes,
}

/// Seconds spent per kind of work while decoding a window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTimes {
    /// The decoder blocks (self- and cross-attention, MLPs).
    pub blocks: f64,
    /// The projection onto the vocabulary and its copy to the host.
    pub logits: f64,
    /// Token rules, log-probabilities and the pick, on the host.
    pub picking: f64,
}

/// Decodes one window from its encoder output `audio` (`[1, 1500, D]`):
/// `prompt` is everything before the first pick (previous text, the
/// start-of-transcript sequence). At most `n_text_ctx / 2` tokens are
/// sampled, and never more than the context holds.
pub fn decode_window(
    model: &Whisper,
    audio: &Array,
    prompt: &[u32],
    rules: &TokenRules,
    mut sampling: Sampling<'_>,
) -> mlx::Result<WindowResult> {
    let decoder = &model.decoder;
    let n_ctx = model.config.n_text_ctx as usize;
    let special = &rules.special;
    let sot_index = prompt.iter().position(|&t| t == special.sot).unwrap_or(0) as i32;
    let mut state = decoder.start(audio)?;
    let mut input: Vec<i32> = prompt.iter().map(|&t| t as i32).collect();
    let (mut sampled, mut sum_logprob, mut no_speech_prob) = (Vec::new(), 0f32, 0f32);
    let mut times = StepTimes::default();
    for step in 0..n_ctx / 2 {
        let clock = Instant::now();
        let tokens = Array::from_slice(&input, &[1, input.len() as i32])?;
        let hidden = decoder.hidden(&tokens, &mut state)?;
        hidden.eval()?;
        times.blocks += clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        if let (0, Some(id)) = (step, special.no_speech) {
            let at_sot = decoder.logits(&hidden.slice_axis(1, sot_index, sot_index + 1)?)?;
            no_speech_prob = at_sot
                .reshape(&[-1])?
                .softmax(&[0], true)?
                .to_vec::<f32>()?[id as usize];
        }
        let last = hidden.slice_axis(1, input.len() as i32 - 1, input.len() as i32)?;
        let mut logits = decoder.logits(&last)?.astype(Dtype::F32)?.to_vec::<f32>()?;
        times.logits += clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        rules.apply(&mut logits, &sampled);
        let next = sampling.pick(&logits);
        sum_logprob += logits[next as usize] - log_sum_exp(&logits);
        times.picking += clock.elapsed().as_secs_f64();
        if next == special.eot {
            break;
        }
        sampled.push(next);
        input = vec![next as i32];
        if prompt.len() + sampled.len() > n_ctx {
            break;
        }
    }
    Ok(WindowResult {
        avg_logprob: sum_logprob / (sampled.len() + 1) as f32,
        tokens: sampled,
        sum_logprob,
        no_speech_prob,
        temperature: sampling.temperature(),
        times,
    })
}

/// Greedy decoding without timestamps after `<|startoftranscript|>`
/// (English-only prompt) and `<|notimestamps|>`.
pub fn greedy_without_timestamps(
    model: &Whisper,
    mel: &Array,
    special: &SpecialTokens,
    suppression: &Suppression,
) -> mlx::Result<WindowResult> {
    let audio = model.encoder.forward(mel)?;
    let rules = TokenRules::new(special, suppression, false, None);
    let prompt = [special.sot, special.no_timestamps];
    decode_window(model, &audio, &prompt, &rules, Sampling::Greedy)
}

/// Spoken-language probabilities for a window's encoder output, most
/// likely first: the decoder's distribution over the language tokens right
/// after `<|startoftranscript|>`.
pub fn detect_language(
    model: &Whisper,
    audio: &Array,
    tokenizer: &WhisperTokenizer,
) -> mlx::Result<Vec<(String, f32)>> {
    let languages = tokenizer.languages();
    if languages.is_empty() {
        return Err(mlx::Error::Mlx(
            "the tokenizer has no language tokens".into(),
        ));
    }
    let mut state = model.decoder.start(audio)?;
    let sot = Array::from_slice(&[tokenizer.special.sot as i32], &[1, 1])?;
    let logits = model
        .decoder
        .forward(&sot, &mut state)?
        .astype(Dtype::F32)?
        .to_vec::<f32>()?;
    let language_logits: Vec<f32> = languages
        .iter()
        .map(|(_, id)| {
            logits
                .get(*id as usize)
                .copied()
                .unwrap_or(f32::NEG_INFINITY)
        })
        .collect();
    let total = log_sum_exp(&language_logits);
    let mut probs: Vec<(String, f32)> = languages
        .into_iter()
        .zip(language_logits)
        .map(|((code, _), l)| (code, (l - total).exp()))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special() -> SpecialTokens {
        // A toy vocabulary: text 0..10, eot 10, sot 11, transcribe 12,
        // translate 13, no-timestamps 14, timestamps 15..25.
        SpecialTokens {
            eot: 10,
            sot: 11,
            transcribe: 12,
            translate: 13,
            no_timestamps: 14,
            timestamp_begin: 15,
            no_speech: None,
        }
    }

    /// Tokens left finite after the rules, given logits that are 0 except
    /// for `boost`.
    fn allowed(rules: &TokenRules, sampled: &[u32], boost: &[(usize, f32)]) -> Vec<u32> {
        let mut logits = vec![0f32; 25];
        for &(i, l) in boost {
            logits[i] = l;
        }
        rules.apply(&mut logits, sampled);
        (0..25)
            .filter(|&i| logits[i as usize].is_finite())
            .collect()
    }

    fn timestamp_rules(max_initial_timestamp: Option<f64>) -> TokenRules {
        let suppression = Suppression {
            always: vec![11, 12, 13],
            at_begin: vec![],
        };
        TokenRules::new(&special(), &suppression, true, max_initial_timestamp)
    }

    fn range(r: std::ops::Range<u32>) -> Vec<u32> {
        r.collect()
    }

    #[test]
    fn the_first_pick_is_an_early_timestamp() {
        let rules = timestamp_rules(Some(0.06));
        assert_eq!(allowed(&rules, &[], &[(3, 9.0)]), range(15..19));
    }

    #[test]
    fn timestamps_pair_up_around_text_and_never_go_back() {
        let rules = timestamp_rules(None);
        // After an opening timestamp: text (or end-of-text) only.
        assert_eq!(allowed(&rules, &[17], &[]), range(0..11));
        // After text: a closing timestamp later than the opening one; all
        // timestamps together outweigh a text token unless it stands out.
        assert_eq!(allowed(&rules, &[17, 3], &[]), range(18..25));
        let text_wins = allowed(&rules, &[17, 3], &[(3, 5.0)]);
        assert_eq!(text_wins, [range(0..11), range(18..25)].concat());
        // After a closing timestamp: end-of-text or an opening one, not earlier.
        let closing = allowed(&rules, &[17, 3, 19], &[(10, 5.0)]);
        assert_eq!(closing, [vec![10], range(19..25)].concat());
        // After a pair: text.
        assert_eq!(allowed(&rules, &[17, 3, 19, 19], &[]), range(0..11));
    }

    #[test]
    fn text_mode_never_filters_timestamps() {
        let suppression = Suppression {
            always: vec![2],
            at_begin: vec![10],
        };
        let rules = TokenRules::new(&special(), &suppression, false, Some(1.0));
        let all_but = |skip: &[u32]| (0..25).filter(|i| !skip.contains(i)).collect::<Vec<_>>();
        assert_eq!(allowed(&rules, &[], &[]), all_but(&[2, 10]));
        assert_eq!(allowed(&rules, &[3], &[]), all_but(&[2]));
    }

    #[test]
    fn temperature_sampling_follows_the_softmax() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let logits = [0f32, (3f32).ln(), f32::NEG_INFINITY];
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[Sampling::Temperature(1.0, &mut rng).pick(&logits) as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[1] as f64 / 4000.0;
        assert!((share - 0.75).abs() < 0.03, "{share}");
    }
}
