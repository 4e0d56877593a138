//! The embedding API: one `Pipeline` shared by threads, hooks plugged in
//! from Rust, settings validated before anything loads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use asr_pipeline::stages::audio::Recording;
use asr_pipeline::stages::output::render;
use asr_pipeline::transcript::SegmentWord;
use asr_pipeline::{
    Aligner, Diarizer, Format, Pipeline, PipelineError, Progress, SpeakerTurn, StageError,
    Transcript, Word,
};

fn jfk() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/audio/jfk.wav");
    path.is_file().then_some(path)
}

fn librispeech() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/librispeech/LibriSpeech/test-clean/1089/134691");
    let mut clips: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    clips.retain(|p| p.extension().is_some_and(|e| e == "flac"));
    clips.sort();
    clips
}

fn pipeline(builder: asr_pipeline::PipelineBuilder) -> Option<Pipeline> {
    match builder.build() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("skipped: cannot load tiny.en: {e}");
            None
        }
    }
}

#[test]
fn one_pipeline_serves_several_threads_with_the_single_threaded_results() {
    let (Some(jfk), Some(pipeline)) = (jfk(), pipeline(Pipeline::builder())) else {
        return;
    };
    let mut files = vec![jfk];
    files.extend(librispeech());
    // The threads are the pipeline's first users: the thread that loaded it
    // has not run it yet.
    let shared = Arc::new(pipeline);
    let handles: Vec<_> = files
        .iter()
        .cloned()
        .map(|file| {
            let pipeline = Arc::clone(&shared);
            std::thread::spawn(move || pipeline.transcribe_file(&file).unwrap().text)
        })
        .collect();
    let together: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let alone: Vec<String> = files
        .iter()
        .map(|f| shared.transcribe_file(f).unwrap().text)
        .collect();
    assert_eq!(together, alone);
}

/// Spreads each segment's time evenly over its words.
struct EvenWords;

impl Aligner for EvenWords {
    fn name(&self) -> &str {
        "even-words"
    }

    fn align(&self, samples: &[f32], transcript: &mut Transcript) -> Result<(), StageError> {
        assert!(!samples.is_empty(), "hooks see the recording");
        for segment in &mut transcript.segments {
            let words: Vec<&str> = segment.text.split_whitespace().collect();
            let step = (segment.end - segment.start) / words.len() as f64;
            segment.words = words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    SegmentWord::from(Word {
                        word: format!(" {w}"),
                        start: segment.start + i as f64 * step,
                        end: segment.start + (i + 1) as f64 * step,
                        probability: 1.0,
                    })
                })
                .collect();
        }
        Ok(())
    }
}

/// Speaker A for the first five seconds, B after.
struct TwoSpeakers;

impl Diarizer for TwoSpeakers {
    fn name(&self) -> &str {
        "two-speakers"
    }

    fn diarize(
        &self,
        recording: Recording<'_>,
        _: &dyn Fn(Progress),
    ) -> Result<Vec<SpeakerTurn>, StageError> {
        let end = recording.duration().unwrap();
        Ok(vec![
            SpeakerTurn {
                start: 0.0,
                end: 5.0,
                speaker: "A".into(),
            },
            SpeakerTurn {
                start: 5.0,
                end,
                speaker: "B".into(),
            },
        ])
    }
}

struct Failing;

impl Diarizer for Failing {
    fn name(&self) -> &str {
        "failing"
    }

    fn diarize(
        &self,
        _: Recording<'_>,
        _: &dyn Fn(Progress),
    ) -> Result<Vec<SpeakerTurn>, StageError> {
        Err(StageError {
            stage: "failing".into(),
            message: "no speakers today".into(),
        })
    }
}

