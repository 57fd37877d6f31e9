//! XEP-0115: Entity Capabilities — the `<c/>` a presence carries (typed, because most
//! presences have one and a tree for each would cost more than the rest of the presence).

/// `http://jabber.org/protocol/caps`
pub const NS: &str = "http://jabber.org/protocol/caps";

/// What the sender's software can do, as a hash of its disco#info.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Caps {
    /// The hash function (`sha-1`).
    pub hash: String,
    /// The software's URI.
    pub node: String,
    /// The verification string (base64 of the hash).
    pub ver: String,
}

/// What this client is, for others' service discovery: one identity (`client/pc`) and the
/// features it handles — including `+notify` for the PEP nodes whose changes every device
/// of the user must hear (XEP-0163: the server sends their notifications to the resources
/// that advertise them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnCaps {
    /// The software's URI (the `node` of `<c/>`).
    pub node: &'static str,
    /// The identity's name.
    pub name: &'static str,
    /// Feature namespaces.
    pub features: Vec<&'static str>,
}

impl OwnCaps {
    /// The XEP-0115 §5.1 verification string: base64 of the SHA-1 of
    /// `category/type/lang/name<` followed by each feature, sorted, with `<`.
    pub fn ver(&self) -> String {
        use base64::Engine as _;
        use sha1::Digest as _;
        let mut features = self.features.clone();
        features.sort_unstable();
        features.dedup();
        let mut s = format!("client/pc//{}<", self.name);
        for f in features {
            s.push_str(f);
            s.push('<');
        }
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
    }

    /// The initial presence, carrying `<c/>`.
    pub fn presence(&self) -> Vec<u8> {
        let mut w = crate::codec::write::Writer::with_capacity(200);
        w.open_ns("presence", crate::ns::CLIENT);
        w.close_start();
        w.open_ns("c", NS);
        w.attr("hash", "sha-1");
        w.attr("node", self.node);
        w.attr("ver", &self.ver());
        w.close_empty();
        w.end("presence");
        w.buf
    }

    /// The answer to a disco#info request `iq` for us (with or without the caps node).
    pub fn info_result(&self, iq: &crate::codec::Iq) -> Vec<u8> {
        let to = iq.from.as_ref().map(ToString::to_string);
        let node = iq
            .payload
            .as_ref()
            .and_then(|p| p.attr("node"))
            .map(str::to_owned);
        crate::codec::write::iq("result", to.as_deref(), &iq.id, |w| {
            w.open_ns("query", super::disco::INFO_NS);
            if let Some(n) = &node {
                w.attr("node", n);
            }
            w.close_start();
            w.open("identity");
            w.attr("category", "client");
            w.attr("type", "pc");
            w.attr("name", self.name);
            w.close_empty();
            for f in &self.features {
                w.open("feature");
                w.attr("var", f);
                w.close_empty();
            }
            w.end("query");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::OwnCaps;

    /// XEP-0115 §5.2's worked example.
    #[test]
    fn the_verification_string_is_the_one_of_the_specification_example() {
        let caps = OwnCaps {
            node: "http://code.google.com/p/exodus",
            name: "Exodus 0.9.1",
            features: vec![
                "http://jabber.org/protocol/muc",
                "http://jabber.org/protocol/disco#info",
                "http://jabber.org/protocol/caps",
                "http://jabber.org/protocol/disco#items",
            ],
        };
        assert_eq!(caps.ver(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }
}
