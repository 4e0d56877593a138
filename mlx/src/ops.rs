//! Element-wise, linear-algebra, shape and indexing operations.

use crate::array::to_array_vec;
use crate::ffi::ffi;
use crate::{Array, Result};

/// One-input element-wise operations. Codes match `unary` in shim.cc.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum UnaryOp {
    Negative = 0,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Erf,
    Tanh,
    Sigmoid,
    Sin,
    Cos,
    Square,
    Floor,
    Ceil,
    Round,
    LogicalNot,
    Real,
    Imag,
    Log1p,
    Sign,
    Reciprocal,
    Log10,
}

/// Two-input operations with NumPy broadcasting. Codes match `binary` in shim.cc.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BinaryOp {
    Add = 0,
    Subtract,
    Multiply,
    Divide,
    Maximum,
    Minimum,
    Power,
    Matmul,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    LogicalAnd,
    LogicalOr,
    FloorDivide,
    Remainder,
}

/// Reductions over axes. Codes match `reduce` in shim.cc.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reduction {
    Sum = 0,
    Mean,
    Max,
    Min,
    Prod,
    ArgMax,
    ArgMin,
    LogSumExp,
    All,
    Any,
    Var,
    CumSum,
}

fn wrap(raw: cxx::UniquePtr<ffi::MlxArray>) -> Array {
    Array::from_raw(raw)
}

macro_rules! unary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Array {$(
            pub fn $name(&self) -> Result<Array> {
                self.unary(UnaryOp::$op)
            }
        )*}
    };
}

macro_rules! binary_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Array {$(
            pub fn $name(&self, other: &Array) -> Result<Array> {
                self.binary(BinaryOp::$op, other)
            }
        )*}
    };
}

macro_rules! scalar_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Array {$(
            /// The scalar takes this array's dtype.
            pub fn $name(&self, scalar: f64) -> Result<Array> {
                self.binary_scalar(BinaryOp::$op, scalar)
            }
        )*}
    };
}

macro_rules! reduce_methods {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Array {$(
            /// Reduces over `axes` (all axes when empty).
            pub fn $name(&self, axes: &[i32], keepdims: bool) -> Result<Array> {
                self.reduce(Reduction::$op, axes, keepdims)
            }
        )*}
    };
}

unary_methods!(
    negative => Negative, abs => Abs, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt,
    erf => Erf, tanh => Tanh, sigmoid => Sigmoid, sin => Sin, cos => Cos, square => Square,
    floor => Floor, ceil => Ceil, round => Round, logical_not => LogicalNot, real => Real,
    imag => Imag, log1p => Log1p, sign => Sign, reciprocal => Reciprocal, log10 => Log10,
);

binary_methods!(
    add => Add, subtract => Subtract, multiply => Multiply, divide => Divide,
    maximum => Maximum, minimum => Minimum, power => Power, matmul => Matmul,
    equal => Equal, not_equal => NotEqual, less => Less, less_equal => LessEqual,
    greater => Greater, greater_equal => GreaterEqual, logical_and => LogicalAnd,
    logical_or => LogicalOr, floor_divide => FloorDivide, remainder => Remainder,
);

scalar_methods!(
    add_scalar => Add, sub_scalar => Subtract, mul_scalar => Multiply, div_scalar => Divide,
    max_scalar => Maximum, min_scalar => Minimum, pow_scalar => Power,
);

reduce_methods!(
    sum => Sum, mean => Mean, max => Max, min => Min, prod => Prod,
    logsumexp => LogSumExp, all => All, any => Any, var => Var,
);

impl Array {
    pub fn unary(&self, op: UnaryOp) -> Result<Array> {
        Ok(wrap(ffi::unary(op as u8, self.raw())?))
    }

    pub fn binary(&self, op: BinaryOp, other: &Array) -> Result<Array> {
        Ok(wrap(ffi::binary(op as u8, self.raw(), other.raw())?))
    }

    /// `self op scalar`, the scalar cast to this array's dtype.
    pub fn binary_scalar(&self, op: BinaryOp, scalar: f64) -> Result<Array> {
        Ok(wrap(ffi::binary_scalar(
            op as u8,
            self.raw(),
            scalar,
            false,
        )?))
    }

    /// `scalar op self`, the scalar cast to this array's dtype.
    pub fn scalar_binary(&self, scalar: f64, op: BinaryOp) -> Result<Array> {
        Ok(wrap(ffi::binary_scalar(
            op as u8,
            self.raw(),
            scalar,
            true,
        )?))
    }

    pub fn reduce(&self, op: Reduction, axes: &[i32], keepdims: bool) -> Result<Array> {
        Ok(wrap(ffi::reduce(op as u8, self.raw(), axes, keepdims)?))
    }

