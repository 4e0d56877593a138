//! Decoding one 30-second window, whisper.cpp-style: an explicit loop that
//! filters the logits of the last position on the host, picks a token and
//! feeds it back until end-of-text. The filters are openai-whisper's: token
//! suppression, no blank at the start, and the timestamp grammar.

use std::time::Instant;

use mlx::kernels::log_sum_exp;
use mlx::{Array, Dtype};
use rand::Rng;

use super::token_rules::{Suppression, TokenRules};
use super::tokenizer::{SpecialTokens, WhisperTokenizer};
use super::{DecoderState, Whisper};

/// How a window's tokens are chosen.
pub enum Search<'a> {
    /// The most likely token at every step (temperature 0).
    Greedy,
    /// `best_of` independent draws from `softmax(logits / temperature)`,
    /// decoded side by side; the best-ranked one is kept.
    Sample {
        temperature: f32,
        best_of: usize,
        rng: &'a mut dyn rand::RngCore,
    },
    /// `beam_size` hypotheses extended together; decoding stops once
    /// `round(beam_size * patience)` of them have reached end-of-text.
    Beam { beam_size: usize, patience: f32 },
}

impl Search<'_> {
    pub fn temperature(&self) -> f32 {
        match self {
            Search::Sample { temperature, .. } => *temperature,
            Search::Greedy | Search::Beam { .. } => 0.0,
        }
    }
}

/// What one window is decoded from, besides its audio.
#[derive(Clone, Copy, Debug)]
pub struct WindowPrompt<'a> {
    /// Everything before the output: previous text, the start-of-transcript
    /// sequence.
    pub context: &'a [u32],
    /// Forced start of the output (a prefix): fed after `context`, then
    /// ruled on and returned as if it had been sampled.
    pub prefix: &'a [u32],
    pub rules: &'a TokenRules,
    /// Ranks finished hypotheses by `logprob / ((5 + n) / 6)^α` for
    /// `Some(α)`, by `logprob / n` for `None` (openai-whisper's ranker).
    pub length_penalty: Option<f32>,
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
    /// The window's first pass: the cross-attention keys and values of the
    /// encoder output and the context (prompt, start tokens) through the blocks.
    pub prompt: f64,
    /// The decoder blocks for each sampled token (self- and cross-attention, MLPs).
    pub blocks: f64,
    /// The projection onto the vocabulary and its copy to the host.
    pub logits: f64,
    /// Token rules, log-probabilities and the pick, on the host.
    pub picking: f64,
    /// Windows decoded (each temperature tried counts).
    pub passes: usize,
}

impl std::ops::AddAssign for StepTimes {
    fn add_assign(&mut self, other: StepTimes) {
        self.prompt += other.prompt;
        self.blocks += other.blocks;
        self.logits += other.logits;
        self.picking += other.picking;
        self.passes += other.passes;
    }
}

/// One hypothesis: its tokens after the context (end-of-text excluded) and
/// their summed log-probability.
#[derive(Clone, Debug, PartialEq)]
struct Hypothesis {
    tokens: Vec<u32>,
    sum_logprob: f32,
    finished: bool,
}

