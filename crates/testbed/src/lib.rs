//! Development support shared by `xtask` and the integration tests of `ops`: where the workspace
//! is and how it is built, and the sandbox with sitefence deployed into it by `ops`' own deploy.
//! Never a dependency of anything that ships.

pub mod sandbox_world;
pub mod workspace;
