//! The workspace's one HTTP client: reqwest over the same rustls configuration as the XMPP
//! connection. It serves XEP-0156 host-meta, images given by URL and XEP-0363 upload (and
//! the media download that builds on it). Plain `http://` is refused unless the application
//! allowed it, and then only to loopback addresses (test servers hand out such URLs);
//! redirects are followed a bounded number of times and each hop is held to the same rule.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use url::{Host, Url};

use crate::error::{Cause, UrlProblem};
use crate::tls::{TlsOptions, tls_failure};
use crate::{TlsFailure, TransportError};

/// What the HTTP client may do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpOptions {
    /// The whole exchange of [`HttpClient::get`] and [`HttpClient::put`], from connecting to
    /// the last byte of the body; for the streamed transfers ([`HttpClient::put_stream`],
    /// [`HttpClient::get_stream`]), which may take long, the longest wait for the connection
    /// or for the next bytes.
    pub timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// `http://` to loopback addresses (`localhost`, `127.0.0.0/8`, `::1`).
    pub allow_loopback_plain: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_redirects: 5,
            allow_loopback_plain: false,
        }
    }
}

/// Why an HTTP request failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL is not an absolute `https://` (or allowed `http://`) URL with a host.
    #[error("invalid URL {url:?}: {problem}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        problem: UrlProblem,
    },
    /// Plain `http://` that was not allowed (or not to a loopback address), given or reached
    /// by a redirect.
    #[error("{url}: plain http is refused (only https, or http to loopback when allowed)")]
    PlaintextRefused {
        /// The refused URL.
        url: String,
    },
    /// The web server answered with an error status.
    #[error("{url}: the web server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is larger than the caller accepts (declared or received).
    #[error("the body is larger than {limit} bytes ({size} bytes or more)")]
    TooLarge {
        /// Bytes declared or received so far.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// No complete answer within the time allowed.
    #[error("{url}: no complete answer in time")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// TLS failed (the certificate does not verify, ...).
    #[error("{url}: {failure}")]
    Tls {
        /// The URL.
        url: String,
        /// Why.
        failure: TlsFailure,
    },
    /// An upload slot gave a header that is not valid HTTP.
    #[error("invalid HTTP header {name:?} in an upload slot")]
    InvalidHeader {
        /// The header's name.
        name: String,
    },
    /// More redirects than allowed.
    #[error("{url}: too many redirects")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
    },
    /// The web server could not be reached, or the connection failed mid-way.
    #[error("{url}: {error}")]
    Unreachable {
        /// The URL.
        url: String,
        /// reqwest's error (connection refused, reset, a malformed response...).
        error: Cause,
    },
}

/// A fetched body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fetched {
    /// The `Content-Type` the server declared.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// The HTTP client. Cheap to clone (one connection pool).
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    allow_loopback_plain: bool,
    timeout: Duration,
}

/// A response being received: its declared size and type, and its body chunk by chunk.
#[derive(Debug)]
pub struct Incoming {
    url: String,
    response: reqwest::Response,
    timeout: Duration,
}

impl Incoming {
    /// The size the server declared (`Content-Length`).
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// The next piece of the body; `None` at its end. A stall longer than the client's
    /// timeout is [`HttpError::Timeout`].
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        match tokio::time::timeout(self.timeout, self.response.chunk()).await {
            Ok(r) => r.map_err(|e| error(&self.url, e)),
            Err(_) => Err(HttpError::Timeout {
                url: self.url.clone(),
            }),
        }
    }
}

/// Why a redirect was not followed; found again in reqwest's error chain.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("too many redirects")]
    TooMany,
    /// The target is not allowed (the same check as a URL given directly).
    #[error("{0}")]
    Target(HttpError),
}

