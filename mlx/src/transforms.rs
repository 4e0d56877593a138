//! Evaluation and function compilation.

use std::panic::{catch_unwind, AssertUnwindSafe};

use cxx::UniquePtr;

use crate::array::{from_array_vec, to_array_vec};
use crate::ffi::ffi;
use crate::{Array, Error, Result};

/// Computes the given arrays and everything they depend on, in one pass.
pub fn eval(arrays: &[&Array]) -> Result<()> {
    Ok(ffi::eval(&to_array_vec(arrays))?)
}

/// Schedules evaluation and returns at once; a later `eval` or read waits.
pub fn async_eval(arrays: &[&Array]) -> Result<()> {
    Ok(ffi::async_eval(&to_array_vec(arrays))?)
}

type ArrayFn = dyn Fn(&[Array]) -> Result<Vec<Array>>;

/// A Rust closure handed to MLX's compiler (opaque to C++).
pub struct RustFn(Box<ArrayFn>);

/// Called by the C++ trampoline while MLX traces or runs the function.
pub(crate) fn call_rust_fn(
    f: &RustFn,
    inputs: &ffi::ArrayVec,
) -> std::result::Result<UniquePtr<ffi::ArrayVec>, Error> {
    let inputs = from_array_vec(inputs)?;
    // A panic must not unwind into C++: report it as an error instead.
    let outputs = catch_unwind(AssertUnwindSafe(|| (f.0)(&inputs)))
        .map_err(|_| Error::Callback("the closure panicked".into()))??;
    let refs: Vec<&Array> = outputs.iter().collect();
    Ok(to_array_vec(&refs))
}

/// A function traced once per input shape and replayed as a fused graph.
pub struct CompiledFn {
    raw: UniquePtr<ffi::CompiledFn>,
}

impl CompiledFn {
    pub fn call(&self, inputs: &[&Array]) -> Result<Vec<Array>> {
        let out = ffi::call_compiled(&self.raw, &to_array_vec(inputs))?;
        from_array_vec(&out)
    }
}

/// Compiles `f`. With `shapeless`, one trace serves every input shape (only
/// valid when the graph does not depend on shapes).
pub fn compile<F>(f: F, shapeless: bool) -> Result<CompiledFn>
where
    F: Fn(&[Array]) -> Result<Vec<Array>> + 'static,
{
    let raw = ffi::compile(Box::new(RustFn(Box::new(f))), shapeless)?;
    Ok(CompiledFn { raw })
}
