//! Whisper's tokenizer as openai-whisper defines it — a tiktoken rank file
//! (`multilingual.tiktoken` or `gpt2.tiktoken`) plus the special tokens its
//! `tokenizer.py` appends — written as a Hugging Face `tokenizer.json` that
//! the `tokenizers` crate loads and that encodes exactly like tiktoken:
//!
//! - byte-level BPE over the GPT-2 pre-tokenizer pattern (the same regular
//!   expression tiktoken's Whisper encodings use);
//! - `vocab`: every ranked byte string, in GPT-2's byte-to-character form,
//!   with its rank as id;
//!   (multilingual.tiktoken's last rank is an empty placeholder; it keeps its
//!   id and no merge);
//! - `merges`: for each multi-byte token, in rank order, the two parts that
//!   tiktoken's merge loop joins last when it may only use lower ranks;
//! - `ignore_merges`: a piece that is itself a token is taken whole, as
//!   tiktoken does;
//! - special tokens after the ranks: `<|endoftext|>`,
//!   `<|startoftranscript|>`, the language tokens, `<|translate|>`,
//!   `<|transcribe|>`, `<|startoflm|>`, `<|startofprev|>`, `<|nospeech|>`,
//!   `<|notimestamps|>` and the 1501 timestamps `<|0.00|>` … `<|30.00|>`.

use std::collections::HashMap;

/// Whisper's language codes in token order (openai-whisper's `LANGUAGES`);
/// models with 99 languages use the first 99, large-v3 all 100.
pub const WHISPER_LANGUAGES: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// Parses a tiktoken rank file: one `base64(token) rank` per line.
pub fn parse_ranks(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut tokens: Vec<Option<Vec<u8>>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (token, rank) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {}: expected `base64 rank`", i + 1))?;
        let rank: usize = rank
            .trim()
            .parse()
            .map_err(|_| format!("line {}: bad rank {rank:?}", i + 1))?;
        let bytes = base64_decode(token).ok_or_else(|| format!("line {}: bad base64", i + 1))?;
        if rank >= tokens.len() {
            tokens.resize(rank + 1, None);
        }
        if tokens[rank].replace(bytes).is_some() {
            return Err(format!("line {}: rank {rank} given twice", i + 1));
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(rank, t)| t.ok_or_else(|| format!("rank {rank} missing")))
        .collect()
}

/// The `tokenizer.json` of Whisper's tokenizer over `ranks` (from
/// [`parse_ranks`]) with the first `n_languages` language tokens.
pub fn whisper_tokenizer_json(ranks: &[Vec<u8>], n_languages: usize) -> Result<String, String> {
    if n_languages > WHISPER_LANGUAGES.len() {
        return Err(format!(
            "{n_languages} languages (at most {})",
            WHISPER_LANGUAGES.len()
        ));
    }
    let by_bytes: HashMap<&[u8], usize> = ranks
        .iter()
        .enumerate()
        .map(|(rank, t)| (t.as_slice(), rank))
        .collect();
    if by_bytes.len() != ranks.len() {
        return Err("the same token has two ranks".into());
    }
    for byte in 0..=255u8 {
        if !by_bytes.contains_key([byte].as_slice()) {
            return Err(format!("byte {byte} has no rank"));
        }
    }
    let chars = byte_chars();
    let text = |bytes: &[u8]| -> String { bytes.iter().map(|&b| chars[b as usize]).collect() };

    let mut vocab = serde_json::Map::new();
    for (rank, token) in ranks.iter().enumerate() {
        vocab.insert(text(token), rank.into());
    }
    let mut merges = Vec::new();
    for (rank, token) in ranks.iter().enumerate() {
        if token.len() < 2 {
            continue;
        }
        let (left, right) = last_merge(token, rank, &by_bytes).ok_or_else(|| {
            format!(
                "token {rank} ({:?}) is not a merge of two lower-ranked tokens",
                text(token)
            )
        })?;
        merges.push(serde_json::Value::from(format!(
            "{} {}",
            text(left),
            text(right)
        )));
    }

    let mut specials: Vec<String> = vec!["<|endoftext|>".into(), "<|startoftranscript|>".into()];
    specials.extend(
        WHISPER_LANGUAGES[..n_languages]
            .iter()
            .map(|l| format!("<|{l}|>")),
    );
    specials.extend(
        [
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nospeech|>",
            "<|notimestamps|>",
        ]
        .map(String::from),
    );
    specials.extend((0..=1500).map(|i| format!("<|{}.{:02}|>", i / 50, (i % 50) * 2)));
    let added_tokens: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, content)| {
            serde_json::json!({
                "id": ranks.len() + i,
                "content": content,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": true,
            })
        })
        .collect();

    let byte_level = |add_prefix_space: bool| {
        serde_json::json!({
            "type": "ByteLevel",
            "add_prefix_space": add_prefix_space,
            "trim_offsets": true,
            "use_regex": true,
        })
    };
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": byte_level(false),
        "post_processor": null,
        "decoder": byte_level(true),
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": true,
            "vocab": vocab,
            "merges": merges,
        },
    });
    serde_json::to_string(&json).map_err(|e| e.to_string())
}

