//! The operator's tool, `sitefence`: everything that runs against a live deployment (AWS or the
//! sandbox) and nothing that develops or tests one. The commands are here as a library, so that
//! `cargo xtask` offers the same commands from a clone and the integration tests call them.
//! Without the default feature `operate` only the `sitefence.toml` schema (`config`) is built.

#[cfg(feature = "operate")]
pub mod artifacts;
#[cfg(feature = "operate")]
pub mod aws;
#[cfg(feature = "operate")]
pub mod cli;
pub mod config;
#[cfg(feature = "operate")]
pub mod deploy;
#[cfg(feature = "operate")]
pub mod doctor;
#[cfg(feature = "operate")]
pub mod manifests;
#[cfg(feature = "operate")]
pub mod site;

/// `infra/sitefence.example.toml`, which the unit tests load as the documented example.
#[cfg(test)]
pub(crate) fn example_config() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/sitefence.example.toml")
}
