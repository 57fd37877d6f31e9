//! A deliberately dumb XMPP client for tests that play a hostile member: it logs in over
//! plaintext TCP on loopback (SASL PLAIN, resource binding) and then writes whatever bytes
//! it is given, with none of the checks the project's own clients make on what they send.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::util::find;

/// A logged-in raw connection (blocking, std only).
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    /// Everything received and not yet consumed by [`RawClient::read_until`].
    received: Vec<u8>,
}

impl RawClient {
    /// Connects to `addr` in plaintext and logs in as `user@domain` with SASL PLAIN (the
    /// test servers allow it on loopback), binding resource `raw`.
    pub fn login(addr: SocketAddr, domain: &str, user: &str, password: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut c = Self {
            stream,
            received: Vec::new(),
        };
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
        );
        c.send(&header)?;
        c.read_until("</stream:features>")?;
        let token = base64(format!("\0{user}\0{password}").as_bytes());
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        ))?;
        let answer = c.read_until_any(&["<success", "<failure"])?;
        if answer.contains("<failure") {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("SASL PLAIN refused: {answer}"),
            ));
        }
        c.send(&header)?;
        c.read_until("</stream:features>")?;
        c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>")?;
        c.read_until("</iq>")?;
        Ok(c)
    }

    /// The socket and what was received after the last read marker, for a caller that
    /// reads the stream itself (the end-to-end benchmark's floor).
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.received)
    }

    /// Writes `xml` as it is.
    pub fn send(&mut self, xml: &str) -> io::Result<()> {
        self.stream.write_all(xml.as_bytes())?;
        self.stream.flush()
    }

    /// Reads until `marker` has arrived (within 20 s) and returns everything received up
    /// to and including it; what follows stays for the next read.
    pub fn read_until(&mut self, marker: &str) -> io::Result<String> {
        self.read_until_any(&[marker])
    }

    /// Like [`RawClient::read_until`], for the first of several markers.
    pub fn read_until_any(&mut self, markers: &[&str]) -> io::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 16 * 1024];
        loop {
            let found = markers
                .iter()
                .filter_map(|m| find(&self.received, m.as_bytes()).map(|i| i + m.len()))
                .min();
            if let Some(end) = found {
                let rest = self.received.split_off(end);
                let got = std::mem::replace(&mut self.received, rest);
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "none of {markers:?} within 20 s; received {}",
                        String::from_utf8_lossy(&self.received)
                    ),
                ));
            }
            self.stream.set_read_timeout(Some(left))?;
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.received.extend_from_slice(&buf[..n]);
        }
    }
}

/// Standard base64 with padding (RFC 4648): SASL PLAIN tokens of raw logins.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), encoded);
        }
    }
}
