//! Quantization, in one place: how a model's weights are stored
//! ([`Quantization`], the `quantization` entry of a converted model's
//! `config.json`), how products with them treat activations
//! ([`Activations`]), the names users write for the two together
//! ([`Quantize`]: `pipeline convert --quantize`), and the config's
//! `quantize`, which may also leave the choice to the CPU at hand
//! ([`QuantizeChoice`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// MLX affine quantization of linear and embedding weights: each group of
/// `group_size` consecutive weights along a row shares a scale and a bias,
/// and every weight is stored in `bits` bits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    pub group_size: i32,
    pub bits: i32,
}

impl Quantization {
    /// The bit widths the converter writes.
    pub const BITS: [i32; 2] = [4, 8];
    /// The group sizes the converter writes (MLX's kernels take these).
    pub const GROUP_SIZES: [i32; 3] = [32, 64, 128];
    /// The group size when none is given.
    pub const DEFAULT_GROUP_SIZE: i32 = 64;

    /// Whether the converter can write weights this way.
    pub fn check(self) -> Result<(), QuantizeError> {
        if !Self::BITS.contains(&self.bits) {
            return Err(QuantizeError::Bits(self.bits));
        }
        Self::check_group_size(self.group_size)
    }

    /// Checks a group size before it is applied.
    pub fn check_group_size(group_size: i32) -> Result<(), QuantizeError> {
        if Self::GROUP_SIZES.contains(&group_size) {
            Ok(())
        } else {
            Err(QuantizeError::GroupSize(group_size))
        }
    }
}

/// Why a quantization setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantizeError {
    #[error("unknown quantization {0:?} (use {names})", names = Quantize::NAMES.join(", "))]
    Name(String),
    #[error("unknown quantization {0:?} (use {names})", names = QuantizeChoice::NAMES.join(", "))]
    ChoiceName(String),
    #[error("{0} bits (use 4 or 8)")]
    Bits(i32),
    #[error("group size {0} (use 32, 64 or 128)")]
    GroupSize(i32),
}

/// What products with the quantized matrices do with their activations.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Activations {
    /// Kept in f32: the product of the dequantized matrix.
    #[default]
    F32,
    /// Rounded to int8 (one scale per group of the matrix's quantization) in
    /// products with many rows (the encoder, a prompt), where the CPU kernels
    /// can: see
    /// [`mlx::quant::QuantizedMatrix::int8_activations`].
    Int8,
}

/// A quantization as users name it: `none`, `q8`, `q4`, or `int8` (8-bit
/// weights, as `q8`, whose products with many rows round their activations
/// to int8 too); the group size is [`Quantization::DEFAULT_GROUP_SIZE`]
/// unless [`Quantize::with_group_size`] sets another.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Quantize {
    /// How converted weights are stored; `None` keeps them as published.
    pub weights: Option<Quantization>,
    pub activations: Activations,
}

impl Quantize {
    /// The names [`FromStr`] accepts.
    pub const NAMES: [&'static str; 4] = ["none", "q8", "q4", "int8"];

    /// The same setting with weights in groups of `group_size` (which
    /// [`Quantization::check`] then checks); no change for `none`.
    pub fn with_group_size(self, group_size: i32) -> Quantize {
        Quantize {
            weights: self.weights.map(|q| Quantization { group_size, ..q }),
            ..self
        }
    }
}

impl FromStr for Quantize {
    type Err = QuantizeError;

    fn from_str(name: &str) -> Result<Quantize, QuantizeError> {
        let (bits, activations) = match name {
            "none" => return Ok(Quantize::default()),
            "q8" => (8, Activations::F32),
            "q4" => (4, Activations::F32),
            "int8" => (8, Activations::Int8),
            _ => return Err(QuantizeError::Name(name.to_string())),
        };
        Ok(Quantize {
            weights: Some(Quantization {
                bits,
                group_size: Quantization::DEFAULT_GROUP_SIZE,
            }),
            activations,
        })
    }
}

impl Quantize {
    /// What `quantize = "auto"` picks on this CPU for a model the pipeline
    /// converts: the fastest setting whose word error rate equals or beats
    /// f32's on the benchmark set (docs/benchmarks.md). That is 8-bit
    /// weights everywhere (half the bytes of f16 per decoded token, the
    /// same pooled WER), and int8 activations where the CPU kernels have an
    /// int8 product ([`mlx::kernels::int8_products_available`]).
    pub fn auto() -> Quantize {
        let name = if mlx::kernels::int8_products_available() {
            "int8"
        } else {
            "q8"
        };
        name.parse().expect("a known name")
    }
}

/// The name [`FromStr`] reads back (the group size is not part of it).
impl fmt::Display for Quantize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.weights, self.activations) {
            (None, _) => f.write_str("none"),
            (Some(q), Activations::Int8) if q.bits == 8 => f.write_str("int8"),
            (Some(q), _) => write!(f, "q{}", q.bits),
        }
    }
}

