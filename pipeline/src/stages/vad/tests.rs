use super::hysteresis::Hysteresis;
use super::*;
use crate::stages::audio::BLOCK_SAMPLES;
use crate::transcript::Transcript;
use crate::transcript::{Segment, Timings};
use crate::transcript::{SegmentWord, Word};

/// 30 ms frames.
const F: usize = 480;

/// Voiced when a frame's mean square is above 1e-4: a detector whose
/// decisions the test controls exactly.
struct Loud;

impl FrameClassifier for Loud {
    fn frame_len(&self) -> usize {
        F
    }
    fn classify(&mut self, frames: &[f32]) -> Result<Vec<f32>, VadError> {
        let energy = |frame: &[f32]| frame.iter().map(|x| x * x).sum::<f32>() / F as f32;
        Ok(frames
            .chunks(F)
            .map(|frame| if energy(frame) > 1e-4 { 1.0 } else { 0.0 })
            .collect())
    }
}

/// `frames` frames of silence with `level` in the frames of each burst.
fn signal(frames: usize, bursts: &[(usize, usize)], level: f32) -> Vec<f32> {
    let mut s = vec![0.0f32; frames * F];
    for &(a, b) in bursts {
        for (i, x) in s[a * F..b * F].iter_mut().enumerate() {
            *x = if i % 2 == 0 { level } else { -level };
        }
    }
    s
}

/// Every stage off: regions are the runs of voiced frames.
fn raw() -> WebRtcSettings {
    WebRtcSettings {
        window_ms: 0,
        speech_pad_ms: 0,
        min_speech_ms: 0,
        min_silence_ms: 0,
        max_speech_s: f64::INFINITY,
        ..WebRtcSettings::default()
    }
}

/// WebRTC's region rules over [`Loud`]'s decisions.
fn loud_stage(opts: &WebRtcSettings) -> VadStage {
    assert!(opts.problems().is_empty(), "{:?}", opts.problems());
    VadStage::with_parts(Box::new(Loud), Box::new(Hysteresis::new(opts, F))).unwrap()
}

fn detect(samples: &[f32], opts: &WebRtcSettings) -> Vec<SpeechRegion> {
    let mut stage = loud_stage(opts);
    let mut regions = stage.push(samples).unwrap();
    regions.extend(stage.finish().unwrap());
    regions
}

fn frames(regions: &[SpeechRegion]) -> Vec<(usize, usize)> {
    regions.iter().map(|r| (r.start / F, r.end / F)).collect()
}

fn r(start: usize, end: usize) -> SpeechRegion {
    SpeechRegion::new(start, end)
}

#[test]
fn raw_regions_are_the_voiced_runs() {
    let s = signal(200, &[(50, 100), (120, 121), (150, 200)], 0.5);
    assert_eq!(
        frames(&detect(&s, &raw())),
        [(50, 100), (120, 121), (150, 200)]
    );
    assert!(detect(&[], &raw()).is_empty());
    assert!(detect(&vec![0.0; 100 * F], &WebRtcSettings::default()).is_empty());
}

#[test]
fn padding_is_added_and_clamped_to_the_recording() {
    let opts = WebRtcSettings {
        speech_pad_ms: 300,
        ..raw()
    };
    let pad = 300 * PER_MS;
    let s = signal(200, &[(50, 100)], 0.5);
    assert_eq!(detect(&s, &opts), [r(50 * F - pad, 100 * F + pad)]);
    // At both edges; the recording ends in a part-frame.
    let mut s = signal(100, &[(2, 10), (90, 100)], 0.5);
    s.extend([0.5; 100]);
    assert_eq!(
        detect(&s, &opts),
        [r(0, 10 * F + pad), r(90 * F - pad, 100 * F + 100)]
    );
}

#[test]
fn padding_never_overlaps_the_gap_is_split_in_the_middle() {
    // Gap of 10 frames (300 ms) < 2 × 300 ms padding.
    let opts = WebRtcSettings {
        speech_pad_ms: 300,
        ..raw()
    };
    let s = signal(300, &[(50, 100), (110, 160)], 0.5);
    let mid = 105 * F;
    assert_eq!(
        detect(&s, &opts),
        [r(50 * F - 4800, mid), r(mid, 160 * F + 4800)]
    );
}

