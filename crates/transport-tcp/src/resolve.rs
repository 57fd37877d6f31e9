//! Where to connect: RFC 6120 §3.2 DNS SRV (`_xmpp-client._tcp`, XEP-0368
//! `_xmpps-client._tcp` for direct TLS), falling back to the domain on port 5222.

use std::time::Duration;

use hickory_resolver::TokioResolver;

/// A host and port to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Orders SRV records `(priority, weight, host, port)`: lowest priority first; within a
/// priority, heavier first (a deterministic stand-in for RFC 2782's weighted choice). A
/// single record with target `.` means the service is not offered.
pub fn srv_order(mut records: Vec<(u16, u16, String, u16)>) -> Vec<Target> {
    if records.len() == 1 && records[0].2.trim_end_matches('.').is_empty() {
        return Vec::new();
    }
    records.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    records
        .into_iter()
        .map(|(_, _, host, port)| Target {
            host: host.trim_end_matches('.').to_owned(),
            port,
        })
        .collect()
}

/// The targets for `domain`; never empty for STARTTLS (the RFC 6120 fallback).
pub(crate) async fn targets(domain: &str, direct_tls: bool) -> Vec<Target> {
    let service = if direct_tls {
        "_xmpps-client._tcp"
    } else {
        "_xmpp-client._tcp"
    };
    let name = format!("{service}.{domain}.");
    let found = match TokioResolver::builder_tokio() {
        Ok(mut b) => {
            b.options_mut().timeout = Duration::from_secs(3);
            b.options_mut().attempts = 1;
            let r = b.build();
            match r.srv_lookup(name).await {
                Ok(l) => srv_order(
                    l.iter()
                        .map(|s| (s.priority(), s.weight(), s.target().to_utf8(), s.port()))
                        .collect(),
                ),
                Err(_) => Vec::new(),
            }
        }
        Err(_) => Vec::new(),
    };
    if found.is_empty() && !direct_tls {
        return vec![Target {
            host: domain.to_owned(),
            port: 5222,
        }];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_records_are_ordered_by_priority_then_weight() {
        let t = srv_order(vec![
            (20, 0, "c.example.".into(), 5222),
            (10, 5, "b.example.".into(), 5223),
            (10, 50, "a.example.".into(), 5222),
        ]);
        let hosts: Vec<_> = t.iter().map(|t| (t.host.as_str(), t.port)).collect();
        assert_eq!(
            hosts,
            [
                ("a.example", 5222),
                ("b.example", 5223),
                ("c.example", 5222)
            ]
        );
        assert!(
            srv_order(vec![(0, 0, ".".into(), 0)]).is_empty(),
            "'.' = service not offered"
        );
    }

    #[tokio::test]
    async fn no_srv_falls_back_to_the_domain_on_5222() {
        // `.invalid` never resolves (RFC 2606).
        let t = targets("groupchat-test.invalid", false).await;
        assert_eq!(
            t,
            vec![Target {
                host: "groupchat-test.invalid".into(),
                port: 5222
            }]
        );
        assert!(targets("groupchat-test.invalid", true).await.is_empty());
    }
}
