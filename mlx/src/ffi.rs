//! The cxx bridge. Enumerations cross as `u8` codes whose meaning is fixed by
//! the Rust enums in this crate (`Dtype`, `UnaryOp`, ...) and the switch
//! statements in `cpp/shim.cc`.

use crate::io::{mapping_bytes, Mapping};
use crate::transforms::{call_rust_fn, RustFn};

#[allow(clippy::module_inception)]
#[cxx::bridge(namespace = "mlx_shim")]
pub(crate) mod ffi {
    extern "Rust" {
        type RustFn;
        fn call_rust_fn(f: &RustFn, inputs: &ArrayVec) -> Result<UniquePtr<ArrayVec>>;
        type Mapping;
        fn mapping_bytes(m: &mut Mapping) -> &mut [u8];
    }

    unsafe extern "C++" {
        include!("mlx/src/cpp/shim.h");

        #[namespace = "mlx::core"]
        #[cxx_name = "array"]
        type MlxArray;
        type ArrayVec;
        type CompiledFn;
        type MappedFile;

        fn array_vec_new() -> UniquePtr<ArrayVec>;
        fn array_vec_push(v: Pin<&mut ArrayVec>, a: &MlxArray);
        fn array_vec_len(v: &ArrayVec) -> usize;
        fn array_vec_get(v: &ArrayVec, i: usize) -> Result<UniquePtr<MlxArray>>;

        fn from_bytes(data: &[u8], shape: &[i32], dtype: u8) -> Result<UniquePtr<MlxArray>>;
        fn full(shape: &[i32], value: f64, dtype: u8) -> Result<UniquePtr<MlxArray>>;
        fn arange(start: f64, stop: f64, step: f64, dtype: u8) -> Result<UniquePtr<MlxArray>>;
        fn clone_array(a: &MlxArray) -> UniquePtr<MlxArray>;
        fn copy_to_bytes(a: &MlxArray, out: &mut [u8]) -> Result<()>;
        fn prefer_huge_pages(a: &MlxArray) -> Result<bool>;
        fn shape_of(a: &MlxArray) -> Vec<i32>;
        fn dtype_of(a: &MlxArray) -> u8;
        fn size_of_array(a: &MlxArray) -> usize;
        fn describe(a: &MlxArray) -> Result<String>;

        fn unary(op: u8, a: &MlxArray) -> Result<UniquePtr<MlxArray>>;
        fn binary(op: u8, a: &MlxArray, b: &MlxArray) -> Result<UniquePtr<MlxArray>>;
        fn binary_scalar(
            op: u8,
            a: &MlxArray,
            s: f64,
            scalar_first: bool,
        ) -> Result<UniquePtr<MlxArray>>;
        fn astype(a: &MlxArray, dtype: u8) -> Result<UniquePtr<MlxArray>>;
        fn where_(cond: &MlxArray, x: &MlxArray, y: &MlxArray) -> Result<UniquePtr<MlxArray>>;
        fn addmm(
            c: &MlxArray,
            a: &MlxArray,
            b: &MlxArray,
            alpha: f32,
            beta: f32,
        ) -> Result<UniquePtr<MlxArray>>;
        fn reduce(
            op: u8,
            a: &MlxArray,
            axes: &[i32],
            keepdims: bool,
        ) -> Result<UniquePtr<MlxArray>>;
        fn softmax(a: &MlxArray, axes: &[i32], precise: bool) -> Result<UniquePtr<MlxArray>>;
        fn gelu(a: &MlxArray, tanh_approx: bool) -> Result<UniquePtr<MlxArray>>;
        fn silu(a: &MlxArray) -> Result<UniquePtr<MlxArray>>;
        fn glu(a: &MlxArray) -> Result<UniquePtr<MlxArray>>;
        fn rel_pos_attention(
            q_u: &MlxArray,
            q_v: &MlxArray,
            k: &MlxArray,
            v: &MlxArray,
            p: &MlxArray,
            scale: f32,
        ) -> Result<UniquePtr<MlxArray>>;

        fn reshape(a: &MlxArray, shape: &[i32]) -> Result<UniquePtr<MlxArray>>;
        fn transpose(a: &MlxArray, axes: &[i32]) -> Result<UniquePtr<MlxArray>>;
        fn swapaxes(a: &MlxArray, a1: i32, a2: i32) -> Result<UniquePtr<MlxArray>>;
        fn broadcast_to(a: &MlxArray, shape: &[i32]) -> Result<UniquePtr<MlxArray>>;
        fn expand_dims(a: &MlxArray, axes: &[i32]) -> Result<UniquePtr<MlxArray>>;
        fn squeeze(a: &MlxArray, axes: &[i32]) -> Result<UniquePtr<MlxArray>>;
        fn flatten(a: &MlxArray, start: i32, end: i32) -> Result<UniquePtr<MlxArray>>;
        fn slice(
            a: &MlxArray,
            start: &[i32],
            stop: &[i32],
            strides: &[i32],
        ) -> Result<UniquePtr<MlxArray>>;
        fn slice_update(
            src: &MlxArray,
            update: &MlxArray,
            start: &[i32],
            stop: &[i32],
            strides: &[i32],
        ) -> Result<UniquePtr<MlxArray>>;
        fn as_strided(
            a: &MlxArray,
            shape: &[i32],
            strides: &[i64],
            offset: usize,
        ) -> Result<UniquePtr<MlxArray>>;
        fn concatenate(arrays: &ArrayVec, axis: i32) -> Result<UniquePtr<MlxArray>>;
        fn stack(arrays: &ArrayVec, axis: i32) -> Result<UniquePtr<MlxArray>>;
        fn pad(
            a: &MlxArray,
            axes: &[i32],
            low: &[i32],
            high: &[i32],
            value: f64,
        ) -> Result<UniquePtr<MlxArray>>;
        fn take(a: &MlxArray, indices: &MlxArray, axis: i32) -> Result<UniquePtr<MlxArray>>;
        fn take_along_axis(
            a: &MlxArray,
            indices: &MlxArray,
            axis: i32,
        ) -> Result<UniquePtr<MlxArray>>;

        fn sort(a: &MlxArray, axis: i32) -> Result<UniquePtr<MlxArray>>;
        fn argsort(a: &MlxArray, axis: i32) -> Result<UniquePtr<MlxArray>>;
        fn topk(a: &MlxArray, k: i32, axis: i32) -> Result<UniquePtr<MlxArray>>;
        fn argpartition(a: &MlxArray, kth: i32, axis: i32) -> Result<UniquePtr<MlxArray>>;

        fn conv1d(
            x: &MlxArray,
            w: &MlxArray,
            stride: i32,
            padding: i32,
            dilation: i32,
            groups: i32,
        ) -> Result<UniquePtr<MlxArray>>;
        fn conv2d(
            x: &MlxArray,
            w: &MlxArray,
            stride: &[i32],
            padding: &[i32],
            dilation: &[i32],
            groups: i32,
        ) -> Result<UniquePtr<MlxArray>>;

        unsafe fn layer_norm(
            x: &MlxArray,
            weight: *const MlxArray,
            bias: *const MlxArray,
            eps: f32,
        ) -> Result<UniquePtr<MlxArray>>;
        unsafe fn rms_norm(
            x: &MlxArray,
            weight: *const MlxArray,
            eps: f32,
        ) -> Result<UniquePtr<MlxArray>>;
        fn rope(
            x: &MlxArray,
            dims: i32,
            traditional: bool,
            base: f32,
            scale: f32,
            offset: i32,
        ) -> Result<UniquePtr<MlxArray>>;
        unsafe fn sdpa(
            q: &MlxArray,
            k: &MlxArray,
            v: &MlxArray,
            scale: f32,
            mask_mode: &str,
            mask: *const MlxArray,
        ) -> Result<UniquePtr<MlxArray>>;

        fn quantize(w: &MlxArray, group_size: i32, bits: i32) -> Result<UniquePtr<ArrayVec>>;
        fn lstm(
            projected: &MlxArray,
            w_hh: &MlxArray,
            h0: &MlxArray,
            c0: &MlxArray,
            reverse: bool,
        ) -> Result<UniquePtr<ArrayVec>>;
        fn decoder_layer_step(
            inputs: &ArrayVec,
            heads: i32,
            position: i32,
            group_size: i32,
            bits: i32,
            eps: f32,
        ) -> Result<UniquePtr<ArrayVec>>;
        fn dequantize(
            w: &MlxArray,
            scales: &MlxArray,
            biases: &MlxArray,
            group_size: i32,
            bits: i32,
        ) -> Result<UniquePtr<MlxArray>>;
        fn quantized_matmul(
            x: &MlxArray,
            w: &MlxArray,
            scales: &MlxArray,
            biases: &MlxArray,
            transpose: bool,
            group_size: i32,
            bits: i32,
        ) -> Result<UniquePtr<MlxArray>>;
        unsafe fn linear(
            x: &MlxArray,
            w: &MlxArray,
            bias: *const MlxArray,
            gelu: bool,
            residual: *const MlxArray,
        ) -> Result<UniquePtr<MlxArray>>;
        #[allow(clippy::too_many_arguments)]
        unsafe fn quantized_linear(
            x: &MlxArray,
            w: &MlxArray,
            scales: &MlxArray,
            biases: &MlxArray,
            group_size: i32,
            bits: i32,
            bias: *const MlxArray,
            gelu: bool,
            residual: *const MlxArray,
            int8_activations: bool,
        ) -> Result<UniquePtr<MlxArray>>;

        fn rfft(a: &MlxArray, n: i32, axis: i32) -> Result<UniquePtr<MlxArray>>;
        fn irfft(a: &MlxArray, n: i32, axis: i32) -> Result<UniquePtr<MlxArray>>;

        fn random_normal(shape: &[i32], dtype: u8, seed: u64) -> Result<UniquePtr<MlxArray>>;
        fn random_uniform(
            shape: &[i32],
            dtype: u8,
            low: f32,
            high: f32,
            seed: u64,
        ) -> Result<UniquePtr<MlxArray>>;

        fn eval(arrays: &ArrayVec) -> Result<()>;
        fn eval_one(a: &MlxArray) -> Result<()>;
        fn async_eval(arrays: &ArrayVec) -> Result<()>;

        fn mapped_file(mapping: Box<Mapping>) -> UniquePtr<MappedFile>;
        fn array_over_mapping(
            file: &MappedFile,
            offset: usize,
            shape: &[i32],
            dtype: u8,
        ) -> Result<UniquePtr<MlxArray>>;
        fn read_array(
            fd: i32,
            offset: u64,
            shape: &[i32],
            dtype: u8,
        ) -> Result<UniquePtr<MlxArray>>;
        fn data_address(a: &MlxArray) -> Result<usize>;

        fn compile(f: Box<RustFn>, shapeless: bool) -> Result<UniquePtr<CompiledFn>>;
        fn call_compiled(f: &CompiledFn, inputs: &ArrayVec) -> Result<UniquePtr<ArrayVec>>;

        fn default_device() -> u8;
        fn set_default_device(device: u8) -> Result<()>;
        fn is_available(device: u8) -> bool;
        fn memory_stat(which: u8) -> Result<usize>;
        fn reset_peak_memory();
        fn clear_cache();
        fn set_memory_limit(bytes: usize) -> usize;
        fn set_cache_limit(bytes: usize) -> usize;
        fn keep_freed_memory() -> bool;
        fn mlx_version() -> String;
        fn blas_provider() -> String;
        fn openblas_config() -> String;
        fn set_custom_kernels(on: bool) -> bool;
        fn custom_kernels() -> bool;
        fn custom_kernel_threads() -> i32;
        fn hold_kernel_threads();
        fn release_kernel_threads();
        fn int8_products_available() -> bool;
        fn int8_products_isa() -> u8;
        fn fused_attention_available() -> bool;
        fn custom_kernels_active() -> bool;
        fn isa_supported() -> u8;
        fn isa_has(level: u8) -> bool;
        fn isa_active() -> u8;
        fn isa_cap() -> u8;
        fn set_isa_cap(level: u8) -> u8;
        fn isa_env_problem() -> String;
        fn f16_if_exact(a: &MlxArray) -> Result<UniquePtr<MlxArray>>;
        fn log_sum_exp(x: &[f32]) -> f32;
        fn row_major(a: &MlxArray, dtype: u8) -> Result<UniquePtr<MlxArray>>;
        fn select_rows(a: &MlxArray, rows: &[i32], filled: i32) -> Result<UniquePtr<MlxArray>>;
    }
}

// SAFETY: an MLX array is an immutable handle (a shared_ptr to its node);
// moving the handle to another thread is sound. Shared use across threads is
// governed by `Array`'s own Sync story in array.rs.
unsafe impl Send for ffi::MlxArray {}
unsafe impl Send for ffi::ArrayVec {}
unsafe impl Send for ffi::CompiledFn {}
