//! XEP-0334: Message Processing Hints.

/// `urn:xmpp:hints`
pub const NS: &str = "urn:xmpp:hints";

/// The hints on a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Hints {
    /// `<no-store/>`: do not archive (typing notifications).
    pub no_store: bool,
    /// `<no-permanent-store/>`.
    pub no_permanent_store: bool,
    /// `<store/>`: archive even if the server would not (markers).
    pub store: bool,
    /// `<no-copy/>`.
    pub no_copy: bool,
}

impl Hints {
    pub(crate) fn set(&mut self, name: &str) -> bool {
        match name {
            "no-store" => self.no_store = true,
            "no-permanent-store" => self.no_permanent_store = true,
            "store" => self.store = true,
            "no-copy" => self.no_copy = true,
            _ => return false,
        }
        true
    }

    pub(crate) fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (self.no_store, "no-store"),
            (self.no_permanent_store, "no-permanent-store"),
            (self.store, "store"),
            (self.no_copy, "no-copy"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
    }
}
