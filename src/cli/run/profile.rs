//! `pipeline run --profile`: where one file's time went.

/// Per-stage times of one file, the decoder split by kind of work, each
/// with its share of the whole.
pub fn profile_table(t: &asr_pipeline::Timings) -> String {
    let after: f64 = t.after_recognition.iter().map(|(_, secs)| secs).sum();
    let total = t.transcribe + after;
    let per = |n: usize| n.max(1) as f64;
    let ms_per_token = |secs: f64| format!("{:.2} ms/token", 1e3 * secs / per(t.tokens));
    let rows = [
        ("audio + log-mel", t.mel, String::new()),
        (
            "encoder",
            t.encoder,
            format!(
                "{} windows, {:.3} s/window",
                t.windows,
                t.encoder / per(t.windows)
            ),
        ),
        (
            "decoder",
            t.decoder,
            format!(
                "{} tokens, {}{}",
                t.tokens,
                ms_per_token(t.decoder),
                match t.batched_windows {
                    0 => String::new(),
                    n => format!(", {n}/{} windows batched", t.windows),
                }
            ),
        ),
        (
            "  prefill per pass",
            t.decoder_prompt,
            format!(
                "{} passes, {:.1} ms/pass",
                t.decoder_passes,
                1e3 * t.decoder_prompt / per(t.decoder_passes)
            ),
        ),
        ("  blocks", t.decoder_blocks, ms_per_token(t.decoder_blocks)),
        (
            "  vocabulary projection",
            t.decoder_logits,
            ms_per_token(t.decoder_logits),
        ),
        (
            "  token rules + pick",
            t.decoder_picking,
            ms_per_token(t.decoder_picking),
        ),
        ("word timestamps", t.word_timestamps, String::new()),
        (
            "other (segments, prompts)",
            t.transcribe - t.mel - t.encoder - t.decoder - t.word_timestamps,
            String::new(),
        ),
    ];
    let rows = rows.into_iter().chain(
        t.after_recognition
            .iter()
            .map(|(name, secs)| (name.as_str(), *secs, String::new())),
    );
    let mut out = format!("{:<26} {:>9} {:>7}\n", "stage", "seconds", "share");
    // The decoder's parts are Whisper's; other families leave them empty.
    let rows = rows.filter(|(stage, secs, _)| !(stage.starts_with("  ") && *secs == 0.0));
    for (stage, secs, note) in rows {
        let share = 100.0 * secs / total.max(f64::EPSILON);
        out += &format!("{stage:<26} {secs:>9.3} {share:>6.1}%  {note}\n");
    }
    out += &format!(
        "{:<26} {total:>9.3} {:>7}  {:.1} s of audio, real-time factor {:.3}\n",
        "total",
        "",
        t.audio,
        total / t.audio.max(f64::EPSILON)
    );
    out
}
