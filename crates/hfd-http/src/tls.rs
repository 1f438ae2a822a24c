//! rustls client settings: trusted roots and ALPN.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Trusted roots: webpki's bundle, the system store and `extra_ca_files`.
pub(crate) fn root_store(extra_ca_files: &[PathBuf]) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(
            errors = native.errors.len(),
            "some system CA certificates could not be loaded"
        );
    }
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    for path in extra_ca_files {
        let pem = std::fs::read(path).map_err(|e| Error::Tls {
            reason: format!("cannot read CA file {}: {e}", path.display()),
        })?;
        let mut added = 0;
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls_pki_types::CertificateDer<'static> = cert.map_err(|e| Error::Tls {
                reason: format!("bad PEM in {}: {e}", path.display()),
            })?;
            roots.add(cert).map_err(|e| Error::Tls {
                reason: format!("bad certificate in {}: {e}", path.display()),
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls {
                reason: format!("no certificate found in {}", path.display()),
            });
        }
    }
    Ok(roots)
}

/// A client config offering `alpn` (most preferred first).
pub(crate) fn client_config(
    roots: Arc<rustls::RootCertStore>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
