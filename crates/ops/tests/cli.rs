//! The `sitefence` binary as an operator runs it: the operator's commands and nothing of the
//! development tasks, and a clear refusal where `cargo xtask` would have built the ZIPs.

use std::process::Command;

fn sitefence(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sitefence"))
        .args(args)
        .output()
        .expect("the sitefence binary runs")
}

#[test]
fn help_lists_the_operator_commands_and_no_development_task() {
    let output = sitefence(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "deploy",
        "destroy",
        "doctor",
        "manifests",
        "site",
        "route53",
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(&format!("{command} "))),
            "`{command}` missing from:\n{help}"
        );
    }
    for task in [
        "sandbox",
        "drill",
        "bench",
        "reliability",
        "build",
        "lint",
        "test",
    ] {
        assert!(
            !help
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{task} "))),
            "development task `{task}` in:\n{help}"
        );
    }
}

#[test]
fn every_subcommand_has_help() {
    for command in [
        &["deploy", "--help"][..],
        &["destroy", "--help"],
        &["doctor", "--help"],
        &["manifests", "--help"],
        &["site", "status", "--help"],
        &["site", "bring-online", "--help"],
        &["route53", "failback", "--help"],
    ] {
        let output = sitefence(command);
        assert!(output.status.success(), "{command:?}: {output:?}");
    }
    let version = sitefence(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("sitefence "));
}

#[test]
fn deploy_without_zips_says_where_to_get_them() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/sitefence.example.toml"
    );
    let output = sitefence(&["deploy", "--config", example, "--dry-run"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--zips DIR"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
