//! The functions' Lambda ZIPs as deploy takes them: the architecture they are built for, where
//! each one lies in a directory of ZIPs, and their digests.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The function crates, as built by cargo and shipped as Lambda bootstraps.
pub const FUNCTIONS: [&str; 3] = [
    "fence-lambda",
    "route53-failover-lambda",
    "vpc-route-failover-lambda",
];

/// The CPU a function runs on. Lambda's arm64 (Graviton) is cheaper per GB-second: the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    Arm64,
    #[value(name = "x86_64")]
    X86_64,
}

impl Arch {
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
        }
    }

    pub fn from_lambda_name(name: &str) -> Option<Arch> {
        [Arch::Arm64, Arch::X86_64]
            .into_iter()
            .find(|arch| arch.lambda_name() == name)
    }

    /// The name Lambda's `Architectures` field uses.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::X86_64 => "x86_64",
        }
    }

    /// The architecture of this machine (what a native build produces).
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }
}

/// The ZIP of `function` in a directory of ZIPs (`DIR/<function>/bootstrap.zip`, as
/// `cargo xtask build` writes them and the release attaches them).
pub fn zip_path(dir: &Path, function: &str) -> PathBuf {
    dir.join(function).join("bootstrap.zip")
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_matches_the_known_digest() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn lambda_names_round_trip() {
        for arch in [Arch::Arm64, Arch::X86_64] {
            assert_eq!(Arch::from_lambda_name(arch.lambda_name()), Some(arch));
        }
        assert_eq!(Arch::from_lambda_name("x86"), None);
    }
}