#[test]
fn min_silence_merges_and_min_speech_drops() {
    // Gaps of 20 frames (600 ms); bursts of 5 frames (150 ms).
    let s = signal(400, &[(50, 100), (120, 170), (300, 305)], 0.5);
    let merge = WebRtcSettings {
        min_silence_ms: 1000,
        ..raw()
    };
    assert_eq!(frames(&detect(&s, &merge)), [(50, 170), (300, 305)]);
    let keep_apart = WebRtcSettings {
        min_silence_ms: 500,
        ..raw()
    };
    assert_eq!(
        frames(&detect(&s, &keep_apart)),
        [(50, 100), (120, 170), (300, 305)]
    );
    let drop_short = WebRtcSettings {
        min_speech_ms: 250,
        ..merge.clone()
    };
    assert_eq!(frames(&detect(&s, &drop_short)), [(50, 170)]);
    // A dropped region does not cut its neighbour's padding.
    let padded = WebRtcSettings {
        speech_pad_ms: 300,
        min_speech_ms: 250,
        ..raw()
    };
    let s = signal(400, &[(50, 100), (105, 106), (200, 250)], 0.5);
    assert_eq!(
        detect(&s, &padded),
        [
            r(50 * F - 4800, 100 * F + 4800),
            r(200 * F - 4800, 250 * F + 4800)
        ]
    );
}

#[test]
fn smoothing_bridges_flicker_and_ignores_sparse_frames() {
    // Every other frame voiced for 3 s; then one frame in ten.
    let flicker: Vec<(usize, usize)> = (100..200).step_by(2).map(|i| (i, i + 1)).collect();
    let sparse: Vec<(usize, usize)> = (300..400).step_by(10).map(|i| (i, i + 1)).collect();
    let s = signal(500, &[flicker, sparse].concat(), 0.5);
    let smooth = WebRtcSettings {
        window_ms: 300,
        onset: 0.5,
        offset: 0.1,
        ..raw()
    };
    assert_eq!(frames(&detect(&s, &smooth)), [(100, 199)]);
    assert_eq!(detect(&s, &raw()).len(), 60);
}

#[test]
fn long_regions_are_cut_in_the_longest_pause_of_their_second_half() {
    // 70 s of speech with pauses of 5 frames at 800 and 2 at 1700,
    // a 1-frame pause at 200 (first half of the first piece: not used).
    let s = signal(
        2334,
        &[(0, 200), (201, 800), (805, 1700), (1702, 2334)],
        0.5,
    );
    let opts = WebRtcSettings {
        min_silence_ms: 500,
        max_speech_s: 30.0,
        ..raw()
    };
    let regions = detect(&s, &opts);
    assert_eq!(frames(&regions), [(0, 803), (803, 1701), (1701, 2334)]);
    assert!(regions.iter().all(|r| r.len() <= 30 * RATE));
}

#[test]
fn without_pauses_the_cut_follows_the_quietest_frame() {
    let mut s = signal(1800, &[(0, 1800)], 0.5);
    for x in &mut s[900 * F..901 * F] {
        *x *= 0.1; // quieter but still voiced
    }
    let opts = WebRtcSettings {
        max_speech_s: 30.0,
        speech_pad_ms: 300,
        ..raw()
    };
    let regions = detect(&s, &opts);
    assert_eq!(regions, [r(0, 901 * F), r(901 * F, 1800 * F)]);
}

/// A pseudo-random sequence for block sizes.
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn streaming_in_any_blocks_gives_the_slice_result() {
    let bursts = [
        (3, 40),
        (45, 46),
        (60, 90),
        (92, 1200),
        (1230, 1300),
        (1400, 1405),
        (1500, 3800),
        (3810, 3850),
    ];
    let mut s = signal(3900, &bursts, 0.3);
    s.extend([0.3; 123]);
    let configs = [
        WebRtcSettings::default(),
        raw(),
        WebRtcSettings {
            max_speech_s: 5.0,
            speech_pad_ms: 700,
            min_silence_ms: 200,
            ..WebRtcSettings::default()
        },
        WebRtcSettings {
            window_ms: 90,
            min_speech_ms: 1000,
            max_speech_s: 3.0,
            ..WebRtcSettings::default()
        },
    ];
    let mut seed = 7;
    for opts in &configs {
        let whole = detect(&s, opts);
        assert!(!whole.is_empty());
        for w in whole.windows(2) {
            assert!(w[0].end <= w[1].start && w[0].start < w[0].end);
        }
        for _ in 0..5 {
            let mut stage = loud_stage(opts);
            let mut regions = Vec::new();
            let mut at = 0;
            while at < s.len() {
                let n = (lcg(&mut seed) as usize % 7000).min(s.len() - at);
                let floor = stage.retain_from();
                let found = stage.push(&s[at..at + n]).unwrap();
                assert!(found.iter().all(|r| r.start >= floor));
                regions.extend(found);
                at += n;
            }
            regions.extend(stage.finish().unwrap());
            assert_eq!(regions, whole, "{opts:?}");
            // The block adapter hands out exactly the gathered speech.
            let blocks = s
                .chunks(1 + lcg(&mut seed) as usize % 20_000)
                .map(|b| Ok::<_, ()>(b.to_vec()));
            let mut speech = SpeechBlocks::with_stage(blocks, loud_stage(opts));
            let mut gathered = Vec::new();
            for block in speech.by_ref() {
                let block = block.unwrap();
                assert!(!block.is_empty() && block.len() <= BLOCK_SAMPLES);
                gathered.extend(block);
            }
            let timeline = speech.into_timeline().unwrap();
            assert_eq!(timeline.regions(), &whole[..]);
            assert_eq!(gathered, timeline.gather(&s));
        }
    }
}

