//! Property tests: every reader, fed mutated or arbitrary bytes, returns a
//! value or an error naming the file; it never panics. Inputs start from
//! files the reference libraries wrote, with a few bytes overwritten and
//! sometimes cut short, so that most of them get past the magic numbers.
//!
//! The normal test run tries 256 cases per property; `scripts/fuzz` runs
//! many more through `PROPTEST_CASES`.

use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use asr_converters::ct2::read_model_bin;
use asr_converters::pickle::read_pickle;
use asr_converters::safetensors::read_safetensors;
use asr_converters::torch::read_checkpoint;
use proptest::prelude::*;
use proptest::test_runner::Config;

mod torch_zips;

/// proptest's default run (256 cases per property, or `PROPTEST_CASES`),
/// with no failure files written into the source tree: a failure found is
/// kept as a regression test instead.
fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/readers")
            .join(name),
    )
    .unwrap()
}

/// `seed` with up to 8 bytes overwritten, cut short one time in four.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    let keep = prop_oneof![3 => Just(len), 1 => 0..=len];
    (prop::collection::vec((0..len, any::<u8>()), 1..8), keep).prop_map(move |(edits, keep)| {
        let mut bytes = seed.clone();
        for (at, value) in edits {
            bytes[at] = value;
        }
        bytes.truncate(keep);
        bytes
    })
}

/// Pickle opcodes torch files use, with operands as random bytes: short
/// programs that reach deep into the machine rather than failing at once.
fn opcode_soup() -> impl Strategy<Value = Vec<u8>> {
    let ops = b"\x80\x95.(01N\x88\x89}])2JKM\x8aGX\x8c\x8dUTCB\x8et\x85\x86\x87ldsuaeqr\x94hjc\x93QR\x81b";
    let byte = prop_oneof![4 => prop::sample::select(ops.to_vec()), 1 => any::<u8>()];
    prop::collection::vec(byte, 0..512)
}

fn data_pkl(zip: &[u8]) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut out = Vec::new();
    archive
        .by_name("mixed/data.pkl")
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// `zip` with its `data.pkl` replaced, storages unchanged.
fn with_pickle(zip: &[u8], pickle: &[u8]) -> Vec<u8> {
    torch_zips::rebuilt(zip, |name, bytes| {
        if name.ends_with("data.pkl") {
            *bytes = pickle.to_vec();
        }
    })
}

/// Writes `bytes` as `name` in a fresh folder and reads it; an error must
/// name the file.
fn read_file<T>(name: &str, bytes: &[u8], read: impl Fn(&Path) -> asr_converters::Result<T>) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    if let Err(e) = read(&path) {
        let msg = e.to_string();
        assert!(msg.contains(name), "{msg}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pickles_mutated_from_a_torch_checkpoint(bytes in mutated(data_pkl(&fixture("torch/mixed.pt")))) {
        let _ = read_pickle(&bytes);
    }

    #[test]
    fn pickles_of_random_opcodes(bytes in opcode_soup()) {
        let _ = read_pickle(&bytes);
    }

    #[test]
    fn torch_zips_with_a_mutated_pickle(pickle in mutated(data_pkl(&fixture("torch/mixed.pt")))) {
        read_file("m.pt", &with_pickle(&fixture("torch/mixed.pt"), &pickle), read_checkpoint);
    }

    #[test]
    fn torch_zips_mutated(bytes in mutated(fixture("torch/mixed.pt"))) {
        read_file("m.pt", &bytes, read_checkpoint);
    }

    #[test]
    fn safetensors_mutated(bytes in mutated(fixture("sharded.expected.safetensors"))) {
        read_file("x.safetensors", &bytes, read_safetensors);
    }

    #[test]
    fn ct2_models_mutated(bytes in mutated(fixture("ct2-int8/model.bin"))) {
        read_file("model.bin", &bytes, read_model_bin);
    }

    #[test]
    fn arbitrary_bytes_for_every_file_reader(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        read_file("a.pt", &bytes, read_checkpoint);
        read_file("a.safetensors", &bytes, read_safetensors);
        read_file("model.bin", &bytes, read_model_bin);
    }
}
