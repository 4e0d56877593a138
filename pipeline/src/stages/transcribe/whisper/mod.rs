//! Whisper over a whole recording, as openai-whisper's `transcribe()` does
//! it: a seek loop over 30-second windows of the log-mel, each decoded with
//! timestamp tokens (with temperature fallback when the text looks wrong),
//! cut into segments at the timestamps, and the window advanced to the last
//! complete segment.

mod family;
mod segments;
mod word_timestamps;

pub use family::WhisperFamily;
pub use segments::compression_ratio;
use segments::cut_segments;

use std::time::Instant;

use asr_models::features::LogMel;
use asr_models::whisper::constants::{FRAMES_PER_SECOND, HOP_LENGTH, SAMPLE_RATE};
use asr_models::whisper::{
    decode_window, decode_windows_greedy, detect_language, find_alignment, Search, StepTimes,
    TokenRules, Whisper, WhisperTokenizer, WindowPrompt, WindowResult,
};
use mlx::Array;
use rand::SeedableRng;

use crate::config::decode::{DecodeOptions, Task, MAX_BATCH_SIZE};
use crate::model_source::{resolve_model, WHISPER};
use crate::stages::audio::AudioBlocks;
use crate::stages::features::{to_frames, MelFrames, MelWindow};
use crate::stages::transcribe::TranscribeError;
use crate::transcript::{Progress, Segment, Timings, Transcript};
use asr_models::Quantize;
use word_timestamps::{
    add_word_timestamps, last_word_end, separates_words_with_spaces, skip_hallucinations,
    WindowFrames,
};

/// A loaded model ready to transcribe any number of recordings.
pub struct WhisperTranscriber {
    model: Whisper,
    tokenizer: WhisperTokenizer,
    log_mel: LogMel,
}

/// Where a decoded window lies in the recording.
struct Place<'a> {
    window: &'a MelWindow,
    /// Its encoder output.
    audio: &'a Array,
    /// Its first mel frame.
    seek: usize,
    /// Frames in the whole recording, once known.
    content_frames: Option<usize>,
}

/// What a decoded window contributes.
struct WindowOutcome {
    segments: Vec<Segment>,
    /// The first frame of the next window.
    seek: usize,
    /// The window's text was dropped as a hallucination after silence.
    skipped: bool,
}

/// A window's decode with the compression ratio of its text.
struct Decoded<'a> {
    result: &'a WindowResult,
    compression_ratio: f32,
}

/// The option texts as tokens, encoded once per recording.
struct PromptTexts {
    /// `initial_prompt`.
    initial: Vec<u32>,
    /// `hotwords` (none when a prefix is given).
    hotwords: Vec<u32>,
    /// `prefix`, after `<|0.00|>` when decoding with timestamps.
    prefix: Vec<u32>,
}

/// One recording's transcription in progress: what carries from window to window.
struct Recording<'a, I> {
    /// Seconds spent on this recording so far (a batch's decoding shared
    /// out): its `Timings::transcribe`, which wall time since it began
    /// would overstate when recordings take turns.
    busy: f64,
    mel: MelFrames<'a, I>,
    prelude: Prelude,
    rules: TokenRules,
    rng: rand::rngs::StdRng,
    texts: PromptTexts,
    /// The initial prompt, then every kept segment's tokens.
    all_tokens: Vec<u32>,
    prompt_reset_since: usize,
    segments: Vec<Segment>,
    /// The first mel frame of the next window.
    seek: usize,
    timings: Timings,
    last_speech: f64,
}

/// A recording begun and its first window (none for empty audio).
type Started<'a, I> = (Recording<'a, I>, Option<PendingWindow>);

/// A window encoded and ready to decode.
struct PendingWindow {
    window: MelWindow,
    audio: Array,
    context: Vec<u32>,
    /// Its greedy decode, done in a batch, and that batch's seconds per window.
    greedy: Option<(WindowResult, f64)>,
}

/// The language and the start-of-transcript tokens of every window.
struct Prelude {
    language: Option<String>,
    language_probability: Option<f32>,
    sot_sequence: Vec<u32>,
}

