//! Qwen3-ASR's text decoder against transformers' Qwen3 (a tiny random model:
//! scripts/make_qwen3_decoder_fixtures.py): prefill from ids and from
//! embeddings, cached single-token steps, greedy decoding, cache rollback.

mod common;

use std::path::{Path, PathBuf};

use asr_models::qwen3_asr::text_config::TextConfig;
use asr_models::qwen3_asr::text_decoder::TextDecoder;
use asr_models::Weights;
use common::{values, Fixture};
use mlx::Array;

const NPZ: &str = "qwen3_asr_text/reference.npz";
/// The text model's weight names in a Qwen3-ASR checkpoint.
const PREFIX: &str = "model.language_model";
/// Largest |difference| allowed between our logits and transformers' (f32
/// sums in another order: up to 7e-6 measured; a wrong RoPE layout gives 6).
const TOLERANCE: f32 = 1e-4;
const FIXTURE: Fixture = Fixture {
    npz: NPZ,
    tolerance: TOLERANCE,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_asr_text")
}

fn decoder() -> TextDecoder {
    let dir = fixture_dir();
    let config: TextConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let weights = Weights::load(&dir.join("model.safetensors"), None).unwrap();
    TextDecoder::load(&weights, PREFIX, &config).unwrap()
}

#[test]
fn prefill_from_ids_matches_every_position() {
    let d = decoder();
    let prompt = FIXTURE.ids("prompt_ids");
    let mut cache = d.new_cache(32).unwrap();
    let logits = d.forward(&d.embed(&prompt).unwrap(), &mut cache).unwrap();
    assert_eq!(logits.shape(), [prompt.len() as i32, d.config().vocab_size]);
    FIXTURE.check(
        &values(&logits),
        &FIXTURE.floats("logits_ids"),
        "prefill (ids)",
    );
    assert_eq!(cache.len(), prompt.len() as i32);
}

#[test]
fn prefill_from_embeddings_matches() {
    let d = decoder();
    let embeds = FIXTURE.floats("prompt_embeds");
    let hidden = d.config().hidden_size;
    let length = embeds.len() as i32 / hidden;
    let embeds = Array::from_slice(&embeds, &[1, length, hidden]).unwrap();
    let reference = FIXTURE.floats("logits_embeds");

    let mut cache = d.new_cache(length).unwrap();
    let all = d.forward(&embeds, &mut cache).unwrap();
    FIXTURE.check(&values(&all), &reference, "prefill (embeddings)");

    let mut cache = d.new_cache(length).unwrap();
    let last = d.prefill(&embeds, &mut cache).unwrap();
    let vocab = d.config().vocab_size as usize;
    FIXTURE.check(
        &values(&last),
        &reference[reference.len() - vocab..],
        "prefill, last position",
    );
}

#[test]
fn cached_steps_match_teacher_forcing() {
    let d = decoder();
    let prompt = FIXTURE.ids("prompt_ids");
    let next = FIXTURE.ids("next_ids");
    let reference = FIXTURE.floats("step_logits");
    let vocab = d.config().vocab_size as usize;
    let mut cache = d.new_cache((prompt.len() + next.len()) as i32).unwrap();
    d.prefill(&d.embed(&prompt).unwrap(), &mut cache).unwrap();
    for (i, &token) in next.iter().enumerate() {
        let logits = d.step(token, &mut cache).unwrap();
        let row = &reference[i * vocab..(i + 1) * vocab];
        FIXTURE.check(&values(&logits), row, &format!("step {i}"));
    }
    // The cache is full: one more step is refused, not written past the end.
    assert!(d.step(next[0], &mut cache).is_err());
}

#[test]
fn greedy_tokens_are_identical() {
    let d = decoder();
    let expected = FIXTURE.ids("greedy_ids");
    let tokens = d
        .greedy(&FIXTURE.ids("prompt_ids"), expected.len(), &[])
        .unwrap();
    assert_eq!(tokens, expected);
    // Decoding stops at (and keeps) an end token.
    let eos = expected[3];
    let first = expected.iter().position(|&t| t == eos).unwrap();
    let stopped = d
        .greedy(&FIXTURE.ids("prompt_ids"), expected.len(), &[eos])
        .unwrap();
    assert_eq!(stopped, expected[..=first]);
}