    pub fn argmax(&self, axis: i32, keepdims: bool) -> Result<Array> {
        self.reduce(Reduction::ArgMax, &[axis], keepdims)
    }

    pub fn argmin(&self, axis: i32, keepdims: bool) -> Result<Array> {
        self.reduce(Reduction::ArgMin, &[axis], keepdims)
    }

    /// Inclusive cumulative sum along `axis`.
    pub fn cumsum(&self, axis: i32) -> Result<Array> {
        self.reduce(Reduction::CumSum, &[axis], false)
    }

    /// `beta * self + alpha * (a @ b)` in one fused GEMM.
    pub fn addmm(&self, a: &Array, b: &Array, alpha: f32, beta: f32) -> Result<Array> {
        Ok(wrap(ffi::addmm(self.raw(), a.raw(), b.raw(), alpha, beta)?))
    }

    /// Picks `x` where `self` is true, else `y` (broadcasting).
    pub fn select(&self, x: &Array, y: &Array) -> Result<Array> {
        Ok(wrap(ffi::where_(self.raw(), x.raw(), y.raw())?))
    }

    /// Softmax over `axes`; `precise` accumulates half-precision input in f32.
    pub fn softmax(&self, axes: &[i32], precise: bool) -> Result<Array> {
        Ok(wrap(ffi::softmax(self.raw(), axes, precise)?))
    }

    /// `x - logsumexp(x)` over one axis.
    pub fn log_softmax(&self, axis: i32) -> Result<Array> {
        self.subtract(&self.logsumexp(&[axis], true)?)
    }

    /// GELU, exact form `0.5 x (1 + erf(x / sqrt 2))`.
    pub fn gelu(&self) -> Result<Array> {
        Ok(wrap(ffi::gelu(self.raw(), false)?))
    }

    /// GELU, tanh approximation.
    pub fn gelu_approx(&self) -> Result<Array> {
        Ok(wrap(ffi::gelu(self.raw(), true)?))
    }

    /// SiLU (Swish), `x sigmoid(x)`: one pass of the CPU kernels for f32.
    pub fn silu(&self) -> Result<Array> {
        Ok(wrap(ffi::silu(self.raw())?))
    }

    /// The gated linear unit over the last axis (even length `2n`): the
    /// first `n` values times the sigmoid of the last `n`, as one pass of the
    /// CPU kernels for f32.
    pub fn glu(&self) -> Result<Array> {
        Ok(wrap(ffi::glu(self.raw())?))
    }

    pub fn reshape(&self, shape: &[i32]) -> Result<Array> {
        Ok(wrap(ffi::reshape(self.raw(), shape)?))
    }

    /// Permutes axes; an empty `axes` reverses them.
    pub fn transpose(&self, axes: &[i32]) -> Result<Array> {
        Ok(wrap(ffi::transpose(self.raw(), axes)?))
    }

    pub fn swapaxes(&self, a: i32, b: i32) -> Result<Array> {
        Ok(wrap(ffi::swapaxes(self.raw(), a, b)?))
    }

    pub fn broadcast_to(&self, shape: &[i32]) -> Result<Array> {
        Ok(wrap(ffi::broadcast_to(self.raw(), shape)?))
    }

    pub fn expand_dims(&self, axes: &[i32]) -> Result<Array> {
        Ok(wrap(ffi::expand_dims(self.raw(), axes)?))
    }

    /// Removes size-1 axes (all of them when `axes` is empty).
    pub fn squeeze(&self, axes: &[i32]) -> Result<Array> {
        Ok(wrap(ffi::squeeze(self.raw(), axes)?))
    }

    /// Merges axes `start..=end` into one.
    pub fn flatten(&self, start: i32, end: i32) -> Result<Array> {
        Ok(wrap(ffi::flatten(self.raw(), start, end)?))
    }

    /// `self[start:stop:strides]` per axis.
    pub fn slice(&self, start: &[i32], stop: &[i32], strides: &[i32]) -> Result<Array> {
        Ok(wrap(ffi::slice(self.raw(), start, stop, strides)?))
    }

    /// Slice of `[start, stop)` along a single axis.
    pub fn slice_axis(&self, axis: i32, start: i32, stop: i32) -> Result<Array> {
        let shape = self.shape();
        let n = shape.len() as i32;
        let index = if axis < 0 { axis + n } else { axis };
        let mut lo = vec![0; shape.len()];
        let mut hi = shape.clone();
        let index = usize::try_from(index)
            .ok()
            .filter(|&i| i < shape.len())
            .ok_or_else(|| {
                crate::Error::Mlx(format!(
                    "slice_axis: axis {axis} out of range for {n} dimensions"
                ))
            })?;
        lo[index] = start;
        hi[index] = stop;
        self.slice(&lo, &hi, &vec![1; shape.len()])
    }

