//! Word timestamps for a window's segments, as openai-whisper's
//! `add_word_timestamps` places them: the cross-attention alignment's words,
//! over-long words clamped around sentence ends and pauses, punctuation
//! merged into its neighbours, and segment bounds moved to their words.

use asr_models::whisper::constants::{FRAMES_PER_SECOND, WINDOW_FRAMES};
use asr_models::whisper::WordTiming;

use crate::stages::features::to_frames;
use crate::transcript::{Segment, SegmentWord, Word};

/// Punctuation joined to the following word.
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// Punctuation joined to the preceding word.
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
const SENTENCE_END_MARKS: &str = ".。!！?？";

/// Languages written without spaces between words.
pub fn separates_words_with_spaces(language: Option<&str>) -> bool {
    !matches!(language, Some("zh" | "ja" | "th" | "lo" | "my" | "yue"))
}

/// The median of the non-zero word durations, at most 0.7 s.
fn median_duration(alignment: &[WordTiming]) -> f64 {
    let mut durations: Vec<f64> = alignment
        .iter()
        .map(|w| w.end - w.start)
        .filter(|&d| d != 0.0)
        .collect();
    if durations.is_empty() {
        return 0.0;
    }
    durations.sort_by(f64::total_cmp);
    let mid = durations.len() / 2;
    let median = if durations.len() % 2 == 1 {
        durations[mid]
    } else {
        (durations[mid - 1] + durations[mid]) / 2.0
    };
    median.min(0.7)
}

/// Moves leading punctuation onto the next word and trailing punctuation
/// onto the previous one, leaving empty words behind (as openai-whisper).
pub fn merge_punctuations(alignment: &mut [WordTiming], prepended: &str, appended: &str) {
    if alignment.len() >= 2 {
        let mut following = alignment.len() - 1;
        for i in (0..alignment.len() - 1).rev() {
            let previous = &alignment[i];
            if previous.word.starts_with(' ') && prepended.contains(previous.word.trim()) {
                let (word, tokens) = (
                    std::mem::take(&mut alignment[i].word),
                    std::mem::take(&mut alignment[i].tokens),
                );
                let f = &mut alignment[following];
                f.word = word + &f.word;
                f.tokens = [tokens, std::mem::take(&mut f.tokens)].concat();
            } else {
                following = i;
            }
        }
    }
    let mut previous = 0;
    for j in 1..alignment.len() {
        if !alignment[previous].word.ends_with(' ') && appended.contains(alignment[j].word.as_str())
        {
            let (word, tokens) = (
                std::mem::take(&mut alignment[j].word),
                std::mem::take(&mut alignment[j].tokens),
            );
            alignment[previous].word.push_str(&word);
            alignment[previous].tokens.extend(tokens);
        } else {
            previous = j;
        }
    }
}

