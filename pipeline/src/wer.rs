//! Word error rate: word-level edit distance between a reference and a
//! hypothesis after the same light normalization of both (lowercase, every
//! character but letters, digits and apostrophes treated as a space).

/// Normalized words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Substitutions + insertions + deletions, and the reference length.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WordErrors {
    pub errors: usize,
    pub reference_words: usize,
}

impl WordErrors {
    /// Errors per reference word (0 for an empty reference).
    pub fn rate(&self) -> f64 {
        if self.reference_words == 0 {
            0.0
        } else {
            self.errors as f64 / self.reference_words as f64
        }
    }
}

impl std::ops::Add for WordErrors {
    type Output = WordErrors;
    fn add(self, o: WordErrors) -> WordErrors {
        WordErrors {
            errors: self.errors + o.errors,
            reference_words: self.reference_words + o.reference_words,
        }
    }
}

/// Levenshtein distance over normalized words.
pub fn word_errors(reference: &str, hypothesis: &str) -> WordErrors {
    let (r, h) = (words(reference), words(hypothesis));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let substitution = diagonal + usize::from(rw != hw);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    WordErrors {
        errors: row[h.len()],
        reference_words: r.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_case_and_punctuation_but_keeps_apostrophes() {
        assert_eq!(
            words("Hello, World!  It's 9-ish."),
            vec!["hello", "world", "it's", "9", "ish"]
        );
    }

    #[test]
    fn counts_substitutions_insertions_and_deletions() {
        let e = word_errors("the cat sat on the mat", "the cat sit on mat today");
        assert_eq!(
            e,
            WordErrors {
                errors: 3,
                reference_words: 6
            }
        ); // sit, -the, +today
        assert!((e.rate() - 0.5).abs() < 1e-12);
        assert_eq!(word_errors("a b c", "a b c").errors, 0);
        assert_eq!(word_errors("", "x y").errors, 2);
        assert_eq!(word_errors("x y", "").errors, 2);
        assert_eq!(
            (word_errors("a", "b") + word_errors("c d", "c d")).reference_words,
            3
        );
    }
}