    /// A copy of `self` with `self[start:stop:strides] = update`.
    pub fn slice_update(
        &self,
        update: &Array,
        start: &[i32],
        stop: &[i32],
        strides: &[i32],
    ) -> Result<Array> {
        Ok(wrap(ffi::slice_update(
            self.raw(),
            update.raw(),
            start,
            stop,
            strides,
        )?))
    }

    /// A view with explicit element strides and offset into `self`'s
    /// elements in row-major order. MLX itself does not bounds-check the
    /// view, so this does: every element the view can reach must lie inside
    /// `self`, else `Err`.
    pub fn as_strided(&self, shape: &[i32], strides: &[i64], offset: usize) -> Result<Array> {
        let fail = |why: String| Err(crate::Error::Mlx(format!("as_strided: {why}")));
        if shape.len() != strides.len() {
            return fail(format!(
                "shape {shape:?} and strides {strides:?} differ in length"
            ));
        }
        if let Some(d) = shape.iter().find(|&&d| d < 0) {
            return fail(format!("negative dimension {d} in shape {shape:?}"));
        }
        if shape.iter().all(|&d| d > 0) {
            // The lowest and highest element index the view touches.
            let (mut lo, mut hi) = (offset as i128, offset as i128);
            for (&d, &s) in shape.iter().zip(strides) {
                let span = (d as i128 - 1) * s as i128;
                if span > 0 {
                    hi += span;
                } else {
                    lo += span;
                }
            }
            let size = self.size() as i128;
            if lo < 0 || hi >= size {
                return fail(format!(
                    "shape {shape:?}, strides {strides:?} and offset {offset} reach elements \
                     {lo}..={hi}, outside the {size} elements of the input"
                ));
            }
        }
        Ok(wrap(ffi::as_strided(self.raw(), shape, strides, offset)?))
    }

    /// Pads `axes` with `low`/`high` elements of `value`.
    pub fn pad(&self, axes: &[i32], low: &[i32], high: &[i32], value: f64) -> Result<Array> {
        Ok(wrap(ffi::pad(self.raw(), axes, low, high, value)?))
    }

    /// Gathers `indices` along `axis`.
    pub fn take(&self, indices: &Array, axis: i32) -> Result<Array> {
        Ok(wrap(ffi::take(self.raw(), indices.raw(), axis)?))
    }

    pub fn take_along_axis(&self, indices: &Array, axis: i32) -> Result<Array> {
        Ok(wrap(ffi::take_along_axis(self.raw(), indices.raw(), axis)?))
    }

    pub fn sort(&self, axis: i32) -> Result<Array> {
        Ok(wrap(ffi::sort(self.raw(), axis)?))
    }

    pub fn argsort(&self, axis: i32) -> Result<Array> {
        Ok(wrap(ffi::argsort(self.raw(), axis)?))
    }

    /// The `k` largest values along `axis`, in no particular order.
    pub fn topk(&self, k: i32, axis: i32) -> Result<Array> {
        Ok(wrap(ffi::topk(self.raw(), k, axis)?))
    }

    /// Indices that partition along `axis` around the `kth` smallest element.
    pub fn argpartition(&self, kth: i32, axis: i32) -> Result<Array> {
        Ok(wrap(ffi::argpartition(self.raw(), kth, axis)?))
    }

    /// 1-D convolution. `self` is `[N, L, C_in]`, `weight` `[C_out, K, C_in / groups]`.
    pub fn conv1d(
        &self,
        weight: &Array,
        stride: i32,
        padding: i32,
        dilation: i32,
        groups: i32,
    ) -> Result<Array> {
        Ok(wrap(ffi::conv1d(
            self.raw(),
            weight.raw(),
            stride,
            padding,
            dilation,
            groups,
        )?))
    }

    /// 2-D convolution. `self` is `[N, H, W, C_in]`, `weight` `[C_out, KH, KW, C_in / groups]`.
    pub fn conv2d(
        &self,
        weight: &Array,
        stride: [i32; 2],
        padding: [i32; 2],
        dilation: [i32; 2],
        groups: i32,
    ) -> Result<Array> {
        Ok(wrap(ffi::conv2d(
            self.raw(),
            weight.raw(),
            &stride,
            &padding,
            &dilation,
            groups,
        )?))
    }
}

/// Joins arrays along an existing axis.
pub fn concatenate(arrays: &[&Array], axis: i32) -> Result<Array> {
    Ok(wrap(ffi::concatenate(&to_array_vec(arrays), axis)?))
}

/// Joins arrays along a new axis.
pub fn stack(arrays: &[&Array], axis: i32) -> Result<Array> {
    Ok(wrap(ffi::stack(&to_array_vec(arrays), axis)?))
}
