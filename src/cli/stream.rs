//! `pipeline stream`: live transcription of the microphone, standard
//! input or a file, with partial text updated in place and final text
//! appended, or one JSON event per line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use asr_converters::atomic::write_atomically;
use asr_pipeline::stages::audio::AudioStream;
use asr_pipeline::stream::replay::{drive, quantile, replay, Clock, Emitted, Replay};
use asr_pipeline::stream::source::{Source, SourceKind};
use asr_pipeline::stream::EventKind;
use asr_pipeline::{Config, Pipeline};

#[derive(clap::Args)]
pub struct StreamArgs {
    /// The TOML configuration: model, `[decode]`, `[vad]` and `[stream]`.
    config: PathBuf,
    /// Stream this file instead of the microphone (any format `run` reads).
    #[arg(long, conflicts_with = "stdin")]
    input: Option<PathBuf>,
    /// Read standard input: a WAV stream (`ffmpeg … -f wav -`) or raw
    /// s16le 16 kHz mono samples.
    #[arg(long)]
    stdin: bool,
    /// With --input: deliver the file at real time, as a microphone would.
    /// Without, it is replayed on a simulated clock: as fast as the machine
    /// goes, with events timed as a real-time run would time them.
    #[arg(long, requires = "input")]
    realtime: bool,
    /// `text`: partial text updated in place on a terminal, final text
    /// appended; `jsonl`: one event per line
    /// (`{"type": "partial"|"final", "text", "start", "end", "words"}`).
    #[arg(long, value_enum, default_value = "text")]
    format: StreamFormat,
    /// Write a JSON report (latencies, real-time factor, final text, the
    /// events and when each came out) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Copy, Clone, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamFormat {
    Text,
    Jsonl,
}

pub fn run(args: StreamArgs) -> Result<()> {
    let config = Config::from_file(&args.config)?;
    if config.align.is_some() || config.diarization.is_some() {
        tracing::warn!("[align] and [diarization] do not apply to streams: ignored");
    }
    let options = config.stream.clone();
    let pipeline = Arc::new(
        Pipeline::from_config(&Config {
            align: None,
            diarization: None,
            ..config
        })
        .with_context(|| args.config.display().to_string())?,
    );
    let mut stream = pipeline.stream(options)?;
    let mut printer = Printer::new(args.format);
    let replayed = match (&args.input, args.realtime) {
        (Some(path), false) => {
            let blocks = AudioStream::open(path)?.map(|b| b.map_err(anyhow::Error::from));
            replay(&mut stream, blocks, Clock::Measured, |e| printer.print(e))?
        }
        (input, _) => {
            let kind = match (input, args.stdin) {
                (Some(path), _) => SourceKind::File {
                    path: path.clone(),
                    realtime: true,
                },
                (None, true) => SourceKind::Stdin,
                (None, false) => SourceKind::Microphone,
            };
            let source = Arc::new(Source::start(kind)?);
            let stopper = Arc::clone(&source);
            // Ctrl-C ends the input; what was heard is still made final.
            ctrlc::set_handler(move || stopper.stop()).context("installing the Ctrl-C handler")?;
            drive(
                &mut stream,
                || source.next_available().map_err(anyhow::Error::from),
                |e| printer.print(e),
            )?
        }
    };
    printer.end();
    if let Some(path) = &args.report {
        write_atomically(path, report(&replayed).to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Prints events as they come.
struct Printer {
    format: StreamFormat,
    terminal: bool,
    /// Whether a partial is shown after the final text.
    shown: bool,
}

impl Printer {
    fn new(format: StreamFormat) -> Printer {
        Printer {
            format,
            terminal: std::io::stdout().is_terminal(),
            shown: false,
        }
    }

    fn print(&mut self, emitted: &Emitted) {
        let event = &emitted.event;
        let mut out = std::io::stdout().lock();
        let _ = match self.format {
            StreamFormat::Jsonl => writeln!(
                out,
                "{}",
                serde_json::to_string(event).expect("events serialize")
            ),
            // A pipe gets final text only, one line per final.
            StreamFormat::Text if !self.terminal => match event.kind {
                EventKind::Final => writeln!(out, "{}", event.text),
                EventKind::Partial => Ok(()),
            },
            // A terminal: final text stays, the partial after it is
            // redrawn (dimmed) in place.
            StreamFormat::Text => {
                if self.shown {
                    let _ = write!(out, "\r\x1b[K");
                    self.shown = false;
                }
                match event.kind {
                    EventKind::Final => writeln!(out, "{}", event.text),
                    EventKind::Partial if event.text.is_empty() => Ok(()),
                    EventKind::Partial => {
                        self.shown = true;
                        write!(out, "\x1b[2m{}\x1b[0m", event.text)
                    }
                }
            }
        };
        let _ = out.flush();
    }

    fn end(&mut self) {
        if self.shown {
            print!("\r\x1b[K");
            let _ = std::io::stdout().flush();
        }
    }
}

/// The report of a stream: latency of confirmed words (median, p90),
/// latency of the first text, the real-time factor, the final text and
/// every event with the time it came out.
fn report(replay: &Replay) -> serde_json::Value {
    let latencies = replay.confirmed_word_latencies();
    serde_json::json!({
        "audio_seconds": replay.audio_seconds,
        "compute_seconds": replay.compute_seconds,
        "real_time_factor": replay.real_time_factor(),
        "confirmed_words": latencies.len(),
        "confirmed_latency_median": quantile(&latencies, 0.5),
        "confirmed_latency_p90": quantile(&latencies, 0.9),
        "first_text_latency": replay.first_text_latency(),
        "final_text": replay.final_text(),
        "events": replay.events.iter().map(|e| serde_json::json!({"at": e.at, "event": e.event})).collect::<Vec<_>>(),
    })
}
