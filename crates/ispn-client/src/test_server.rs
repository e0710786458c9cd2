//! A local HTTPS server for the client's tests, with a freshly generated CA, answering each
//! request from a plain function of method and path.

use std::sync::{Arc, Mutex};

use common::secret::Secret;
use common::site::SiteName;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::{Credentials, SiteClient, SiteEndpoint, TlsConfig, http_client};

/// What the server does with one request.
pub enum Answer {
    /// This status and plain-text body.
    Http(u16, String),
    /// Reads the request and never answers (the connection stays open).
    Hang,
}

pub fn answer(status: u16, body: &str) -> Answer {
    Answer::Http(status, body.to_owned())
}

pub type Handler = fn(&str, &str) -> Answer;
/// `METHOD path?query` and the Authorization header of every request.
pub type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

pub struct Server {
    pub url: String,
    pub ca_pem: Vec<u8>,
    pub requests: RequestLog,
}

impl Server {
    /// `METHOD path?query` of every request so far.
    pub fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A client of site `site-a` that trusts this server's CA.
    pub fn client(&self) -> SiteClient {
        client_trusting(&self.url, &self.ca_pem)
    }
}

pub fn site(name: &str) -> SiteName {
    SiteName::parse(name).unwrap()
}

/// A client of site `site-a` at `url` that trusts only `ca_pem`.
pub fn client_trusting(url: &str, ca_pem: &[u8]) -> SiteClient {
    let tls = TlsConfig {
        ca_bundle_pem: Some(ca_pem.to_vec()),
        ..TlsConfig::default()
    };
    SiteClient::new(
        site("site-a"),
        SiteEndpoint::parse(url).unwrap(),
        http_client(&tls).unwrap(),
        Credentials {
            user: "admin".to_owned(),
            password: Secret::new("pw:1"),
        },
    )
}

/// A CA certificate (PEM) that signed nothing these servers present.
pub fn stranger_ca() -> Vec<u8> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "a stranger's CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem().into_bytes()
}

/// An address where nothing listens: a port that was just free.
pub async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A server that accepts connections and never says a word (not even the TLS handshake).
pub async fn silent() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    url
}

pub async fn start(handler: Handler) -> Server {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let requests: RequestLog = Arc::default();
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut stream = BufReader::new(tls);
                let mut line = String::new();
                if stream.read_line(&mut line).await.is_err() {
                    return;
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (
                    parts.next().unwrap_or("").to_owned(),
                    parts.next().unwrap_or("").to_owned(),
                );
                let mut authorization = None;
                loop {
                    let mut header = String::new();
                    if stream.read_line(&mut header).await.is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = header.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(v.trim().to_owned());
                    }
                }
                seen.lock()
                    .unwrap()
                    .push((format!("{method} {target}"), authorization));
                let (status, body) = match handler(&method, &target) {
                    Answer::Http(status, body) => (status, body),
                    Answer::Hang => {
                        // Holds the connection until the client gives up.
                        let mut rest = Vec::new();
                        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest).await;
                        return;
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.get_mut().write_all(response.as_bytes()).await;
                let _ = stream.get_mut().shutdown().await;
            });
        }
    });
    Server {
        url,
        ca_pem: ca_cert.pem().into_bytes(),
        requests,
    }
}