#[test]
fn block_adapter_passes_errors_on() {
    let blocks = vec![Ok(vec![0.5f32; 4000]), Err("broken"), Ok(vec![0.0; 10])];
    let mut speech = SpeechBlocks::with_stage(blocks.into_iter(), loud_stage(&raw()));
    assert_eq!(speech.next(), Some(Err("broken")));
    assert_eq!(speech.next(), None);
}

fn timeline() -> SpeechTimeline {
    // 1–2 s, 3–3.5 s and 3.5–4 s of the recording.
    SpeechTimeline::new([r(48_000, 56_000), r(16_000, 32_000), r(56_000, 64_000)])
}

#[test]
fn timeline_gathers_the_regions_in_order() {
    let samples: Vec<f32> = (0..70_000).map(|i| i as f32).collect();
    let t = timeline();
    assert_eq!(t.len(), 32_000);
    assert_eq!(t.duration(), 2.0);
    let gathered = t.gather(&samples);
    assert_eq!(gathered.len(), 32_000);
    assert_eq!(gathered[0], 16_000.0);
    assert_eq!(gathered[16_000], 48_000.0);
    assert_eq!(gathered[31_999], 63_999.0);
    // Regions past the end are cut short.
    assert_eq!(t.gather(&samples[..50_000]).len(), 16_000 + 2_000);
    // Overlaps and empty regions are dropped.
    let t = SpeechTimeline::new([r(0, 10), r(5, 20), r(30, 30)]);
    assert_eq!(t.regions(), [r(0, 10), r(10, 20)]);
}

#[test]
fn timeline_maps_compacted_times_back() {
    let t = timeline();
    assert_eq!(t.to_original(0.0), 1.0);
    assert_eq!(t.to_original(0.5), 1.5);
    // Where regions meet: a start goes to the later one, an end to the
    // earlier one.
    assert_eq!(t.to_original(1.0), 3.0);
    assert_eq!(t.to_original_end(1.0), 2.0);
    assert_eq!(t.to_original(1.25), 3.25);
    assert_eq!(t.to_original(1.5), 3.5);
    assert_eq!(t.to_original_end(1.5), 3.5);
    assert_eq!(t.to_original_end(0.0), 1.0);
    assert_eq!(t.to_original(-1.0), 1.0);
    // Past the end: after the last region.
    assert_eq!(t.to_original(2.5), 4.5);
    assert_eq!(t.to_original_end(2.5), 4.5);
    assert_eq!(SpeechTimeline::default().to_original(7.0), 7.0);
    // Back to the compacted signal; gaps go to the next region.
    assert_eq!(t.to_compacted(0.2), 0.0);
    assert_eq!(t.to_compacted(1.5), 0.5);
    assert_eq!(t.to_compacted(2.5), 1.0);
    assert_eq!(t.to_compacted(3.75), 1.75);
    assert_eq!(t.to_compacted(9.0), 2.0);
}

#[test]
fn times_inside_a_region_round_trip() {
    let t = timeline();
    let mut seed = 3;
    for (k, region) in t.regions().iter().enumerate() {
        for _ in 0..50 {
            let x = region.start + lcg(&mut seed) as usize % region.len();
            let original = x as f64 / RATE as f64;
            let compacted = t.to_compacted(original);
            assert!((t.to_original(compacted) - original).abs() < 1e-9);
            let c = (t.offset(k) + (x - region.start)) as f64 / RATE as f64;
            let back = t.to_original(c);
            assert!(back >= region.start_s() && back < region.end_s());
        }
    }
}

