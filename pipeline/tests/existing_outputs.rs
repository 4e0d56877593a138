//! Outputs found in place when a run resumes: finished ones are kept,
//! empty or unparsable ones are not.

use asr_pipeline::stages::output::{existing_output, Existing};
use asr_pipeline::Format;

#[test]
fn empty_or_unparsable_outputs_are_not_finished() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cases = [
        (at("a.txt", "hello\n"), Format::Txt, Existing::Finished),
        (at("b.txt", ""), Format::Txt, Existing::Damaged("is empty")),
        (
            at("c.json", "{\"text\": \"hi\"}\n"),
            Format::Json,
            Existing::Finished,
        ),
        (
            at("d.json", ""),
            Format::Json,
            Existing::Damaged("is empty"),
        ),
        (
            at("e.json", "{\"text\": \"h"),
            Format::Json,
            Existing::Damaged("is not valid JSON"),
        ),
        // A silent recording's SRT has no cues.
        (at("f.srt", ""), Format::Srt, Existing::Finished),
        (dir.path().join("g.vtt"), Format::Vtt, Existing::Missing),
    ];
    for (path, format, expected) in cases {
        assert_eq!(
            existing_output(&path, format),
            expected,
            "{}",
            path.display()
        );
    }
}
