//! Voice activity detection on real speech (jfk.wav, LibriSpeech from
//! ../shared/data) placed at known offsets in long silence and noise: the
//! regions cover the speech and nothing else, the options do what they say,
//! times map back, and with tiny.en the gathered speech transcribes to the
//! right words at the right times where the raw recording does not.

use std::path::Path;

use asr_pipeline::stages::audio::{load_audio, AudioStream, SAMPLE_RATE};
use asr_pipeline::stages::vad::{
    detect_speech, SpeechBlocks, SpeechRegion, SpeechTimeline, VadOptions,
};
use asr_pipeline::{DecodeOptions, Transcript, WhisperTranscriber};

const RATE: usize = SAMPLE_RATE as usize;

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// jfk.wav (11 s) from the repository's example.
fn jfk() -> Vec<f32> {
    load_audio(&here().join("../examples/audio/jfk.wav")).unwrap()
}

/// Three LibriSpeech test-clean utterances, when ../shared/data is present.
fn librispeech() -> Option<Vec<Vec<f32>>> {
    let dir = here().join("../../shared/data/librispeech/LibriSpeech/test-clean/1089");
    if !dir.is_dir() {
        eprintln!("skipped: ../shared/data/librispeech not present");
        return None;
    }
    let clips = [
        "134686/1089-134686-0000.flac",
        "134686/1089-134686-0001.flac",
        "134691/1089-134691-0000.flac",
    ];
    Some(
        clips
            .iter()
            .map(|c| load_audio(&dir.join(c)).unwrap())
            .collect(),
    )
}

/// Uniform white noise in [-amp, amp] (xorshift, reproducible).
fn noise(seconds: f64, amp: f32, seed: &mut u64) -> Vec<f32> {
    let n = (seconds * RATE as f64) as usize;
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * amp
        })
        .collect()
}

/// A recording of clips with non-speech between them, and where each
/// clip lies, in samples.
struct Placed {
    samples: Vec<f32>,
    clips: Vec<(usize, usize)>,
}

impl Placed {
    fn new() -> Self {
        Placed {
            samples: Vec::new(),
            clips: Vec::new(),
        }
    }

    fn gap(mut self, part: Vec<f32>) -> Self {
        self.samples.extend(part);
        self
    }

    fn clip(mut self, clip: &[f32]) -> Self {
        let start = self.samples.len();
        self.samples.extend_from_slice(clip);
        self.clips.push((start, self.samples.len()));
        self
    }
}

fn seconds(regions: &[SpeechRegion]) -> Vec<(f64, f64)> {
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    regions
        .iter()
        .map(|r| (r2(r.start_s()), r2(r.end_s())))
        .collect()
}

/// Samples of `[a, b)` inside some region.
fn covered(regions: &[SpeechRegion], (a, b): (usize, usize)) -> usize {
    regions
        .iter()
        .map(|r| r.end.min(b).saturating_sub(r.start.max(a)))
        .sum()
}

/// Every region lies within a clip widened by `slack` samples, and every
/// clip is covered to at least `share`.
fn check_regions(placed: &Placed, regions: &[SpeechRegion], slack: usize, share: f64) {
    for r in regions {
        assert!(
            placed
                .clips
                .iter()
                .any(|&(a, b)| r.start + slack >= a && r.end <= b + slack),
            "region {:.2}–{:.2} s is outside the speech; clips {:?}",
            r.start_s(),
            r.end_s(),
            placed.clips
        );
    }
    for &(a, b) in &placed.clips {
        let got = covered(regions, (a, b)) as f64 / (b - a) as f64;
        assert!(
            got >= share,
            "clip {:.2}–{:.2} s covered {:.0} %: {:?}",
            a as f64 / RATE as f64,
            b as f64 / RATE as f64,
            got * 100.0,
            seconds(regions)
        );
    }
    for w in regions.windows(2) {
        assert!(w[0].end <= w[1].start, "{:?}", seconds(regions));
    }
}

