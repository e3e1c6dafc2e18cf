//! Give `dermo` a RUNPATH to libtorch and link libtorch itself, so the binary starts without
//! LD_LIBRARY_PATH and finds CUDA when present. Without an explicit `-ltorch` (under
//! `--no-as-needed`) the linker drops the CUDA library and CUDA silently reports unavailable.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