impl Hypothesis {
    /// A hypothesis holding only the forced `prefix`.
    fn start(prefix: &[u32]) -> Hypothesis {
        Hypothesis {
            tokens: prefix.to_vec(),
            sum_logprob: 0.0,
            finished: false,
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

/// A draw from `softmax(logits / temperature)`.
fn sample(logits: &[f32], temperature: f32, rng: &mut dyn rand::RngCore) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| f64::from((l - max) / temperature).exp())
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

/// The `k` largest entries of `x` as `(index, value)`, largest first (ties
/// by lower index).
fn top_k(x: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &v) in x.iter().enumerate() {
        if best.len() == k && best.last().is_some_and(|&(_, w)| v <= w) {
            continue;
        }
        let at = best.partition_point(|&(_, w)| w >= v);
        best.insert(at, (i as u32, v));
        best.truncate(k);
    }
    best
}

/// The ranker's pick among finished hypotheses: highest length-normalized
/// log-probability, the first of equals.
fn best_ranked(hypotheses: &[Hypothesis], length_penalty: Option<f32>) -> usize {
    let score = |h: &Hypothesis| {
        let n = h.tokens.len() as f32;
        let penalty = match length_penalty {
            Some(alpha) => ((5.0 + n) / 6.0).powf(alpha),
            None => n,
        };
        h.sum_logprob / penalty
    };
    let mut best = 0;
    for (i, h) in hypotheses.iter().enumerate() {
        if score(h) > score(&hypotheses[best]) {
            best = i;
        }
    }
    best
}

/// What a search asks of the model: the next-token logits of a batch of
/// hypotheses, one row each.
trait NextLogits {
    /// Feeds one token per row and writes each row's next logits into
    /// `rows` (one per row; their buffers are reused).
    fn step(&mut self, tokens: &[u32], rows: &mut Vec<Vec<f32>>) -> mlx::Result<()>;
    /// Keeps the rows `rows`, in that order (hypotheses that were extended,
    /// or dropped once finished).
    fn select(&mut self, rows: &[u32]) -> mlx::Result<()>;
    fn times(&mut self) -> &mut StepTimes;
}

/// Applies the token rules to `logits` for `hypothesis` and returns the
/// log-softmax normalizer, timed as host work.
fn rule(
    model: &mut dyn NextLogits,
    rules: &TokenRules,
    logits: &mut [f32],
    hypothesis: &[u32],
) -> f32 {
    let clock = Instant::now();
    rules.apply(logits, hypothesis);
    let total = log_sum_exp(logits);
    model.times().picking += clock.elapsed().as_secs_f64();
    total
}

/// The decoder over one window's hypotheses, one batch row each: feeds
/// tokens and returns the logits of every row's last position on the host.
struct Stepper<'m> {
    model: &'m Whisper,
    state: DecoderState,
    times: StepTimes,
    /// Held from the first token on: a token is dozens of short kernel jobs
    /// with host work in between, and a worker that sleeps between them
    /// joins each job late. From the start of the window when every
    /// product runs on the kernel pool; otherwise a spinning worker would
    /// take a core from OpenBLAS's threads during the prompt's products.
    threads: Option<mlx::kernels::ThreadHold>,
    /// Several rows' logits as read, before they are split into rows (kept
    /// from token to token, as the rows' own buffers are).
    flat: Vec<f32>,
}

impl<'m> Stepper<'m> {
    /// A stepper over the windows whose encoder output is `audio`, one batch row each.
    fn start(model: &'m Whisper, audio: &Array) -> mlx::Result<Stepper<'m>> {
        let clock = Instant::now();
        let threads = model
            .decoder
            .multiplies_on_kernel_pool()
            .then(mlx::kernels::ThreadHold::hold);
        let state = model.decoder.start(audio)?;
        Ok(Stepper {
            model,
            state,
            threads,
            flat: Vec::new(),
            times: StepTimes {
                prompt: clock.elapsed().as_secs_f64(),
                passes: 1,
                ..StepTimes::default()
            },
        })
    }

    /// The prompt pass: `contexts` (one row each, all of one length) with
    /// `prompt.prefix` after each. Returns every row's next-token logits and
    /// its `<|nospeech|>` probability at start-of-transcript (0 for models
    /// without that token).
    fn contexts(
        &mut self,
        contexts: &[&[u32]],
        prompt: &WindowPrompt<'_>,
    ) -> mlx::Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let inputs: Vec<Vec<u32>> = contexts
            .iter()
            .map(|c| [c, prompt.prefix].concat())
            .collect();
        let len = inputs.first().map_or(0, Vec::len);
        if len == 0 || inputs.iter().any(|i| i.len() != len) {
            return Err(mlx::Error::Mlx(
                "batched contexts must be non-empty and of one length".into(),
            ));
        }
        let clock = Instant::now();
        let hidden = self.hidden(&inputs.concat(), inputs.len())?;
        self.times.prompt += clock.elapsed().as_secs_f64();
        let mut no_speech = vec![0.0; inputs.len()];
        if let Some(id) = prompt.rules.special.no_speech {
            let clock = Instant::now();
            let sot = prompt.rules.special.sot;
            // Each row's state at its start-of-transcript, one projection for all.
            let states = inputs
                .iter()
                .enumerate()
                .map(|(row, input)| {
                    let (row, at) = (
                        row as i32,
                        input.iter().position(|&t| t == sot).unwrap_or(0),
                    );
                    hidden
                        .slice_axis(0, row, row + 1)?
                        .slice_axis(1, at as i32, at as i32 + 1)
                })
                .collect::<mlx::Result<Vec<_>>>()?;
            let states = mlx::concatenate(&states.iter().collect::<Vec<_>>(), 0)?;
            let logits = self.model.decoder.logits(&states)?;
            let probs = logits.softmax(&[-1], true)?.to_vec::<f32>()?;
            let vocab = probs.len() / inputs.len();
            for (p, row) in no_speech.iter_mut().zip(probs.chunks(vocab)) {
                *p = row[id as usize];
            }
            self.times.logits += clock.elapsed().as_secs_f64();
        }
        let mut rows = Vec::new();
        self.logits(&hidden, len as i32 - 1, &mut rows)?;
        Ok((rows, no_speech))
    }

