//! What changed between a stored snapshot and a new transcript: word by
//! word for people, line by line for the snapshot files.

use similar::{ChangeTag, TextDiff};

/// Unchanged words kept on each side of a change.
const WORD_CONTEXT: usize = 6;

/// `old` → `new` word by word: `[-removed-]`, `{+added+}`; unchanged
/// stretches longer than twice [`WORD_CONTEXT`] words are shortened.
pub fn word_diff(old: &str, new: &str) -> String {
    let (old, new) = (old.trim(), new.trim());
    let diff = TextDiff::from_words(old, new);
    // Runs of (tag, words).
    let mut runs: Vec<(ChangeTag, Vec<&str>)> = Vec::new();
    for change in diff.iter_all_changes() {
        let word = change.value().trim();
        if word.is_empty() {
            continue;
        }
        match runs.last_mut() {
            Some((tag, words)) if *tag == change.tag() => words.push(word),
            _ => runs.push((change.tag(), vec![word])),
        }
    }
    if let [(ChangeTag::Equal, words)] = runs.as_slice() {
        return words.join(" ");
    }
    let last = runs.len().saturating_sub(1);
    let mut parts = Vec::new();
    for (i, (tag, words)) in runs.iter().enumerate() {
        match tag {
            ChangeTag::Delete => parts.push(format!("[-{}-]", words.join(" "))),
            ChangeTag::Insert => parts.push(format!("{{+{}+}}", words.join(" "))),
            ChangeTag::Equal => {
                let keep_head = if i == 0 { 0 } else { WORD_CONTEXT };
                let keep_tail = if i == last { 0 } else { WORD_CONTEXT };
                if words.len() > keep_head + keep_tail + 1 {
                    let mut shown: Vec<&str> = words[..keep_head].to_vec();
                    shown.push("…");
                    shown.extend(&words[words.len() - keep_tail..]);
                    parts.push(shown.join(" "));
                } else {
                    parts.push(words.join(" "));
                }
            }
        }
    }
    parts.join(" ")
}

/// A unified diff (3 lines of context) of two snapshot bodies.
pub fn line_diff(stored: &str, new: &str, name: &str) -> String {
    let (stored, new) = (
        format!("{}\n", stored.trim_end()),
        format!("{}\n", new.trim_end()),
    );
    TextDiff::from_lines(&stored, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (stored)"), &format!("{name} (new)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_diffs_mark_changes_and_shorten_the_rest() {
        assert_eq!(
            word_diff(" the cat sat on the mat", " the cat sat on a mat"),
            "the cat sat on [-the-] {+a+} mat"
        );
        let old =
            "x y zero one two three four five six seven eight nine ten eleven twelve thirteen z w";
        let new = old.replace("seven", "heaven");
        assert_eq!(
            word_diff(old, &new),
            "… one two three four five six [-seven-] {+heaven+} eight nine ten eleven twelve thirteen …"
        );
        assert_eq!(word_diff("a b", "a b"), "a b");
    }
}
