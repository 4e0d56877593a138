use std::borrow::Cow;

use half::{bf16, f16};

/// Element types. The discriminants equal MLX's `Dtype::Val` codes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dtype {
    Bool = 0,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    F32,
    F64,
    BF16,
    Complex64,
}

impl Dtype {
    const ALL: [Dtype; 14] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::U16,
        Dtype::U32,
        Dtype::U64,
        Dtype::I8,
        Dtype::I16,
        Dtype::I32,
        Dtype::I64,
        Dtype::F16,
        Dtype::F32,
        Dtype::F64,
        Dtype::BF16,
        Dtype::Complex64,
    ];

    pub(crate) fn from_code(code: u8) -> Option<Dtype> {
        Self::ALL.get(code as usize).copied()
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 | Dtype::Complex64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F16 | Dtype::F32 | Dtype::F64 | Dtype::BF16)
    }
}

/// A Rust type that can be copied into and out of an MLX array.
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: Dtype;
    /// The elements as MLX stores them (native endianness).
    fn to_bytes(data: &[Self]) -> Cow<'_, [u8]>;
    /// `len` elements from `fill`, which writes the bytes MLX stores for
    /// them into the buffer it is given (the elements' own memory where
    /// their layout allows: one copy out of MLX, not two).
    fn read(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> crate::Result<()>,
    ) -> crate::Result<Vec<Self>>;
}

macro_rules! pod_element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl Element for $t {
            const DTYPE: Dtype = Dtype::$d;
            fn to_bytes(data: &[Self]) -> Cow<'_, [u8]> {
                Cow::Borrowed(bytemuck::cast_slice(data))
            }
            fn read(
                len: usize,
                fill: impl FnOnce(&mut [u8]) -> crate::Result<()>,
            ) -> crate::Result<Vec<Self>> {
                let mut out = vec![<$t>::default(); len];
                fill(bytemuck::cast_slice_mut(&mut out))?;
                Ok(out)
            }
        }
    )*};
}

pod_element!(
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    f16 => F16, f32 => F32, f64 => F64, bf16 => BF16,
);

// MLX stores bool as one byte holding 0 or 1; Rust's bool has the same layout
// but not every byte is a valid bool, so reading back goes through `!= 0`.
impl Element for bool {
    const DTYPE: Dtype = Dtype::Bool;
    fn to_bytes(data: &[Self]) -> Cow<'_, [u8]> {
        Cow::Owned(data.iter().map(|&b| b as u8).collect())
    }
    fn read(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> crate::Result<()>,
    ) -> crate::Result<Vec<Self>> {
        let mut bytes = vec![0u8; len];
        fill(&mut bytes)?;
        Ok(bytes.iter().map(|&b| b != 0).collect())
    }
}