impl WhisperTranscriber {
    /// The model `spec` names, as published (see [`Self::load_with`]).
    pub fn load(spec: &str) -> Result<WhisperTranscriber, TranscribeError> {
        WhisperTranscriber::load_with(spec, Quantize::default())
    }

    /// The model `spec` names, its weights quantized on conversion as
    /// `quantize.weights` says, its quantized matrices (converted here or
    /// stored so) multiplying activations as `quantize.activations` says.
    pub fn load_with(
        spec: &str,
        quantize: Quantize,
    ) -> Result<WhisperTranscriber, TranscribeError> {
        let dir = resolve_model(spec, quantize.weights, WHISPER)?;
        let model = Whisper::load_with(&dir, quantize.activations)?;
        let tokenizer = WhisperTokenizer::load(&dir.join("tokenizer.json"))
            .map_err(TranscribeError::Tokenizer)?;
        let log_mel = LogMel::new(model.config.dims.n_mels as usize)?;
        Ok(WhisperTranscriber {
            model,
            tokenizer,
            log_mel,
        })
    }

    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// Transcribes 16 kHz mono `samples`.
    pub fn transcribe(
        &self,
        samples: &[f32],
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        self.transcribe_blocks(std::iter::once(Ok(samples.to_vec())), options, progress)
    }

    /// Transcribes 16 kHz mono audio arriving in consecutive blocks, holding
    /// at most a few minutes of it at a time.
    pub fn transcribe_blocks<I: AudioBlocks>(
        &self,
        blocks: I,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        let mut recording = self.begin(blocks, options)?;
        self.finish(&mut recording, options, progress)
    }

    /// Transcribes several recordings (each as consecutive 16 kHz blocks),
    /// decoding the first windows of up to `options.batch_size` of them side
    /// by side (see [`decode_windows_greedy`]); the rest of each recording
    /// follows as [`Self::transcribe_blocks`] would. The transcripts are
    /// those of one recording at a time, up to float rounding in the batched
    /// products. Greedy decoding only: with beam search or a first
    /// temperature above 0 the recordings are transcribed one by one.
    /// `progress` hears of recording i as `(i, progress)`.
    pub fn transcribe_many<I: AudioBlocks>(
        &self,
        recordings: Vec<I>,
        options: &DecodeOptions,
        progress: &dyn Fn(usize, Progress),
    ) -> Vec<Result<Transcript, TranscribeError>> {
        let batch = if options.greedy_first() {
            options.batch_size.clamp(1, MAX_BATCH_SIZE)
        } else {
            1
        };
        let mut results = Vec::with_capacity(recordings.len());
        let mut recordings = recordings.into_iter();
        loop {
            let group: Vec<I> = recordings.by_ref().take(batch).collect();
            if group.is_empty() {
                return results;
            }
            let first = results.len();
            results.extend(self.transcribe_group(group, options, &|i, p| progress(first + i, p)));
        }
    }

