//! The TLS listener's certificate: PEM files named in the configuration, read once at start-up.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TurnConfig;
use crate::error::TurnError;

/// A TLS acceptor from `tls_cert_file` and `tls_key_file` (ring, TLS 1.2 and 1.3).
pub fn acceptor(config: &TurnConfig) -> Result<TlsAcceptor, TurnError> {
    let (Some(cert_file), Some(key_file)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Err(TurnError::Config("listen_tls needs tls_cert_file and tls_key_file".into()));
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TurnError::Config(format!("cannot read the certificate chain {}: {e}", cert_file.display())))?;
    if chain.is_empty() {
        return Err(TurnError::Config(format!("no certificate in {}", cert_file.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TurnError::Config(format!("cannot read the private key {}: {e}", key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TurnError::Config(format!("TLS certificate refused: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