#[test]
fn hooks_put_words_and_speakers_into_the_transcript_and_outputs() {
    let Some(jfk) = jfk() else { return };
    let builder = Pipeline::builder().aligner(EvenWords).diarizer(TwoSpeakers);
    let Some(pipeline) = pipeline(builder) else {
        return;
    };
    let t = pipeline.transcribe_file(&jfk).unwrap();
    // openai-whisper's segments: 0.00–7.74 and 7.74–10.74.
    let speakers: Vec<_> = t.segments.iter().map(|s| s.speaker.as_deref()).collect();
    assert_eq!(speakers, vec![Some("A"), Some("B")]);
    let turns: Vec<_> = t.speakers.iter().map(|s| s.speaker.as_str()).collect();
    assert_eq!(turns, ["A", "B"]);
    let first_words = &t.segments[0].words;
    assert_eq!(first_words[0].word.word, " And");
    assert_eq!(first_words[0].speaker.as_deref(), Some("A"));
    assert_eq!(first_words.last().unwrap().speaker.as_deref(), Some("B"));

    let json: serde_json::Value = serde_json::from_str(&render(&t, Format::Json)).unwrap();
    assert_eq!(json["segments"][0]["speaker"], "A");
    assert_eq!(json["segments"][0]["words"][0]["word"], " And");
    assert_eq!(json["segments"][0]["words"][0]["speaker"], "A");
    assert_eq!(json["segments"][0]["words"][0]["start"], 0.0);
    let srt = render(&t, Format::Srt);
    assert!(srt.contains("00:00:07,740\n[A] And so my fellow"), "{srt}");
    let after: Vec<&str> = t
        .timings
        .after_recognition
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(after, ["even-words", "two-speakers"]);
    assert!(t.timings.transcribe > 0.0);

    let failing = pipeline_with_failing_hook();
    if let Some(p) = failing {
        let err = p.transcribe_file(&jfk).unwrap_err();
        assert!(matches!(err, PipelineError::Stage(_)));
        assert_eq!(err.to_string(), "failing: no speakers today");
    }
}

fn pipeline_with_failing_hook() -> Option<Pipeline> {
    pipeline(Pipeline::builder().diarizer(Failing))
}

#[test]
fn samples_that_are_not_finite_are_refused_not_transcribed() {
    let Some(pipeline) = pipeline(Pipeline::builder()) else {
        return;
    };
    let mut samples = vec![0.0f32; 32_000];
    samples[24_000] = f32::NAN;
    let err = pipeline.transcribe(&samples).unwrap_err().to_string();
    assert_eq!(
        err,
        "samples: non-finite samples (NaN or infinity) at 1.50 s"
    );
    let mut stream = Arc::new(pipeline).stream(Default::default()).unwrap();
    stream.push(&samples[..16_000]).unwrap();
    samples[20_000] = f32::INFINITY;
    let err = stream.push(&samples[16_000..]).unwrap_err().to_string();
    assert_eq!(
        err,
        "samples: non-finite samples (NaN or infinity) at 1.25 s"
    );
}

#[test]
fn bad_settings_are_all_reported_before_the_model_loads() {
    let toml =
        "model = \"no-such-model\"\n[decode]\ntemperature = []\nmax_initial_timestamp = -1.0\n";
    let err = match Pipeline::from_toml(toml, Path::new(".")) {
        Err(e) => e,
        Ok(_) => panic!("invalid settings accepted"),
    };
    let PipelineError::Invalid(problems) = err else {
        panic!("not a settings error: {err}");
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("decode.temperature"));
    assert!(problems[1].starts_with("decode.max_initial_timestamp"));
    assert!(problems[2].starts_with("model: \"no-such-model\" is not"));
}

#[test]
fn a_config_is_checked_whole_before_any_stage_loads() {
    // An existing folder passes [align]'s own check but holds no model:
    // loading the aligner before checking [decode] would fail on it.
    let not_a_model = tempfile::tempdir().unwrap();
    let toml = format!(
        "[decode]\nbeam_size = 0\n[align]\nmodel = {:?}\n",
        not_a_model.path()
    );
    let config = asr_pipeline::Config::from_toml(&toml, Path::new(".")).unwrap();
    let refusals = [
        Pipeline::plan(&config).map(drop),
        Pipeline::from_config(&config).map(drop),
    ];
    for refusal in refusals {
        match refusal {
            Err(PipelineError::Invalid(problems)) => {
                assert_eq!(problems, ["decode.beam_size: must be at least 1"])
            }
            other => panic!("not refused for its settings: {other:?}"),
        }
    }

    let config = asr_pipeline::Config::from_toml("[decode]\nbeam_size = 2\n", Path::new("."));
    let planned = Pipeline::plan(&config.unwrap()).unwrap();
    let Some(loaded) = pipeline(Pipeline::builder().decode(asr_pipeline::DecodeOptions {
        beam_size: Some(2),
        ..Default::default()
    })) else {
        return;
    };
    assert_eq!(&planned, loaded.stages());
}

