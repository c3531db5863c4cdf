//! The agent's side of the conversation with the portal, over HTTPS.
//!
//! The portal's certificate is trusted one of three ways, chosen at install
//! time and kept in the agent's state:
//! - the system's trust roots (a portal with a certificate from a public or
//!   company CA);
//! - a CA file (a private CA);
//! - a pin of the portal's public key, `sha256//<base64>`, as the install
//!   command carries it for a self-signed portal. Pinning replaces the PKI:
//!   only a server holding that key is accepted, whatever its name or dates.

use lastmile_wire::{
    ApiError, AppliedRequest, NodeConfig, RegisterRequest, RegisterResponse, Report, ReportResponse,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How the agent decides the portal is the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    System,
    CaFile(PathBuf),
    /// curl's form: `sha256//` and the base64 SHA-256 of the certificate's
    /// SubjectPublicKeyInfo.
    Pin(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The portal could not be reached or did not answer sensibly; worth
    /// retrying later.
    #[error("the portal could not be reached: {0}")]
    Unreachable(String),
    /// The portal answered with an error meant for people.
    #[error("the portal refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Setup(String),
}

impl PortalError {
    /// The credential is no longer good: retrying will not help.
    pub fn is_credential_refused(&self) -> bool {
        matches!(
            self,
            PortalError::Refused {
                status: 401 | 403,
                ..
            }
        )
    }
}

pub struct Portal {
    base: String,
    http: reqwest::Client,
    credential: Option<String>,
}

/// What a conditional configuration poll found.
pub enum ConfigPoll {
    Unchanged,
    Changed { config: NodeConfig, etag: String },
}

impl Portal {
    pub fn new(
        base: &str,
        trust: &Trust,
        credential: Option<String>,
    ) -> Result<Portal, PortalError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("https://") && !base.starts_with("http://") {
            return Err(PortalError::Setup(format!(
                "the portal address {base} must start with https://"
            )));
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("lastmile-agent/", env!("CARGO_PKG_VERSION")));
        let builder = match trust {
            Trust::System => builder,
            Trust::CaFile(path) => builder.use_preconfigured_tls(ca_file_config(path)?),
            Trust::Pin(pin) => builder.use_preconfigured_tls(pinned_config(pin)?),
        };
        let http = builder
            .build()
            .map_err(|e| PortalError::Setup(format!("building the HTTPS client: {e}")))?;
        Ok(Portal {
            base,
            http,
            credential,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credential {
            Some(c) => req.bearer_auth(c),
            None => req,
        }
    }

    pub async fn register(
        &self,
        request: &RegisterRequest,
    ) -> Result<RegisterResponse, PortalError> {
        let res = self
            .http
            .post(self.url(lastmile_wire::REGISTER_PATH))
            .json(request)
            .send()
            .await
            .map_err(unreachable)?;
        json_or_error(res).await
    }

    /// A conditional GET of the configuration: `Unchanged` when the portal
    /// still has the version behind `etag`.
    pub async fn poll_config(&self, etag: Option<&str>) -> Result<ConfigPoll, PortalError> {
        let mut req = self.authorized(self.http.get(self.url(lastmile_wire::CONFIG_PATH)));
        if let Some(etag) = etag {
            req = req.header(http::header::IF_NONE_MATCH, etag);
        }
        let res = req.send().await.map_err(unreachable)?;
        if res.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(ConfigPoll::Unchanged);
        }
        let etag = res
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let config = json_or_error(res).await?;
        Ok(ConfigPoll::Changed { config, etag })
    }

    pub async fn applied(&self, applied: &AppliedRequest) -> Result<(), PortalError> {
        let res = self
            .authorized(self.http.post(self.url(lastmile_wire::APPLIED_PATH)))
            .json(applied)
            .send()
            .await
            .map_err(unreachable)?;
        no_content_or_error(res).await
    }

    pub async fn report(&self, report: &Report) -> Result<ReportResponse, PortalError> {
        let res = self
            .authorized(self.http.post(self.url(lastmile_wire::REPORT_PATH)))
            .json(report)
            .send()
            .await
            .map_err(unreachable)?;
        json_or_error(res).await
    }

    /// For the reference client: an unauthenticated GET of a portal URL.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<T, PortalError> {
        let res = self
            .http
            .get(self.url(path_and_query))
            .send()
            .await
            .map_err(unreachable)?;
        json_or_error(res).await
    }
}

