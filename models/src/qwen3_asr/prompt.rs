//! The chat turns Qwen3-ASR was trained on, and the reply's format:
//!
//! ```text
//! <|im_start|>system\n{context}<|im_end|>\n
//! <|im_start|>user\n<|audio_start|><|audio_pad|>…<|audio_end|><|im_end|>\n
//! <|im_start|>assistant\n[language {Name}<asr_text>]
//! ```
//!
//! The model answers `language {Name}<asr_text>{text}<|im_end|>`; a forced
//! language is written into the prompt, so the reply is the text alone.

use super::model::Request;
use super::tokenizer::Qwen3Tokenizer;

/// The languages Qwen3-ASR names, by ISO code, under the names it was
/// trained to write after `language `.
pub const LANGUAGES: [(&str, &str); 30] = [
    ("ar", "Arabic"),
    ("yue", "Cantonese"),
    ("zh", "Chinese"),
    ("cs", "Czech"),
    ("da", "Danish"),
    ("nl", "Dutch"),
    ("en", "English"),
    ("fil", "Filipino"),
    ("fi", "Finnish"),
    ("fr", "French"),
    ("de", "German"),
    ("el", "Greek"),
    ("hi", "Hindi"),
    ("hu", "Hungarian"),
    ("id", "Indonesian"),
    ("it", "Italian"),
    ("ja", "Japanese"),
    ("ko", "Korean"),
    ("mk", "Macedonian"),
    ("ms", "Malay"),
    ("fa", "Persian"),
    ("pl", "Polish"),
    ("pt", "Portuguese"),
    ("ro", "Romanian"),
    ("ru", "Russian"),
    ("es", "Spanish"),
    ("sv", "Swedish"),
    ("th", "Thai"),
    ("tr", "Turkish"),
    ("vi", "Vietnamese"),
];

/// The model's name for `language`, given as an ISO code or a name (any
/// case).
pub fn language_name(language: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .find(|(code, name)| {
            code.eq_ignore_ascii_case(language) || name.eq_ignore_ascii_case(language)
        })
        .map(|&(_, name)| name)
}

/// The ISO code of a language the model named.
pub fn language_code(name: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|&(code, _)| code)
}

/// A prompt's token ids around its audio placeholders.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    ids: Vec<i32>,
    /// Where the audio placeholders are.
    audio: std::ops::Range<usize>,
    forced_language: Option<&'static str>,
    /// The start of the reply written into the prompt.
    prefix: String,
}

impl Prompt {
    pub fn new(
        tokenizer: &Qwen3Tokenizer,
        request: &Request,
        audio_frames: usize,
    ) -> Result<Prompt, String> {
        let forced_language = match &request.language {
            None => None,
            Some(language) => Some(language_name(language).ok_or_else(|| {
                let codes: Vec<&str> = LANGUAGES.iter().map(|(code, _)| *code).collect();
                format!(
                    "Qwen3-ASR does not know the language {language:?} (it knows {})",
                    codes.join(", ")
                )
            })?),
        };
        for (what, text) in [("context", &request.context), ("prefix", &request.prefix)] {
            if text.contains("<|") || text.contains("<asr_text>") {
                return Err(format!(
                    "the {what} {text:?} holds a special token of the chat format"
                ));
            }
        }
        if !request.prefix.is_empty() && forced_language.is_none() {
            return Err(format!(
                "the prefix {:?} needs a language: the reply names its language before the text",
                request.prefix
            ));
        }
        let mut ids = tokenizer.encode(&format!(
            "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n<|audio_start|>",
            request.context
        ))?;
        let start = ids.len();
        ids.resize(start + audio_frames, tokenizer.special.audio_pad);
        let forced = forced_language
            .map(|name| format!("language {name}<asr_text>{}", request.prefix))
            .unwrap_or_default();
        ids.extend(tokenizer.encode(&format!(
            "<|audio_end|><|im_end|>\n<|im_start|>assistant\n{forced}"
        ))?);
        Ok(Prompt {
            ids,
            audio: start..start + audio_frames,
            forced_language,
            prefix: request.prefix.clone(),
        })
    }

    pub fn ids(&self) -> &[i32] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn before_audio(&self) -> &[i32] {
        &self.ids[..self.audio.start]
    }

    pub fn after_audio(&self) -> &[i32] {
        &self.ids[self.audio.end..]
    }

