//! TLS for the gateway's port (rustls with the ring provider): with a certificate and a key
//! configured, every connection starts with a TLS handshake, then serves HTTP and WebSocket as
//! usual (`https://`, `wss://`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::GatewayError;

/// The acceptor for a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, GatewayError> {
    let fail = |what: &str, path: &Path, why: String| {
        GatewayError::Tls(format!("{what} {}: {why}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail("certificate", cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("certificate", cert, "no PEM certificate in it".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| fail("private key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            GatewayError::Tls(format!(
                "certificate {} with key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    // WebSocket upgrades need HTTP/1.1, the only protocol served.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
