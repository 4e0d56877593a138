//! The alignment heads openai-whisper publishes per model — in its code,
//! not in the `.pt` checkpoints: the decoder (layer, head) pairs whose
//! cross-attention follows the speech in time. Word timestamps read them;
//! `.pt` sources get them from here, as the other formats carry their own.

use asr_models::whisper::WhisperDims;

/// A model's published heads: name, `n_mels`, `n_vocab`, `n_text_layer`,
/// and the heads as `layer * n_text_head + head`.
type Published = (&'static str, i32, i32, i32, &'static [usize]);

#[rustfmt::skip]
const PUBLISHED: &[Published] = &[
    ("tiny.en", 80, 51864, 4, &[6, 12, 17, 18, 19, 20, 21, 22]),
    ("tiny", 80, 51865, 4, &[14, 18, 20, 21, 22, 23]),
    ("base.en", 80, 51864, 6, &[27, 39, 41, 45, 47]),
    ("base", 80, 51865, 6, &[25, 34, 35, 39, 41, 42, 44, 46]),
    ("small.en", 80, 51864, 12, &[78, 84, 87, 92, 98, 101, 103, 108, 112, 116, 118, 120, 121, 122, 123, 126, 131, 134, 136]),
    ("small", 80, 51865, 12, &[63, 69, 96, 100, 103, 104, 108, 115, 117, 125]),
    ("medium.en", 80, 51864, 24, &[180, 225, 236, 238, 244, 256, 260, 265, 284, 286, 295, 298, 303, 320, 323, 329, 334, 348]),
    ("medium", 80, 51865, 24, &[223, 244, 255, 257, 320, 372]),
    ("large-v1", 80, 51865, 32, &[199, 222, 224, 237, 447, 451, 457, 462, 475]),
    ("large-v2", 80, 51865, 32, &[212, 277, 331, 332, 333, 355, 356, 364, 371, 379, 391, 422, 423, 443, 449, 452, 465, 467, 473, 505, 521, 532, 555]),
    ("large-v3", 128, 51866, 32, &[140, 217, 258, 272, 321, 354, 391, 424, 481, 506]),
    ("large-v3-turbo", 128, 51866, 4, &[44, 51, 63, 66, 71, 74]),
];

/// The published heads of the model with `dims`; `name` (a file stem such
/// as `large-v2`) tells apart models with the same dimensions. `None` for
/// models openai-whisper does not publish heads for (fine-tunes keep the
/// dimensions, so a match is a best guess the caller should mention).
pub fn published_alignment_heads(
    dims: &WhisperDims,
    name: Option<&str>,
) -> Option<Vec<[usize; 2]>> {
    let matching: Vec<&Published> = PUBLISHED
        .iter()
        .filter(|(_, mels, vocab, layers, _)| {
            (*mels, *vocab, *layers) == (dims.n_mels, dims.n_vocab, dims.n_text_layer)
        })
        .collect();
    let (_, _, _, _, heads) = match matching.as_slice() {
        [one] => *one,
        several => *several.iter().find(|p| Some(p.0) == name)?,
    };
    let per_layer = usize::try_from(dims.n_text_head).ok().filter(|&n| n > 0)?;
    Some(
        heads
            .iter()
            .map(|&i| [i / per_layer, i % per_layer])
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_found_by_dimensions_and_by_name_where_dimensions_tie() {
        let tiny_en = published_alignment_heads(&WhisperDims::tiny_en(), None).unwrap();
        let expected = [
            [1, 0],
            [2, 0],
            [2, 5],
            [3, 0],
            [3, 1],
            [3, 2],
            [3, 3],
            [3, 4],
        ];
        assert_eq!(tiny_en, expected);
        let large = WhisperDims {
            n_mels: 80,
            n_vocab: 51865,
            n_text_layer: 32,
            n_text_head: 20,
            ..WhisperDims::tiny_en()
        };
        // large-v1 and large-v2 share their dimensions.
        assert_eq!(published_alignment_heads(&large, None), None);
        let v2 = published_alignment_heads(&large, Some("large-v2")).unwrap();
        assert_eq!((v2.len(), v2[0]), (23, [10, 12]));
        let unknown = WhisperDims {
            n_text_layer: 5,
            ..WhisperDims::tiny_en()
        };
        assert_eq!(published_alignment_heads(&unknown, None), None);
    }
}