#[test]
fn with_vad_only_speech_is_transcribed_at_its_original_time() {
    let Some(jfk) = jfk() else { return };
    let vad = asr_pipeline::stages::vad::VadOptions::default();
    let Some(pipeline) = pipeline(Pipeline::builder().vad(vad)) else {
        return;
    };
    assert!(pipeline.stages().stages.iter().any(|s| s.name == "vad"));
    // 20 s of digital silence, jfk, 10 s of silence.
    let speech = asr_pipeline::stages::audio::load_audio(&jfk).unwrap();
    let mut samples = vec![0f32; 20 * 16_000];
    samples.extend_from_slice(&speech);
    samples.extend(std::iter::repeat_n(0f32, 10 * 16_000));
    let with_vad = pipeline.transcribe(&samples).unwrap();
    let alone = pipeline.transcribe(&speech).unwrap();
    // The same words (the padding around the speech may move punctuation).
    use asr_pipeline::wer::words;
    assert_eq!(words(&with_vad.text), words(&alone.text));
    let first = &with_vad.segments[0];
    assert!(first.start >= 19.5 && first.start <= 20.5, "{first:?}");
    let last = with_vad.segments.last().unwrap();
    assert!(last.end <= 31.5, "{last:?}");
    // WhisperX-style packing of the speech into 30 s batches: same result here.
    let packed = asr_pipeline::stages::vad::VadOptions {
        pack_into_windows: true,
        ..asr_pipeline::stages::vad::VadOptions::default()
    };
    let packed = Pipeline::builder().vad(packed).build().unwrap();
    let t = packed.transcribe(&samples).unwrap();
    assert_eq!(words(&t.text), words(&alone.text));
    assert!((t.segments[0].start - first.start).abs() < 1e-9);
    // Nothing but silence: no text at all, where Whisper alone makes up a word.
    let silence = vec![0f32; 30 * 16_000];
    let silent = pipeline.transcribe(&silence).unwrap();
    assert!(
        silent.segments.is_empty() && silent.text.is_empty(),
        "{silent:?}"
    );
    let without_vad = Pipeline::builder().build().unwrap();
    let hallucinated = without_vad.transcribe(&silence).unwrap();
    eprintln!("30 s of silence without VAD: {:?}", hallucinated.text);
    assert!(!hallucinated.text.trim().is_empty());
}

#[test]
fn files_transcribed_together_get_their_own_transcripts_and_errors() {
    let (Some(jfk), Some(pipeline)) = (jfk(), pipeline(Pipeline::builder())) else {
        return;
    };
    let missing = std::env::temp_dir().join("mlx-asr-no-such-file.wav");
    let mut files = vec![jfk, missing.clone()];
    files.extend(librispeech());
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let results = pipeline.transcribe_files(&paths, &|_, _| {});
    assert_eq!(results.len(), files.len());
    for (path, result) in paths.iter().zip(&results) {
        if *path == missing {
            let error = result.as_ref().unwrap_err().to_string();
            assert!(error.contains("mlx-asr-no-such-file.wav"), "{error}");
            continue;
        }
        let together = result.as_ref().unwrap();
        let alone = pipeline.transcribe_file(path).unwrap();
        assert_eq!(together.text, alone.text, "{}", path.display());
        assert_eq!(together.segments.len(), alone.segments.len());
        // jfk.wav and the LibriSpeech clips (where present) shared a batch.
        let batched = usize::from(files.len() > 2);
        assert_eq!(
            together.timings.batched_windows,
            batched,
            "{}",
            path.display()
        );
    }
}