#[test]
fn transcripts_move_to_the_recording_timeline() {
    let segment = |start: f64, end: f64, seek: usize| Segment {
        id: 0,
        seek,
        start,
        end,
        text: String::new(),
        tokens: Vec::new(),
        temperature: 0.0,
        avg_logprob: 0.0,
        compression_ratio: 1.0,
        no_speech_prob: 0.0,
        words: vec![SegmentWord::from(Word {
            word: " x".into(),
            start: start + 0.1,
            end,
            probability: 1.0,
        })],
        speaker: None,
    };
    let mut transcript = Transcript {
        text: String::new(),
        segments: vec![segment(0.0, 1.0, 0), segment(1.0, 1.0, 100)],
        language: None,
        language_probability: None,
        speakers: Vec::new(),
        timings: Timings::default(),
    };
    timeline().map_transcript(&mut transcript);
    let s = &transcript.segments;
    assert_eq!((s[0].start, s[0].end, s[0].seek), (1.0, 2.0, 100));
    assert_eq!(
        (s[0].words[0].word.start, s[0].words[0].word.end),
        (1.1, 2.0)
    );
    // An empty segment at a join never ends before it starts.
    assert_eq!((s[1].start, s[1].end, s[1].seek), (3.0, 3.0, 300));
}

#[test]
fn spans_crossing_a_join_slightly_stay_on_their_side() {
    let exact = timeline();
    let t = timeline().with_join_tolerance(0.3);
    let near = |(a, b): (f64, f64), (c, d): (f64, f64)| {
        assert!(
            (a - c).abs() < 1e-9 && (b - d).abs() < 1e-9,
            "{a}-{b} vs {c}-{d}"
        );
    };
    // Ends 0.1 s after the join at 1.0 (the gap 2–3 s).
    near(exact.map_span(0.2, 1.1), (1.2, 3.1));
    near(t.map_span(0.2, 1.1), (1.2, 2.0));
    // Starts 0.1 s before it.
    near(t.map_span(0.9, 1.4), (3.0, 3.4));
    // Short spans around a join and spans well across it are exact.
    near(t.map_span(0.95, 1.05), (1.95, 3.05));
    near(t.map_span(0.5, 1.5), (1.5, 3.5));
    // At the touching join (3.5 s) snapping changes nothing.
    near(t.map_span(1.2, 1.6), (3.2, 3.6));
}

#[test]
fn pack_groups_consecutive_regions_into_windows() {
    let mut at = 0;
    let regions: Vec<SpeechRegion> = [10, 10, 10, 5, 25, 40, 1]
        .iter()
        .map(|s| {
            let region = r(at, at + s * RATE);
            at = region.end + RATE;
            region
        })
        .collect();
    let sizes: Vec<Vec<usize>> = pack(&regions, 30.0)
        .iter()
        .map(|b| b.iter().map(|r| r.len() / RATE).collect())
        .collect();
    assert_eq!(sizes, [vec![10, 10, 10], vec![5, 25], vec![40], vec![1]]);
    assert_eq!(pack(&regions, 30.0).concat(), regions);
    assert!(pack(&[], 30.0).is_empty());
}

