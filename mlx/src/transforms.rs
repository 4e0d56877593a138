//! Evaluation and function compilation.

use std::cell::RefCell;
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

thread_local! {
    /// The arrays made on this thread inside [`evaluating_created`].
    static CREATED: RefCell<Option<Vec<Array>>> = const { RefCell::new(None) };
}

/// Runs `f`, then evaluates every array it made on this thread. MLX 0.32
/// gives each thread streams of its own, and a lazy array can only be
/// evaluated on the thread whose stream it was recorded on: an array a
/// model derives while loading (a transposed, stacked or cast weight) and
/// keeps lazy would fail on any other thread with "There is no Stream(cpu,
/// 0) in current thread". Loading inside this makes a model usable from
/// every thread. Nested calls leave the evaluation to the outermost.
pub fn evaluating_created<T, E: From<Error>>(
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    if CREATED.with(|created| created.borrow().is_some()) {
        return f();
    }
    let _stop_noting = Resume(None);
    CREATED.with(|created| *created.borrow_mut() = Some(Vec::new()));
    let value = f()?;
    let created = CREATED
        .with(|created| created.borrow_mut().take())
        .unwrap_or_default();
    let refs: Vec<&Array> = created.iter().collect();
    eval(&refs)?;
    Ok(value)
}

/// Runs `f` without noting what it makes for an enclosing
/// [`evaluating_created`]: arrays that are not kept, such as those of a
/// model converted to disk before it is loaded, would otherwise all be held
/// until the end.
pub fn unnoted<T>(f: impl FnOnce() -> T) -> T {
    let _resume = Resume(CREATED.with(|created| created.borrow_mut().take()));
    f()
}

/// Puts back the notes it holds when dropped, even when a panic unwinds.
struct Resume(Option<Vec<Array>>);

impl Drop for Resume {
    fn drop(&mut self) {
        let noted = self.0.take();
        CREATED.with(|created| *created.borrow_mut() = noted);
    }
}

/// Called for every array made, so that [`evaluating_created`] sees it.
pub(crate) fn note_created(raw: &ffi::MlxArray) {
    CREATED.with(|created| {
        if let Some(created) = created.borrow_mut().as_mut() {
            created.push(Array::share(raw));
        }
    });
}

type ArrayFn = dyn Fn(&[Array]) -> Result<Vec<Array>>;

/// A Rust closure handed to MLX's compiler (opaque to C++).
pub struct RustFn(Box<ArrayFn>);

thread_local! {
    /// The error of the closure that failed during the current
    /// `CompiledFn::call` on this thread. It crosses C++ only as text, so it
    /// is kept here and handed back unchanged (variant included).
    static CLOSURE_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Called by the C++ trampoline while MLX traces or runs the function.
pub(crate) fn call_rust_fn(
    f: &RustFn,
    inputs: &ffi::ArrayVec,
) -> std::result::Result<UniquePtr<ffi::ArrayVec>, Error> {
    let result = from_array_vec(inputs).and_then(|inputs| {
        // A panic must not unwind into C++: report it as an error instead.
        catch_unwind(AssertUnwindSafe(|| (f.0)(&inputs))).unwrap_or_else(|payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Callback(format!("the closure panicked: {what}")))
        })
    });
    match result {
        Ok(outputs) => {
            let refs: Vec<&Array> = outputs.iter().collect();
            Ok(to_array_vec(&refs))
        }
        Err(e) => {
            let text = Error::Callback(e.to_string());
            CLOSURE_ERROR.with(|slot| *slot.borrow_mut() = Some(e));
            Err(text)
        }
    }
}

/// A function traced once per input shape and replayed as a fused graph.
pub struct CompiledFn {
    raw: UniquePtr<ffi::CompiledFn>,
}

impl CompiledFn {
    /// Runs the function. An error returned by the closure comes back as
    /// it was returned; a panic in the closure as [`Error::Callback`].
    pub fn call(&self, inputs: &[&Array]) -> Result<Vec<Array>> {
        CLOSURE_ERROR.with(|slot| slot.borrow_mut().take());
        let out = ffi::call_compiled(&self.raw, &to_array_vec(inputs)).map_err(|e| {
            CLOSURE_ERROR
                .with(|slot| slot.borrow_mut().take())
                .unwrap_or_else(|| e.into())
        })?;
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
