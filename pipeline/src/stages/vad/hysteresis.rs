//! WebRTC's region rules: speech regions from per-frame decisions by
//! smoothing, merging, dropping, padding and splitting (see
//! [`WebRtcSettings`]).

use std::collections::VecDeque;

use super::{RegionRules, SpeechRegion, WebRtcSettings, PER_MS, RATE};

/// What the splitter remembers of a frame.
#[derive(Copy, Clone, Debug)]
struct FrameInfo {
    voiced: bool,
    /// Mean square of its samples.
    energy: f32,
}

/// The region being detected (merged, not yet padded), in samples.
#[derive(Copy, Clone, Debug)]
struct Current {
    start: usize,
    /// End of its last voiced frame so far.
    end: usize,
    /// Long enough to be kept: it is the [`Active`] region.
    kept: bool,
}

/// The kept region whose pieces are being handed out, in samples.
#[derive(Copy, Clone, Debug)]
struct Active {
    /// Start of the next piece (padding included).
    piece_start: usize,
    /// End of its last voiced frame so far.
    raw_end: usize,
}

/// WebRTC's region rules, frame by frame. A region is final once no later
/// audio can change it: at most `max(min_silence_ms, 2 × speech_pad_ms)`
/// plus the smoothing window after its last voiced frame, or `max_speech_s`
/// after its start.
pub(super) struct Hysteresis {
    frame_len: usize,
    window: usize,
    onset: f32,
    offset: f32,
    pad: usize,
    min_speech: usize,
    min_silence: usize,
    max_len: usize,
    /// Samples seen: whole frames, then the recording's length at the end.
    samples: usize,
    /// Frames classified.
    frames: usize,
    /// Frame decisions from frame `info_base` on, for choosing cuts.
    info: VecDeque<FrameInfo>,
    info_base: usize,
    /// Speech probabilities of the last `window` frames.
    ring: VecDeque<f32>,
    speaking: bool,
    /// Frame index after the last voiced frame of the current run.
    last_voiced_end: usize,
    /// Frame index where the last finished run of speech ended.
    prev_run_end: usize,
    current: Option<Current>,
    active: Option<Active>,
    /// Unpadded end of the last kept region handed out completely.
    last_kept_end: Option<usize>,
    /// End of the last region handed out.
    emitted_end: usize,
    out: Vec<SpeechRegion>,
}

impl Hysteresis {
    /// The rules of `settings` (checked) on frames of `frame_len` samples.
    pub(super) fn new(settings: &WebRtcSettings, frame_len: usize) -> Self {
        let window_samples = settings.window_ms as usize * PER_MS;
        let window = window_samples.div_ceil(frame_len).max(1);
        let max_len = if settings.max_speech_s.is_finite() {
            (settings.max_speech_s * RATE as f64).round() as usize
        } else {
            usize::MAX
        };
        Hysteresis {
            frame_len,
            window,
            onset: settings.onset,
            offset: settings.offset,
            pad: settings.speech_pad_ms as usize * PER_MS,
            min_speech: settings.min_speech_ms as usize * PER_MS,
            min_silence: settings.min_silence_ms as usize * PER_MS,
            max_len,
            samples: 0,
            frames: 0,
            info: VecDeque::new(),
            info_base: 0,
            ring: VecDeque::with_capacity(window),
            speaking: false,
            last_voiced_end: 0,
            prev_run_end: 0,
            current: None,
            active: None,
            last_kept_end: None,
            emitted_end: 0,
            out: Vec::new(),
        }
    }
}

impl RegionRules for Hysteresis {
    fn pad(&self) -> usize {
        self.pad
    }

    fn retain_from(&self) -> usize {
        let mut from = self
            .earliest_next_start()
            .saturating_sub(self.pad)
            .min(self.samples);
        if let Some(c) = self.current {
            from = from.min(c.start.saturating_sub(self.pad));
        }
        if let Some(a) = self.active {
            from = from.min(a.piece_start);
        }
        from.max(self.emitted_end)
    }

    fn frame(&mut self, frame: &[f32], p: f32, out: &mut Vec<SpeechRegion>) {
        self.samples += frame.len();
        self.step(frame, p);
        self.prune();
        out.append(&mut self.out);
    }

    /// A trailing part-frame is not classified but can be covered by
    /// padding.
    fn finish(&mut self, samples: usize, out: &mut Vec<SpeechRegion>) {
        self.samples = samples;
        if self.speaking {
            self.speaking = false;
            self.prev_run_end = self.last_voiced_end;
        }
        if let Some(c) = self.current.take() {
            if !c.kept && c.end - c.start >= self.min_speech {
                self.keep(c);
            }
        }
        if self.active.is_some() {
            self.finalize_active(None);
        }
        self.info.clear();
        out.append(&mut self.out);
    }
}

impl Hysteresis {
    /// Where the next region could start at the earliest, in samples.
    fn earliest_next_start(&self) -> usize {
        let frame = (self.frames + 1)
            .saturating_sub(self.window)
            .max(self.prev_run_end);
        frame * self.frame_len
    }

