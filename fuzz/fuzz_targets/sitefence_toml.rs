//! `sitefence.toml`, through the schema of the operator's crate (`ops::config`, which `sitefence`
//! and `cargo xtask` read it with).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ops::config;

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