/// Padding plus 300 ms of slack (WebRTC's smoothing window; Silero
/// decides within a few 32 ms frames).
fn slack(opts: &VadOptions) -> usize {
    (opts.speech_pad_ms() + 300) as usize * RATE / 1000
}

/// Both detectors with their defaults.
fn detectors() -> [VadOptions; 2] {
    [VadOptions::default(), VadOptions::webrtc()]
}

#[test]
fn jfk_in_noise_and_silence_is_found_and_nothing_else() {
    let mut seed = 1;
    let placed = Placed::new()
        .gap(noise(20.0, 0.003, &mut seed))
        .clip(&jfk())
        .gap(vec![0.0; 10 * RATE]);
    let webrtc_modes = (0..=3).map(|mode| VadOptions {
        mode: Some(mode),
        ..VadOptions::webrtc()
    });
    for opts in webrtc_modes.chain([VadOptions::default()]) {
        let regions = detect_speech(&placed.samples, &opts).unwrap();
        eprintln!("{} {:?}: {:?}", opts.model, opts.mode, seconds(&regions));
        check_regions(&placed, &regions, slack(&opts), 0.95);
    }
}

#[test]
fn librispeech_utterances_in_noise_are_found_and_nothing_else() {
    let Some(clips) = librispeech() else { return };
    let mut seed = 2;
    let mut placed = Placed::new();
    for clip in &clips {
        placed = placed.gap(noise(25.0, 0.005, &mut seed)).clip(clip);
    }
    placed = placed.gap(noise(25.0, 0.005, &mut seed));
    eprintln!("clips {:?}", placed.clips);
    for opts in detectors() {
        let regions = detect_speech(&placed.samples, &opts).unwrap();
        eprintln!("{} regions {:?}", opts.model, seconds(&regions));
        check_regions(&placed, &regions, slack(&opts), 0.8);
        let speech: usize = regions.iter().map(|r| r.len()).sum();
        assert!(speech * 5 < placed.samples.len());
    }
}

#[test]
fn silence_and_noise_alone_have_no_speech() {
    for opts in detectors() {
        let mut seed = 3;
        assert!(detect_speech(&[], &opts).unwrap().is_empty());
        assert!(detect_speech(&[0.0; 100], &opts).unwrap().is_empty());
        assert!(detect_speech(&vec![0.0; 30 * RATE], &opts)
            .unwrap()
            .is_empty());
        for amp in [0.001, 0.003, 0.01] {
            let regions = detect_speech(&noise(30.0, amp, &mut seed), &opts).unwrap();
            let model = &opts.model;
            assert!(
                regions.is_empty(),
                "{model} noise {amp}: {:?}",
                seconds(&regions)
            );
        }
    }
}

#[test]
fn min_silence_merges_and_min_speech_drops_real_speech() {
    let jfk = jfk();
    let placed = Placed::new()
        .gap(vec![0.0; 5 * RATE])
        .clip(&jfk)
        .gap(vec![0.0; 8 * RATE])
        .clip(&jfk)
        .gap(vec![0.0; 5 * RATE]);
    // WebRTC's merging; Silero's rules are checked against faster-whisper
    // in tests/silero.rs.
    let defaults = VadOptions::webrtc();
    let apart = detect_speech(&placed.samples, &defaults).unwrap();
    assert_eq!(apart.len(), 2, "{:?}", seconds(&apart));
    let merged = detect_speech(
        &placed.samples,
        &VadOptions {
            min_silence_ms: Some(10_000),
            max_speech_s: Some(f64::INFINITY), // the merged region lasts 30.6 s
            ..defaults.clone()
        },
    )
    .unwrap();
    assert_eq!(merged, [SpeechRegion::new(apart[0].start, apart[1].end)]);
    // jfk's pauses (up to ~0.8 s) separate regions once merging is off.
    let split = detect_speech(
        &placed.samples,
        &VadOptions {
            min_silence_ms: Some(0),
            speech_pad_ms: Some(0),
            ..defaults.clone()
        },
    )
    .unwrap();
    assert!(split.len() > 4, "{:?}", seconds(&split));
    // Nothing of 11 s lasts 12 s.
    let dropped = detect_speech(
        &placed.samples,
        &VadOptions {
            min_speech_ms: Some(12_000),
            ..defaults
        },
    )
    .unwrap();
    assert!(dropped.is_empty(), "{:?}", seconds(&dropped));
}

