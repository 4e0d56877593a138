//! Resuming a run: a file whose outputs all exist is skipped; one whose
//! output is damaged (empty, unparsable) is transcribed again, with a
//! warning.

use asr_pipeline::stages::output::{existing_output, Existing};
use asr_pipeline::Config;

/// Whether every output of `stem` is already written, finished.
pub fn outputs_complete(config: &Config, stem: &str) -> bool {
    config.output_dir.as_ref().is_some_and(|dir| {
        config.formats.iter().all(|&format| {
            let path = dir.join(format!("{stem}.{}", format.extension()));
            match existing_output(&path, format) {
                Existing::Finished => true,
                Existing::Missing => false,
                Existing::Damaged(problem) => {
                    tracing::warn!(output = %path.display(), "{problem}: transcribing its input again");
                    false
                }
            }
        })
    })
}