/// Hundredths, as openai-whisper rounds word times.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Gives `segments` (one window's, `offset` seconds into the recording)
/// their words from `alignment`; `last_speech` is where the speech before
/// them ended.
pub fn add_word_timestamps(
    segments: &mut [Segment],
    mut alignment: Vec<WordTiming>,
    offset: f64,
    eot: u32,
    mut last_speech: f64,
) {
    if segments.is_empty() {
        return;
    }
    let median = median_duration(&alignment);
    let max_duration = median * 2.0;
    if median > 0.0 {
        // Words at sentence boundaries are not longer than twice the median.
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if SENTENCE_END_MARKS.contains(alignment[i].word.as_str()) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if SENTENCE_END_MARKS.contains(alignment[i - 1].word.as_str()) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(&mut alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
    let mut timings = alignment.into_iter();
    for segment in segments.iter_mut() {
        let text_tokens = segment.tokens.iter().filter(|&&t| t < eot).count();
        let mut words: Vec<Word> = Vec::new();
        let mut saved = 0;
        while saved < text_tokens {
            let Some(timing) = timings.next() else { break };
            if !timing.word.is_empty() {
                words.push(Word {
                    word: timing.word,
                    start: round2(offset + timing.start),
                    end: round2(offset + timing.end),
                    probability: timing.probability,
                });
            }
            saved += timing.tokens.len();
        }
        if !words.is_empty() {
            fit_segment_and_words(segment, &mut words, median, last_speech);
            last_speech = segment.end;
        }
        segment.words = words.into_iter().map(SegmentWord::from).collect();
    }
}

/// openai-whisper's boundary fixes: a first word after a pause is not
/// longer than twice the median, and the segment and its outer words agree
/// unless one of those words is clearly too long.
fn fit_segment_and_words(segment: &mut Segment, words: &mut [Word], median: f64, last_speech: f64) {
    let max_duration = median * 2.0;
    let first_too_long = words[0].end - words[0].start > max_duration;
    let pair_too_long = words.len() > 1 && words[1].end - words[0].start > max_duration * 2.0;
    if words[0].end - last_speech > median * 4.0 && (first_too_long || pair_too_long) {
        if words.len() > 1 && words[1].end - words[1].start > max_duration {
            let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
            words[0].end = boundary;
            words[1].start = boundary;
        }
        words[0].start = (words[0].end - max_duration).max(0.0);
    }
    if segment.start < words[0].end && segment.start - 0.5 > words[0].start {
        words[0].start = (words[0].end - median).min(segment.start).max(0.0);
    } else {
        segment.start = words[0].start;
    }
    let last = words.len() - 1;
    if segment.end > words[last].start && segment.end + 0.5 < words[last].end {
        words[last].end = (words[last].start + median).max(segment.end);
    } else {
        segment.end = words[last].end;
    }
}

/// A decoded window, in mel frames of the recording.
#[derive(Clone, Copy, Debug)]
pub struct WindowFrames {
    /// Its first frame.
    pub seek: usize,
    /// Frames of audio in it (fewer than 3000 at the end).
    pub content: usize,
    /// Frames in the whole recording, once known.
    pub total: Option<usize>,
}

/// What [`skip_hallucinations`] decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SilenceSkip {
    /// Where the next window starts, when it moves.
    pub seek: Option<usize>,
    /// The window's text is dropped and its silence skipped.
    pub drop_window: bool,
}

/// How unlike real speech a word looks: improbable, very short or very long.
fn word_anomaly(word: &Word) -> f64 {
    let duration = word.end - word.start;
    let mut score = 0.0;
    if word.probability < 0.15 {
        score += 1.0;
    }
    if duration < 0.133 {
        score += (0.133 - duration) * 15.0;
    }
    if duration > 2.0 {
        score += duration - 2.0;
    }
    score
}

/// A segment whose first eight words (punctuation aside) mostly look anomalous.
fn is_anomaly(segment: &Segment) -> bool {
    if segment.words.is_empty() {
        return false;
    }
    let words: Vec<&Word> = segment
        .words
        .iter()
        .map(|w| &w.word)
        .filter(|w| !HALLUCINATION_PUNCTUATION.contains(w.word.as_str()))
        .take(8)
        .collect();
    let score: f64 = words.iter().map(|w| word_anomaly(w)).sum();
    score >= 3.0 || score + 0.01 >= words.len() as f64
}

/// Words that `is_anomaly` ignores: any run of these characters.
const HALLUCINATION_PUNCTUATION: &str = "\"'“¿([{-\"'.。,，!！?？:：”)]}、";

/// openai-whisper's `hallucination_silence_threshold`: text that looks
/// hallucinated and is surrounded by more than `threshold` seconds of
/// silence (or by other such text) is dropped and the silence skipped; a
/// window that opens with such text after a long silence is dropped whole.
/// `last_speech` is where the speech before this window ended.
pub fn skip_hallucinations(
    segments: &mut Vec<Segment>,
    window: WindowFrames,
    single_timestamp_ending: bool,
    last_speech: f64,
    threshold: f64,
) -> SilenceSkip {
    let offset = window.seek as f64 / FRAMES_PER_SECOND;
    let window_end = (window.seek + WINDOW_FRAMES) as f64 / FRAMES_PER_SECOND;
    let content_end = offset + window.content as f64 / FRAMES_PER_SECOND;
    // The caller resumes after the last timed word; when that word ends
    // within `threshold` of the window's end, the whole window is used.
    let mut seek = None;
    if !single_timestamp_ending {
        let near_end = |&end: &f64| end > offset && window_end - end <= threshold;
        if last_word_end(segments).filter(near_end).is_some() {
            seek = Some(window.seek + window.content);
        }
    }
    let with_words = |s: &&Segment| !s.words.is_empty();
    if let Some(first) = segments.iter().find(with_words).filter(|s| is_anomaly(s)) {
        let gap = first.start - offset;
        if gap > threshold {
            return SilenceSkip {
                seek: Some(window.seek + to_frames(gap)),
                drop_window: true,
            };
        }
    }
    let mut previous_end = last_speech;
    for i in 0..segments.len() {
        let segment = &segments[i];
        if segment.words.is_empty() {
            continue;
        }
        if is_anomaly(segment) {
            let next = segments[i + 1..].iter().find(with_words);
            let next_start = next.map_or(content_end, |s| s.words[0].word.start);
            let silence_before = segment.start - previous_end > threshold
                || segment.start < threshold
                || segment.start - offset < 2.0;
            let silence_after = next_start - segment.end > threshold
                || next.is_some_and(is_anomaly)
                || window_end - segment.end < 2.0;
            if silence_before && silence_after {
                let mut resume = to_frames((offset + 1.0).max(segment.start));
                if let Some(total) = window.total {
                    if total as f64 / FRAMES_PER_SECOND - segment.end < threshold {
                        resume = total;
                    }
                }
                segments.truncate(i);
                return SilenceSkip {
                    seek: Some(resume),
                    drop_window: false,
                };
            }
        }
        previous_end = segment.end;
    }
    SilenceSkip {
        seek,
        drop_window: false,
    }
}

/// The end of the last word of `segments`, else the last segment's end.
pub fn last_word_end(segments: &[Segment]) -> Option<f64> {
    segments
        .iter()
        .rev()
        .flat_map(|s| s.words.iter().rev())
        .map(|w| w.word.end)
        .next()
        .or_else(|| segments.last().map(|s| s.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(word: &str, tokens: &[u32]) -> WordTiming {
        WordTiming {
            word: word.into(),
            tokens: tokens.to_vec(),
            start: 0.0,
            end: 0.0,
            probability: 1.0,
        }
    }

    #[test]
    fn punctuation_joins_its_neighbours() {
        let mut words = vec![
            timing(" \"", &[1]),
            timing(" Hello", &[2]),
            timing(",", &[3]),
            timing(" world", &[4]),
            timing(".\"", &[5]),
        ];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, ["", " \" Hello,", "", " world", ".\""]);
        assert_eq!(words[1].tokens, vec![1, 2, 3]);
    }

    #[test]
    fn the_median_ignores_zero_lengths_and_caps_at_0_7() {
        let mut words = vec![timing("a", &[1]), timing("b", &[2]), timing("c", &[3])];
        let spans = [(0.0, 0.2), (0.2, 0.2), (0.2, 0.6)];
        for (w, (s, e)) in words.iter_mut().zip(spans) {
            w.start = s;
            w.end = e;
        }
        assert!((median_duration(&words) - 0.3).abs() < 1e-12);
        words[2].end = 9.0;
        assert_eq!(median_duration(&words), 0.7);
    }
}
