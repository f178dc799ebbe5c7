//! One DICOMweb server's connection: the HTTP agent (no redirects, no proxy, the node's CA),
//! the Authorization header, and what a transport error or an HTTP status means to a reader.

use std::time::Duration;

use base64::Engine;
use serde_json::Value as Json;
use ureq::http::Response;

use super::super::dicom_json;
use crate::PacsError;
use crate::nodes::{Auth, WebNode};

pub(super) const DICOM_JSON: &str = "application/dicom+json";

/// One server's connection settings, ready to send requests.
pub(super) struct Client {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
    timeout_s: u64,
}

impl Client {
    pub(super) fn new(node: &WebNode) -> Result<Client, PacsError> {
        node.validate()?;
        let timeout = Some(Duration::from_secs(node.timeout_s));
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &node.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| PacsError::Config(format!("cannot read the CA file {}: {e}", ca.display())))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(PacsError::Config(format!(
                    "the CA file {} holds no PEM certificate",
                    ca.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(timeout)
            .timeout_recv_response(timeout)
            .timeout_recv_body(timeout)
            .timeout_send_body(timeout)
            .tls_config(tls.build())
            .user_agent(format!("Focal/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let authorization = match &node.auth {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Bearer { token } => Some(format!("Bearer {token}")),
        };
        Ok(Client {
            agent,
            base: node.base().to_string(),
            authorization,
            timeout_s: node.timeout_s,
        })
    }

    pub(super) fn get(&self, path: &str, accept: &str, query: &[(&str, String)]) -> Result<Response<ureq::Body>, PacsError> {
        let mut req = self.agent.get(format!("{}{path}", self.base)).header("Accept", accept);
        for (k, v) in query {
            req = req.query(*k, v);
        }
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        req.call().map_err(|e| self.transport(e))
    }

    pub(super) fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Response<ureq::Body>, PacsError> {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .header("Accept", DICOM_JSON);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        req.send(body).map_err(|e| self.transport(e))
    }

    /// A transport failure in words a user can act on.
    pub(super) fn transport(&self, e: ureq::Error) -> PacsError {
        use ureq::Error as E;
        let chain = crate::study::error_chain(&e);
        let tls_words = ["certificate", "tls", "handshake", "peer sent", "alert"];
        match &e {
            E::Timeout(_) => PacsError::Timeout(self.timeout_s),
            E::HostNotFound => PacsError::Unreachable(format!("host not found ({})", self.base)),
            E::ConnectionFailed => PacsError::Unreachable(format!("connection failed ({})", self.base)),
            E::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => PacsError::Unreachable(format!("{} refused the connection", self.base)),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => PacsError::Timeout(self.timeout_s),
                // A connection cut mid-answer (also mid-TLS-record) is not a certificate problem.
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => PacsError::Disconnected("the server closed the connection".into()),
                _ if tls_words.iter().any(|w| chain.to_ascii_lowercase().contains(w)) => PacsError::Tls(chain),
                _ => PacsError::Io(chain),
            },
            E::Tls(_) | E::Rustls(_) | E::Pem(_) | E::TlsRequired => PacsError::Tls(chain),
            _ if tls_words.iter().any(|w| chain.to_ascii_lowercase().contains(w)) => PacsError::Tls(chain),
            E::Protocol(_) => PacsError::Disconnected(format!("the server's answer broke off or was not HTTP ({chain})")),
            _ => PacsError::Protocol(chain),
        }
    }

    /// The answer when its status is a success, else what the status means.
    pub(super) fn expect_ok(&self, mut resp: Response<ureq::Body>, doing: &str) -> Result<Response<ureq::Body>, PacsError> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let reason = resp.status().canonical_reason().unwrap_or("");
        match status {
            401 | 403 => Err(PacsError::Unauthorized(format!("HTTP {status} {reason}"))),
            300..=399 => {
                let to = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("elsewhere")
                    .to_string();
                Err(PacsError::Failed(format!(
                    "HTTP {status}: the server redirects {doing} to {to}; Focal talks only to the configured URL"
                )))
            }
            _ => {
                // A few words of the server's own message help; a whole error page does not.
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(4096)
                    .read_to_string()
                    .unwrap_or_default();
                let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let text: String = text.chars().take(160).collect();
                let hint = if status == 404 { " (is the URL the DICOMweb root?)" } else { "" };
                Err(PacsError::Failed(format!(
                    "HTTP {status} {reason} {doing}{hint}{}",
                    if text.is_empty() { String::new() } else { format!(": {text}") }
                )))
            }
        }
    }

    pub(super) fn json(&self, resp: Response<ureq::Body>, doing: &str) -> Result<Vec<Json>, PacsError> {
        let mut resp = self.expect_ok(resp, doing)?;
        if resp.status().as_u16() == 204 {
            return Ok(Vec::new());
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map_err(|e| self.transport(e))?;
        dicom_json(&bytes).ok_or_else(|| PacsError::Protocol(format!("the answer {doing} is not DICOM JSON")))
    }
}

/// A UID as a URL path segment: digits and dots only, else refused.
pub(super) fn path_segment(uid: &str) -> Result<&str, PacsError> {
    let ok = !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if ok {
        Ok(uid)
    } else {
        Err(PacsError::Config(format!("{uid:?} is not a DICOM UID")))
    }
}