fn unreachable(e: reqwest::Error) -> PortalError {
    // reqwest's Display hides the cause (a refused connection, a bad
    // certificate); the chain is what an operator needs.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    PortalError::Unreachable(message)
}

async fn refusal(res: reqwest::Response) -> PortalError {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ApiError>(&text)
        .map(|e| e.message)
        .unwrap_or_else(|_| text.chars().take(300).collect());
    if status >= 500 {
        return PortalError::Unreachable(format!("HTTP {status}: {message}"));
    }
    PortalError::Refused { status, message }
}

async fn json_or_error<T: serde::de::DeserializeOwned>(
    res: reqwest::Response,
) -> Result<T, PortalError> {
    if !res.status().is_success() {
        return Err(refusal(res).await);
    }
    res.json()
        .await
        .map_err(|e| PortalError::Unreachable(format!("unreadable answer: {e}")))
}

async fn no_content_or_error(res: reqwest::Response) -> Result<(), PortalError> {
    if !res.status().is_success() {
        return Err(refusal(res).await);
    }
    Ok(())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ca_file_config(path: &PathBuf) -> Result<rustls::ClientConfig, PortalError> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path)
        .map_err(|e| PortalError::Setup(format!("reading the CA file {}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            PortalError::Setup(format!("the CA file {} is not PEM: {e}", path.display()))
        })?;
        roots.add(cert).map_err(|e| {
            PortalError::Setup(format!(
                "a certificate in {} is unusable: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(PortalError::Setup(format!(
            "the CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PortalError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn pinned_config(pin: &str) -> Result<rustls::ClientConfig, PortalError> {
    let verifier = PinnedKey::new(pin)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PortalError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The pin of a DER certificate, in curl's `sha256//<base64>` form.
pub fn spki_pin_of(cert: &CertificateDer<'_>) -> Result<String, String> {
    use base64::Engine;
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("{e:?}"))?;
    let spki = parsed.subject_public_key_info();
    Ok(format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_ref()))
    ))
}

/// Accepts exactly the server whose public key matches the pin. The
/// handshake signature is still checked, so the server must hold the
/// private key, not just show the certificate.
#[derive(Debug)]
struct PinnedKey {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedKey {
    fn new(pin: &str) -> Result<PinnedKey, PortalError> {
        use base64::Engine;
        let pin = pin.trim();
        let valid = pin
            .strip_prefix("sha256//")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|digest| digest.len() == 32);
        if !valid {
            return Err(PortalError::Setup(format!(
                "the pin {pin:?} is not of the form sha256//<base64 of 32 bytes>"
            )));
        }
        Ok(PinnedKey {
            pin: pin.to_string(),
            provider: provider(),
        })
    }
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = spki_pin_of(end_entity)
            .map_err(|e| rustls::Error::General(format!("unreadable portal certificate: {e}")))?;
        if found == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the portal's key {found} does not match the pinned {}",
                self.pin
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_must_be_sha256_of_32_bytes() {
        assert!(PinnedKey::new("sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").is_ok());
        assert!(PinnedKey::new("sha256//short").is_err());
        assert!(PinnedKey::new("AB:CD").is_err());
    }

    #[test]
    fn portal_addresses_need_a_scheme() {
        assert!(Portal::new("portal.example:8443", &Trust::System, None).is_err());
        assert!(Portal::new("https://portal.example:8443/", &Trust::System, None).is_ok());
    }
}
