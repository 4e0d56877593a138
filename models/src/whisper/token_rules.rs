//! The rules every token pick obeys, as openai-whisper's logit filters
//! apply them: suppression of non-speech and control tokens, no blank at
//! the start, and the timestamp grammar.

use mlx::kernels::log_sum_exp;

use super::constants::TIME_PRECISION;
use super::tokenizer::SpecialTokens;

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
    pub(super) special: SpecialTokens,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn special() -> SpecialTokens {
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
}
