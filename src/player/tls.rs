//! The TLS client configuration HTTP-FLV viewers wrap their own TCP connection in for https://:
//! made once per run, trusting the webpki roots (what reqwest's `rustls-tls` trusts) plus the
//! scenario's `target.tls.ca_file`, or, when `target.tls.insecure_skip_verify` says so, any
//! certificate. ALPN offers http/1.1 only: the viewer speaks HTTP/1.1.

use std::sync::Arc;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("no PEM certificate in it")]
    NoCertificate,
    #[error("not a PEM certificate file: {0}")]
    Pem(String),
    #[error("certificate not accepted as a root: {0}")]
    Root(rustls::Error),
    #[error("TLS client: {0}")]
    Client(rustls::Error),
}

/// The client configuration: roots plus `extra_ca_pem` (PEM, one or more certificates), or no
/// verification at all when `insecure_skip_verify`.
pub fn client_config(
    extra_ca_pem: Option<&[u8]>,
    insecure_skip_verify: bool,
) -> Result<ClientConfig, TlsConfigError> {
    // The provider is named rather than taken from the process default, which nothing installs:
    // ring, which reqwest and kube are built with too. (rustls 0.23.48 deprecates it for lack of
    // post-quantum key exchange, which a load test against its own cluster does not need.)
    #[allow(deprecated)]
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Client)?;
    let mut config = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = extra_ca_pem {
            let mut found = false;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| TlsConfigError::Pem(e.to_string()))?;
                roots.add(cert).map_err(TlsConfigError::Root)?;
                found = true;
            }
            if !found {
                return Err(TlsConfigError::NoCertificate);
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// `target.tls.insecure_skip_verify`: any certificate chain is taken for the server's. The
/// handshake's signatures are still checked against the certificate presented, so the session is
/// encrypted to whoever holds that certificate's key (as with reqwest's
/// `danger_accept_invalid_certs`, the key is simply not tied to the name).
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_adds_its_roots_and_garbage_is_refused() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let two = format!("{}{}", cert.cert.pem(), cert.cert.pem());
        let config = client_config(Some(two.as_bytes()), false).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(matches!(
            client_config(Some(b"not a certificate"), false),
            Err(TlsConfigError::NoCertificate)
        ));
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(client_config(Some(broken.as_bytes()), false).is_err());
        assert!(client_config(None, true).is_ok());
    }
}