impl HttpClient {
    /// A client trusting what `tls` trusts.
    pub fn new(tls: &TlsOptions, options: &HttpOptions) -> Result<Self, TransportError> {
        let config = tls.client_config(&[b"http/1.1"])?;
        let plain = options.allow_loopback_plain;
        let max = options.max_redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(RedirectRefused::TooMany);
            }
            match allowed(attempt.url(), attempt.url().as_str(), plain) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(RedirectRefused::Target(e)),
            }
        });
        // No client-wide deadline: a large file may take long. Connecting waits at most
        // `timeout`; the small exchanges get it as their whole deadline, a streamed download
        // for its headers and for each piece (reqwest's own read timeout would also run
        // while a streamed upload is still sending).
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*config).clone())
            .redirect(policy)
            .connect_timeout(options.timeout)
            .user_agent(concat!("groupchat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Http(unreachable("(client)", e)))?;
        Ok(Self {
            client,
            allow_loopback_plain: plain,
            timeout: options.timeout,
        })
    }

    /// GETs `url`; a body above `limit` bytes is refused without reading the rest.
    pub async fn get(&self, url: &str, limit: u64) -> Result<Fetched, HttpError> {
        let parsed = self.url(url)?;
        let mut response = self
            .client
            .get(parsed)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| error(url, e))?;
        status(url, &response)?;
        if let Some(size) = response.content_length().filter(|&n| n > limit) {
            return Err(HttpError::TooLarge { size, limit });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error(url, e))? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > limit {
                return Err(HttpError::TooLarge {
                    size: body.len() as u64,
                    limit,
                });
            }
        }
        Ok(Fetched {
            content_type,
            body: body.into(),
        })
    }

    /// PUTs `body` of `content_type` to `url` with extra `headers` (an upload slot's).
    pub async fn put(
        &self,
        url: &str,
        headers: &[(String, String)],
        content_type: &str,
        body: Bytes,
    ) -> Result<(), HttpError> {
        let request = self
            .put_request(url, headers, content_type)?
            .timeout(self.timeout)
            .body(body);
        let response = request.send().await.map_err(|e| error(url, e))?;
        status(url, &response)
    }

    /// PUTs `size` bytes read from `body` (a file, read piece by piece): the whole file is
    /// never in memory. The request declares `Content-Length: size` (upload services check
    /// it against the slot); a body that ends early or runs long fails the request. There is
    /// no overall deadline: the caller watches progress (the stream is pulled as the server
    /// takes the bytes).
    pub async fn put_stream<S>(
        &self,
        url: &str,
        headers: &[(String, String)],
        content_type: &str,
        size: u64,
        body: S,
    ) -> Result<(), HttpError>
    where
        S: futures::stream::TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        let response = self
            .put_request(url, headers, content_type)?
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| error(url, e))?;
        status(url, &response)
    }

    /// GETs `url` and returns once the headers are in (within the timeout); the body is
    /// then read piece by piece with [`Incoming::chunk`].
    pub async fn get_stream(&self, url: &str) -> Result<Incoming, HttpError> {
        let parsed = self.url(url)?;
        let response =
            match tokio::time::timeout(self.timeout, self.client.get(parsed).send()).await {
                Ok(r) => r.map_err(|e| error(url, e))?,
                Err(_) => {
                    return Err(HttpError::Timeout {
                        url: url.to_owned(),
                    });
                }
            };
        status(url, &response)?;
        Ok(Incoming {
            url: url.to_owned(),
            response,
            timeout: self.timeout,
        })
    }

    /// A PUT to `url` with the slot's `headers` and the content type.
    fn put_request(
        &self,
        url: &str,
        headers: &[(String, String)],
        content_type: &str,
    ) -> Result<reqwest::RequestBuilder, HttpError> {
        let parsed = self.url(url)?;
        let mut request = self.client.put(parsed);
        for (name, value) in headers {
            // XEP-0363 allows only a few headers in a slot; a server sending one that is not
            // a valid header gets the upload refused rather than a changed request.
            let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) else {
                return Err(HttpError::InvalidHeader { name: name.clone() });
            };
            request = request.header(name, value);
        }
        Ok(request.header(CONTENT_TYPE, content_type))
    }

    /// `url` parsed and allowed.
    fn url(&self, url: &str) -> Result<Url, HttpError> {
        let parsed = Url::parse(url).map_err(|e| HttpError::InvalidUrl {
            url: url.to_owned(),
            problem: UrlProblem::Syntax(e),
        })?;
        allowed(&parsed, url, self.allow_loopback_plain).map(|()| parsed)
    }
}

/// Whether the client may fetch `url` (`text` as given, for the error).
fn allowed(url: &Url, text: &str, allow_loopback_plain: bool) -> Result<(), HttpError> {
    let invalid = |problem| {
        Err(HttpError::InvalidUrl {
            url: text.to_owned(),
            problem,
        })
    };
    if !url.username().is_empty() || url.password().is_some() {
        return invalid(UrlProblem::Credentials);
    }
    let Some(host) = url.host() else {
        return invalid(UrlProblem::NoHost);
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_loopback_plain && is_loopback(&host) => Ok(()),
        "http" => Err(HttpError::PlaintextRefused {
            url: text.to_owned(),
        }),
        _ => invalid(UrlProblem::Scheme {
            expected: "https:// (or http:// to loopback when allowed)",
        }),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(a) => a.is_loopback(),
        Host::Ipv6(a) => a.is_loopback(),
    }
}

/// An error status as [`HttpError::Status`].
fn status(url: &str, response: &reqwest::Response) -> Result<(), HttpError> {
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(HttpError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        })
    }
}

fn unreachable(url: &str, e: reqwest::Error) -> HttpError {
    HttpError::Unreachable {
        url: url.to_owned(),
        error: Cause::new(e),
    }
}

/// reqwest's error, typed by what its chain of sources says happened.
fn error(url: &str, e: reqwest::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<RedirectRefused>() {
            return match r {
                RedirectRefused::TooMany => HttpError::TooManyRedirects {
                    url: url.to_owned(),
                },
                RedirectRefused::Target(e) => e.clone(),
            };
        }
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return HttpError::Tls {
                url: url.to_owned(),
                failure: tls_failure(tls),
            };
        }
        // An `io::Error`'s `source()` skips the error it wraps: step into it instead.
        source = match s.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => s.source(),
        };
    }
    if e.is_timeout() {
        HttpError::Timeout {
            url: url.to_owned(),
        }
    } else {
        unreachable(url, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(url: &str, plain: bool) -> Result<(), String> {
        allowed(&Url::parse(url).unwrap(), url, plain).map_err(|e| match e {
            HttpError::PlaintextRefused { .. } => "plaintext".to_owned(),
            other => other.to_string(),
        })
    }

    #[test]
    fn plain_http_only_to_loopback_and_only_when_allowed() {
        assert_eq!(verdict("https://example.org/a", false), Ok(()));
        for url in [
            "http://localhost:5280/a",
            "http://127.0.0.1/a",
            "http://[::1]:80/",
        ] {
            assert_eq!(verdict(url, true), Ok(()), "{url}");
            assert_eq!(verdict(url, false), Err("plaintext".into()), "{url}");
        }
        assert_eq!(verdict("http://192.0.2.1/a", true), Err("plaintext".into()));
        assert_eq!(
            verdict("http://localhost.example.org/a", true),
            Err("plaintext".into())
        );
        assert!(verdict("ftp://example.org/a", true).is_err());
        assert!(verdict("https://user:pw@example.org/a", true).is_err());
        assert!(verdict("data:text/plain,hi", true).is_err());
    }
}
