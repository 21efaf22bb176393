//! Records the compiler version: it is part of the machine fingerprint, since a new rustc
//! can move every number.

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SOLEDAD_BENCH_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