    pub fn forced_language(&self) -> Option<&'static str> {
        self.forced_language
    }

    /// The text the reply was made to begin with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A parsed reply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub language: Option<String>,
    pub text: String,
}

/// The language and text of the reply `tokens` (cut at its end) to
/// `prompt`, as the reference reads it (a prefix the prompt forced
/// included): what precedes `<asr_text>` names the language
/// (`language None` for no speech), what follows is the text, with runaway
/// repetitions collapsed.
pub fn parse_reply(
    tokenizer: &Qwen3Tokenizer,
    tokens: &[i32],
    prompt: &Prompt,
) -> Result<Reply, String> {
    let stop = tokenizer.end_of_reply();
    let end = tokens
        .iter()
        .position(|t| stop.contains(t))
        .unwrap_or(tokens.len());
    let tokens = &tokens[..end];
    let marker = tokens.iter().position(|&t| t == tokenizer.special.asr_text);
    let (language, text) = match (prompt.forced_language, marker) {
        (Some(name), _) => (
            Some(name.to_string()),
            format!("{}{}", prompt.prefix, tokenizer.decode(tokens)?),
        ),
        (None, Some(at)) => {
            let prefix = tokenizer.decode(&tokens[..at])?;
            let named = prefix.trim().strip_prefix("language ").unwrap_or(&prefix);
            let named = named.trim();
            let language = (!named.is_empty() && !named.eq_ignore_ascii_case("none"))
                .then(|| named.to_string());
            (language, tokenizer.decode(&tokens[at + 1..])?)
        }
        (None, None) => (None, tokenizer.decode(tokens)?),
    };
    Ok(Reply {
        language,
        text: collapse_repetitions(text.trim()),
    })
}

/// Runs this long of one character, or of one pattern, are hallucinated.
const REPEATS: usize = 20;
/// The longest pattern looked for, in characters.
const LONGEST_PATTERN: usize = 20;

/// Collapses a character repeated more than [`REPEATS`] times, then any
/// pattern of up to [`LONGEST_PATTERN`] characters repeated at least
/// [`REPEATS`] times, to one copy (the reference's clean-up of looping
/// output).
pub fn collapse_repetitions(text: &str) -> String {
    let mut chars: Vec<char> = Vec::with_capacity(text.len());
    let mut rest = text.chars().peekable();
    while let Some(c) = rest.next() {
        let mut run = 1;
        while rest.next_if_eq(&c).is_some() {
            run += 1;
        }
        chars.extend(std::iter::repeat_n(c, if run > REPEATS { 1 } else { run }));
    }

    let n = chars.len();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i + 2 * REPEATS <= n {
        let repeated = (1..=LONGEST_PATTERN)
            .take_while(|k| i + k * REPEATS <= n)
            .find(|&k| {
                let pattern = &chars[i..i + k];
                (1..REPEATS).all(|r| &chars[i + r * k..i + (r + 1) * k] == pattern)
            });
        match repeated {
            Some(k) => {
                out.extend(&chars[i..i + k]);
                let mut end = i + REPEATS * k;
                while end + k <= n && chars[end..end + k] == chars[i..i + k] {
                    end += k;
                }
                i = end;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out.extend(&chars[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_code_or_name() {
        assert_eq!(language_name("en"), Some("English"));
        assert_eq!(language_name("ENGLISH"), Some("English"));
        assert_eq!(language_name("yue"), Some("Cantonese"));
        assert_eq!(language_name("xx"), None);
        assert_eq!(language_code("english"), Some("en"));
        assert_eq!(language_code("Klingon"), None);
    }

    #[test]
    fn repetitions_collapse_as_the_reference_cleans_them() {
        assert_eq!(collapse_repetitions("ok"), "ok");
        let a21 = "a".repeat(21);
        assert_eq!(collapse_repetitions(&format!("x{a21}y")), "xay");
        // Twenty of one character is a pattern repeated 20 times.
        let a20 = "a".repeat(20);
        assert_eq!(
            collapse_repetitions(&format!("{a20}bcdefghijklmnopqrstuvwxyz")).len(),
            26
        );
        let ha = "ha ".repeat(25);
        assert_eq!(
            collapse_repetitions(&format!("he said {ha}then")),
            "he said ha then"
        );
        // Nineteen repeats stay.
        let ho = "ho ".repeat(19);
        let text = format!("{ho}and the rest of the sentence");
        assert_eq!(collapse_repetitions(&text), text);
    }
}
