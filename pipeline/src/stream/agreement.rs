//! Local agreement: a streaming recognizer re-transcribes a growing buffer
//! of audio, and a word becomes final once two consecutive hypotheses agree
//! on it and on every word before it (the policy of Macháček et al.'s
//! whisper_streaming, "LocalAgreement-2"). What is final never changes;
//! what follows it is the partial.

/// A word of a hypothesis, timed in seconds from the start of the stream.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TimedWord {
    #[serde(rename = "word")]
    pub text: String,
    pub start: f64,
    pub end: f64,
    /// Written without a space before it (characters of a language written
    /// without spaces between words).
    #[serde(skip)]
    pub attached: bool,
}

impl TimedWord {
    pub fn new(text: impl Into<String>, start: f64, end: f64) -> TimedWord {
        TimedWord {
            text: text.into(),
            start,
            end,
            attached: false,
        }
    }
}

/// How much earlier than the last final word's end a new word may start
/// and still be new: re-transcription moves word times by a few frames.
const START_SLACK: f64 = 0.1;
/// The longest run of words checked for a repeat of the final text's tail
/// in a hypothesis.
const LONGEST_REPEAT: usize = 5;
/// A run of a hypothesis's words is taken for the last final words only
/// when it ends this close (seconds) to where they ended: farther, a
/// repeated word is speech.
const REPEAT_WINDOW: f64 = 1.0;

/// The final words so far (their tail) and the last hypothesis's rest.
#[derive(Clone, Debug, Default)]
pub struct LocalAgreement {
    /// The end of the last final word (0 before any).
    final_end: f64,
    /// The last few final words, normalized, to recognize a hypothesis
    /// that starts by repeating them.
    final_tail: Vec<String>,
    /// The previous hypothesis's words after the final ones.
    pending: Vec<TimedWord>,
}

impl LocalAgreement {
    pub fn new() -> LocalAgreement {
        LocalAgreement::default()
    }

    /// Takes the hypothesis for the audio buffer now (its words timed from
    /// the start of the stream) and returns the words that became final.
    pub fn insert(&mut self, hypothesis: Vec<TimedWord>) -> Vec<TimedWord> {
        let fresh = self.after_final(hypothesis);
        let agreed = agreed_prefix(&self.pending, &fresh);
        let mut fresh = fresh;
        self.pending = fresh.split_off(agreed);
        self.confirm(&fresh);
        fresh
    }

    /// The words after the final ones, as the last hypothesis has them.
    pub fn pending(&self) -> &[TimedWord] {
        &self.pending
    }

    /// The end of the stream: the pending words become final.
    pub fn flush(&mut self) -> Vec<TimedWord> {
        let rest = std::mem::take(&mut self.pending);
        self.confirm(&rest);
        rest
    }

    /// The end of the last final word: audio before it may be dropped from
    /// the buffer.
    pub fn final_end(&self) -> f64 {
        self.final_end
    }

    fn confirm(&mut self, words: &[TimedWord]) {
        if let Some(last) = words.last() {
            self.final_end = last.end;
        }
        self.final_tail
            .extend(words.iter().map(|w| normalized(&w.text)));
        let excess = self.final_tail.len().saturating_sub(LONGEST_REPEAT);
        self.final_tail.drain(..excess);
    }

    /// `hypothesis` without the words already final. Where the hypothesis
    /// says the last final words again (their longest run, ending within
    /// [`REPEAT_WINDOW`] of where they ended), what follows that run;
    /// else the words that start after the last final word ended. Text
    /// comes first: a word at the end of a buffer is often timed into the
    /// pause after it, and its successor's time would fall before its end.
    fn after_final(&self, hypothesis: Vec<TimedWord>) -> Vec<TimedWord> {
        let mut words = hypothesis;
        let longest = LONGEST_REPEAT.min(words.len()).min(self.final_tail.len());
        let repeat = (1..=longest).rev().find_map(|n| {
            let tail = &self.final_tail[self.final_tail.len() - n..];
            (0..=words.len() - n)
                .filter(|&i| (words[i + n - 1].end - self.final_end).abs() < REPEAT_WINDOW)
                .filter(|&i| {
                    words[i..i + n]
                        .iter()
                        .zip(tail)
                        .all(|(w, t)| normalized(&w.text) == *t)
                })
                .min_by(|&i, &j| {
                    let off = |k: usize| (words[k + n - 1].end - self.final_end).abs();
                    off(i).total_cmp(&off(j))
                })
                .map(|i| i + n)
        });
        match repeat {
            Some(end) => words.split_off(end),
            None => {
                words.retain(|w| w.start > self.final_end - START_SLACK);
                words
            }
        }
    }
}

