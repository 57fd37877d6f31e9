//! A small HTTP/1.1 client for the SDK's few HTTP needs (an image given by URL; later
//! upload and download): one connection per request, rustls with the same trust settings
//! as the XMPP connection, plain `http://` only to loopback and only when allowed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::error::RequestError;

/// How the SDK reaches web servers.
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) tls: Arc<tokio_rustls::rustls::ClientConfig>,
    /// `http://` to a loopback address (test servers hand out such URLs).
    pub(crate) allow_loopback_plain: bool,
    pub(crate) timeout: Duration,
}

fn bad(url: &str, why: impl std::fmt::Display) -> RequestError {
    RequestError::BadRequest(format!("{url}: {why}"))
}

/// The web server cannot be reached or failed: 503 (`service-unavailable`).
fn unavailable(url: &str, why: impl std::fmt::Display) -> RequestError {
    RequestError::from(
        groupchat_protocol::codec::xep::stanza_error::StanzaError::new(
            groupchat_protocol::codec::xep::stanza_error::ErrorType::Cancel,
            "service-unavailable",
            Some(format!("{url}: {why}")),
        ),
    )
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Http {
    /// GETs `url`, refusing bodies above `max` bytes (413). Returns the content type and
    /// the bytes.
    pub(crate) async fn get(
        &self,
        url: &str,
        max: u64,
    ) -> Result<(Option<String>, Vec<u8>), RequestError> {
        self.exchange(hyper::Method::GET, url, &[], None, max).await
    }

    /// PUTs `body` (of `content_type`) to `url` with extra `headers` (an upload slot's).
    pub(crate) async fn put(
        &self,
        url: &str,
        headers: &[(String, String)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(), RequestError> {
        self.exchange(
            hyper::Method::PUT,
            url,
            headers,
            Some((content_type, body)),
            64 * 1024,
        )
        .await
        .map(|_| ())
    }

    async fn exchange(
        &self,
        method: hyper::Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<(&str, Vec<u8>)>,
        max: u64,
    ) -> Result<(Option<String>, Vec<u8>), RequestError> {
        let uri: hyper::Uri = url.parse().map_err(|e| bad(url, e))?;
        let host = uri.host().ok_or_else(|| bad(url, "no host"))?.to_owned();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if self.allow_loopback_plain && is_loopback(&host) => false,
            Some("http") => {
                return Err(bad(
                    url,
                    "plain http is refused (only https, or http to loopback when allowed)",
                ));
            }
            _ => return Err(bad(url, "not an http(s) URL")),
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.clone());
        let work = async {
            let tcp =
                TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
                    .await
                    .map_err(|e| unavailable(url, e))?;
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, authority)
                .header(hyper::header::USER_AGENT, "groupchat-sdk");
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let sent = body.as_ref().map_or(0, |(_, d)| d.len() as u64);
            let payload = match body {
                Some((content_type, data)) => {
                    request = request
                        .header(hyper::header::CONTENT_TYPE, content_type)
                        .header(hyper::header::CONTENT_LENGTH, data.len());
                    Bytes::from(data)
                }
                None => Bytes::new(),
            };
            let request = request.body(Full::new(payload)).map_err(|e| bad(url, e))?;
            let response = if tls {
                let name = ServerName::try_from(host.clone()).map_err(|e| bad(url, e))?;
                let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unavailable(url, format!("TLS: {e}")))?;
                send(url, TokioIo::new(stream), request).await?
            } else {
                send(url, TokioIo::new(tcp), request).await?
            };
            read(url, response, sent, max).await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RequestError::Timeout)?
    }
}

async fn send<T>(
    url: &str,
    io: TokioIo<T>,
    request: Request<Full<Bytes>>,
) -> Result<hyper::Response<Incoming>, RequestError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| unavailable(url, e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(url, e))
}

async fn read(
    url: &str,
    response: hyper::Response<Incoming>,
    sent: u64,
    max: u64,
) -> Result<(Option<String>, Vec<u8>), RequestError> {
    let status = response.status();
    match status.as_u16() {
        200..=299 => {}
        404 | 410 => return Err(RequestError::NotFound(url.to_owned())),
        413 => {
            return Err(RequestError::TooLarge {
                size: sent,
                limit: 0,
            });
        }
        401 | 403 => {
            return Err(RequestError::FeatureUnavailable(format!(
                "{url}: the web server refused (HTTP {status})"
            )));
        }
        400..=499 => return Err(bad(url, format!("HTTP {status}"))),
        _ => return Err(unavailable(url, format!("HTTP {status}"))),
    }
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared.filter(|s| *s > max) {
        return Err(RequestError::TooLarge { size, limit: max });
    }
    let mut body = response.into_body();
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unavailable(url, e))?;
        if let Some(chunk) = frame.data_ref() {
            data.extend_from_slice(chunk);
            if data.len() as u64 > max {
                return Err(RequestError::TooLarge {
                    size: data.len() as u64,
                    limit: max,
                });
            }
        }
    }
    Ok((content_type, data))
}
