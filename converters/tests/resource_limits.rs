//! Limits checked against what a file can actually hold, before memory is
//! taken: zip entries that inflate past what the pickle's tensors need or
//! past what they declare, a `data.pkl` beyond its cap, nesting refused as
//! it is built, and model dimensions declaring more layers than there are
//! tensors.

use std::fs;
use std::path::{Path, PathBuf};

use asr_converters::pickle::{read_pickle, MAX_OPS};
use asr_converters::torch::{read_checkpoint, MAX_PICKLE_BYTES};
use asr_converters::whisper::load_whisper;

mod torch_zips;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// `mixed.pt` as zip bytes, with `change` applied to each entry's bytes.
fn rebuilt_mixed(change: impl Fn(&str, &mut Vec<u8>)) -> Vec<u8> {
    torch_zips::rebuilt(
        &fs::read(fixture("readers/torch/mixed.pt")).unwrap(),
        change,
    )
}

/// Rewrites the uncompressed size `name` declares, in its local header and
/// in the central directory: a lie the reader must not trust.
fn declare_size(zip: &mut [u8], name: &str, size: u32) {
    let mut patched = 0;
    for at in 0..zip.len().saturating_sub(46) {
        let (size_at, name_len_at, name_at) = match &zip[at..at + 4] {
            b"PK\x03\x04" => (at + 22, at + 26, at + 30),
            b"PK\x01\x02" => (at + 24, at + 28, at + 46),
            _ => continue,
        };
        let name_len = u16::from_le_bytes([zip[name_len_at], zip[name_len_at + 1]]) as usize;
        if zip.get(name_at..name_at + name_len) == Some(name.as_bytes()) {
            zip[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "{name}: local header and central record");
}

fn read_error(zip: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.pt");
    fs::write(&path, zip).unwrap();
    let err = read_checkpoint(&path).unwrap_err().to_string();
    assert!(err.contains("bomb.pt"), "{err}");
    err
}

const STORAGE: &str = "mixed/data/10";
const PADDING: usize = 1 << 20;

fn padded(name: &str, bytes: &mut Vec<u8>) {
    if name == STORAGE {
        bytes.resize(bytes.len() + PADDING, 0);
    }
}

#[test]
fn a_storage_larger_than_its_tensors_need_is_refused_unread() {
    let err = read_error(&rebuilt_mixed(padded));
    assert!(
        err.contains(&format!(
            "{STORAGE}: declares {} bytes, more than the 80 it may hold",
            80 + PADDING
        )),
        "{err}"
    );
}

#[test]
fn an_entry_inflating_past_its_declared_size_is_cut_off() {
    let mut zip = rebuilt_mixed(padded);
    declare_size(&mut zip, STORAGE, 80);
    let err = read_error(&zip);
    assert!(
        err.contains(&format!(
            "{STORAGE}: inflates to more than the 80 bytes it declares"
        )),
        "{err}"
    );
}

#[test]
fn a_data_pkl_declaring_more_than_its_cap_or_its_data_is_refused() {
    let mut zip = rebuilt_mixed(|_, _| {});
    declare_size(&mut zip, "mixed/data.pkl", 3 << 30);
    let err = read_error(&zip);
    assert!(
        err.contains(&format!(
            "mixed/data.pkl: declares {} bytes, more than the {MAX_PICKLE_BYTES} it may hold",
            3u64 << 30
        )),
        "{err}"
    );
    // Under the cap, but far more than 2479 stored bytes can hold.
    declare_size(&mut zip, "mixed/data.pkl", 60 << 20);
    let err = read_error(&zip);
    assert!(
        err.contains("declares 62914560 bytes, more than its 2479 compressed bytes can hold"),
        "{err}"
    );
}

/// Nesting is refused while the pickle is read: this pickle has no STOP, so
/// a reader that checked only the finished tree would report truncation.
/// (Chains grown from the outside in: hostile_input.rs.)
#[test]
fn nesting_beyond_the_limit_is_refused_as_it_is_built() {
    // Wrapped from the inside out: MARK × n, EMPTY_LIST, LIST × n.
    let levels = 100_000;
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'(', levels));
    p.push(b']');
    p.extend(std::iter::repeat_n(b'l', levels));
    let err = read_pickle(&p).unwrap_err();
    assert!(err.contains("nests deeper than 256 levels"), "{err}");
}

#[test]
fn a_pickle_running_more_operations_than_any_checkpoint_is_refused() {
    // NONE × (MAX_OPS + 1): one small object per byte, a few hundred MB of
    // objects per ten MB of pickle without the bound.
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'N', MAX_OPS));
    p.push(b'.');
    let err = read_pickle(&p).unwrap_err();
    assert!(
        err.contains(&format!("more than {MAX_OPS} operations")),
        "{err}"
    );
}

#[test]
fn dimensions_declaring_a_million_layers_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("tiny-whisper/hf-safetensors");
    for entry in fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let config = fs::read_to_string(source.join("config.json")).unwrap();
    let config = config.replace("\"decoder_layers\": 2", "\"decoder_layers\": 1000000");
    fs::write(dir.path().join("config.json"), config).unwrap();
    let err = load_whisper(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(
            "2 encoder and 1000000 decoder layers declared, but the checkpoint holds only"
        ),
        "{err}"
    );
}