    /// Feeds `tokens` (`rows` × `len`, row-major) and returns the hidden
    /// states, evaluated.
    fn hidden(&mut self, tokens: &[u32], rows: usize) -> mlx::Result<Array> {
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let ids = Array::from_slice(&ids, &[rows as i32, (ids.len() / rows) as i32])?;
        let hidden = self.model.decoder.hidden(&ids, &mut self.state)?;
        hidden.eval()?;
        Ok(hidden)
    }

    /// Logits of position `at` of every row into `out`, one `Vec` per row.
    fn logits(&mut self, hidden: &Array, at: i32, out: &mut Vec<Vec<f32>>) -> mlx::Result<()> {
        let clock = Instant::now();
        let last = hidden.slice_axis(1, at, at + 1)?;
        let logits = self.model.decoder.logits(&last)?.astype(Dtype::F32)?;
        let rows = hidden.dim(0)? as usize;
        out.resize_with(rows, Vec::new);
        if let [row] = out.as_mut_slice() {
            // Greedy decoding of one window: read straight into its row.
            logits.read_into(row)?;
        } else {
            logits.read_into(&mut self.flat)?;
            let vocab = self.flat.len() / rows;
            for (row, values) in out.iter_mut().zip(self.flat.chunks(vocab)) {
                row.clear();
                row.extend_from_slice(values);
            }
        }
        self.times.logits += clock.elapsed().as_secs_f64();
        Ok(())
    }
}

impl NextLogits for Stepper<'_> {
    fn step(&mut self, tokens: &[u32], rows: &mut Vec<Vec<f32>>) -> mlx::Result<()> {
        self.threads
            .get_or_insert_with(mlx::kernels::ThreadHold::hold);
        let clock = Instant::now();
        let hidden = self.hidden(tokens, tokens.len())?;
        self.times.blocks += clock.elapsed().as_secs_f64();
        self.logits(&hidden, 0, rows)
    }

    fn select(&mut self, rows: &[u32]) -> mlx::Result<()> {
        let identity = rows.iter().enumerate().all(|(i, &r)| i as u32 == r);
        if identity && self.state.batch() == Some(rows.len()) {
            return Ok(());
        }
        self.state.select(rows)
    }

    fn times(&mut self) -> &mut StepTimes {
        &mut self.times
    }
}

/// Decodes one window from its encoder output `audio` (`[1, 1500, D]`).
/// At most `n_text_ctx / 2` tokens are sampled, and never more than the
/// context holds.
pub fn decode_window(
    model: &Whisper,
    audio: &Array,
    prompt: &WindowPrompt<'_>,
    search: Search<'_>,
) -> mlx::Result<WindowResult> {
    let mut stepper = Stepper::start(model, audio)?;
    // The context is the same for every hypothesis: run it once.
    let (first, no_speech) = stepper.contexts(&[prompt.context], prompt)?;
    let budget = Budget::after(model, prompt.context);
    let temperature = search.temperature();
    let hypotheses = match search {
        Search::Greedy => sample_hypotheses(&mut stepper, first, vec![0], prompt, None, budget)?,
        Search::Sample {
            temperature,
            best_of,
            rng,
        } => {
            let draw = Some((temperature, rng));
            let sources = vec![0; best_of.max(1)];
            sample_hypotheses(&mut stepper, first, sources, prompt, draw, budget)?
        }
        Search::Beam {
            beam_size,
            patience,
        } => beam_hypotheses(
            &mut stepper,
            first,
            prompt,
            beam_size.max(1),
            patience,
            budget,
        )?,
    };
    let best = &hypotheses[best_ranked(&hypotheses, prompt.length_penalty)];
    Ok(WindowResult::of(
        best,
        no_speech[0],
        temperature,
        stepper.times,
    ))
}