#[test]
fn max_speech_splits_real_speech_into_touching_pieces() {
    let mut seed = 4;
    let placed = Placed::new()
        .gap(noise(3.0, 0.002, &mut seed))
        .clip(&jfk())
        .gap(noise(3.0, 0.002, &mut seed));
    // WebRTC's cuts; Silero's split is checked against faster-whisper in
    // tests/silero.rs.
    let whole = detect_speech(&placed.samples, &VadOptions::webrtc()).unwrap();
    assert_eq!(whole.len(), 1);
    let opts = VadOptions {
        max_speech_s: Some(4.0),
        ..VadOptions::webrtc()
    };
    let pieces = detect_speech(&placed.samples, &opts).unwrap();
    eprintln!("{:?}", seconds(&pieces));
    assert!(pieces.len() >= 3);
    assert!(pieces.iter().all(|p| p.len() <= 4 * RATE));
    assert_eq!(pieces[0].start, whole[0].start);
    assert_eq!(pieces.last().unwrap().end, whole[0].end);
    for w in pieces.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
    // Each cut lies in a pause: the 30 ms around it is far quieter than
    // the speech on average.
    let energy = |a: usize, b: usize| {
        placed.samples[a..b].iter().map(|x| x * x).sum::<f32>() / (b - a) as f32
    };
    let mean = energy(whole[0].start, whole[0].end);
    for w in pieces.windows(2) {
        let cut = w[0].end;
        let around = energy(cut - 240, cut + 240);
        assert!(around < mean / 4.0, "cut at {cut}: {around} vs {mean}");
    }
}

#[test]
fn padding_is_clamped_at_the_edges_of_the_recording() {
    let jfk = jfk();
    let opts = VadOptions {
        speech_pad_ms: Some(1000),
        ..VadOptions::webrtc()
    };
    let regions = detect_speech(&jfk, &opts).unwrap();
    assert_eq!(regions, [SpeechRegion::new(0, jfk.len())]);
    let unpadded = detect_speech(
        &jfk,
        &VadOptions {
            speech_pad_ms: Some(0),
            ..VadOptions::webrtc()
        },
    )
    .unwrap();
    assert!(unpadded[0].start > 0 && unpadded.last().unwrap().end < jfk.len());
}

#[test]
fn times_on_the_gathered_speech_map_back_into_their_region() {
    let mut seed = 5;
    let jfk = jfk();
    let placed = Placed::new()
        .gap(noise(7.0, 0.003, &mut seed))
        .clip(&jfk)
        .gap(vec![0.0; 9 * RATE])
        .clip(&jfk[..5 * RATE])
        .gap(noise(4.0, 0.003, &mut seed));
    let regions = detect_speech(&placed.samples, &VadOptions::default()).unwrap();
    assert!(regions.len() >= 2, "{:?}", seconds(&regions));
    let timeline = SpeechTimeline::new(regions.clone());
    let gathered = timeline.gather(&placed.samples);
    assert_eq!(
        gathered.len(),
        regions.iter().map(|r| r.len()).sum::<usize>()
    );
    for (k, r) in regions.iter().enumerate() {
        for step in 0..20 {
            let x = timeline.offset(k) + r.len() * step / 20;
            // The compacted sample is the original one.
            assert_eq!(
                gathered[x],
                placed.samples[r.start + x - timeline.offset(k)]
            );
            let back = timeline.to_original(x as f64 / RATE as f64);
            assert!(back >= r.start_s() - 1e-9 && back < r.end_s(), "{k} {step}");
            assert!((timeline.to_compacted(back) - x as f64 / RATE as f64).abs() < 1e-6);
        }
    }
}

