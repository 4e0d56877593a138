//! `.snap` files: insta's YAML header between `---` lines, then the body,
//! written whole or not at all.

/// A `.snap` file: insta's YAML header between `---` lines, then the body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotFile {
    /// The manifest that produced it (insta: the test's source file).
    pub source: Option<String>,
    pub expression: Option<String>,
    /// The audio file, relative to the manifest.
    pub input_file: Option<String>,
    pub body: String,
}

impl SnapshotFile {
    /// The file's text, as insta writes it (LF newlines, one at the end).
    pub fn to_text(&self) -> String {
        let mut out = String::from("---\n");
        for (key, value) in [
            ("source", &self.source),
            ("expression", &self.expression),
            ("input_file", &self.input_file),
        ] {
            if let Some(value) = value {
                out += &format!("{key}: {}\n", yaml_scalar(value));
            }
        }
        out += "---\n";
        out += self.body.trim_end();
        out.push('\n');
        out
    }

    /// Reads insta's format leniently: unknown header keys are ignored, and
    /// a file without a header is all body.
    pub fn parse(text: &str) -> SnapshotFile {
        let text = text.replace("\r\n", "\n");
        let mut snapshot = SnapshotFile::default();
        let Some(after_open) = text.strip_prefix("---\n") else {
            snapshot.body = text.trim_end().to_string();
            return snapshot;
        };
        let (header, body) = match after_open.find("\n---\n") {
            Some(at) => (&after_open[..at], &after_open[at + 5..]),
            None if after_open.starts_with("---\n") => ("", &after_open[4..]),
            None => ("", after_open),
        };
        for line in header.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = Some(yaml_unquote(value.trim()));
            match key.trim() {
                "source" => snapshot.source = value,
                "expression" => snapshot.expression = value,
                "input_file" => snapshot.input_file = value,
                _ => {}
            }
        }
        snapshot.body = body.trim_end().to_string();
        snapshot
    }

    /// The `text` field of a JSON body.
    pub fn text(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        json.get("text")?.as_str().map(str::to_owned)
    }
}

// The header is three string keys, written and read here rather than by a
// YAML crate: insta's own writer is not public and would quote values that
// start with a dot (stored headers have a plain `input_file: ../..`),
// serde_yaml is unmaintained, and its libyaml-based forks single-quote
// where insta and this writer double-quote.

/// A YAML scalar: plain when that reads back unchanged, else double-quoted
/// (a JSON string is a valid YAML double-quoted scalar).
fn yaml_scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || "_./-+()@ ".contains(c))
        && !value.starts_with([' ', '-', '@'])
        && !value.ends_with(' ')
        && !matches!(
            value,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off"
        )
        && value.parse::<f64>().is_err();
    if plain {
        value.to_string()
    } else {
        serde_json::to_string(value).expect("strings serialize")
    }
}

fn yaml_unquote(value: &str) -> String {
    if value.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(value) {
            return s;
        }
    }
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use asr_converters::atomic::write_atomically;

    #[test]
    fn snapshot_files_round_trip_and_insta_reads_them() {
        let file = SnapshotFile {
            source: Some("regress.toml".into()),
            expression: Some("transcript".into()),
            input_file: Some("audio/it's: a \"file\".wav".into()),
            body: "{\n  \"text\": \" Hello.\"\n}".into(),
        };
        let text = file.to_text();
        assert!(text.starts_with("---\nsource: regress.toml\nexpression: transcript\n"));
        assert!(text.ends_with("---\n{\n  \"text\": \" Hello.\"\n}\n"));
        assert_eq!(SnapshotFile::parse(&text), file);
        assert_eq!(
            SnapshotFile::parse(&text.replace('\n', "\r\n")),
            file,
            "CRLF checkouts"
        );
        assert_eq!(file.text().as_deref(), Some(" Hello."));
        assert_eq!(SnapshotFile::parse("{}\n").body, "{}", "no header");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.snap");
        write_atomically(&path, &text).unwrap();
        let insta = insta::Snapshot::from_file(&path).unwrap();
        assert_eq!(insta.metadata().source(), file.source.as_deref());
        assert_eq!(insta.metadata().expression(), file.expression.as_deref());
        assert_eq!(insta.metadata().input_file(), file.input_file.as_deref());
        assert_eq!(
            insta.as_text().unwrap().to_string(),
            file.body,
            "insta reads the same body"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");

        // A rename that fails (a folder is in the way) leaves no temporary file.
        let blocked = dir.path().join("blocked.snap");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), "x").unwrap();
        assert!(write_atomically(&blocked, "new").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
