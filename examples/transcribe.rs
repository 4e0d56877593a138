//! Embedding the pipeline: build it once, transcribe files with it (from
//! any number of threads: `Pipeline` is `Send + Sync`).
//!
//! cargo run --release --example transcribe -- examples/audio/jfk.wav [model]

use asr_pipeline::{DecodeOptions, Pipeline};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let audio = args
        .next()
        .unwrap_or_else(|| "examples/audio/jfk.wav".into());
    let model = args.next().unwrap_or_else(|| "tiny.en".into());
    // Registry names are fetched and converted once; paths may be any checkpoint.
    let pipeline = Pipeline::builder()
        .model(model)
        .decode(DecodeOptions::default()) // openai-whisper's transcribe() defaults
        .build()?;
    let transcript = pipeline.transcribe_file(audio.as_ref())?;
    for segment in &transcript.segments {
        println!(
            "[{:7.2} → {:7.2}] {}",
            segment.start,
            segment.end,
            segment.text.trim()
        );
    }
    let t = &transcript.timings;
    eprintln!(
        "{:.1} s of audio in {:.2} s: mel {:.2} s, encoder {:.2} s ({} windows), decoder {:.2} s ({} tokens, {:.1} ms/token)",
        t.audio,
        t.transcribe,
        t.mel,
        t.encoder,
        t.windows,
        t.decoder,
        t.tokens,
        1000.0 * t.decoder / t.tokens.max(1) as f64
    );
    Ok(())
}
