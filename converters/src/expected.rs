//! A checkpoint's tensors checked against those its config implies, so that
//! a folder that converts is one its model loads.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ConvertError, Result};

/// Tensor names and their shapes, as a config implies them.
#[derive(Default)]
pub(crate) struct Expected(pub(crate) BTreeMap<String, Vec<i32>>);

impl Expected {
    pub(crate) fn add(&mut self, name: String, shape: &[i32]) {
        self.0.insert(name, shape.to_vec());
    }

    /// A layer's `weight` of `shape`, and its bias (of its outputs) when it
    /// has one.
    pub(crate) fn layer(&mut self, module: &str, shape: &[i32], bias: bool) {
        self.add(format!("{module}.weight"), shape);
        if bias {
            self.add(format!("{module}.bias"), &shape[..1]);
        }
    }
}

/// Refuses tensors (`actual`: name and shape) that are not exactly
/// `expected` in name and shape; the error names `source` and up to five
/// offending tensors.
pub(crate) fn check_tensor_set(
    source: &Path,
    expected: &BTreeMap<String, Vec<i32>>,
    actual: &BTreeMap<String, Vec<i32>>,
) -> Result<()> {
    let refuse = |what: &str, names: Vec<String>| {
        if names.is_empty() {
            return Ok(());
        }
        let shown = names.len().min(5);
        let more = match names.len() - shown {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        Err(ConvertError::format(
            source,
            format!("{what}: {}{more}", names[..shown].join(", ")),
        ))
    };
    refuse(
        "the config's model needs tensors the checkpoint lacks",
        expected
            .keys()
            .filter(|n| !actual.contains_key(*n))
            .cloned()
            .collect(),
    )?;
    refuse(
        "tensors the config's model does not have",
        actual
            .keys()
            .filter(|n| !expected.contains_key(*n))
            .cloned()
            .collect(),
    )?;
    refuse(
        "tensors whose shapes differ from the config's",
        actual
            .iter()
            .filter(|(n, shape)| expected[*n] != **shape)
            .map(|(n, shape)| format!("{n} is {shape:?}, expected {:?}", expected[n]))
            .collect(),
    )
}
