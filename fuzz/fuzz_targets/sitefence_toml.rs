//! `sitefence.toml`, through the schema `cargo xtask` itself compiles (xtask is a binary crate,
//! so its file is compiled here as a module: the code fuzzed is the code shipped).
#![no_main]

#[allow(dead_code)]
#[path = "../../xtask/src/config.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    if let Ok(text) = std::str::from_utf8(text)
        && let Ok(deployment) = config::Deployment::parse(text)
    {
        // What parses must write back and parse again to the same deployment.
        let written = deployment.to_toml().expect("a parsed deployment serialises");
        let again = config::Deployment::parse(&written).expect("what we write parses");
        assert_eq!(again, deployment);
    }
});