/// Greedy decoding of several windows side by side, one batch row each:
/// every step runs the blocks and the vocabulary projection once for all
/// rows, reading their weights once instead of once per window. `audio` is
/// `[B, frames, D]` and `contexts[b]` row b's context (all of one length,
/// the prompt pass being one batch); the rest of `prompt` applies to every
/// row. Row b's result is what [`decode_window`] with [`Search::Greedy`]
/// gives for that window alone, up to float rounding (the products sum in
/// another order for several rows); the prompt pass's time is shared out
/// evenly, the steps' by the tokens each row decoded.
pub fn decode_windows_greedy(
    model: &Whisper,
    audio: Array,
    contexts: &[&[u32]],
    prompt: &WindowPrompt<'_>,
) -> mlx::Result<Vec<WindowResult>> {
    let rows = contexts.len();
    if audio.dim(0)? as usize != rows {
        return Err(mlx::Error::Mlx(format!(
            "{} windows of audio for {rows} contexts",
            audio.dim(0)?
        )));
    }
    let mut stepper = Stepper::start(model, &audio)?;
    // Only the cross-attention keys and values are needed from here on.
    drop(audio);
    let (first, no_speech) = stepper.contexts(contexts, prompt)?;
    let budget = Budget::after(model, contexts[0]);
    let sources = (0..rows as u32).collect();
    let hypotheses = sample_hypotheses(&mut stepper, first, sources, prompt, None, budget)?;
    let total = stepper.times;
    let steps: Vec<f64> = hypotheses
        .iter()
        .map(|h| (h.tokens.len() + 1) as f64)
        .collect();
    let all_steps: f64 = steps.iter().sum();
    Ok(hypotheses
        .iter()
        .zip(no_speech)
        .zip(steps)
        .map(|((h, no_speech), steps)| {
            let share = steps / all_steps;
            let times = StepTimes {
                prompt: total.prompt / rows as f64,
                blocks: total.blocks * share,
                logits: total.logits * share,
                picking: total.picking * share,
                passes: 1,
            };
            WindowResult::of(h, no_speech, 0.0, times)
        })
        .collect())
}

impl WindowResult {
    fn of(best: &Hypothesis, no_speech_prob: f32, temperature: f32, times: StepTimes) -> Self {
        WindowResult {
            avg_logprob: best.sum_logprob / (best.tokens.len() + 1) as f32,
            tokens: best.tokens.clone(),
            sum_logprob: best.sum_logprob,
            no_speech_prob,
            temperature,
            times,
        }
    }
}

/// How far a window's decoding may go.
#[derive(Clone, Copy)]
struct Budget {
    /// Picks at most (openai-whisper's `sample_len`).
    steps: usize,
    /// Output tokens the text context still holds after the prompt.
    context: usize,
}

impl Budget {
    fn after(model: &Whisper, context: &[u32]) -> Budget {
        let ctx = model.config.dims.n_text_ctx as usize;
        Budget {
            steps: ctx / 2,
            context: ctx.saturating_sub(context.len()),
        }
    }
}