    /// [`Self::transcribe_many`] for one batch of recordings.
    fn transcribe_group<I: AudioBlocks>(
        &self,
        group: Vec<I>,
        options: &DecodeOptions,
        progress: &dyn Fn(usize, Progress),
    ) -> Vec<Result<Transcript, TranscribeError>> {
        let mut started: Vec<Result<Started<'_, I>, TranscribeError>> = group
            .into_iter()
            .map(|blocks| {
                let mut recording = self.begin(blocks, options)?;
                let first = self.next_window(&mut recording, options)?;
                Ok((recording, first))
            })
            .collect();
        // Groups of one when the first attempt is not greedy (transcribe_many).
        let firsts: Vec<(&Recording<'_, I>, &mut PendingWindow)> = started
            .iter_mut()
            .filter_map(|r| r.as_mut().ok())
            .filter_map(|(recording, first)| Some((&*recording, first.as_mut()?)))
            .collect();
        self.decode_side_by_side(firsts, options);
        started
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let (mut recording, first) = r?;
                if let Some(first) = first {
                    self.window(&mut recording, first, options, &|p| progress(i, p))?;
                }
                self.finish(&mut recording, options, &|p| progress(i, p))
            })
            .collect()
    }

    /// Greedy decoding of the windows' first attempts in batches of equal
    /// context lengths. A batch that fails is left undecoded: its windows
    /// are then decoded one by one, where the error shows per recording.
    fn decode_side_by_side<I: AudioBlocks>(
        &self,
        mut firsts: Vec<(&Recording<'_, I>, &mut PendingWindow)>,
        options: &DecodeOptions,
    ) {
        firsts.sort_by_key(|(_, f)| f.context.len());
        for batch in firsts.chunk_by_mut(|a, b| a.1.context.len() == b.1.context.len()) {
            if batch.len() < 2 {
                continue;
            }
            let clock = Instant::now();
            match self.decode_batch(&mut *batch, options) {
                Ok(results) => {
                    // Each window's share: what the decoder counted for it.
                    let elapsed = clock.elapsed().as_secs_f64();
                    let counted = |r: &WindowResult| {
                        let t = &r.times;
                        t.prompt + t.blocks + t.logits + t.picking
                    };
                    let all: f64 = results.iter().map(counted).sum();
                    for ((_, first), result) in batch.iter_mut().zip(results) {
                        let share = elapsed * counted(&result) / all.max(f64::MIN_POSITIVE);
                        first.greedy = Some((result, share));
                    }
                }
                Err(e) => tracing::warn!("batched decoding failed, one at a time: {e}"),
            }
        }
    }

    fn decode_batch<I: AudioBlocks>(
        &self,
        batch: &mut [(&Recording<'_, I>, &mut PendingWindow)],
        options: &DecodeOptions,
    ) -> Result<Vec<WindowResult>, TranscribeError> {
        let _span = tracing::debug_span!("decoder", batch = batch.len()).entered();
        let audios: Vec<&Array> = batch.iter().map(|(_, f)| &f.audio).collect();
        let audio = mlx::concatenate(&audios, 0)?;
        audio.eval()?;
        // Each window keeps its row of the batch's copy, not its own: one
        // copy of the encoder outputs while the batch decodes (8 windows of
        // tiny.en: 18 MB).
        for (row, (_, first)) in batch.iter_mut().enumerate() {
            first.audio = audio.slice_axis(0, row as i32, row as i32 + 1)?;
        }
        let contexts: Vec<&[u32]> = batch.iter().map(|(_, f)| f.context.as_slice()).collect();
        // One set of options: every first window (seek 0) has the same rules and prefix.
        let (recording, first) = &batch[0];
        let prompt = WindowPrompt {
            context: &first.context,
            prefix: &recording.texts.prefix,
            rules: &recording.rules,
            length_penalty: options.length_penalty,
        };
        Ok(decode_windows_greedy(
            &self.model,
            audio,
            &contexts,
            &prompt,
        )?)
    }

    /// Starts a recording: its mel frames, language and prompt texts.
    fn begin<'a, I: AudioBlocks>(
        &'a self,
        blocks: I,
        options: &DecodeOptions,
    ) -> Result<Recording<'a, I>, TranscribeError> {
        let problems = options.problems();
        if !problems.is_empty() {
            return Err(TranscribeError::Options(problems.join("; ")));
        }
        let started = Instant::now();
        let mut mel = MelFrames::new(&self.log_mel, blocks);
        let prelude = self.prelude(&mut mel, options)?;
        let texts = self.prompt_texts(options);
        Ok(Recording {
            busy: started.elapsed().as_secs_f64(),
            mel,
            prelude,
            rules: self.token_rules(options)?,
            rng: rand::rngs::StdRng::seed_from_u64(options.seed),
            all_tokens: texts.initial.clone(),
            texts,
            prompt_reset_since: 0,
            segments: Vec::new(),
            seek: 0,
            timings: Timings::default(),
            last_speech: 0.0,
        })
    }

    /// The next window of `recording` encoded, with its context; `None` past the end.
    fn next_window<I: AudioBlocks>(
        &self,
        recording: &mut Recording<'_, I>,
        options: &DecodeOptions,
    ) -> Result<Option<PendingWindow>, TranscribeError> {
        let clock = Instant::now();
        let next = self.encode_next(recording, options);
        recording.busy += clock.elapsed().as_secs_f64();
        next
    }

    fn encode_next<I: AudioBlocks>(
        &self,
        recording: &mut Recording<'_, I>,
        options: &DecodeOptions,
    ) -> Result<Option<PendingWindow>, TranscribeError> {
        let seek = recording.seek;
        let Some((window, audio)) =
            self.encode_window(&mut recording.mel, seek, &mut recording.timings)?
        else {
            return Ok(None);
        };
        let previous = self.previous_text(
            &recording.all_tokens,
            recording.prompt_reset_since,
            &recording.texts,
            options,
        );
        Ok(Some(PendingWindow {
            context: self.context(&previous, &recording.prelude, options),
            window,
            audio,
            greedy: None,
        }))
    }

    /// Decodes the rest of `recording`, window after window.
    fn finish<I: AudioBlocks>(
        &self,
        recording: &mut Recording<'_, I>,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        while let Some(next) = self.next_window(recording, options)? {
            self.window(recording, next, options, progress)?;
        }
        self.transcript(recording)
    }

    /// A live stream's hypothesis of `samples` (at most a window): its
    /// first window decoded once, at the first temperature only. The seek
    /// loop would decode what follows the last word as a window of its
    /// own, and fallback would decode it again: a stream's next hypothesis
    /// comes a step later anyway.
    pub fn transcribe_first_window(
        &self,
        samples: &[f32],
        options: &DecodeOptions,
    ) -> Result<Transcript, TranscribeError> {
        let mut once = options.clone();
        once.temperature.truncate(1);
        let mut recording = self.begin(std::iter::once(Ok(samples.to_vec())), &once)?;
        if let Some(first) = self.next_window(&mut recording, &once)? {
            self.window(&mut recording, first, &once, &|_| {})?;
        }
        self.transcript(&mut recording)
    }

    /// The transcript of what `recording` decoded.
    fn transcript<I: AudioBlocks>(
        &self,
        recording: &mut Recording<'_, I>,
    ) -> Result<Transcript, TranscribeError> {
        let clock = Instant::now();
        let initial = recording.texts.initial.len();
        let text = self.text(&recording.all_tokens[initial..])?;
        Ok(Transcript {
            text,
            segments: std::mem::take(&mut recording.segments),
            language: recording.prelude.language.clone(),
            language_probability: recording.prelude.language_probability,
            speakers: Vec::new(),
            timings: Timings {
                audio: recording.mel.seconds_read(),
                transcribe: recording.busy + clock.elapsed().as_secs_f64(),
                ..std::mem::take(&mut recording.timings)
            },
        })
    }

    /// Decodes one window (unless its greedy attempt was decoded already),
    /// keeps its segments and moves the recording's seek past them.
    fn window<I: AudioBlocks>(
        &self,
        recording: &mut Recording<'_, I>,
        next: PendingWindow,
        options: &DecodeOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<(), TranscribeError> {
        let clock = Instant::now();
        let seek = recording.seek;
        let prompt = WindowPrompt {
            context: &next.context,
            prefix: if seek == 0 {
                &recording.texts.prefix
            } else {
                &[]
            },
            rules: &recording.rules,
            length_penalty: options.length_penalty,
        };
        let (greedy, batch_secs) = match next.greedy {
            Some((result, secs)) => {
                recording.timings.batched_windows += 1;
                (Some(result), secs)
            }
            None => (None, 0.0),
        };
        let (result, compression_ratio) = {
            let _span = tracing::debug_span!("decoder", seek).entered();
            self.decode_with_fallback(&next.audio, &prompt, options, &mut recording.rng, greedy)?
        };
        let timings = &mut recording.timings;
        timings.decoder += clock.elapsed().as_secs_f64() + batch_secs;
        timings.decoder_prompt += result.times.prompt;
        timings.decoder_blocks += result.times.blocks;
        timings.decoder_logits += result.times.logits;
        timings.decoder_picking += result.times.picking;
        timings.decoder_passes += result.times.passes;
        timings.tokens += result.tokens.len() + 1;
        let silent = result.no_speech_prob > options.no_speech_threshold
            && result.avg_logprob <= options.logprob_threshold;
        let next_seek = if silent {
            tracing::debug!(seek, no_speech = result.no_speech_prob, "silent window");
            seek + next.window.content_frames
        } else {
            let decoded = Decoded {
                result: &result,
                compression_ratio,
            };
            let place = Place {
                window: &next.window,
                audio: &next.audio,
                seek,
                content_frames: recording.mel.content_frames(),
            };
            let outcome = self.window_segments(
                &decoded,
                &place,
                &recording.prelude,
                options,
                &mut recording.last_speech,
                &mut recording.timings,
            )?;
            for mut segment in outcome.segments {
                if segment.start == segment.end || segment.text.trim().is_empty() {
                    continue;
                }
                recording.all_tokens.extend_from_slice(&segment.tokens);
                segment.id = recording.segments.len();
                recording.segments.push(segment);
            }
            if (!options.condition_on_previous_text || result.temperature > 0.5) && !outcome.skipped
            {
                recording.prompt_reset_since = recording.all_tokens.len();
            }
            outcome.seek
        };
        recording.seek = next_seek.max(seek + 1);
        recording.busy += clock.elapsed().as_secs_f64() + batch_secs;
        let seconds = |frames: usize| frames as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
        progress(Progress {
            done: seconds(recording.seek).min(recording.mel.seconds_read()),
            total: recording.mel.content_frames().map(seconds),
        });
        Ok(())
    }

    /// The window at frame `seek` and its encoder output (evaluated, so
    /// that each stage's time is its own); `None` past the end.
    fn encode_window<I: AudioBlocks>(
        &self,
        mel: &mut MelFrames<'_, I>,
        seek: usize,
        timings: &mut Timings,
    ) -> Result<Option<(MelWindow, Array)>, TranscribeError> {
        let clock = Instant::now();
        let window = {
            let _span = tracing::debug_span!("log_mel", seek).entered();
            let Some(window) = mel.window(seek)? else {
                return Ok(None);
            };
            window.mel.eval()?;
            window
        };
        timings.mel += clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        let audio = {
            let _span = tracing::debug_span!("encoder", seek).entered();
            let audio = self.model.encoder.forward(&window.mel)?;
            audio.eval()?;
            audio
        };
        timings.encoder += clock.elapsed().as_secs_f64();
        timings.windows += 1;
        Ok(Some((window, audio)))
    }

    /// The segments of a decoded window (empty ones included, as
    /// openai-whisper keeps them until its words are timed) and where the
    /// next window starts.
    fn window_segments(
        &self,
        decoded: &Decoded<'_>,
        place: &Place<'_>,
        prelude: &Prelude,
        options: &DecodeOptions,
        last_speech: &mut f64,
        timings: &mut Timings,
    ) -> Result<WindowOutcome, TranscribeError> {
        let special = &self.tokenizer.special;
        let (result, window, seek) = (decoded.result, place.window, place.seek);
        let cut = cut_segments(&result.tokens, special.timestamp_begin, window);
        let offset = seek as f64 / FRAMES_PER_SECOND;
        let mut segments = cut
            .pieces
            .iter()
            .map(|piece| {
                Ok(Segment {
                    id: 0,
                    seek,
                    start: offset + piece.start,
                    end: offset + piece.end,
                    text: self.text(piece.tokens)?,
                    tokens: piece.tokens.to_vec(),
                    temperature: result.temperature,
                    avg_logprob: result.avg_logprob,
                    compression_ratio: decoded.compression_ratio,
                    no_speech_prob: result.no_speech_prob,
                    words: Vec::new(),
                    speaker: None,
                })
            })
            .collect::<Result<Vec<_>, TranscribeError>>()?;
        let mut outcome = WindowOutcome {
            seek: seek + cut.advance,
            skipped: false,
            segments: Vec::new(),
        };
        if options.word_timestamps {
            let _span = tracing::debug_span!("word_timestamps", seek).entered();
            let clock = Instant::now();
            let text_tokens: Vec<u32> = segments
                .iter()
                .flat_map(|s| s.tokens.iter().copied().filter(|&t| t < special.eot))
                .collect();
            let spaces = separates_words_with_spaces(prelude.language.as_deref());
            let alignment = find_alignment(
                &self.model,
                &self.tokenizer,
                place.audio,
                &prelude.sot_sequence,
                &text_tokens,
                window.content_frames,
                spaces,
            )?;
            add_word_timestamps(&mut segments, alignment, offset, special.eot, *last_speech);
            // Resume right after the last timed word rather than at the
            // last timestamp token.
            if !cut.single_timestamp_ending {
                if let Some(end) = last_word_end(&segments).filter(|&end| end > offset) {
                    outcome.seek = to_frames(end);
                }
            }
            if let Some(threshold) = options.hallucination_silence_threshold {
                let frames = WindowFrames {
                    seek,
                    content: window.content_frames,
                    total: place.content_frames,
                };
                let ending = cut.single_timestamp_ending;
                let skip =
                    skip_hallucinations(&mut segments, frames, ending, *last_speech, threshold);
                if let Some(next) = skip.seek {
                    outcome.seek = next;
                }
                if skip.drop_window {
                    outcome.skipped = true;
                    segments.clear();
                }
            }
            if let Some(end) = last_word_end(&segments).filter(|_| !outcome.skipped) {
                *last_speech = end;
            }
            timings.word_timestamps += clock.elapsed().as_secs_f64();
        }
        outcome.segments = segments;
        Ok(outcome)
    }

    /// Decides the language (detecting it on the first window when the
    /// model is multilingual and none is given) and the window prompt.
    fn prelude<I: AudioBlocks>(
        &self,
        mel: &mut MelFrames<'_, I>,
        options: &DecodeOptions,
    ) -> Result<Prelude, TranscribeError> {
        if !self.model.config.dims.is_multilingual() {
            if let Some(code) = &options.language {
                self.language_id(code)?;
            }
            if options.task == Task::Translate
                || options.language.as_deref().is_some_and(|l| l != "en")
            {
                tracing::warn!(
                    "an English-only model transcribes English; language and task ignored"
                );
            }
            return Ok(Prelude {
                language: Some("en".into()),
                language_probability: None,
                sot_sequence: self.tokenizer.sot_sequence(None, false),
            });
        }
        let (code, probability) = match &options.language {
            Some(code) => (code.clone(), None),
            None => {
                let audio = self.model.encoder.forward(&mel.first_frames()?)?;
                let probs = detect_language(&self.model, &audio, &self.tokenizer)?;
                let (code, p) = probs.into_iter().next().expect("languages are not empty");
                tracing::info!(language = %code, probability = p, "detected language");
                (code, Some(p))
            }
        };
        let id = self.language_id(&code)?;
        Ok(Prelude {
            language: Some(code),
            language_probability: probability,
            sot_sequence: self
                .tokenizer
                .sot_sequence(Some(id), options.task == Task::Translate),
        })
    }

    /// The token of language `code`; a code the tokenizer does not know is
    /// an error, for English-only models too (where a known one is ignored).
    fn language_id(&self, code: &str) -> Result<u32, TranscribeError> {
        let languages = self.tokenizer.languages();
        languages
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, id)| *id)
            .ok_or_else(|| {
                let known: Vec<&str> = languages.iter().map(|(c, _)| c.as_str()).collect();
                TranscribeError::Options(format!(
                    "decode.language: {code:?} is not one of the model's languages ({})",
                    known.join(", ")
                ))
            })
    }

    /// The token rules `options` ask for; suppressed ids must exist.
    fn token_rules(&self, options: &DecodeOptions) -> Result<TokenRules, TranscribeError> {
        let vocabulary = i64::from(self.model.config.dims.n_vocab);
        if let Some(t) = options.suppress_tokens.iter().find(|&&t| t >= vocabulary) {
            return Err(TranscribeError::Options(format!(
                "decode.suppress_tokens: {t} is not a token of this model (vocabulary of {vocabulary})"
            )));
        }
        let suppression = self
            .tokenizer
            .suppression(&options.suppress_tokens, options.suppress_blank);
        Ok(TokenRules::new(
            &self.tokenizer.special,
            &suppression,
            !options.without_timestamps,
            Some(options.max_initial_timestamp).filter(|s| s.is_finite()),
        ))
    }

    fn prompt_texts(&self, options: &DecodeOptions) -> PromptTexts {
        let room = self.prompt_room();
        let encode = |text: &Option<String>| match text {
            Some(t) => {
                let mut tokens = self.tokenizer.encode(&format!(" {}", t.trim()));
                tokens.truncate(room);
                tokens
            }
            None => Vec::new(),
        };
        let mut prefix = encode(&options.prefix);
        if !prefix.is_empty() && !options.without_timestamps {
            prefix.insert(0, self.tokenizer.special.timestamp_begin);
        }
        PromptTexts {
            initial: encode(&options.initial_prompt),
            hotwords: if options.prefix.is_some() {
                Vec::new()
            } else {
                encode(&options.hotwords)
            },
            prefix,
        }
    }

    /// Earlier text a window's prompt may hold: half the text context,
    /// less `<|startofprev|>`.
    fn prompt_room(&self) -> usize {
        self.model.config.dims.n_text_ctx as usize / 2 - 1
    }

    /// The text before a window (hotwords, the initial prompt when carried,
    /// the latest transcript since the last reset), at most
    /// [`Self::prompt_room`] tokens, the oldest dropped first.
    fn previous_text(
        &self,
        all_tokens: &[u32],
        reset_since: usize,
        texts: &PromptTexts,
        options: &DecodeOptions,
    ) -> Vec<u32> {
        let mut kept = texts.hotwords.clone();
        let since = if options.carry_initial_prompt {
            kept.extend_from_slice(&texts.initial);
            reset_since.max(texts.initial.len())
        } else {
            reset_since
        };
        let recent = &all_tokens[since.min(all_tokens.len())..];
        let room = self.prompt_room().saturating_sub(kept.len());
        kept.extend_from_slice(&recent[recent.len().saturating_sub(room)..]);
        kept
    }

    /// `<|startofprev|>` and the previous text (when there is any), then
    /// the start-of-transcript sequence.
    fn context(&self, previous: &[u32], prelude: &Prelude, options: &DecodeOptions) -> Vec<u32> {
        let mut context = Vec::new();
        let sot_prev = self.tokenizer.token_id("<|startofprev|>");
        if let (false, Some(sot_prev)) = (previous.is_empty(), sot_prev) {
            context.push(sot_prev);
            context.extend_from_slice(previous);
        }
        context.extend_from_slice(&prelude.sot_sequence);
        if options.without_timestamps {
            context.push(self.tokenizer.special.no_timestamps);
        }
        context
    }

    /// Decodes at each temperature in turn until the text passes the
    /// compression-ratio and log-probability checks (or looks like silence):
    /// beam search or greedy at 0, `best_of` draws above.
    fn decode_with_fallback(
        &self,
        audio: &Array,
        prompt: &WindowPrompt<'_>,
        options: &DecodeOptions,
        rng: &mut rand::rngs::StdRng,
        mut greedy: Option<WindowResult>,
    ) -> Result<(WindowResult, f32), TranscribeError> {
        let mut last: Option<(WindowResult, f32)> = None;
        let mut times = StepTimes::default();
        for &t in &options.temperature {
            // The first attempt may have been decoded in a batch already.
            let mut result = match greedy.take() {
                Some(result) => result,
                None => {
                    let search = match (t, options.beam_size) {
                        (0.0, None | Some(1)) => Search::Greedy,
                        (0.0, Some(beam_size)) => Search::Beam {
                            beam_size,
                            patience: options.patience.unwrap_or(1.0),
                        },
                        _ => Search::Sample {
                            temperature: t,
                            best_of: options.best_of.unwrap_or(1),
                            rng: &mut *rng,
                        },
                    };
                    decode_window(&self.model, audio, prompt, search)?
                }
            };
            // Every attempt's time counts, not only the kept one's.
            times += result.times;
            result.times = times;
            let ratio = compression_ratio(self.text(&result.tokens)?.trim());
            let low_logprob = result.avg_logprob < options.logprob_threshold;
            let silent = result.no_speech_prob > options.no_speech_threshold && low_logprob;
            let passes = silent || !(ratio > options.compression_ratio_threshold || low_logprob);
            if passes {
                return Ok((result, ratio));
            }
            tracing::debug!(
                temperature = t,
                ratio,
                avg_logprob = result.avg_logprob,
                "fallback"
            );
            last = Some((result, ratio));
        }
        Ok(last.expect("decode options have at least one temperature"))
    }

    fn text(&self, tokens: &[u32]) -> Result<String, TranscribeError> {
        self.tokenizer
            .decode(tokens)
            .map_err(TranscribeError::Tokenizer)
    }
}