/// With `[vad] pack_into_windows`, the packed pieces of a recording are
/// independent windows: decoded side by side, they keep the transcript
/// they get one at a time.
#[test]
fn packed_speech_pieces_decoded_together_keep_their_transcript() {
    let Some(jfk) = jfk() else {
        return;
    };
    let speech = asr_pipeline::stages::audio::load_audio(&jfk).unwrap();
    // Four times jfk with 3 s pauses: two pieces of ≤ 30 s.
    let mut samples = Vec::new();
    for _ in 0..4 {
        samples.extend_from_slice(&speech);
        samples.extend(std::iter::repeat_n(0f32, 3 * 16_000));
    }
    let packed = |batch_size| {
        let vad = asr_pipeline::stages::vad::VadOptions {
            pack_into_windows: true,
            ..asr_pipeline::stages::vad::VadOptions::default()
        };
        let decode = asr_pipeline::DecodeOptions {
            batch_size,
            ..asr_pipeline::DecodeOptions::default()
        };
        pipeline(Pipeline::builder().vad(vad).decode(decode))
    };
    let (Some(alone), Some(together)) = (packed(1), packed(8)) else {
        return;
    };
    let (a, b) = (
        alone.transcribe(&samples).unwrap(),
        together.transcribe(&samples).unwrap(),
    );
    assert_eq!(a.text, b.text);
    let times = |t: &Transcript| -> Vec<(f64, f64, String)> {
        t.segments
            .iter()
            .map(|s| (s.start, s.end, s.text.clone()))
            .collect()
    };
    assert_eq!(times(&a), times(&b));
    assert!(b.segments.last().unwrap().end > 40.0, "{:?}", times(&b));
    assert_eq!(
        (a.timings.batched_windows, b.timings.batched_windows),
        (0, 2)
    );
}

/// Panics on recordings shorter than five seconds: a bug in a hook.
struct PanicsOnShortRecordings;

impl Diarizer for PanicsOnShortRecordings {
    fn name(&self) -> &str {
        "panics-on-short-recordings"
    }

    fn diarize(
        &self,
        recording: Recording<'_>,
        _: &dyn Fn(Progress),
    ) -> Result<Vec<SpeakerTurn>, StageError> {
        let samples = recording.samples().unwrap();
        assert!(samples.len() >= 5 * 16_000, "a recording this short");
        Ok(Vec::new())
    }
}

#[test]
fn a_panic_while_transcribing_one_file_is_its_error_and_the_others_go_on() {
    let (Some(jfk), Some(pipeline)) = (
        jfk(),
        pipeline(Pipeline::builder().diarizer(PanicsOnShortRecordings)),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&short, spec).unwrap();
    for _ in 0..16_000 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let paths = [short.as_path(), jfk.as_path()];
    let results = pipeline.transcribe_files(&paths, &|_, _| {});
    let error = results[0].as_ref().unwrap_err();
    assert!(matches!(error, PipelineError::Internal(_)), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with("internal error while transcribing ")
            && text.contains("short.wav: a recording this short")
            && text.ends_with("(a bug: please report it)"),
        "{text}"
    );
    assert!(results[1]
        .as_ref()
        .unwrap()
        .text
        .contains("fellow Americans"));
}

/// A server's requests: recordings in memory transcribed together with
/// settings of their own, each as a pipeline built with those settings
/// transcribes it, a stage after recognition included; settings a model
/// cannot honour are named before anything runs.
#[test]
fn recordings_transcribed_together_with_their_own_settings() {
    let (Some(jfk), Some(pipeline)) = (jfk(), pipeline(Pipeline::builder().aligner(EvenWords)))
    else {
        return;
    };
    let mut options = pipeline.decode_options().clone();
    options.initial_prompt = Some("JFK's inaugural address, 1961.".into());
    options.without_timestamps = true;
    let worded = Pipeline::builder()
        .decode(options.clone())
        .aligner(EvenWords)
        .build()
        .unwrap();
    let mut files = vec![jfk];
    files.extend(librispeech());
    let samples: Vec<Vec<f32>> = files
        .iter()
        .map(|f| asr_pipeline::stages::audio::load_audio(f).unwrap())
        .collect();
    let recordings: Vec<Recording> = samples.iter().map(|s| Recording::Samples(s)).collect();
    let together = pipeline.transcribe_many(&recordings, &options, &|_, _| {});
    for (samples, result) in samples.iter().zip(together) {
        let together = result.unwrap();
        let alone = worded.transcribe(samples).unwrap();
        assert_eq!(together.text, alone.text);
        assert_eq!(together.segments.len(), alone.segments.len());
        let words = |t: &Transcript| t.segments.iter().map(|s| s.words.len()).sum::<usize>();
        assert!(words(&together) > 0, "the aligner ran");
        assert_eq!(words(&together), words(&alone));
        assert_eq!(together.timings.batched_windows, 1, "decoded side by side");
    }
    assert!(pipeline.check_decode(&options).is_empty());
    let refused = asr_pipeline::DecodeOptions {
        beam_size: Some(0),
        ..options
    };
    let problems = pipeline.check_decode(&refused);
    assert!(
        problems.iter().any(|p| p.starts_with("decode.beam_size")),
        "{problems:?}"
    );
}