/// The two parts tiktoken's merge loop holds just before it would form
/// `token` (rank `rank`): starting from single bytes, repeatedly join the
/// adjacent pair whose concatenation has the lowest rank below `rank`.
fn last_merge<'a>(
    token: &'a [u8],
    rank: usize,
    by_bytes: &HashMap<&[u8], usize>,
) -> Option<(&'a [u8], &'a [u8])> {
    // Boundaries between parts: parts are token[bounds[i]..bounds[i + 1]].
    let mut bounds: Vec<usize> = (0..=token.len()).collect();
    loop {
        let best = (0..bounds.len().saturating_sub(2))
            .filter_map(|i| {
                let r = *by_bytes.get(&token[bounds[i]..bounds[i + 2]])?;
                (r < rank).then_some((r, i))
            })
            .min();
        match best {
            Some((_, i)) => {
                bounds.remove(i + 1);
            }
            None => break,
        }
    }
    (bounds.len() == 3).then(|| (&token[..bounds[1]], &token[bounds[1]..]))
}

/// GPT-2's reversible byte → character map: printable Latin-1 bytes stand
/// for themselves, the others for U+0100 onwards in byte order.
fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        out[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("below the surrogates");
            next += 1;
            c
        };
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_padding() {
        assert_eq!(base64_decode("IQ==").unwrap(), b"!");
        assert_eq!(base64_decode("IGE=").unwrap(), b" a");
        assert_eq!(base64_decode("IHRo").unwrap(), b" th");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("I").is_none());
        assert!(base64_decode("I*==").is_none());
    }

    #[test]
    fn gpt2_byte_characters() {
        let c = byte_chars();
        assert_eq!(c[b' ' as usize], 'Ġ');
        assert_eq!(c[b'\n' as usize], 'Ċ');
        assert_eq!(c[b'a' as usize], 'a');
        assert_eq!(c[0], 'Ā');
        assert_eq!(c[0xAD], 'Ń');
        let distinct: std::collections::HashSet<char> = c.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    fn toy_ranks(extra: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut ranks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        ranks.extend(extra.iter().map(|t| t.to_vec()));
        ranks
    }

    #[test]
    fn merges_follow_the_rank_order() {
        // " t" then "he", then " the" must come from " t" + "he".
        let ranks = toy_ranks(&[b" t", b"he", b" the", b"re", b" there"]);
        let json: serde_json::Value =
            serde_json::from_str(&whisper_tokenizer_json(&ranks, 2).unwrap()).unwrap();
        let merges: Vec<&str> = json["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(merges, ["Ġ t", "h e", "Ġt he", "r e", "Ġthe re"]);
        assert_eq!(json["model"]["vocab"]["Ġthe"], 258);
        let added = json["added_tokens"].as_array().unwrap();
        // 2 + 2 languages + 6 + 1501 timestamps.
        assert_eq!(added.len(), 1511);
        assert_eq!(added[0]["content"], "<|endoftext|>");
        assert_eq!(added[0]["id"], 261);
        assert_eq!(added[3]["content"], "<|zh|>");
        assert_eq!(added[9]["content"], "<|notimestamps|>");
        assert_eq!(added[10]["content"], "<|0.00|>");
        assert_eq!(added[11]["content"], "<|0.02|>");
        assert_eq!(added[1510]["content"], "<|30.00|>");
    }

    #[test]
    fn a_token_that_is_no_merge_is_refused() {
        // "abc" with no "ab" or "bc" below it.
        let err = whisper_tokenizer_json(&toy_ranks(&[b"abc"]), 1).unwrap_err();
        assert!(err.contains("token 256"), "{err}");
        let mut missing_byte = toy_ranks(&[]);
        missing_byte.remove(7);
        missing_byte.push(b"xy".to_vec());
        assert!(whisper_tokenizer_json(&missing_byte, 1).is_err());
    }

    #[test]
    fn rank_files_parse_and_refuse_gaps() {
        let ranks = parse_ranks("IQ== 1\nIg== 0\n").unwrap();
        assert_eq!(ranks, [b"\"".to_vec(), b"!".to_vec()]);
        assert!(parse_ranks("IQ== 2\nIg== 0\n")
            .unwrap_err()
            .contains("rank 1 missing"));
        assert!(parse_ranks("IQ== 0\nIg== 0\n")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_ranks("IQ==\n").is_err());
    }

    /// The real rank file from ../shared, when present.
    #[test]
    fn multilingual_ranks_give_whisper_sized_vocabulary() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/whisper-assets/multilingual.tiktoken");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: {} not present", path.display());
            return;
        };
        let ranks = parse_ranks(&text).unwrap();
        assert_eq!(ranks.len(), 50257);
        let json: serde_json::Value =
            serde_json::from_str(&whisper_tokenizer_json(&ranks, 99).unwrap()).unwrap();
        // The last rank (50256) is an empty placeholder that BPE never forms.
        assert!(ranks[50256].is_empty());
        assert_eq!(
            json["model"]["merges"].as_array().unwrap().len(),
            50257 - 256 - 1
        );
        let added = json["added_tokens"].as_array().unwrap();
        assert_eq!(ranks.len() + added.len(), 51865);
        assert_eq!(json["model"]["merges"][0], "Ġ t");
        assert_eq!(added[101]["content"], "<|translate|>");
        assert_eq!(added[101]["id"], 50358);
    }
}
