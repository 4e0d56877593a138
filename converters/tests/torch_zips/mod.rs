//! Torch zip checkpoints rewritten entry by entry, for tests that corrupt
//! one part of a file the reference library wrote.

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// `zip` with `change` applied to each entry's bytes (given the entry's
/// name); changed entries are deflated, the others stored as torch stores
/// them.
pub fn rebuilt(zip: &[u8], change: impl Fn(&str, &mut Vec<u8>)) -> Vec<u8> {
    let mut src = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let original = bytes.clone();
        change(&name, &mut bytes);
        let method = if bytes == original {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        out.start_file(
            &name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        out.write_all(&bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}
