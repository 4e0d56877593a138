//! Embedding the pipeline: load a model once, transcribe files with it.
//!
//! cargo run --release --example transcribe -- examples/audio/jfk.wav [model]

use asr_pipeline::audio::load_audio;
use asr_pipeline::{DecodeOptions, Transcriber};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let audio = args
        .next()
        .unwrap_or_else(|| "examples/audio/jfk.wav".into());
    let model = args.next().unwrap_or_else(|| "tiny.en".into());
    // Registry names are fetched and converted once; paths may be any checkpoint.
    let transcriber = Transcriber::load(&model)?;
    let samples = load_audio(audio.as_ref())?;
    let options = DecodeOptions::default(); // openai-whisper's transcribe() defaults
    let transcript = transcriber.transcribe(&samples, &options, &|p| {
        eprintln!("{:.0} s transcribed", p.done)
    })?;
    for segment in &transcript.segments {
        println!(
            "[{:7.2} → {:7.2}] {}",
            segment.start,
            segment.end,
            segment.text.trim()
        );
    }
    Ok(())
}
