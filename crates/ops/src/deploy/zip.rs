//! A minimal ZIP writer for tests: a Lambda ZIP of a native dev binary (one stored, executable
//! `bootstrap` entry; tests run unoptimised, where compressing 50 MB binaries would dominate).
//! Release ZIPs come from cargo-lambda (`cargo xtask build`).

/// DOS date of 1980-01-01 (the epoch of the format): fixed, so equal input gives equal bytes.
const DOS_DATE: u16 = (1 << 5) | 1;
const NAME: &[u8] = b"bootstrap";

pub fn lambda_zip(bootstrap: &[u8]) -> anyhow::Result<Vec<u8>> {
    let crc = crc32fast::hash(bootstrap);
    let size = u32::try_from(bootstrap.len())?;
    let name_len = u16::try_from(NAME.len())?;

    let mut out = Vec::with_capacity(bootstrap.len() + 200);
    let common = |out: &mut Vec<u8>| {
        out.extend(10u16.to_le_bytes()); // version needed: 1.0 (stored)
        out.extend(0u16.to_le_bytes()); // flags
        out.extend(0u16.to_le_bytes()); // method: stored
        out.extend(0u16.to_le_bytes()); // time
        out.extend(DOS_DATE.to_le_bytes());
        out.extend(crc.to_le_bytes());
        out.extend(size.to_le_bytes()); // compressed size
        out.extend(size.to_le_bytes());
        out.extend(name_len.to_le_bytes());
        out.extend(0u16.to_le_bytes()); // extra field length
    };
    out.extend(0x0403_4b50u32.to_le_bytes());
    common(&mut out);
    out.extend(NAME);
    out.extend(bootstrap);

    let directory_offset = u32::try_from(out.len())?;
    out.extend(0x0201_4b50u32.to_le_bytes());
    out.extend(((3u16 << 8) | 20).to_le_bytes()); // made by: Unix, 2.0 (so the mode counts)
    common(&mut out);
    out.extend(0u16.to_le_bytes()); // comment length
    out.extend(0u16.to_le_bytes()); // disk number
    out.extend(0u16.to_le_bytes()); // internal attributes
    out.extend((0o100_755u32 << 16).to_le_bytes()); // regular file, rwxr-xr-x
    out.extend(0u32.to_le_bytes()); // offset of the local header
    out.extend(NAME);
    let directory_size = u32::try_from(out.len())? - directory_offset;

    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend(0u16.to_le_bytes()); // this disk
    out.extend(0u16.to_le_bytes()); // disk of the directory
    out.extend(1u16.to_le_bytes()); // entries on this disk
    out.extend(1u16.to_le_bytes()); // entries
    out.extend(directory_size.to_le_bytes());
    out.extend(directory_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes()); // comment length
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's zipfile (a reader nobody here wrote) reads the entry back, with its mode.
    #[test]
    fn python_reads_back_an_executable_bootstrap() {
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let zip = lambda_zip(&content).unwrap();
        let path = std::env::temp_dir().join(format!("sitefence-zip-{}.zip", std::process::id()));
        std::fs::write(&path, &zip).unwrap();
        let output = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile, hashlib\n\
                 z = zipfile.ZipFile(sys.argv[1]); i = z.getinfo('bootstrap')\n\
                 print(oct(i.external_attr >> 16), hashlib.sha256(z.read('bootstrap')).hexdigest())",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected = crate::artifacts::hex(&crate::artifacts::sha256(&content));
        assert_eq!(stdout.trim(), format!("0o100755 {expected}"));
    }
}