#[test]
fn rollback_gives_the_logits_of_recomputing() {
    let d = decoder();
    let prompt = FIXTURE.ids("prompt_ids");
    let next = FIXTURE.ids("next_ids");
    let reference = FIXTURE.floats("step_logits");
    let vocab = d.config().vocab_size as usize;
    let mut cache = d.new_cache(32).unwrap();
    d.prefill(&d.embed(&prompt).unwrap(), &mut cache).unwrap();
    // Decode other tokens past the prompt, then roll back to it.
    for token in [1, 2, 3, 4] {
        d.step(token, &mut cache).unwrap();
    }
    cache.truncate(prompt.len() as i32).unwrap();
    // Re-decoding the reference tokens from the prompt, one at a time...
    let logits = d.step(next[0], &mut cache).unwrap();
    FIXTURE.check(&values(&logits), &reference[..vocab], "step after rollback");
    // ... and several at once (a prefill onto a non-empty cache, causal mask
    // aligned to its end) agree with transformers.
    cache.truncate(prompt.len() as i32).unwrap();
    let chunk = d.forward(&d.embed(&next).unwrap(), &mut cache).unwrap();
    FIXTURE.check(&values(&chunk), &reference, "chunk after rollback");
    assert_eq!(cache.len(), (prompt.len() + next.len()) as i32);
    assert!(cache.truncate(cache.len() + 1).is_err());
}

#[test]
fn bad_inputs_are_errors() {
    let d = decoder();
    assert!(d.embed(&[d.config().vocab_size]).is_err());
    assert!(d.embed(&[-1]).is_err());
    let mut cache = d.new_cache(4).unwrap();
    let wrong = Array::zeros(&[1, 2, 3], mlx::Dtype::F32).unwrap();
    assert!(d.prefill(&wrong, &mut cache).is_err());
    assert!(d.prefill(&d.embed(&[1; 5]).unwrap(), &mut cache).is_err());
    assert_eq!(cache.len(), 0);
}

#[test]
fn steps_write_the_cache_in_place() {
    let d = decoder();
    let c = d.config();
    // Buffers big enough that a copy of one would stand out from what the
    // other tests, running alongside, allocate.
    let capacity = 1 << 16;
    let buffer_bytes = (c.num_key_value_heads * capacity * c.head_dim * 4) as usize;
    let mut cache = d.new_cache(capacity).unwrap();
    values(
        &d.prefill(&d.embed(&FIXTURE.ids("prompt_ids")).unwrap(), &mut cache)
            .unwrap(),
    );
    let before = mlx::memory_stats().unwrap().active;
    mlx::reset_peak_memory();
    for token in FIXTURE.ids("next_ids") {
        values(&d.step(token, &mut cache).unwrap());
    }
    let peak = mlx::memory_stats().unwrap().peak;
    assert!(
        peak < before + buffer_bytes / 2,
        "a step allocated {} bytes beyond the cache's; one buffer is {buffer_bytes}",
        peak - before
    );
}

#[test]
fn config_reads_either_rope_base() {
    let json = |rope: &str| {
        format!(
            r#"{{"vocab_size": 8, "hidden_size": 4, "intermediate_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 1, "head_dim": 2, {rope}}}"#
        )
    };
    let parse = |rope: &str| serde_json::from_str::<TextConfig>(&json(rope)).unwrap();
    let older = parse(r#""rope_theta": 5000.0"#);
    assert_eq!(older.rope_base(), 5000.0);
    assert!(older.tie_word_embeddings);
    let newer = parse(r#""rope_parameters": {"rope_type": "default", "rope_theta": 7000.0}"#);
    assert_eq!(newer.rope_base(), 7000.0);
}