    fn step(&mut self, frame: &[f32], p: f32) {
        let voiced = p >= 0.5;
        let energy = frame.iter().map(|x| x * x).sum::<f32>() / frame.len() as f32;
        let index = self.frames;
        self.frames += 1;
        if self.info.is_empty() {
            self.info_base = index;
        }
        self.info.push_back(FrameInfo { voiced, energy });
        if self.ring.len() == self.window {
            self.ring.pop_front();
        }
        self.ring.push_back(p);
        let share = self.ring.iter().sum::<f32>() / self.window as f32;
        let f = self.frame_len;

        if !self.speaking {
            if share >= self.onset {
                // The run starts at the first voiced frame of the window
                // (after the previous run) and reaches its last one.
                let first = index + 1 - self.ring.len();
                let voiced_frames: Vec<usize> = self
                    .ring
                    .iter()
                    .enumerate()
                    .filter(|&(i, &p)| p >= 0.5 && first + i >= self.prev_run_end)
                    .map(|(i, _)| first + i)
                    .collect();
                let (start, end) = match (voiced_frames.first(), voiced_frames.last()) {
                    (Some(&s), Some(&e)) => (s, e + 1),
                    _ => (index, index + 1),
                };
                self.speaking = true;
                self.last_voiced_end = end;
                self.onset_at(start * f, end * f);
            }
        } else {
            if voiced {
                self.last_voiced_end = index + 1;
            }
            if share <= self.offset {
                self.speaking = false;
                self.prev_run_end = self.last_voiced_end;
            }
        }

        if let Some(c) = self.current.as_mut() {
            c.end = c.end.max(self.last_voiced_end * f);
        }
        if let Some(c) = self.current {
            if !c.kept && c.end - c.start >= self.min_speech {
                self.keep(c);
            }
        }
        if let Some(c) = self.current {
            if c.kept {
                if let Some(a) = self.active.as_mut() {
                    a.raw_end = c.end;
                }
                // Cut as soon as the region is known to be too long.
                while let Some(a) = self.active {
                    if a.raw_end <= a.piece_start.saturating_add(self.max_len) {
                        break;
                    }
                    self.cut_piece();
                }
            }
            if !self.speaking && self.earliest_next_start() >= c.end + self.min_silence {
                // Nothing can merge with it any more.
                self.current = None;
            }
        }
        if self.current.is_none() {
            if let Some(a) = self.active {
                if self.earliest_next_start() >= a.raw_end + 2 * self.pad {
                    self.finalize_active(None);
                }
            }
        }
    }

    /// A run of speech starts: merge it into the current region or begin a
    /// new one.
    fn onset_at(&mut self, start: usize, end: usize) {
        if let Some(c) = self.current.as_mut() {
            if start.saturating_sub(c.end) < self.min_silence {
                c.end = c.end.max(end);
                return;
            }
        }
        // The current region is complete; a short one is dropped.
        self.current = Some(Current {
            start,
            end,
            kept: false,
        });
    }

    /// Region `c` is long enough to keep: the previous kept region gets its
    /// right end and `c` becomes the active one.
    fn keep(&mut self, c: Current) {
        if self.active.is_some() {
            self.finalize_active(Some(c.start));
        }
        let left = match self.last_kept_end {
            Some(e) if c.start - e < 2 * self.pad => e + (c.start - e) / 2,
            _ => c.start.saturating_sub(self.pad),
        };
        self.active = Some(Active {
            piece_start: left.max(self.emitted_end),
            raw_end: c.end,
        });
        if let Some(cur) = self.current.as_mut() {
            cur.kept = true;
        }
    }

    /// Hands out the rest of the active region, padded up to `next` (the
    /// start of the next kept region) or the end of the recording.
    fn finalize_active(&mut self, next: Option<usize>) {
        let Some(a) = self.active else { return };
        let end = match next {
            Some(n) if n - a.raw_end < 2 * self.pad => a.raw_end + (n - a.raw_end) / 2,
            _ => a.raw_end + self.pad,
        }
        .min(self.samples);
        while let Some(a) = self.active {
            if end - a.piece_start <= self.max_len {
                break;
            }
            self.cut_piece();
        }
        let a = self.active.take().expect("active region");
        self.emit(a.piece_start, end);
        self.last_kept_end = Some(a.raw_end);
    }

    /// Hands out one `max_len` piece of the active region.
    fn cut_piece(&mut self) {
        let Some(a) = self.active else { return };
        let hi = a.piece_start + self.max_len;
        let cut = self.choose_cut(a.piece_start + self.max_len / 2, hi);
        self.emit(a.piece_start, cut);
        if let Some(a) = self.active.as_mut() {
            a.piece_start = cut;
        }
    }

    /// A frame boundary in `(lo, hi]`: the middle of the longest unvoiced
    /// run of whole frames within `[lo, hi)` (the latest of equals), else
    /// the end of the quietest frame, else `hi`.
    fn choose_cut(&self, lo: usize, hi: usize) -> usize {
        let f = self.frame_len;
        let first = lo.div_ceil(f).max(self.info_base);
        let last = (hi / f).min(self.info_base + self.info.len()); // exclusive
        if first >= last {
            return hi;
        }
        let at = |i: usize| self.info[i - self.info_base];
        let mut best_run: Option<(usize, usize)> = None; // (start, length)
        let mut run_start = None;
        for i in first..=last {
            let unvoiced = i < last && !at(i).voiced;
            match (unvoiced, run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(s)) => {
                    let len = i - s;
                    if !matches!(best_run, Some((_, l)) if len < l) {
                        best_run = Some((s, len));
                    }
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some((s, len)) = best_run {
            return (s + len.div_ceil(2)) * f;
        }
        let quietest = (first..last)
            .rev()
            .min_by(|&a, &b| at(a).energy.total_cmp(&at(b).energy))
            .expect("non-empty range");
        (quietest + 1) * f
    }

    fn emit(&mut self, start: usize, end: usize) {
        if end > start {
            self.out.push(SpeechRegion { start, end });
            self.emitted_end = end;
        }
    }

    /// Forgets frame decisions no cut can need any more.
    fn prune(&mut self) {
        let keep_from = self.retain_from() / self.frame_len;
        while self.info_base < keep_from && !self.info.is_empty() {
            self.info.pop_front();
            self.info_base += 1;
        }
    }
}
