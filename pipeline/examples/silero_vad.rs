//! Times Silero VAD on MLX over a 16 kHz WAV file as a run feeds it (one
//! block of audio at a time through the voice-activity stage) and prints one
//! JSON line: audio seconds, model load seconds, detection seconds, frames,
//! regions. Used by scripts/bench-vad.
//!
//! `cargo run --release -p asr-pipeline --example silero_vad -- FILE.wav`
//! (threads: MLX_ASR_THREADS and OPENBLAS_NUM_THREADS).

use std::time::Instant;

use asr_pipeline::stages::audio::{load_audio, BLOCK_SAMPLES, SAMPLE_RATE};
use asr_pipeline::stages::vad::silero::FRAME;
use asr_pipeline::stages::vad::SileroSettings;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: silero_vad FILE.wav")?;
    let samples = load_audio(path.as_ref())?;
    let started = Instant::now();
    let dir = asr_converters::silero::fetch_silero_vad()?;
    let model = asr_models::silero::Silero::load(&dir)?;
    let load_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut stage = SileroSettings::default().stage_with(model)?;
    let mut regions = 0;
    for block in samples.chunks(BLOCK_SAMPLES) {
        regions += stage.push(block)?.len();
    }
    regions += stage.finish()?.len();
    let vad_s = started.elapsed().as_secs_f64();
    println!(
        "{{\"audio_s\": {:.3}, \"load_s\": {load_s:.4}, \"vad_s\": {vad_s:.4}, \"frames\": {}, \"regions\": {regions}}}",
        samples.len() as f64 / SAMPLE_RATE as f64,
        samples.len() / FRAME + 1
    );
    Ok(())
}