/// One hypothesis per entry of `sources`, the row of `rows` (the prompt
/// pass's logits) it starts from, each extended by its own pick (the
/// argmax, or a draw at `draw`'s temperature) until end-of-text; finished
/// ones leave the batch.
fn sample_hypotheses(
    stepper: &mut dyn NextLogits,
    mut rows: Vec<Vec<f32>>,
    sources: Vec<u32>,
    prompt: &WindowPrompt<'_>,
    mut draw: Option<(f32, &mut dyn rand::RngCore)>,
    budget: Budget,
) -> mlx::Result<Vec<Hypothesis>> {
    let eot = prompt.rules.special.eot;
    let mut hypotheses = vec![Hypothesis::start(prompt.prefix); sources.len()];
    // Batch row of every unfinished hypothesis.
    let mut active: Vec<(usize, u32)> = sources.into_iter().enumerate().collect();
    for _ in 0..budget.steps {
        let mut next = Vec::new();
        for &(h, row) in &active {
            let hypothesis = &mut hypotheses[h];
            let logits = &mut rows[row as usize];
            let total = rule(stepper, prompt.rules, logits, &hypothesis.tokens);
            let clock = Instant::now();
            let pick = match &mut draw {
                Some((temperature, rng)) => sample(logits, *temperature, &mut **rng),
                None => argmax(logits),
            };
            hypothesis.sum_logprob += logits[pick as usize] - total;
            stepper.times().picking += clock.elapsed().as_secs_f64();
            if pick == eot {
                hypothesis.finished = true;
            } else {
                hypothesis.tokens.push(pick);
                next.push((h, row));
            }
        }
        let full = next
            .iter()
            .any(|&(h, _)| hypotheses[h].tokens.len() > budget.context);
        if next.is_empty() || full {
            break;
        }
        let sources: Vec<u32> = next.iter().map(|&(_, row)| row).collect();
        stepper.select(&sources)?;
        let tokens: Vec<u32> = next
            .iter()
            .map(|&(h, _)| hypotheses[h].tokens[hypotheses[h].tokens.len() - 1])
            .collect();
        stepper.step(&tokens, &mut rows)?;
        active = next
            .iter()
            .enumerate()
            .map(|(row, &(h, _))| (h, row as u32))
            .collect();
    }
    Ok(hypotheses)
}

