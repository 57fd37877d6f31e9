//! The SDK's HTTP client (images given by URL, upload), built on first use: most sessions
//! never make a web request, and the client with its root store is memory every receiver
//! would carry.

use std::sync::OnceLock;
use std::time::Duration;

use groupchat_transport::{HttpClient, HttpError, HttpOptions, Roots, TlsOptions, TransportError};

use crate::error::RequestError;

/// An [`HttpClient`] made when first needed.
pub(crate) struct LazyHttp {
    tls: TlsOptions,
    options: HttpOptions,
    client: OnceLock<Result<HttpClient, TransportError>>,
}

impl LazyHttp {
    /// Checks now what can be wrong with the trust settings (a CA file that does not load),
    /// so that the mistake is reported at `connect`, not at the first upload. The default
    /// roots are compiled in and cannot be wrong.
    pub(crate) fn new(
        tls: &TlsOptions,
        timeout: Duration,
        allow_loopback_plain: bool,
    ) -> Result<Self, TransportError> {
        if tls.config.is_some() || !matches!(tls.roots, Roots::WebPki) {
            tls.client_config(&[])?;
        }
        let mut options = HttpOptions::default();
        options.timeout = timeout;
        options.allow_loopback_plain = allow_loopback_plain;
        Ok(Self {
            tls: tls.clone(),
            options,
            client: OnceLock::new(),
        })
    }

    /// The client.
    pub(crate) fn client(&self) -> Result<&HttpClient, RequestError> {
        match self
            .client
            .get_or_init(|| HttpClient::new(&self.tls, &self.options))
        {
            Ok(c) => Ok(c),
            Err(TransportError::Http(e)) => Err(RequestError::Http(e.clone())),
            Err(TransportError::Tls(failure)) => Err(RequestError::Http(HttpError::Tls {
                url: String::new(),
                failure: failure.clone(),
            })),
            Err(other) => Err(RequestError::BadRequest(format!(
                "the HTTP client cannot be built: {other}"
            ))),
        }
    }
}
