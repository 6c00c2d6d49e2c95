//! `web/` is compiled into the binary (`src/web.rs`): rebuild when any of its files changes.
fn main() {
    println!("cargo:rerun-if-changed=../web");
}
