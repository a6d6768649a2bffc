//! Gives the shared library its soname (docs/c-api.md, "Versions"): `libpointsman.so.0.<minor>`
//! while the version is 0.x, where a minor release may change the ABI, and
//! `libpointsman.so.<major>` from 1.0 on. A program linked against one soname is never loaded
//! with a library whose ABI may differ.

fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    let major = var("CARGO_PKG_VERSION_MAJOR");
    let soname = if major == "0" {
        format!("libpointsman.so.0.{}", var("CARGO_PKG_VERSION_MINOR"))
    } else {
        format!("libpointsman.so.{major}")
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    println!("cargo:rerun-if-changed=build.rs");
}