/// `samples` as a 32-bit float WAV file.
fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE as u32,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// 20 s of low noise, jfk at 20 s, 10 s of silence.
fn noisy_jfk() -> Placed {
    let mut seed = 6;
    Placed::new()
        .gap(noise(20.0, 0.003, &mut seed))
        .clip(&jfk())
        .gap(vec![0.0; 10 * RATE])
}

#[test]
fn streaming_a_file_hands_out_the_gathered_speech() {
    let placed = noisy_jfk();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noisy_jfk.wav");
    write_wav(&path, &placed.samples);
    let samples = load_audio(&path).unwrap();
    for opts in detectors() {
        let regions = detect_speech(&samples, &opts).unwrap();
        let mut speech = SpeechBlocks::new(AudioStream::open(&path).unwrap(), &opts).unwrap();
        let mut gathered = Vec::new();
        for block in speech.by_ref() {
            gathered.extend(block.unwrap());
        }
        assert_eq!(speech.regions(), &regions[..]);
        let timeline = speech.into_timeline().unwrap();
        assert_eq!(gathered, timeline.gather(&samples));
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn show(label: &str, t: &Transcript) {
    eprintln!("{label}: {:?}", t.text);
    for s in &t.segments {
        eprintln!("  [{:7.2} – {:7.2}] {}", s.start, s.end, s.text);
    }
}

#[test]
fn tiny_en_transcribes_only_the_speech_at_its_original_times() {
    let transcriber = match WhisperTranscriber::load("tiny.en") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skipped: cannot load tiny.en: {e}");
            return;
        }
    };
    let options = DecodeOptions::default();
    let opts = VadOptions::default();
    let pad = opts.speech_pad_ms() as f64 / 1000.0;
    let reference =
        words("And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.");

    let placed = noisy_jfk();
    let jfk_start = placed.clips[0].0 as f64 / RATE as f64;
    let raw = transcriber
        .transcribe(&placed.samples, &options, &|_| {})
        .unwrap();
    show("without VAD", &raw);

    // Through files and blocks, as a run would do it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noisy_jfk.wav");
    write_wav(&path, &placed.samples);
    let mut speech = SpeechBlocks::new(AudioStream::open(&path).unwrap(), &opts).unwrap();
    let mut with_vad = transcriber
        .transcribe_blocks(speech.by_ref(), &options, &|_| {})
        .unwrap();
    let timeline = speech.into_timeline().unwrap();
    timeline.map_transcript(&mut with_vad);
    show("with VAD", &with_vad);
    eprintln!("speech regions {:?}", seconds(timeline.regions()));
    assert_eq!(words(&with_vad.text), reference);
    for s in &with_vad.segments {
        assert!(
            s.start >= jfk_start - pad - 0.02,
            "segment at {:.2} s, jfk starts at {jfk_start} s",
            s.start
        );
        assert!(s.end <= jfk_start + 11.0 + pad + 0.02);
    }
    // Without VAD the first segment starts in the noise.
    eprintln!(
        "first segment: {:.2} s without VAD, {:.2} s with (speech at {jfk_start:.2} s)",
        raw.segments[0].start, with_vad.segments[0].start
    );

    // Thirty seconds of digital silence: tiny.en is known to say "you".
    let silence = vec![0.0f32; 30 * RATE];
    let raw = transcriber.transcribe(&silence, &options, &|_| {}).unwrap();
    show("silence without VAD", &raw);
    let regions = detect_speech(&silence, &opts).unwrap();
    assert!(regions.is_empty());
    let mut speech =
        SpeechBlocks::new(silence.chunks(RATE).map(|b| Ok(b.to_vec())), &opts).unwrap();
    match transcriber.transcribe_blocks(speech.by_ref(), &options, &|_| {}) {
        Ok(t) => {
            show("silence with VAD (no speech handed to the model)", &t);
            assert!(t.text.trim().is_empty());
        }
        Err(e) => eprintln!("silence with VAD: the model refuses an empty stream: {e}"),
    }
}
