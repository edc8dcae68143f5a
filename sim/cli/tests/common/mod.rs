//! What the end-to-end tests of the `faultline` binary share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root, where the scenarios are.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the built binary from the workspace root.
pub fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("running faultline")
}