/// Reads one of [`Quantize::NAMES`], as a config file writes it.
impl<'de> Deserialize<'de> for Quantize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Quantize, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The config's `quantize`: a [`Quantize`], or `auto` (the default) to
/// take the fastest setting that keeps f32's accuracy on this CPU.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum QuantizeChoice {
    #[default]
    Auto,
    Fixed(Quantize),
}

impl QuantizeChoice {
    /// The names [`FromStr`] accepts.
    pub const NAMES: [&'static str; 5] = ["auto", "none", "q8", "q4", "int8"];

    /// The setting to run with. `auto` is [`Quantize::auto`] for a model the
    /// pipeline converts; for an MLX folder, used as stored (`stored`: its
    /// weights' quantization), it is that storage, with int8 activations
    /// where `auto` would take them.
    pub fn resolve(self, stored: Option<Option<Quantization>>) -> Quantize {
        match (self, stored) {
            (QuantizeChoice::Fixed(q), _) => q,
            (QuantizeChoice::Auto, None) => Quantize::auto(),
            (QuantizeChoice::Auto, Some(weights)) => Quantize {
                weights,
                activations: match weights {
                    Some(q) if q.bits == 8 => Quantize::auto().activations,
                    _ => Activations::F32,
                },
            },
        }
    }
}

impl From<Quantize> for QuantizeChoice {
    fn from(q: Quantize) -> QuantizeChoice {
        QuantizeChoice::Fixed(q)
    }
}

impl FromStr for QuantizeChoice {
    type Err = QuantizeError;

    fn from_str(name: &str) -> Result<QuantizeChoice, QuantizeError> {
        match name {
            "auto" => Ok(QuantizeChoice::Auto),
            _ => name
                .parse()
                .map(QuantizeChoice::Fixed)
                .map_err(|_| QuantizeError::ChoiceName(name.to_string())),
        }
    }
}

impl fmt::Display for QuantizeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantizeChoice::Auto => f.write_str("auto"),
            QuantizeChoice::Fixed(q) => q.fmt(f),
        }
    }
}

/// Reads one of [`QuantizeChoice::NAMES`], as a config file writes it.
impl<'de> Deserialize<'de> for QuantizeChoice {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<QuantizeChoice, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_storage_and_activations_and_print_back() {
        let q = |bits| {
            Some(Quantization {
                bits,
                group_size: 64,
            })
        };
        for (name, weights, activations) in [
            ("none", None, Activations::F32),
            ("q8", q(8), Activations::F32),
            ("q4", q(4), Activations::F32),
            ("int8", q(8), Activations::Int8),
        ] {
            let parsed: Quantize = name.parse().unwrap();
            assert_eq!((parsed.weights, parsed.activations), (weights, activations));
            assert_eq!(parsed.to_string(), name);
        }
        let err = "q3".parse::<Quantize>().unwrap_err().to_string();
        assert!(err.contains("q3") && err.contains("q8"), "{err}");
    }

    #[test]
    fn auto_resolves_by_the_cpu_and_by_how_a_folder_is_stored() {
        let auto: QuantizeChoice = "auto".parse().unwrap();
        assert_eq!(auto, QuantizeChoice::default());
        assert_eq!(auto.to_string(), "auto");
        let picked = auto.resolve(None);
        let q8 = Some(Quantization {
            bits: 8,
            group_size: 64,
        });
        assert_eq!(picked.weights, q8);
        let int8 = mlx::kernels::int8_products_available();
        assert_eq!(picked.activations == Activations::Int8, int8);
        // Folders used as stored: their storage, int8 only with 8 bits.
        assert_eq!(auto.resolve(Some(None)), Quantize::default());
        let q4 = Some(Quantization {
            bits: 4,
            group_size: 32,
        });
        assert_eq!(auto.resolve(Some(q4)).weights, q4);
        assert_eq!(auto.resolve(Some(q4)).activations, Activations::F32);
        assert_eq!(auto.resolve(Some(q8)), picked);
        // A fixed choice is what it says, whatever the folder.
        let none: QuantizeChoice = "none".parse().unwrap();
        assert_eq!(none.resolve(Some(q8)), Quantize::default());
        let err = "q3".parse::<QuantizeChoice>().unwrap_err().to_string();
        assert!(err.contains("q3") && err.contains("auto"), "{err}");
    }

    #[test]
    fn group_sizes_are_set_and_checked() {
        let q4: Quantize = "q4".parse().unwrap();
        let q4_32 = q4.with_group_size(32).weights.unwrap();
        assert_eq!((q4_32.bits, q4_32.group_size), (4, 32));
        assert_eq!(q4_32.check(), Ok(()));
        let odd = q4.with_group_size(48).weights.unwrap();
        assert_eq!(odd.check(), Err(QuantizeError::GroupSize(48)));
        assert_eq!(Quantize::default().with_group_size(32), Quantize::default());
        let three_bits = Quantization {
            bits: 3,
            group_size: 64,
        };
        assert_eq!(three_bits.check(), Err(QuantizeError::Bits(3)));
    }
}
