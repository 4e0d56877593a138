//! Finds an MLX installation (headers + libmlx), compiles the C++ shim
//! against it and links it so that binaries run without LD_LIBRARY_PATH.
//!
//! Search order: `MLX_DIR`, then the Python installations on PATH, then a
//! cache directory into which the pinned PyPI wheel is installed with pip.
//! On Linux CPU builds, MLX's matrix products go to OpenBLAS instead of the
//! reference BLAS that the wheel bundles (far faster fp32 GEMM, see
//! DESIGN.md §3): the OpenBLAS of the pinned `scipy-openblas32` wheel,
//! installed into the same cache, through a small forwarding library built
//! here (src/cpp/blas/cblas_forward.c), so no system package is needed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The OpenBLAS wheel (numpy's and scipy's own; symbols prefixed `scipy_`).
const OPENBLAS_WHEEL: &str = "scipy-openblas32";
const OPENBLAS_VERSION: &str = "0.3.34.481.3";
const OPENBLAS_LIB: &str = "scipy_openblas32/lib/libscipy_openblas.so";
/// What libmlx links against in place of `cblas_*` of the bundled BLAS.
const CBLAS_FORWARD_SOURCE: &str = "src/cpp/blas/cblas_forward.c";

/// The MLX release the bindings are written against.
const MLX_VERSION: &str = "0.32.2";
const MLX_MINOR: &str = "#define MLX_VERSION_MINOR 32";

/// The C++ shim over MLX and this crate's CPU kernels, compiled with the bridge.
const CPP_SOURCES: [&str; 11] = [
    "src/cpp/shim.cc",
    "src/cpp/kernels/attention.cc",
    "src/cpp/kernels/conv.cc",
    "src/cpp/kernels/decoder_step.cc",
    "src/cpp/kernels/elementwise.cc",
    "src/cpp/kernels/isa.cc",
    "src/cpp/kernels/lstm.cc",
    "src/cpp/kernels/matmul.cc",
    "src/cpp/kernels/pool.cc",
    "src/cpp/kernels/primitives.cc",
    "src/cpp/kernels/quantized.cc",
];

/// The headers those include, for rebuilds when one changes.
const CPP_HEADERS: [&str; 13] = [
    "src/cpp/shim.h",
    "src/cpp/kernels.h",
    "src/cpp/kernels/attention.h",
    "src/cpp/kernels/conv.h",
    "src/cpp/kernels/elementwise.h",
    "src/cpp/kernels/isa.h",
    "src/cpp/kernels/lstm.h",
    "src/cpp/kernels/matmul.h",
    "src/cpp/kernels/pool.h",
    "src/cpp/kernels/primitive.h",
    "src/cpp/kernels/quantized.h",
    "src/cpp/kernels/simd.h",
    "src/cpp/kernels/vmath.h",
];

/// Which PyPI wheel provides libmlx for this build.
struct Backend {
    wheel: &'static str,
    /// pip resolves the wheel's own dependencies (CUDA runtime wheels).
    with_deps: bool,
}

impl Backend {
    fn select() -> Backend {
        let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
        if env::var_os("CARGO_FEATURE_CUDA12").is_some() {
            Backend {
                wheel: "mlx-cuda-12",
                with_deps: true,
            }
        } else if env::var_os("CARGO_FEATURE_CUDA13").is_some() {
            Backend {
                wheel: "mlx-cuda-13",
                with_deps: true,
            }
        } else if target_os == "macos" {
            Backend {
                wheel: "mlx-metal",
                with_deps: false,
            }
        } else {
            Backend {
                wheel: "mlx-cpu",
                with_deps: false,
            }
        }
    }

    fn is_cpu(&self) -> bool {
        self.wheel == "mlx-cpu"
    }

    /// Directory name of the wheel's dist-info, e.g. `mlx_cpu-0.32.2.dist-info`.
    fn dist_info_prefix(&self) -> String {
        format!("{}-", self.wheel.replace('-', "_"))
    }
}

