//! Turns on the contract tests when `KURRENTDB_URL` names a server to qualify.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kurrentdb_url)");
    println!("cargo::rerun-if-env-changed=KURRENTDB_URL");
    if std::env::var_os("KURRENTDB_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=kurrentdb_url");
    }
}
