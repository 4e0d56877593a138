//! Times on the gathered speech mapped back to the recording.

use super::{SpeechRegion, RATE};
use crate::transcript::Transcript;

/// Speech regions laid end to end: the recording with its non-speech cut
/// out. Gathers that compacted signal and maps times on it back to the
/// recording.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpeechTimeline {
    regions: Vec<SpeechRegion>,
    /// Where each region starts in the compacted signal, in samples.
    offsets: Vec<usize>,
    len: usize,
    /// Seconds by which a span may cross a join and still be kept on its
    /// side ([`Self::with_join_tolerance`]).
    join_tolerance: f64,
}

impl SpeechTimeline {
    /// The timeline of `regions` (sorted by start; parts overlapping an
    /// earlier region and empty regions are dropped).
    pub fn new(regions: impl IntoIterator<Item = SpeechRegion>) -> Self {
        let mut sorted: Vec<SpeechRegion> = regions.into_iter().collect();
        sorted.sort_by_key(|r| (r.start, r.end));
        let mut timeline = SpeechTimeline::default();
        let mut prev_end = 0;
        for r in sorted {
            let start = r.start.max(prev_end);
            if r.end <= start {
                continue;
            }
            timeline.regions.push(SpeechRegion { start, end: r.end });
            timeline.offsets.push(timeline.len);
            timeline.len += r.end - start;
            prev_end = r.end;
        }
        timeline
    }

    /// Spans mapped by [`Self::map_transcript`] that cross a join between
    /// two regions by less than `seconds` on one side (and more on the
    /// other) are kept on the other side: a segment whose end lands 0.1 s
    /// into the next region (the padding before its speech) ends where its
    /// own region ends rather than after the gap. The speech padding is a
    /// good value; 0 (the default) maps times exactly.
    pub fn with_join_tolerance(mut self, seconds: f64) -> Self {
        self.join_tolerance = seconds.max(0.0);
        self
    }

    pub fn regions(&self) -> &[SpeechRegion] {
        &self.regions
    }

    /// Samples of the compacted signal.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Seconds of the compacted signal.
    pub fn duration(&self) -> f64 {
        self.len as f64 / RATE as f64
    }

    /// Where region `k` starts in the compacted signal, in samples.
    pub fn offset(&self, k: usize) -> usize {
        self.offsets[k]
    }

    /// The compacted signal: the samples of every region, in order (regions
    /// past the end of `samples` are cut short).
    pub fn gather(&self, samples: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len);
        for r in &self.regions {
            let end = r.end.min(samples.len());
            if r.start < end {
                out.extend_from_slice(&samples[r.start..end]);
            }
        }
        out
    }

    /// The recording's time of time `t` (seconds) of the compacted signal.
    /// A time where two regions meet maps to the start of the later one
    /// (right for the start of a segment); times past the end continue
    /// after the last region; negative times map to the first region's
    /// start. An empty timeline maps every time to itself.
    pub fn to_original(&self, t: f64) -> f64 {
        if self.regions.is_empty() {
            return t;
        }
        let s = (t * RATE as f64).max(0.0);
        let k = self
            .offsets
            .partition_point(|&o| o as f64 <= s)
            .saturating_sub(1);
        (self.regions[k].start as f64 + s - self.offsets[k] as f64) / RATE as f64
    }

    /// Like [`Self::to_original`], but a time where two regions meet maps
    /// to the end of the earlier one (right for the end of a segment).
    pub fn to_original_end(&self, t: f64) -> f64 {
        if self.regions.is_empty() {
            return t;
        }
        let s = (t * RATE as f64).max(0.0);
        // Region k ends where region k + 1 starts; the last one is taken
        // for anything after the end.
        let k = self.offsets[1..].partition_point(|&o| (o as f64) < s);
        (self.regions[k].start as f64 + s - self.offsets[k] as f64) / RATE as f64
    }

    /// The compacted signal's time of the recording's time `t`; a time
    /// outside every region maps to where the next region starts.
    pub fn to_compacted(&self, t: f64) -> f64 {
        let s = (t * RATE as f64).max(0.0);
        let k = self.regions.partition_point(|r| r.start as f64 <= s);
        if k == 0 {
            return 0.0;
        }
        let r = self.regions[k - 1];
        let inside = (s - r.start as f64).min(r.len() as f64);
        (self.offsets[k - 1] as f64 + inside) / RATE as f64
    }

    /// Moves a transcript of the compacted signal onto the recording's
    /// timeline: segment and word starts with [`Self::to_original`], ends
    /// with [`Self::to_original_end`] (never before the start; both within
    /// the join tolerance), and `seek`.
    pub fn map_transcript(&self, transcript: &mut Transcript) {
        for segment in &mut transcript.segments {
            let (start, end) = self.map_span(segment.start, segment.end);
            segment.start = start;
            segment.end = end;
            let seek = self.to_original(segment.seek as f64 / 100.0) * 100.0;
            segment.seek = seek.round() as usize;
            for word in &mut segment.words {
                let (start, end) = self.map_span(word.word.start, word.word.end);
                word.word.start = start;
                word.word.end = end;
            }
        }
    }

    /// A span `[start, end)` of the compacted signal on the recording's
    /// timeline, snapped within the join tolerance.
    pub fn map_span(&self, start: f64, end: f64) -> (f64, f64) {
        let (mut start_c, mut end_c) = (start, end);
        let tol = self.join_tolerance;
        if tol > 0.0 && end_c > start_c && self.regions.len() > 1 {
            let rate = RATE as f64;
            // Joins over a gap (where regions meet with nothing cut out
            // between them, mapping is continuous) strictly inside the span.
            let inside = self.offsets[1..].partition_point(|&o| o as f64 / rate <= start_c)
                ..self.offsets[1..].partition_point(|&o| (o as f64 / rate) < end_c);
            let mut joins = inside
                .map(|i| i + 1)
                .filter(|&k| self.regions[k].start > self.regions[k - 1].end)
                .map(|k| self.offsets[k] as f64 / rate);
            if let Some(j_first) = joins.next() {
                let j_last = joins.next_back().unwrap_or(j_first);
                if j_first - start_c < tol && end_c - j_first > tol {
                    start_c = j_first;
                }
                if end_c - j_last < tol && j_last - start_c > tol {
                    end_c = j_last;
                }
            }
        }
        let start = self.to_original(start_c);
        (start, self.to_original_end(end_c).max(start))
    }
}

/// Groups consecutive regions into batches whose speech adds up to at most
/// `max_seconds` (30 s: one Whisper window per batch, as WhisperX packs its
/// VAD segments); a longer region is a batch of its own. Each batch's
/// [`SpeechTimeline`] gathers its audio and maps its times back.
pub fn pack(regions: &[SpeechRegion], max_seconds: f64) -> Vec<Vec<SpeechRegion>> {
    let max = (max_seconds * RATE as f64).max(0.0);
    let mut batches: Vec<Vec<SpeechRegion>> = Vec::new();
    let mut batch: Vec<SpeechRegion> = Vec::new();
    let mut batch_len = 0usize;
    for &r in regions {
        if !batch.is_empty() && (batch_len + r.len()) as f64 > max {
            batches.push(std::mem::take(&mut batch));
            batch_len = 0;
        }
        batch.push(r);
        batch_len += r.len();
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}