/// How many words two hypotheses begin with alike.
pub(crate) fn agreed_prefix(old: &[TimedWord], new: &[TimedWord]) -> usize {
    old.iter()
        .zip(new)
        .take_while(|(old, new)| normalized(&old.text) == normalized(&new.text))
        .count()
}

/// A word as hypotheses are compared: lowercase, without the punctuation
/// around it (re-transcription moves commas and capitals).
pub(crate) fn normalized(word: &str) -> String {
    word.trim()
        .trim_matches(|c: char| c.is_ascii_punctuation())
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words of `text`, one every half second from `start`.
    fn words(text: &str, start: f64) -> Vec<TimedWord> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, w)| TimedWord::new(w, start + 0.5 * i as f64, start + 0.5 * i as f64 + 0.4))
            .collect()
    }

    fn texts(words: &[TimedWord]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn words_become_final_when_two_hypotheses_agree_on_them() {
        let mut agreement = LocalAgreement::new();
        assert!(agreement.insert(words("and so my", 0.0)).is_empty());
        assert_eq!(texts(agreement.pending()), ["and", "so", "my"]);
        // The second hypothesis agrees on "and so", not on "my".
        let first = agreement.insert(words("And so, mine fellow", 0.0));
        assert_eq!(texts(&first), ["And", "so,"]);
        assert_eq!(texts(agreement.pending()), ["mine", "fellow"]);
        assert!((agreement.final_end() - 0.9).abs() < 1e-9);
        // The buffer was trimmed after "so": the next hypothesis covers the
        // rest only, and the last one's words are final at the end.
        let second = agreement.insert(words("mine fellow Americans", 1.0));
        assert_eq!(texts(&second), ["mine", "fellow"]);
        assert_eq!(texts(&agreement.flush()), ["Americans"]);
        assert!(agreement.pending().is_empty());
    }

    #[test]
    fn a_hypothesis_repeating_final_words_does_not_emit_them_again() {
        let mut agreement = LocalAgreement::new();
        agreement.insert(words("ask not what", 0.0));
        let first = agreement.insert(words("ask not what your", 0.0));
        assert_eq!(texts(&first), ["ask", "not", "what"]);
        // Re-transcribed, the hypothesis starts with "what" again, timed
        // within the slack of the final end: it is not final twice.
        let repeated = words("what your country", 1.35);
        assert_eq!(texts(&agreement.insert(repeated)), ["your"]);
        assert_eq!(texts(agreement.pending()), ["country"]);
        // "country" is said twice; the second, more than a second after the
        // first ended, is speech, not a repeat.
        let twice = words("country country", 2.35);
        assert_eq!(texts(&agreement.insert(twice)), ["country"]);
        let again = agreement.insert(words("country", 4.0));
        assert_eq!(texts(&again), ["country"]);
        assert_eq!(again[0].start, 4.0);
    }

    #[test]
    fn a_word_timed_before_the_end_of_a_stretched_final_word_is_kept() {
        let mut agreement = LocalAgreement::new();
        // "not" was last in its buffer and timed into the pause after it.
        let mut first = words("ask not", 3.9);
        first[1].end = 4.68;
        agreement.insert(first.clone());
        assert_eq!(texts(&agreement.insert(first)), ["ask", "not"]);
        // With more audio "not" ends at 4.3 and "what" starts at 4.5,
        // before 4.68: the repeat of "ask not" places it, not its time.
        let next = words("ask not what your", 3.9);
        agreement.insert(next.clone());
        assert_eq!(texts(agreement.pending()), ["what", "your"]);
        assert_eq!(texts(&agreement.insert(next)), ["what", "your"]);
    }

    #[test]
    fn finals_cover_a_growing_transcript_once_in_order() {
        let transcript = "and so my fellow americans ask not what your country can do for you";
        let all: Vec<&str> = transcript.split_whitespace().collect();
        let mut agreement = LocalAgreement::new();
        let mut finals = Vec::new();
        // Each hypothesis covers the whole buffer so far, its last word often
        // wrong until more audio arrives.
        for heard in 1..=all.len() {
            let mut text = all[..heard].join(" ");
            if heard % 3 == 0 {
                text.push_str("uh");
            }
            finals.extend(agreement.insert(words(&text, 0.0)));
        }
        finals.extend(agreement.flush());
        let finals: Vec<String> = finals.iter().map(|w| normalized(&w.text)).collect();
        let expected: Vec<String> = all.iter().map(|w| w.to_string()).collect();
        assert_eq!(finals, expected);
    }
}
