//! The diarization error rate against pyannote.metrics' on the shared
//! references and edited hypotheses (scripts/make_der_fixtures.py).

use std::path::Path;

use asr_pipeline::der::{diarization_errors, parse_rttm};
use asr_pipeline::SpeakerTurn;

#[derive(serde::Deserialize)]
struct Case {
    reference: String,
    edit: String,
    collar: f64,
    hypothesis: Vec<(f64, f64, String)>,
    der: f64,
    missed: f64,
    false_alarm: f64,
    confusion: f64,
    total: f64,
}

#[test]
fn error_rates_match_pyannote_metrics() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/diarization");
    if !data.is_dir() {
        eprintln!("skipped: {} is absent", data.display());
        return;
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/der.json");
    let cases: Vec<Case> = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let reference =
            parse_rttm(&std::fs::read_to_string(data.join(&case.reference)).unwrap()).unwrap();
        let hypothesis: Vec<SpeakerTurn> = case
            .hypothesis
            .into_iter()
            .map(|(start, end, speaker)| SpeakerTurn {
                start,
                end,
                speaker,
            })
            .collect();
        let ours = diarization_errors(&reference, &hypothesis, case.collar);
        let what = format!(
            "{} {} collar {}: {ours:?}",
            case.reference, case.edit, case.collar
        );
        // Millisecond sampling against pyannote's exact segment arithmetic.
        for (mine, theirs) in [
            (ours.missed, case.missed),
            (ours.false_alarm, case.false_alarm),
            (ours.confusion, case.confusion),
            (ours.total, case.total),
        ] {
            assert!((mine - theirs).abs() <= 0.02, "{what}: {mine} vs {theirs}");
        }
        assert!(
            (ours.rate() - case.der).abs() <= 1e-3,
            "{what}: DER {}",
            case.der
        );
    }
}
