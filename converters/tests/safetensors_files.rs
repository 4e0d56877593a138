//! safetensors reading: a file assembled by hand from the format (8-byte
//! little-endian header length, JSON header, data), then broken in each way
//! the format can be broken.

use std::path::{Path, PathBuf};

use asr_converters::safetensors::read_safetensors;
use asr_converters::{load_state_dict, ConvertError, TensorDtype};

fn file_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn valid() -> Vec<u8> {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}"#;
    let mut data = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>();
    data.extend(42i64.to_le_bytes());
    file_bytes(header, &data)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn reads_a_hand_built_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = read_safetensors(&write(dir.path(), "m.safetensors", &valid())).unwrap();
    assert_eq!(t["a"].to_f32(), vec![1.5, -2.0]);
    assert_eq!(
        (t["b"].dtype, t["b"].scalar_i64()),
        (TensorDtype::I64, Some(42))
    );
}

#[test]
fn malformed_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = valid();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated header length", good[..5].to_vec()),
        (
            "header longer than the file",
            file_bytes("{}", &[]).into_iter().take(9).collect(),
        ),
        ("header length past the end", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
            b
        }),
        ("not JSON", file_bytes("{nope", &[])),
        (
            "offsets beyond the data",
            file_bytes(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &[0; 8],
            ),
        ),
        (
            "byte count not matching the shape",
            file_bytes(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
        ),
        ("truncated data", good[..good.len() - 4].to_vec()),
    ];
    for (what, bytes) in cases {
        let path = write(dir.path(), "bad.safetensors", &bytes);
        match read_safetensors(&path) {
            Err(e @ ConvertError::Format { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("bad.safetensors") && msg.contains("invalid safetensors"),
                    "{what}: {msg}"
                );
            }
            other => panic!("{what}: expected a format error, got {other:?}"),
        }
    }
}

#[test]
fn sharded_index_rejects_escaping_duplicate_and_missing_shards() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s1.safetensors", &valid());
    write(dir.path(), "s2.safetensors", &valid());
    let index = write(
        dir.path(),
        "ok.index.json",
        br#"{"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}}"#,
    );
    assert_eq!(load_state_dict(&index).unwrap().len(), 2);
    let error = |name: &str, json: &[u8]| {
        let index = write(dir.path(), name, json);
        let msg = load_state_dict(&index).unwrap_err().to_string();
        assert!(msg.contains(dir.path().to_str().unwrap()), "{msg}");
        msg
    };
    let msg = error(
        "dup.index.json",
        br#"{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}"#,
    );
    assert!(msg.contains("also defined by another shard"), "{msg}");
    let msg = error("esc.index.json", br#"{"weight_map":{"a":"../etc/passwd"}}"#);
    assert!(msg.contains("outside the model folder"), "{msg}");
    let msg = error(
        "missing.index.json",
        br#"{"weight_map":{"a":"s1.safetensors","c":"s1.safetensors"}}"#,
    );
    assert!(msg.contains("c is not in its shard"), "{msg}");
    let msg = error("bad.index.json", br#"{"weights":{}}"#);
    assert!(msg.contains("no `weight_map`"), "{msg}");
}
