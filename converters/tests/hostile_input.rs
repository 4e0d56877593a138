//! Malformed and hostile input must give errors, never panics, stack
//! overflows or runaway memory: pickles built to nest a million levels deep,
//! to reference themselves or to expand exponentially, and one-byte
//! corruptions and truncations of files the reference libraries wrote.

use std::io::Read;
use std::path::{Path, PathBuf};

use asr_converters::ct2::read_model_bin;
use asr_converters::pickle::{read_pickle, Value, MAX_DEPTH};
use asr_converters::safetensors::read_safetensors;
use asr_converters::torch::read_checkpoint;

mod torch_zips;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/readers")
        .join(name)
}

/// A deterministic byte stream (xorshift64) for corruptions.
struct Rng(u64);

impl Rng {
    fn byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
}

/// `LONG_BINPUT id` / `LONG_BINGET id`.
fn memo(op: u8, id: u32) -> Vec<u8> {
    let mut out = vec![op];
    out.extend(id.to_le_bytes());
    out
}

#[test]
fn a_hundred_thousand_nested_lists_are_refused_without_overflowing_the_stack() {
    // Each list is appended to the previous one, reached through the memo.
    let mut p = b"\x80\x02]".to_vec();
    p.extend(memo(b'r', 0));
    for level in 0..100_000u32 {
        p.extend(memo(b'j', level));
        p.push(b']');
        p.extend(memo(b'r', level + 1));
        p.extend(b"a0"); // APPEND, POP
    }
    p.extend(memo(b'j', 0));
    p.push(b'.');
    let err = read_pickle(&p).unwrap_err();
    assert!(err.contains(&format!("deeper than {MAX_DEPTH}")), "{err}");
}

#[test]
fn a_deep_chain_dropped_midway_is_refused_as_it_grows() {
    // The chain would hang from its root only, to be dropped at the end by
    // overwriting the root's memo slot; growing it past the first level
    // (a list appended to after it was placed) is refused, so 100 000
    // nested lists never exist.
    let mut p = b"\x80\x02]q\x00q\x010".to_vec();
    for _ in 0..100_000 {
        p.extend(b"h\x01]q\x01a0"); // BINGET 1, EMPTY_LIST, BINPUT 1, APPEND, POP
    }
    p.extend(b"Nq\x00Nq\x01."); // NONE, BINPUT 0, NONE, BINPUT 1, STOP
    let err = read_pickle(&p).unwrap_err();
    assert!(
        err.contains(&format!("could nest deeper than {MAX_DEPTH}")),
        "{err}"
    );
}

#[test]
fn cycles_and_exponential_sharing_are_refused() {
    // A list appended to itself.
    let err = read_pickle(b"\x80\x02]q\x00h\x00a.").unwrap_err();
    assert!(err.contains("cycle"), "{err}");
    // l0 = [1]; l(k+1) = [lk, lk]: 2^60 leaves from a few hundred bytes.
    let mut p = b"\x80\x02]K\x01aq\x00".to_vec();
    for k in 0..60u8 {
        // MARK, BINGET k, BINGET k, LIST, BINPUT k+1
        p.extend([b'(', b'h', k, b'h', k, b'l', b'q', k + 1]);
    }
    p.push(b'.');
    let err = read_pickle(&p).unwrap_err();
    assert!(err.contains("far more values"), "{err}");
}

#[test]
fn a_dict_memoized_while_empty_shows_its_later_items() {
    // d = {}; memo 0; d["k"] = 1; (d, memo[0])
    let v = read_pickle(b"\x80\x02}q\x00X\x01\x00\x00\x00kK\x01sh\x00\x86.").unwrap();
    let d = Value::Dict(vec![(Value::Str("k".into()), Value::Int(1))]);
    assert_eq!(v, Value::Tuple(vec![d.clone(), d]));
}

fn data_pkl(path: &Path) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut entry = zip.by_name("mixed/data.pkl").unwrap();
    let mut out = Vec::new();
    entry.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn corruptions_of_a_torch_pickle_are_handled() {
    let good = data_pkl(&fixture("torch/mixed.pt"));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Random positions rather than all: a debug build parses ~2 per ms.
    for _ in 0..500 {
        let at = (usize::from(rng.byte()) << 8 | usize::from(rng.byte())) % good.len();
        let _ = read_pickle(&good[..at]).unwrap_err();
        let mut bad = good.clone();
        bad[at] = rng.byte();
        let _ = read_pickle(&bad);
    }
}

/// Rewrites `mixed.pt` with a different `data.pkl`, storages unchanged, so
/// corrupt tensor records reach the tensor materializer.
fn with_pickle(dir: &Path, pickle: &[u8]) -> PathBuf {
    let good = std::fs::read(fixture("torch/mixed.pt")).unwrap();
    let path = dir.join("m.pt");
    let bytes = torch_zips::rebuilt(&good, |name, bytes| {
        if name.ends_with("data.pkl") {
            *bytes = pickle.to_vec();
        }
    });
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn corrupt_tensor_records_in_a_checkpoint_are_errors() {
    let good = data_pkl(&fixture("torch/mixed.pt"));
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    // Integers in the pickle are offsets, sizes, strides and storage sizes:
    // flip bytes that follow BININT1/BININT2/BININT codes.
    let mut tried = 0;
    for at in 1..good.len() {
        if !matches!(good[at - 1], b'K' | b'M' | b'J') {
            continue;
        }
        let mut bad = good.clone();
        bad[at] = rng.byte();
        if let Err(e) = read_checkpoint(&with_pickle(dir.path(), &bad)) {
            assert!(e.to_string().contains("m.pt"), "{e}");
        }
        tried += 1;
    }
    assert!(tried > 100, "{tried} integers corrupted");
}

/// Each truncation of `good` must be an error naming the file; a random byte
/// at each position must not panic (an error or a value are both fine).
fn sweep<T>(
    good: &[u8],
    path: &Path,
    seed: u64,
    read: impl Fn(&Path) -> asr_converters::Result<T>,
) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut rng = Rng(seed);
    for at in 0..good.len() {
        std::fs::write(path, &good[..at]).unwrap();
        let msg = read(path)
            .err()
            .expect("a truncated file is an error")
            .to_string();
        assert!(msg.contains(&name), "{msg}");
        let mut bad = good.to_vec();
        bad[at] = rng.byte();
        std::fs::write(path, &bad).unwrap();
        let _ = read(path);
    }
}

#[test]
fn every_truncation_and_byte_corruption_of_a_ct2_model_is_handled() {
    let good = std::fs::read(fixture("ct2-int8/model.bin")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sweep(&good, &dir.path().join("model.bin"), 11, read_model_bin);
}

#[test]
fn every_truncation_and_byte_corruption_of_a_safetensors_file_is_handled() {
    let good = std::fs::read(fixture("sharded.expected.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sweep(
        &good,
        &dir.path().join("x.safetensors"),
        13,
        read_safetensors,
    );
}
