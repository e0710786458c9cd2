//! The secrets check: every line of every log the suite's worlds wrote (the functions' logs,
//! moto, the emulators) against every password and Basic credential those worlds used.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub files: usize,
    pub lines: u64,
    /// Distinct secret values looked for.
    pub values: usize,
    pub hits: u64,
    pub first_hits: Vec<String>,
}

/// Lines of `text` holding one of `secrets`, as `(line number, which secret)`; the secret is
/// named by its position, never printed.
pub fn hits_in(text: &str, secrets: &[String]) -> Vec<(usize, usize)> {
    let mut hits = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if let Some(which) = secrets.iter().position(|s| line.contains(s.as_str())) {
            hits.push((number + 1, which));
        }
    }
    hits
}

pub fn scan(log_dirs: &[PathBuf], secrets: &[String]) -> anyhow::Result<Figures> {
    // Short values would match by chance; the sandbox's secrets are 24 random characters.
    let values: Vec<String> = secrets
        .iter()
        .filter(|s| s.len() >= 8)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut figures = Figures {
        values: values.len(),
        ..Figures::default()
    };
    for dir in log_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let text = String::from_utf8_lossy(&bytes);
            figures.files += 1;
            figures.lines += text.lines().count() as u64;
            for (line, which) in hits_in(&text, &values) {
                figures.hits += 1;
                if figures.first_hits.len() < 10 {
                    figures
                        .first_hits
                        .push(format!("{}:{line} (secret #{which})", path.display()));
                }
            }
        }
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_secret_anywhere_in_a_line_and_names_it_by_position() {
        let secrets = vec!["s3cr3t-value-1".to_string(), "other-secret".to_string()];
        let log =
            "{\"event\":\"ok\"}\n{\"password\":\"s3cr3t-value-1\"}\nplain other-secret here\n";
        assert_eq!(hits_in(log, &secrets), vec![(2, 0), (3, 1)]);
        assert!(hits_in("{\"event\":\"started\"}", &secrets).is_empty());
    }
}
