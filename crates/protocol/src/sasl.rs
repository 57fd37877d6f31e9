//! RFC 4422 SASL client mechanisms: SCRAM-SHA-256 (RFC 7677), SCRAM-SHA-1 (RFC 5802),
//! PLAIN (RFC 4616).
//!
//! Pure functions of the password, the server's messages and a client nonce passed in, so
//! the RFC test vectors run as unit tests.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::SessionError;

/// A SASL mechanism this crate implements, strongest first in [`Mechanism::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Mechanism {
    /// SCRAM with SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM with SHA-1 (RFC 5802).
    ScramSha1,
    /// The password in clear (RFC 4616): only over TLS unless explicitly allowed.
    Plain,
}

impl Mechanism {
    /// Every mechanism, in order of preference.
    pub const ALL: [Self; 3] = [Self::ScramSha256, Self::ScramSha1, Self::Plain];

    /// The IANA name, as offered in `<mechanisms/>`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha1 => "SCRAM-SHA-1",
            Self::Plain => "PLAIN",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A password that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// The client side of one SASL exchange.
pub(crate) enum Client {
    Plain,
    Scram(Scram),
}

impl Client {
    /// Starts `mechanism`; returns the client and its initial response.
    pub(crate) fn start(
        mechanism: Mechanism,
        username: &str,
        password: &Password,
        nonce: &str,
    ) -> Result<(Self, Vec<u8>), SessionError> {
        match mechanism {
            Mechanism::Plain => {
                let mut msg = Vec::with_capacity(username.len() + password.0.len() + 2);
                msg.push(0);
                msg.extend_from_slice(username.as_bytes());
                msg.push(0);
                msg.extend_from_slice(password.0.as_bytes());
                Ok((Self::Plain, msg))
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha1 => {
                let hash = if mechanism == Mechanism::ScramSha256 {
                    Hash::Sha256
                } else {
                    Hash::Sha1
                };
                let (scram, first) = Scram::start(hash, username, password, nonce)?;
                Ok((Self::Scram(scram), first.into_bytes()))
            }
        }
    }

    /// Answers a server challenge.
    pub(crate) fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SessionError> {
        match self {
            Self::Plain => Err(SessionError::Protocol(
                crate::error::ProtocolViolation::ChallengeForPlain,
            )),
            Self::Scram(s) => s.respond(challenge).map(String::into_bytes),
        }
    }

    /// Checks the server's `<success/>` additional data.
    pub(crate) fn finish(&mut self, data: &[u8]) -> Result<(), SessionError> {
        match self {
            Self::Plain => Ok(()),
            Self::Scram(s) => s.finish(data),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                let mut m = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password, salt, iterations).to_vec()
            }
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// RFC 7677 §4: at least 4096; fewer makes a captured proof cheap to crack offline.
const MIN_ITERATIONS: u32 = 4096;
/// Servers commonly use 4096–600 000; far above is a denial of service on the client.
const MAX_ITERATIONS: u32 = 1_000_000;

enum ScramState {
    Initial,
    SentFinal { server_signature: Vec<u8> },
    Done,
}

/// SCRAM without channel binding (`n,,`): RFC 5802 §5.
pub(crate) struct Scram {
    hash: Hash,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    state: ScramState,
}

impl Scram {
    fn start(
        hash: Hash,
        username: &str,
        password: &Password,
        nonce: &str,
    ) -> Result<(Self, String), SessionError> {
        let user = stringprep::saslprep(username)
            .map_err(|_| SessionError::Scram("username is not valid for SASLprep"))?;
        let password = stringprep::saslprep(password.expose())
            .map_err(|_| SessionError::Scram("password is not valid for SASLprep"))?
            .into_owned();
        let user = user.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={user},r={nonce}");
        let first = format!("n,,{client_first_bare}");
        Ok((
            Self {
                hash,
                password,
                client_nonce: nonce.to_owned(),
                client_first_bare,
                state: ScramState::Initial,
            },
            first,
        ))
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<String, SessionError> {
        if !matches!(self.state, ScramState::Initial) {
            return Err(SessionError::Scram("unexpected second challenge"));
        }
        let server_first = std::str::from_utf8(challenge)
            .map_err(|_| SessionError::Scram("challenge is not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iterations = Some(v),
                Some(("m=", _)) => {
                    return Err(SessionError::Scram("mandatory extension not supported"));
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or(SessionError::Scram("challenge without nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SessionError::Scram(
                "server nonce does not extend the client nonce",
            ));
        }
        let salt = B64
            .decode(salt.ok_or(SessionError::Scram("challenge without salt"))?)
            .map_err(|_| SessionError::Scram("salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or(SessionError::Scram("challenge without iteration count"))?
            .parse()
            .map_err(|_| SessionError::Scram("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(SessionError::Scram("iteration count out of range"));
        }
        let h = self.hash;
        let salted = h.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        let server_signature = h.hmac(&server_key, auth_message.as_bytes());
        self.state = ScramState::SentFinal { server_signature };
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    fn finish(&mut self, data: &[u8]) -> Result<(), SessionError> {
        let ScramState::SentFinal { server_signature } = &self.state else {
            return Err(SessionError::Scram(
                "success before the SCRAM exchange finished",
            ));
        };
        let text = std::str::from_utf8(data)
            .map_err(|_| SessionError::Scram("server final is not UTF-8"))?;
        let v = text
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or(SessionError::Scram("server final without verifier"))?;
        let v = B64
            .decode(v)
            .map_err(|_| SessionError::Scram("server verifier is not base64"))?;
        if v != *server_signature {
            return Err(SessionError::Scram(
                "server signature does not match: the server does not know the password",
            ));
        }
        self.state = ScramState::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        mech: Mechanism,
        nonce: &str,
        server_first: &str,
        client_final: &str,
        server_final: &str,
    ) {
        let (mut c, first) = Client::start(mech, "user", &"pencil".into(), nonce).unwrap();
        assert_eq!(first, format!("n,,n=user,r={nonce}").into_bytes());
        let fin = c.respond(server_first.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(fin).unwrap(), client_final);
        c.finish(server_final.as_bytes()).unwrap();
    }

    #[test]
    fn rfc5802_sha1_vector() {
        run(
            Mechanism::ScramSha1,
            "fyko+d2lbbFgONRv9qkxdawL",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
    }

    #[test]
    fn rfc7677_sha256_vector() {
        run(
            Mechanism::ScramSha256,
            "rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
    }

    #[test]
    fn wrong_server_signature_is_refused() {
        let (mut c, _) = Client::start(
            Mechanism::ScramSha1,
            "user",
            &"pencil".into(),
            "fyko+d2lbbFgONRv9qkxdawL",
        )
        .unwrap();
        c.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert!(matches!(
            c.finish(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(SessionError::Scram(_))
        ));
    }

    #[test]
    fn hostile_challenges_are_refused() {
        for ch in [
            &b"r=other,s=QSXCR+Q6sek8bf92,i=4096"[..],
            b"r=abc,s=QSXCR+Q6sek8bf92,i=4096",
            b"r=abcdef,s=QSXCR+Q6sek8bf92,i=0",
            b"r=abcdef,s=QSXCR+Q6sek8bf92,i=1",
            b"r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999",
            b"r=abcdef,s=!!,i=4096",
            b"\xff",
        ] {
            let (mut c, _) =
                Client::start(Mechanism::ScramSha256, "user", &"pencil".into(), "abc").unwrap();
            assert!(c.respond(ch).is_err(), "{ch:?}");
        }
    }

    #[test]
    fn plain_message_and_redaction() {
        let (_, m) = Client::start(Mechanism::Plain, "alice", &"s3cret".into(), "").unwrap();
        assert_eq!(m, b"\0alice\0s3cret");
        assert!(!format!("{:?}", Password::new("s3cret")).contains("s3cret"));
    }
}
