//! Give `dermo` a RUNPATH to libtorch and link libtorch itself, so the binary starts without
//! LD_LIBRARY_PATH and finds CUDA when present. Without an explicit `-ltorch` (under
//! `--no-as-needed`) the linker drops the CUDA library and CUDA silently reports unavailable.
//! Also records the libtorch and tract versions for `dermo doctor`, and compiles the small C++
//! shim that switches libtorch's CPU (bf16) autocast, which tch does not expose.
use std::path::Path;

fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        println!("cargo:rustc-env=DERMO_LIBTORCH_LIB={lib}");
        // The pip wheel keeps its version beside lib/: torch/version.py.
        let version = std::fs::read_to_string(Path::new(&lib).join("../version.py"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("__version__"))
                    .and_then(|l| l.split('\'').nth(1).map(str::to_owned))
            })
            .unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env=DERMO_LIBTORCH_VERSION={version}");
        compile_cpu_autocast(Path::new(&lib));
    }
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let tract = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|s| {
            let at = s.find("name = \"tract-onnx\"")?;
            let rest = &s[at..];
            let line = rest.lines().nth(1)?;
            line.split('"').nth(1).map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DERMO_TRACT_VERSION={tract}");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=../Cargo.lock");
}

/// Builds `cpp/cpu_autocast.cpp` against the libtorch headers beside `lib` (`lib/../include`).
fn compile_cpu_autocast(lib: &Path) {
    let include = lib.join("../include");
    cc::Build::new()
        .cpp(true)
        .file("cpp/cpu_autocast.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .warnings(false)
        .compile("dermo_cpu_autocast");
    println!("cargo:rerun-if-changed=cpp/cpu_autocast.cpp");
}
