//! The sandbox's own certificate authority.
//!
//! Every TLS server of the sandbox presents a leaf signed by one CA generated at start, so that
//! clients under test run with verification ON and trust exactly that CA (the bundle written by
//! [`SandboxCa::write_ca_bundle`]), the way a deployment trusts its cluster's CA. Nothing is
//! ever written with verification turned off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Names every leaf carries, whatever the caller adds: the sandbox listens on 127.0.0.1 only, and
/// some clients connect by `localhost`.
const LOOPBACK_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("invalid TLS server settings: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot write the CA bundle {path}: {source}")]
    WriteBundle {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A CA that lives as long as the sandbox: its key never leaves the process.
pub struct SandboxCa {
    issuer: Issuer<'static, KeyPair>,
    cert: rcgen::Certificate,
}

impl std::fmt::Debug for SandboxCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of debug output.
        f.debug_struct("SandboxCa").finish_non_exhaustive()
    }
}

impl SandboxCa {
    /// Generates a fresh CA (ECDSA P-256); each sandbox has its own, so a client that trusts one
    /// sandbox does not trust another.
    pub fn generate() -> Result<SandboxCa, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "sitefence sandbox CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sitefence");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(SandboxCa {
            issuer: Issuer::new(params, key),
            cert,
        })
    }

    /// The CA certificate in PEM, what clients are given as their only trust anchor.
    pub fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate (PEM) to `path`, e.g. `DIR/ca.pem` of `sandbox.json`.
    pub fn write_ca_bundle(&self, path: impl AsRef<Path>) -> Result<(), TlsError> {
        let path = path.as_ref();
        std::fs::write(path, self.ca_pem()).map_err(|source| TlsError::WriteBundle {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A server configuration (TLS 1.2 and 1.3, HTTP/1.1) presenting a fresh leaf signed by this
    /// CA, valid for `127.0.0.1`, `localhost` and every name of `names` (IP addresses become IP
    /// SANs, anything else DNS SANs).
    pub fn server_config(&self, names: &[&str]) -> Result<Arc<ServerConfig>, TlsError> {
        let (chain, key) = self.issue_leaf(names)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn issue_leaf(
        &self,
        names: &[&str],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let mut sans: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
        for name in names {
            if !sans.iter().any(|known| known == name) {
                sans.push(name.to_string());
            }
        }
        let mut params = CertificateParams::new(sans)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "sitefence sandbox");
        // Strict verifiers (Python 3.13's default X509_STRICT) want the AKI on leaves.
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &self.issuer)?;
        let chain = vec![leaf.der().clone(), self.cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((chain, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_pem_is_a_single_certificate() {
        let ca = SandboxCa::generate().unwrap();
        let pem = ca.ca_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1);
    }

    #[test]
    fn each_sandbox_has_its_own_ca() {
        let one = SandboxCa::generate().unwrap();
        let two = SandboxCa::generate().unwrap();
        assert_ne!(one.ca_pem(), two.ca_pem());
    }

    #[test]
    fn leaf_carries_loopback_names_and_extra_names_once() {
        let ca = SandboxCa::generate().unwrap();
        let (chain, _) = ca.issue_leaf(&["localhost", "ispn.sandbox"]).unwrap();
        assert_eq!(chain.len(), 2, "leaf then CA");
        let leaf = chain[0].as_ref();
        let contains = |needle: &[u8]| leaf.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"ispn.sandbox"));
        assert!(contains(b"localhost"));
        assert!(contains(&[127, 0, 0, 1]));
    }

    #[test]
    fn server_config_builds_for_tls12_and_tls13() {
        let ca = SandboxCa::generate().unwrap();
        let config = ca.server_config(&[]).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn bundle_is_written_where_asked() {
        let ca = SandboxCa::generate().unwrap();
        let dir = std::env::temp_dir().join(format!("sandbox-ca-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        ca.write_ca_bundle(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), ca.ca_pem());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_bundle_path_names_the_path() {
        let ca = SandboxCa::generate().unwrap();
        let path = std::env::temp_dir()
            .join(format!("missing-{}", fastrand::u64(..)))
            .join("ca.pem");
        let error = ca.write_ca_bundle(&path).unwrap_err();
        assert!(error.to_string().contains("ca.pem"), "{error}");
    }
}