#[test]
fn invalid_options_are_listed() {
    assert!(VadOptions::default().problems().is_empty());
    assert!(VadOptions::webrtc().problems().is_empty());
    let bad = VadOptions {
        mode: Some(4),
        frame_ms: Some(25),
        window_ms: Some(60_000),
        onset: Some(0.0),
        offset: Some(1.0),
        max_speech_s: Some(0.5),
        ..VadOptions::webrtc()
    };
    let keys = |opts: &VadOptions| -> Vec<String> {
        opts.problems()
            .iter()
            .map(|p| p.split(':').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        keys(&bad),
        [
            "vad.mode",
            "vad.frame_ms",
            "vad.window_ms",
            "vad.onset",
            "vad.offset",
            "vad.max_speech_s"
        ]
    );
    let crossed = VadOptions {
        onset: Some(0.3),
        offset: Some(0.4),
        ..VadOptions::webrtc()
    };
    assert_eq!(
        crossed.problems(),
        ["vad.offset: 0.4 is not below vad.onset (0.3)"]
    );
    let nan = VadOptions {
        max_speech_s: Some(f64::NAN),
        ..VadOptions::webrtc()
    };
    assert_eq!(nan.problems().len(), 1);
    match detect_speech(&[0.0; 100], &bad) {
        Err(VadError::Options(p)) => assert_eq!(p.len(), 6),
        other => panic!("{other:?}"),
    }
    assert!(VadStage::new(&bad).is_err());

    let silero = VadOptions {
        threshold: Some(1.5),
        neg_threshold: Some(0.2),
        max_speech_s: Some(0.8),
        ..VadOptions::default()
    };
    assert_eq!(
        keys(&silero),
        ["vad.threshold", "vad.max_speech_s"],
        "{:?}",
        silero.problems()
    );
    let above = VadOptions {
        threshold: Some(0.4),
        neg_threshold: Some(0.45),
        ..VadOptions::default()
    };
    assert_eq!(
        above.problems(),
        ["vad.neg_threshold: 0.45 is above vad.threshold (0.4)"]
    );
    // No speech pad: a region may be as short as one frame past the limit.
    let unpadded = VadOptions {
        speech_pad_ms: Some(0),
        max_speech_s: Some(0.1),
        ..VadOptions::default()
    };
    assert!(unpadded.problems().is_empty(), "{:?}", unpadded.problems());
}

#[test]
fn settings_of_the_other_detector_are_refused() {
    let webrtc_keys_on_silero = VadOptions {
        mode: Some(2),
        onset: Some(0.6),
        ..VadOptions::default()
    };
    assert_eq!(
        webrtc_keys_on_silero.problems(),
        [
            "vad.mode: a setting of the webrtc detector, not of silero (vad.model)",
            "vad.onset: a setting of the webrtc detector, not of silero (vad.model)",
        ]
    );
    let silero_key_on_webrtc = VadOptions {
        threshold: Some(0.6),
        ..VadOptions::webrtc()
    };
    assert_eq!(
        silero_key_on_webrtc.problems(),
        ["vad.threshold: a setting of the silero detector, not of webrtc (vad.model)"]
    );
    let unknown = VadOptions {
        model: "earshot".into(),
        ..VadOptions::default()
    };
    assert_eq!(
        unknown.problems(),
        [r#"vad.model: "earshot" is not one of silero, webrtc"#]
    );
    assert!(VadStage::new(&unknown).is_err());
}

#[test]
fn each_detector_resolves_its_own_defaults() {
    let silero = SileroSettings::from_options(&VadOptions::default());
    assert_eq!(
        silero,
        SileroSettings {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 0,
            max_speech_s: 30.0,
            min_silence_ms: 2000,
            speech_pad_ms: 400,
        }
    );
    let low = SileroSettings::from_options(&VadOptions {
        threshold: Some(0.1),
        ..VadOptions::default()
    });
    assert_eq!(low.neg_threshold, 0.01);
    assert_eq!(
        WebRtcSettings::from_options(&VadOptions::webrtc()),
        WebRtcSettings::default()
    );
    assert_eq!(VadOptions::default().speech_pad_ms(), 400);
    assert_eq!(VadOptions::webrtc().speech_pad_ms(), 300);
    let shared = VadOptions {
        speech_pad_ms: Some(100),
        ..VadOptions::webrtc()
    };
    assert_eq!(WebRtcSettings::from_options(&shared).speech_pad_ms, 100);
}

#[test]
fn options_read_from_toml() {
    let opts: VadOptions =
        toml::from_str("model = \"webrtc\"\nmode = 1\nmax_speech_s = inf").unwrap();
    assert_eq!(opts.mode, Some(1));
    let settings = WebRtcSettings::from_options(&opts);
    assert!(settings.max_speech_s.is_infinite());
    assert_eq!(settings.frame_ms, 30);
    assert!(opts.problems().is_empty());
    let silero: VadOptions = toml::from_str("threshold = 0.6\nmin_silence_ms = 500").unwrap();
    assert_eq!(silero.model, "silero");
    assert_eq!(SileroSettings::from_options(&silero).min_silence_ms, 500);
    assert!(silero.problems().is_empty());
    let empty: VadOptions = toml::from_str("").unwrap();
    assert_eq!(empty, VadOptions::default());
    let err = toml::from_str::<VadOptions>("mode = 1\npadding = 3").unwrap_err();
    assert!(err.to_string().contains("padding"), "{err}");
}

#[test]
fn the_stage_can_move_between_threads() {
    fn send<T: Send>(_: &T) {}
    let stage = VadStage::new(&VadOptions::webrtc()).unwrap();
    send(&stage);
    let handle = std::thread::spawn(move || {
        let mut stage = stage;
        stage.push(&[0.0; 16_000]).unwrap().len() + stage.finish().unwrap().len()
    });
    assert_eq!(handle.join().unwrap(), 0);
}