/// Beam search as openai-whisper's `BeamSearchDecoder`: every step extends
/// each beam by its `beam_size + 1` best tokens, keeps the `beam_size` best
/// unfinished sequences and sets aside those that ended, until
/// `round(beam_size * patience)` have ended. Returns the finished sequences
/// (topped up with the best unfinished ones when too few ended).
fn beam_hypotheses(
    stepper: &mut dyn NextLogits,
    first: Vec<Vec<f32>>,
    prompt: &WindowPrompt<'_>,
    beam_size: usize,
    patience: f32,
    budget: Budget,
) -> mlx::Result<Vec<Hypothesis>> {
    let eot = prompt.rules.special.eot;
    let max_finished = ((beam_size as f32 * patience).round() as usize).max(1);
    let mut beams = vec![Hypothesis::start(prompt.prefix)];
    let mut rows = first;
    let mut finished: Vec<Hypothesis> = Vec::new();
    for _ in 0..budget.steps {
        // (hypothesis, its source beam), deduplicated by sequence.
        let mut candidates: Vec<(Hypothesis, u32)> = Vec::new();
        for (source, (beam, logits)) in beams.iter().zip(&mut rows).enumerate() {
            let total = rule(stepper, prompt.rules, logits, &beam.tokens);
            for (token, logit) in top_k(logits, beam_size + 1) {
                let mut tokens = beam.tokens.clone();
                let ended = token == eot;
                if !ended {
                    tokens.push(token);
                }
                let candidate = Hypothesis {
                    tokens,
                    sum_logprob: beam.sum_logprob + logit - total,
                    finished: ended,
                };
                match candidates
                    .iter_mut()
                    .find(|(c, _)| c.tokens == candidate.tokens && c.finished == candidate.finished)
                {
                    Some(seen) => *seen = (candidate, source as u32),
                    None => candidates.push((candidate, source as u32)),
                }
            }
        }
        candidates.sort_by(|a, b| b.0.sum_logprob.total_cmp(&a.0.sum_logprob));
        let (mut next, mut sources) = (Vec::new(), Vec::new());
        for (candidate, source) in candidates {
            if candidate.finished {
                if finished.len() < max_finished {
                    finished.push(candidate);
                }
            } else {
                next.push(candidate);
                sources.push(source);
                if next.len() == beam_size {
                    break;
                }
            }
        }
        beams = next;
        let full = beams.iter().any(|b| b.tokens.len() > budget.context);
        if finished.len() >= max_finished || full || beams.is_empty() {
            break;
        }
        stepper.select(&sources)?;
        let tokens: Vec<u32> = beams.iter().map(|b| b.tokens[b.tokens.len() - 1]).collect();
        stepper.step(&tokens, &mut rows)?;
    }
    if finished.len() < beam_size {
        beams.sort_by(|a, b| b.sum_logprob.total_cmp(&a.sum_logprob));
        let missing = beam_size - finished.len();
        finished.extend(beams.into_iter().take(missing));
    }
    Ok(finished)
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
    let prompt = WindowPrompt {
        context: &[special.sot, special.no_timestamps],
        prefix: &[],
        rules: &rules,
        length_penalty: None,
    };
    decode_window(model, &audio, &prompt, Search::Greedy)
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
    use crate::whisper::token_rules::tests::special;

    /// A toy language model whose logits are a function of each row's
    /// history; it records the batch size of every step.
    struct Toy<F: Fn(&[u32]) -> Vec<f32>> {
        next: F,
        rows: Vec<Vec<u32>>,
        batches: Vec<usize>,
        times: StepTimes,
    }

    impl<F: Fn(&[u32]) -> Vec<f32>> NextLogits for Toy<F> {
        fn step(&mut self, tokens: &[u32], rows: &mut Vec<Vec<f32>>) -> mlx::Result<()> {
            assert_eq!(tokens.len(), self.rows.len(), "one token per row");
            self.batches.push(tokens.len());
            for (row, &t) in self.rows.iter_mut().zip(tokens) {
                row.push(t);
            }
            *rows = self.rows.iter().map(|h| (self.next)(h)).collect();
            Ok(())
        }

        fn select(&mut self, rows: &[u32]) -> mlx::Result<()> {
            self.rows = rows
                .iter()
                .map(|&r| self.rows[r as usize].clone())
                .collect();
            Ok(())
        }

        fn times(&mut self) -> &mut StepTimes {
            &mut self.times
        }
    }

    /// Runs `search` over `next` from an empty context with text-only rules.
    fn toy_search(
        next: impl Fn(&[u32]) -> Vec<f32>,
        search: Search<'_>,
        length_penalty: Option<f32>,
    ) -> (Vec<Hypothesis>, Hypothesis, Vec<usize>) {
        let rules = TokenRules::new(&special(), &Suppression::default(), false, None);
        let prompt = WindowPrompt {
            context: &[],
            prefix: &[],
            rules: &rules,
            length_penalty,
        };
        let first = vec![next(&[])];
        let mut toy = Toy {
            next,
            rows: vec![Vec::new()],
            batches: Vec::new(),
            times: StepTimes::default(),
        };
        let budget = Budget {
            steps: 20,
            context: 20,
        };
        let all = match search {
            Search::Greedy => sample_hypotheses(&mut toy, first, vec![0], &prompt, None, budget),
            Search::Sample {
                temperature,
                best_of,
                rng,
            } => sample_hypotheses(
                &mut toy,
                first,
                vec![0; best_of],
                &prompt,
                Some((temperature, rng)),
                budget,
            ),
            Search::Beam {
                beam_size,
                patience,
            } => beam_hypotheses(&mut toy, first, &prompt, beam_size, patience, budget),
        }
        .unwrap();
        let best = all[best_ranked(&all, length_penalty)].clone();
        (all, best, toy.batches)
    }

    /// Log-probabilities over the toy vocabulary (25 entries) with the given
    /// probabilities, the rest impossible.
    fn dist(probs: &[(u32, f64)]) -> Vec<f32> {
        let mut logits = vec![f32::NEG_INFINITY; 25];
        for &(t, p) in probs {
            logits[t as usize] = p.ln() as f32;
        }
        logits
    }

    /// Greedy takes token 1 (0.55) and then faces seven equal choices;
    /// token 2 (0.45) leads to a near-certain ending.
    fn greedy_trap(history: &[u32]) -> Vec<f32> {
        const EOT: u32 = 10;
        match history {
            [] => dist(&[(1, 0.55), (2, 0.45)]),
            [1] => dist(&(3..10).map(|t| (t, 1.0 / 7.0)).collect::<Vec<_>>()),
            [2] => dist(&[(3, 0.95), (EOT, 0.05)]),
            _ => dist(&[(EOT, 1.0)]),
        }
    }

    #[test]
    fn beam_search_escapes_the_greedy_trap() {
        let (_, greedy, _) = toy_search(greedy_trap, Search::Greedy, None);
        assert_eq!(greedy.tokens, [1, 3]);
        let expected = (0.55f32).ln() + (1.0f32 / 7.0).ln();
        assert!((greedy.sum_logprob - expected).abs() < 1e-5);
        let beam = Search::Beam {
            beam_size: 2,
            patience: 1.0,
        };
        let (finished, best, batches) = toy_search(greedy_trap, beam, None);
        assert_eq!(best.tokens, [2, 3]);
        assert!((best.sum_logprob - (0.45f32 * 0.95).ln()).abs() < 1e-5);
        // Both beams ended; the context ran once, then two rows per step.
        assert_eq!(finished.len(), 2);
        assert!(finished.iter().all(|h| h.finished));
        assert_eq!(batches, [2, 2]);
    }

    /// A pseudo-random model over 10 text tokens whose end-of-text becomes
    /// likelier with length.
    fn random_model(history: &[u32]) -> Vec<f32> {
        let mut state = history.iter().fold(0x9e37_79b9u64, |h, &t| {
            (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut logits: Vec<f32> = (0..25)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0
            })
            .collect();
        logits[10] += history.len() as f32 * 0.6;
        logits[11..].fill(f32::NEG_INFINITY);
        logits
    }

    #[test]
    fn one_beam_is_greedy_and_wider_beams_score_at_least_as_well() {
        let (_, greedy, _) = toy_search(random_model, Search::Greedy, None);
        let one = Search::Beam {
            beam_size: 1,
            patience: 1.0,
        };
        let (_, beam, _) = toy_search(random_model, one, None);
        assert_eq!(beam, greedy);
        let score = |h: &Hypothesis| h.sum_logprob / h.tokens.len() as f32;
        let five = Search::Beam {
            beam_size: 5,
            patience: 2.0,
        };
        let (finished, best, _) = toy_search(random_model, five, None);
        // Patience 2 collects round(5 * 2) ended hypotheses.
        assert_eq!(finished.len(), 10);
        assert!(score(&best) >= score(&greedy), "{best:?} vs {greedy:?}");
    }

    #[test]
    fn best_of_draws_leave_the_batch_as_they_end() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let search = Search::Sample {
            temperature: 1.0,
            best_of: 4,
            rng: &mut rng,
        };
        let (all, best, batches) = toy_search(random_model, search, None);
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|h| h.finished));
        assert_eq!(best, all[best_ranked(&all, None)]);
        assert!(batches.windows(2).all(|w| w[1] <= w[0]), "{batches:?}");
        assert!(batches[0] <= 4 && batches.last() < batches.first());
    }

    #[test]
    fn the_ranker_normalizes_by_length_as_openai_whisper() {
        let h = |n: usize, sum_logprob: f32| Hypothesis {
            tokens: vec![1; n],
            sum_logprob,
            finished: true,
        };
        let both = [h(2, -1.0), h(10, -3.0)];
        // By logprob / length: -0.5 vs -0.3.
        assert_eq!(best_ranked(&both, None), 1);
        // α = 0: raw sums; α = 1: -1 / (7/6) = -0.86 vs -3 / (15/6) = -1.2.
        assert_eq!(best_ranked(&both, Some(0.0)), 0);
        assert_eq!(best_ranked(&both, Some(1.0)), 0);
        assert_eq!(
            top_k(&[1.0, 3.0, 3.0, 2.0], 3),
            [(1, 3.0), (2, 3.0), (3, 2.0)]
        );
    }

    #[test]
    fn temperature_sampling_follows_the_softmax() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let logits = [0f32, (3f32).ln(), f32::NEG_INFINITY];
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[sample(&logits, 1.0, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[1] as f64 / 4000.0;
        assert!((share - 0.75).abs() < 0.03, "{share}");
    }
}