fn main() {
    for var in ["MLX_DIR", "MLX_ASR_CACHE", "PYTHON", "XDG_CACHE_HOME"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in CPP_HEADERS.iter().chain(&CPP_SOURCES) {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed={CBLAS_FORWARD_SOURCE}");

    let backend = Backend::select();
    let mlx_root = match locate_mlx(&backend) {
        Ok(root) => root,
        Err(why) => {
            eprintln!("error: cannot find MLX {MLX_VERSION}: {why}");
            eprintln!(
                "  Fix one of: set MLX_DIR to a directory holding include/mlx/mlx.h and lib/libmlx.so; \
                 `python3 -m pip install {}=={MLX_VERSION}`; or make `python3 -m pip` work so the \
                 build can install it into its cache.",
                backend.wheel
            );
            std::process::exit(1);
        }
    };
    let include = mlx_root.join("include");
    let libdir = mlx_root.join("lib");

    // The libraries this build links from the cache: when one disappears (a
    // cleared cache), the next build installs it again.
    for lib in ["libmlx.so", "libmlx.dylib"] {
        if libdir.join(lib).exists() {
            println!("cargo:rerun-if-changed={}", libdir.join(lib).display());
        }
    }
    let cblas = if backend.is_cpu() && env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        match cblas_forwarder() {
            Ok(lib) => Some(lib),
            Err(why) => {
                println!(
                    "cargo:warning=OpenBLAS unavailable ({why}): MLX will use its bundled \
                     reference BLAS, ~37x slower for fp32 GEMM"
                );
                None
            }
        }
    } else {
        None
    };

    let mut build = cxx_build::bridge("src/ffi.rs");
    build
        .files(CPP_SOURCES)
        .include(&include)
        .std("c++20")
        .flag_if_supported("-Wno-deprecated-declarations")
        .flag_if_supported("-Wno-unused-parameter")
        // The CPU kernels (src/cpp/kernels/) rely on the vectorizer (-O3), on FMA
        // contraction, and on if-converting their selects, which GCC only does
        // when floating-point exceptions are not observed. None of these
        // reorders arithmetic the way -ffast-math would.
        .flag_if_supported("-ffp-contract=fast")
        .flag_if_supported("-fno-trapping-math")
        .flag_if_supported("-fno-math-errno")
        .opt_level(3);
    if cblas.is_some() {
        build.define("MLX_SHIM_CBLAS_FORWARD", None);
    }
    if backend.is_cpu() {
        // The shim wraps file-mapped bytes in buffers of the CPU allocator's layout.
        build.define("MLX_SHIM_CPU_ALLOCATOR", None);
    }
    build.compile("mlx_shim");

    println!("cargo:rustc-link-search=native={}", libdir.display());
    println!("cargo:rustc-link-lib=dylib=mlx");
    let mut rpath = vec![libdir.clone()];
    if let Some(lib) = &cblas {
        // The shim references the forwarder from a static initializer, so
        // with --as-needed every binary keeps it as a direct dependency, and
        // as one it precedes the bundled BLAS (a dependency of libmlx) in
        // symbol lookup: `cblas_*` resolve to OpenBLAS without LD_PRELOAD.
        let dir = lib.parent().expect("library path has a parent");
        println!("cargo:rustc-link-search=native={}", dir.display());
        let name = lib.file_name().expect("library path has a file name");
        println!(
            "cargo:rustc-link-lib=dylib:+verbatim={}",
            name.to_string_lossy()
        );
        println!("cargo:rerun-if-changed={}", lib.display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("libscipy_openblas.so").display()
        );
        println!("cargo:rustc-env=MLX_BUILD_OPENBLAS={}", lib.display());
        rpath.push(dir.to_path_buf());
    }
    // Own tests/benches get the rpath here; dependents re-emit it via rpath.rs.
    let rpath = env::join_paths(&rpath).expect("cache paths hold no ':'");
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,{}",
        rpath.to_string_lossy()
    );
    println!("cargo:rpath={}", rpath.to_string_lossy());
    println!("cargo:rustc-env=MLX_BUILD_LIBDIR={}", libdir.display());
    println!("cargo:rustc-env=MLX_BUILD_WHEEL={}", backend.wheel);
}

/// Returns the MLX package directory, i.e. the one holding `include/` and `lib/`.
fn locate_mlx(backend: &Backend) -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os("MLX_DIR") {
        let dir = PathBuf::from(dir);
        return [dir.clone(), dir.join("mlx")]
            .into_iter()
            .find(|d| is_mlx_package(d))
            .ok_or_else(|| {
                format!(
                    "MLX_DIR={} has no include/mlx/mlx.h with lib/libmlx.*",
                    dir.display()
                )
            });
    }
    if let Some(found) = python_site_dirs()
        .iter()
        .find(|site| has_backend_wheel(site, backend) && is_mlx_package(&site.join("mlx")))
    {
        return Ok(found.join("mlx"));
    }
    install_into_cache(backend)
}

fn is_mlx_package(dir: &Path) -> bool {
    let version_h = dir.join("include/mlx/version.h");
    let has_lib = ["libmlx.so", "libmlx.dylib"]
        .iter()
        .any(|lib| dir.join("lib").join(lib).exists());
    let right_version = std::fs::read_to_string(&version_h)
        .map(|text| text.contains(MLX_MINOR))
        .unwrap_or(false);
    has_lib && right_version
}

fn has_backend_wheel(site: &Path, backend: &Backend) -> bool {
    let prefix = backend.dist_info_prefix();
    std::fs::read_dir(site)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&prefix) && name.ends_with(".dist-info")
            })
        })
        .unwrap_or(false)
}

fn python() -> String {
    env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn python_site_dirs() -> Vec<PathBuf> {
    let script = "import site, sys\n\
                  dirs = list(getattr(site, 'getsitepackages', lambda: [])())\n\
                  dirs.append(site.getusersitepackages())\n\
                  print('\\n'.join(dirs + sys.path))";
    Command::new(python())
        .args(["-c", script])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

fn cache_root() -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os("MLX_ASR_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("mlx-asr"));
    }
    env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/mlx-asr"))
        .ok_or_else(|| "neither MLX_ASR_CACHE, XDG_CACHE_HOME nor HOME is set".to_string())
}

/// Installs the pinned MLX wheel into the cache (see `install_wheel`).
fn install_into_cache(backend: &Backend) -> Result<PathBuf, String> {
    let spec = format!("{}=={MLX_VERSION}", backend.wheel);
    let target = install_wheel(&spec, backend.with_deps, |dir| {
        is_mlx_package(&dir.join("mlx"))
    })?;
    Ok(target.join("mlx"))
}

/// Installs `spec` (`name==version`) with pip into `<cache>/<name>-<version>`
/// unless `complete` already holds there; the directory appears only once
/// the install completed (temp dir + rename).
fn install_wheel(
    spec: &str,
    with_deps: bool,
    complete: impl Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    let target = cache_root()?.join(spec.replace("==", "-"));
    if complete(&target) {
        return Ok(target);
    }
    let parent = target.parent().expect("cache dir has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create cache dir {}: {e}", parent.display()))?;
    let name = target.file_name().expect("cache entry has a name");
    let staging = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let mut pip = Command::new(python());
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
    ])
    .arg(&staging)
    .arg(spec);
    if !with_deps {
        pip.arg("--no-deps");
    }
    println!("cargo:warning=installing {spec} into {}", target.display());
    let status = pip
        .status()
        .map_err(|e| format!("could not run `{} -m pip`: {e}", python()))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!("`pip install {spec}` failed ({status})"));
    }
    if let Err(e) = std::fs::rename(&staging, &target) {
        // Another build may have won the race; use its result if complete.
        let _ = std::fs::remove_dir_all(&staging);
        if !complete(&target) {
            return Err(format!(
                "cannot move pip's output to {}: {e}",
                target.display()
            ));
        }
    }
    if complete(&target) {
        Ok(target)
    } else {
        Err(format!(
            "{spec} installed into {} lacks the files this build needs",
            target.display()
        ))
    }
}

/// The forwarding library next to the wheel's OpenBLAS in the cache, built
/// when missing. Its name carries a hash of its source, so that checkouts
/// of different versions sharing the cache each get their own; it is
/// written through a temporary name and a rename, so that a concurrent
/// build never links a half-written one.
fn cblas_forwarder() -> Result<PathBuf, String> {
    let source = std::fs::read(CBLAS_FORWARD_SOURCE)
        .map_err(|e| format!("cannot read {CBLAS_FORWARD_SOURCE}: {e}"))?;
    // FNV-1a: stable across Rust releases, unlike std's hasher.
    let hash = source.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let lib_name = format!("libmlx_asr_cblas-{hash:016x}.so");
    let spec = format!("{OPENBLAS_WHEEL}=={OPENBLAS_VERSION}");
    let root = install_wheel(&spec, false, |dir| dir.join(OPENBLAS_LIB).exists())?;
    let openblas = root.join(OPENBLAS_LIB);
    let dir = openblas.parent().expect("library path has a parent");
    let installed = dir.join(&lib_name);
    if installed.exists() {
        return Ok(installed);
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    // Not under the library's name: cargo puts OUT_DIR on the library path
    // of `cargo test`, where this copy would not find the wheel beside it.
    let built = out_dir.join("cblas_forward.build");
    // The compiler alone, without the profile's flags.
    let compiler = cc::Build::new().get_compiler();
    let status = Command::new(compiler.path())
        .args(["-shared", "-fPIC", "-O2", "-Wall"])
        .arg(CBLAS_FORWARD_SOURCE)
        .arg("-o")
        .arg(&built)
        .arg(format!("-Wl,-soname,{lib_name}"))
        // It opens the wheel's library beside itself, wherever the cache is.
        .arg("-ldl")
        .status()
        .map_err(|e| format!("cannot run the C compiler: {e}"))?;
    if !status.success() {
        return Err(format!(
            "compiling {CBLAS_FORWARD_SOURCE} failed ({status})"
        ));
    }
    let staging = dir.join(format!(".{lib_name}.partial-{}", std::process::id()));
    std::fs::copy(&built, &staging)
        .and_then(|_| std::fs::rename(&staging, &installed))
        .map_err(|e| format!("cannot write {}: {e}", installed.display()))?;
    Ok(installed)
}
