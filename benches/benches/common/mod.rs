//! The baselines and the cross-checks, shared by the bench targets (`mod common;`).
//!
//! - [`baseline`]: tokio-xmpp 6.0's read path, `xmlstream::initiate_stream` →
//!   `recv_features` → `XmppStream` (the `XmlStream<Io, FallibleStreamElement>` its client's
//!   stanza stream reads from: rxml's async parser feeding xso builders for xmpp-parsers
//!   types), on a tokio current-thread runtime over an in-memory reader, followed by
//!   xmpp-parsers typed extraction of what our decoder extracts ([`extract`]).
//! - [`floor`]: quick-xml's `NsReader` reading every event, resolving every element and
//!   attribute namespace and unescaping every text and attribute value.
//! - [`summary_ours`] / [`summary_base`]: one line per stanza with the information both
//!   sides extract, to check that they agree before anything is timed.
#![allow(dead_code)] // Each bench target uses a different part.

use std::borrow::Cow;
use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::StreamExt;
use groupchat_benches::CHUNK;
use groupchat_protocol::codec::{Message, Presence, Stanza};
use minidom::Element;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmppStreamElement,
};
use xmpp_parsers::caps::Caps;
use xmpp_parsers::chatstates::ChatState;
use xmpp_parsers::delay::Delay;
use xmpp_parsers::displayed_markers::Markable;
use xmpp_parsers::mam;
use xmpp_parsers::message::{Message as XMessage, MessageType};
use xmpp_parsers::muc::user::MucUser;
use xmpp_parsers::occupant_id::OccupantId;
use xmpp_parsers::oob::Oob;
use xmpp_parsers::presence::{Presence as XPresence, Show, Type as PresenceType};
use xmpp_parsers::stanza::Stanza as XStanza;
use xmpp_parsers::stanza_id::{OriginId, StanzaId};
use xmpp_parsers::vcard_update::VCardUpdate;
use xmpp_parsers::{iq::Iq, ns};

// ---- tokio-xmpp's read path --------------------------------------------------------------

/// An in-memory transport: reads hand out at most [`CHUNK`] bytes (as our session gets
/// them), writes go nowhere.
pub(crate) struct MemIo<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> MemIo<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn window(&self) -> &[u8] {
        let end = (self.pos + CHUNK).min(self.data.len());
        &self.data[self.pos..end]
    }
}

impl AsyncRead for MemIo<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let w = self.window();
        let n = w.len().min(buf.remaining());
        buf.put_slice(&w[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for MemIo<'_> {
    fn poll_fill_buf(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let end = (this.pos + CHUNK).min(this.data.len());
        Poll::Ready(Ok(&this.data[this.pos..end]))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.pos += amt;
    }
}

impl AsyncWrite for MemIo<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the server sends to tokio-xmpp: the corpus' header, empty stream features (it
/// needs some before stanzas), the stanzas, the footer.
pub(crate) fn baseline_input(corpus: &groupchat_benches::Corpus) -> Vec<u8> {
    let mut v = Vec::with_capacity(corpus.bytes.len() + 64);
    v.extend_from_slice(corpus.header());
    v.extend_from_slice(b"<stream:features/>");
    v.extend_from_slice(corpus.body());
    v.extend_from_slice(b"</stream:stream>");
    v
}

/// A runtime like the one tokio-xmpp runs on (current-thread, timers on: the stream's
/// read timeouts are tokio timers).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// tokio-xmpp's read path over `input` (from [`baseline_input`]): every stanza, typed by
/// xmpp-parsers' xso builders, is handed to `on_stanza`.
pub(crate) fn baseline_read(
    rt: &tokio::runtime::Runtime,
    input: &[u8],
    mut on_stanza: impl FnMut(XStanza),
) {
    rt.block_on(async {
        let header = StreamHeader {
            from: Some(Cow::Borrowed(groupchat_benches::ACCOUNT)),
            to: Some(Cow::Borrowed("localhost")),
            id: None,
        };
        let pending = tokio_xmpp::xmlstream::initiate_stream(
            MemIo::new(input),
            "jabber:client",
            header,
            Timeouts::default(),
        )
        .await
        .expect("stream header");
        let (_features, mut stream) = pending
            .recv_features::<FallibleStreamElement>()
            .await
            .expect("stream features");
        while let Some(item) = stream.next().await {
            match item {
                Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(s))) => on_stanza(s),
                Ok(FallibleStreamElement::Ok(other)) => panic!("unexpected nonza {other:?}"),
                Ok(FallibleStreamElement::Err(e)) => panic!("invalid stanza: {e}"),
                Err(ReadError::StreamFooterReceived) => break,
                Err(e) => panic!("read error: {e}"),
            }
        }
    });
}

/// The baseline, end to end: tokio-xmpp's read path, then typed extraction.
pub(crate) fn baseline(
    rt: &tokio::runtime::Runtime,
    input: &[u8],
    mut on_stanza: impl FnMut(BaseStanza),
) {
    baseline_read(rt, input, |s| on_stanza(extract(s)));
}

// ---- xmpp-parsers typed extraction ---------------------------------------------------------

/// What our `codec::Message` holds, extracted with xmpp-parsers' types.
#[derive(Debug)]
pub(crate) struct BaseMessage {
    pub(crate) from: Option<xmpp_parsers::jid::Jid>,
    pub(crate) to: Option<xmpp_parsers::jid::Jid>,
    pub(crate) id: Option<String>,
    pub(crate) kind: MessageType,
    /// Every body, in every language: (language, text).
    pub(crate) bodies: Vec<(String, String)>,
    pub(crate) subject: Option<String>,
    pub(crate) stanza_ids: Vec<StanzaId>,
    pub(crate) origin_id: Option<OriginId>,
    pub(crate) occupant_id: Option<OccupantId>,
    pub(crate) delay: Option<Delay>,
    pub(crate) chat_state: Option<ChatState>,
    pub(crate) markable: bool,
    pub(crate) oob: Option<Oob>,
    pub(crate) muc_user: Option<MucUser>,
    /// xmpp-parsers refused the muc#user payload (see `muc_ours`).
    pub(crate) muc_refused: bool,
    pub(crate) mam: Option<Box<BaseMam>>,
    /// XEP-0184: a receipt is requested; the id a receipt acknowledges.
    pub(crate) receipt_request: bool,
    pub(crate) receipt: Option<String>,
    /// What neither side models (receipt requests, ...), as trees on both sides.
    pub(crate) payloads: Vec<Element>,
}

/// An archive result and the message it forwards.
#[derive(Debug)]
pub(crate) struct BaseMam {
    pub(crate) id: String,
    pub(crate) query_id: Option<String>,
    pub(crate) delay: Option<Delay>,
    pub(crate) message: BaseMessage,
}

/// What our `codec::Presence` holds, extracted with xmpp-parsers' types.
#[derive(Debug)]
pub(crate) struct BasePresence {
    pub(crate) from: Option<xmpp_parsers::jid::Jid>,
    pub(crate) to: Option<xmpp_parsers::jid::Jid>,
    pub(crate) id: Option<String>,
    pub(crate) kind: PresenceType,
    pub(crate) show: Option<Show>,
    pub(crate) status: Option<String>,
    pub(crate) muc_user: Option<MucUser>,
    /// xmpp-parsers refused the muc#user payload (see `muc_ours`).
    pub(crate) muc_refused: bool,
    pub(crate) muc_join: bool,
    pub(crate) occupant_id: Option<OccupantId>,
    pub(crate) caps: Option<Caps>,
    pub(crate) vcard_update: Option<VCardUpdate>,
    pub(crate) payloads: Vec<Element>,
}

/// A typed stanza, baseline side.
#[derive(Debug)]
pub(crate) enum BaseStanza {
    Message(Box<BaseMessage>),
    Presence(Box<BasePresence>),
    Iq(Box<Iq>),
}

fn typed<T: TryFrom<Element>>(e: Element) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(e).expect("the corpus' payloads are valid")
}

/// Typed extraction, the way an xmpp-rs application does it: each payload is matched by
/// name and namespace and converted with `TryFrom<Element>`.
pub(crate) fn extract(s: XStanza) -> BaseStanza {
    match s {
        XStanza::Message(m) => BaseStanza::Message(Box::new(extract_message(m))),
        XStanza::Presence(p) => BaseStanza::Presence(Box::new(extract_presence(p))),
        XStanza::Iq(iq) => BaseStanza::Iq(Box::new(iq)),
    }
}

pub(crate) fn extract_message(m: XMessage) -> BaseMessage {
    let mut out = BaseMessage {
        from: m.from,
        to: m.to,
        id: m.id.map(|i| i.0),
        kind: m.type_,
        bodies: m.bodies.into_iter().map(|(l, b)| (l.0, b)).collect(),
        subject: m.subjects.into_values().next(),
        stanza_ids: Vec::new(),
        origin_id: None,
        occupant_id: None,
        delay: None,
        chat_state: None,
        markable: false,
        oob: None,
        muc_user: None,
        muc_refused: false,
        mam: None,
        receipt_request: false,
        receipt: None,
        payloads: Vec::new(),
    };
    for p in m.payloads {
        let ns = p.ns();
        if ns == ns::SID && p.name() == "stanza-id" {
            out.stanza_ids.push(typed(p));
        } else if ns == ns::SID && p.name() == "origin-id" {
            out.origin_id = Some(typed(p));
        } else if p.is("occupant-id", ns::OID) {
            out.occupant_id = Some(typed(p));
        } else if p.is("delay", ns::DELAY) {
            out.delay = Some(typed(p));
        } else if ns == ns::CHATSTATES {
            out.chat_state = Some(typed(p));
        } else if p.is("markable", ns::DISPLAYED_MARKERS) {
            let _: Markable = typed(p);
            out.markable = true;
        } else if p.is("request", ns::RECEIPTS) {
            let _: xmpp_parsers::receipts::Request = typed(p);
            out.receipt_request = true;
        } else if p.is("received", ns::RECEIPTS) {
            let r: xmpp_parsers::receipts::Received = typed(p);
            out.receipt = Some(r.id);
        } else if p.is("x", ns::OOB) {
            out.oob = Some(typed(p));
        } else if p.is("x", ns::MUC_USER) {
            // xmpp-parsers 0.23 refuses an item whose jid is a bare JID (Prosody's archived
            // group messages) or that has no affiliation and role (ejabberd's): XEP-0045
            // allows both. An application loses the payload; we count it as refused.
            match MucUser::try_from(p) {
                Ok(u) => out.muc_user = Some(u),
                Err(_) => out.muc_refused = true,
            }
        } else if p.is("result", ns::MAM) {
            let r: mam::Result_ = typed(p);
            out.mam = Some(Box::new(BaseMam {
                id: r.id,
                query_id: r.queryid.map(|q| q.0),
                delay: r.forwarded.delay,
                message: extract_message(r.forwarded.message),
            }));
        } else {
            out.payloads.push(p);
        }
    }
    out
}

pub(crate) fn extract_presence(p: XPresence) -> BasePresence {
    let mut out = BasePresence {
        from: p.from,
        to: p.to,
        id: p.id,
        kind: p.type_,
        show: p.show,
        status: p.statuses.into_values().next(),
        muc_user: None,
        muc_refused: false,
        muc_join: false,
        occupant_id: None,
        caps: None,
        vcard_update: None,
        payloads: Vec::new(),
    };
    for e in p.payloads {
        if e.is("x", ns::MUC_USER) {
            match MucUser::try_from(e) {
                Ok(u) => out.muc_user = Some(u),
                Err(_) => out.muc_refused = true,
            }
        } else if e.is("x", ns::MUC) {
            out.muc_join = true;
        } else if e.is("occupant-id", ns::OID) {
            out.occupant_id = Some(typed(e));
        } else if e.is("c", ns::CAPS) {
            out.caps = Some(typed(e));
        } else if e.is("x", ns::VCARD_UPDATE) {
            out.vcard_update = Some(typed(e));
        } else {
            out.payloads.push(e);
        }
    }
    out
}

// ---- the floor: quick-xml's namespace-resolving reader ----------------------------------

/// Reads every event of `bytes` with quick-xml's `NsReader`: element and attribute names
/// resolved to namespaces, text and attribute values unescaped (entities included), end
/// tags matched. Returns the number of top-level stanzas (children of the stream).
pub(crate) fn floor(bytes: &[u8]) -> usize {
    use quick_xml::events::Event;
    let mut r = quick_xml::NsReader::from_reader(bytes);
    r.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut stanzas = 0;
    loop {
        let (ns, ev) = r.read_resolved_event().expect("well-formed corpus");
        black_box(&ns);
        match ev {
            Event::Start(e) => {
                depth += 1;
                stanzas += usize::from(depth == 2);
                for a in e.attributes() {
                    let a = a.expect("attribute");
                    black_box(r.resolve_attribute(a.key));
                    black_box(a.unescape_value().expect("attribute value"));
                }
            }
            Event::Empty(e) => {
                stanzas += usize::from(depth == 1);
                for a in e.attributes() {
                    let a = a.expect("attribute");
                    black_box(r.resolve_attribute(a.key));
                    black_box(a.unescape_value().expect("attribute value"));
                }
            }
            Event::End(_) => depth -= 1,
            Event::Text(t) => {
                black_box(t.decode().expect("UTF-8 text"));
            }
            Event::CData(t) => {
                black_box(t.decode().expect("UTF-8 CDATA"));
            }
            Event::GeneralRef(g) => {
                let c = match g.resolve_char_ref().expect("character reference") {
                    Some(c) => c,
                    None => {
                        let name = g.decode().expect("entity name");
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .and_then(|s| s.chars().next())
                            .expect("predefined entity")
                    }
                };
                black_box(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stanzas
}

// ---- cross-checks --------------------------------------------------------------------------

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn lower_debug<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}").to_ascii_lowercase()
}

fn names(payloads: &[Element]) -> String {
    let mut v: Vec<String> = payloads
        .iter()
        .map(|e| {
            let ns = e.ns();
            match (ns.as_str(), e.attr("id")) {
                // A marker's id is information: compared too.
                ("urn:xmpp:chat-markers:0", Some(id)) => format!("{{{ns}}}{}#{id}", e.name()),
                ("urn:xmpp:mam:tmp", Some(id)) => format!(
                    "{{{ns}}}{}#{id}@{}",
                    e.name(),
                    e.attr("by").unwrap_or_default()
                ),
                _ => format!("{{{ns}}}{}", e.name()),
            }
        })
        .collect();
    v.sort();
    v.join(",")
}

/// Every body text of a message, sorted (xmpp-parsers keys them by language, and
/// leaves the language of the default one empty; we name it when the stanza or stream does).
fn body_texts_ours(m: &Message) -> Vec<&str> {
    let mut texts: Vec<&str> = m.body.iter().map(String::as_str).collect();
    if let Some(b) = &m.bodies {
        texts.extend(b.others.iter().map(|o| o.text.as_str()));
    }
    texts.sort_unstable();
    texts
}

fn summary_message_ours(m: &Message) -> String {
    let mut s = format!(
        "message from={} to={} id={} type={} bodies={:?} subject={:?}",
        opt(m.from.as_ref()),
        opt(m.to.as_ref()),
        opt(m.id.as_ref()),
        m.kind.as_str(),
        body_texts_ours(m),
        m.subject,
    );
    // ejabberd's legacy `<archived>` is typed here and a plain payload for xmpp-parsers.
    for sid in m.stanza_ids.iter().filter(|sid| !sid.legacy) {
        s += &format!(" sid={}@{}", sid.id, sid.by);
    }
    s += &format!(
        " origin={} occupant={} delay={}|{} state={} markable={} url={}",
        opt(m.origin_id.as_ref()),
        opt(m.occupant_id.as_ref()),
        opt(m.delay.as_ref().and_then(|d| d.from.as_ref())),
        opt(m.delay.as_ref().map(|d| same_stamp(&d.stamp))),
        opt(m.chat_state.map(|c| c.as_str())),
        m.markable,
        opt(m.media.as_ref().map(|x| &x.url)),
    );
    s += &format!(" receipt={}|{}", m.receipt_request, opt(m.receipt.as_ref()));
    if let Some(u) = &m.muc_user {
        s += &muc_ours(u);
    }
    if let Some(r) = &m.mam_result {
        s += &format!(
            " mam={}|{}|{}|{}|[{}]",
            r.id,
            opt(r.query_id.as_ref()),
            opt(r.delay.as_ref().and_then(|d| d.from.as_ref())),
            opt(r.delay.as_ref().map(|d| same_stamp(&d.stamp))),
            summary_message_ours(&r.message),
        );
    }
    // Hints are typed here and unknown to xmpp-parsers' Message: shown as the payloads
    // they are on the other side.
    let mut names: Vec<String> = m
        .payloads
        .iter()
        .map(|e| format!("{{{}}}{}", e.ns(), e.name()))
        .collect();
    let h = &m.hints;
    for (set, name) in [
        (h.no_store, "no-store"),
        (h.no_permanent_store, "no-permanent-store"),
        (h.store, "store"),
        (h.no_copy, "no-copy"),
    ] {
        if set {
            names.push(format!("{{urn:xmpp:hints}}{name}"));
        }
    }
    for sid in m.stanza_ids.iter().filter(|sid| sid.legacy) {
        names.push(format!(
            "{{urn:xmpp:mam:tmp}}archived#{}@{}",
            sid.id, sid.by
        ));
    }
    if let Some(marker) = &m.marker {
        names.push(format!(
            "{{urn:xmpp:chat-markers:0}}{}#{}",
            marker.kind.as_str(),
            marker.id
        ));
    }
    names.sort();
    s + &format!(" payloads={}", names.join(","))
}

/// What the comparison shows for a muc#user payload xmpp-parsers refused.
const REFUSED: &str = " muc=refused-by-xmpp-parsers";

fn muc_ours(u: &groupchat_protocol::codec::xep::muc_user::MucUser) -> String {
    // The payloads xmpp-parsers refuses (an item with a bare real JID, or without the
    // affiliation and role it requires) are compared as refused: the baseline has nothing
    // else to compare them with.
    if u.items.iter().any(|i| {
        i.jid.as_ref().is_some_and(|j| !j.contains('/'))
            || i.affiliation.is_none()
            || i.role.is_none()
    }) {
        return REFUSED.to_owned();
    }
    let mut s = String::from(" muc");
    for i in &u.items {
        s += &format!(
            " item={}|{}|{}|{}",
            opt(i.affiliation.map(|a| a.as_str())),
            opt(i.role.map(|r| r.as_str())),
            opt(i.jid.as_ref()),
            opt(i.nick.as_ref()),
        );
    }
    for c in &u.status {
        s += &format!(" status={c}");
    }
    s
}

fn summary_presence_ours(p: &Presence) -> String {
    let mut s = format!(
        "presence from={} to={} id={} type={} show={} status={:?} join={} occupant={}",
        opt(p.from.as_ref()),
        opt(p.to.as_ref()),
        opt(p.id.as_ref()),
        lower_debug(&p.kind),
        opt(p.show.as_ref()),
        p.status,
        p.muc_join,
        opt(p.occupant_id.as_ref()),
    );
    if let Some(u) = &p.muc_user {
        s += &muc_ours(u);
    }
    if let Some(c) = &p.caps {
        s += &format!(" caps={} {} {}", c.hash, c.node, c.ver);
    }
    if let Some(u) = &p.vcard_update {
        s += &format!(
            " avatar={:?}",
            u.photo.as_deref().map(str::to_ascii_lowercase)
        );
    }
    s + &format!(" payloads={}", names(&p.payloads))
}

/// One line with everything both decoders extract from a stanza (ours).
pub(crate) fn summary_ours(s: &Stanza) -> String {
    match s {
        Stanza::Message(m) => summary_message_ours(m),
        Stanza::Presence(p) => summary_presence_ours(p),
        Stanza::Iq(iq) => summary_iq(
            opt(iq.from.as_ref()),
            &iq.id,
            &format!("{:?}", iq.kind).to_lowercase(),
            iq.payload.as_ref(),
        ),
        other => format!("{other:?}"),
    }
}

/// An IQ, the same way for both sides: addresses, id, type, and its payload written out
/// (both sides keep IQ payloads as minidom trees).
fn summary_iq(from: String, id: &str, kind: &str, payload: Option<&Element>) -> String {
    let payload = payload.map(tree).unwrap_or_default();
    format!("iq from={from} id={id} type={kind} payload={payload}")
}

/// An element as names, attributes and text, without namespace declarations (ours keeps the
/// stream's `xmlns:stream` in scope on IQ payloads; the information is the same).
fn tree(e: &Element) -> String {
    let mut attrs: Vec<String> = e
        .attrs()
        .into_iter()
        .map(|((ns, k), v)| format!("{ns:?}{k}={v:?}"))
        .collect();
    attrs.sort();
    let children: String = e.children().map(tree).collect();
    format!(
        "{{{}}}{}[{}]({:?}{children})",
        e.ns(),
        e.name(),
        attrs.join(" "),
        e.text()
    )
}

fn stamp(d: &Delay) -> String {
    same_stamp(&d.stamp.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// A timestamp as the comparison shows it: servers write `…:47Z`, `…:47.000Z` or
/// `…:47.120000Z` for the same instant; trailing zeros of the fraction (and an empty
/// fraction) are dropped on both sides.
fn same_stamp(s: &str) -> String {
    match (s.find('.'), s.strip_suffix('Z')) {
        (Some(dot), Some(body)) => {
            let fraction = body[dot + 1..].trim_end_matches('0');
            if fraction.is_empty() {
                format!("{}Z", &body[..dot])
            } else {
                format!("{}.{fraction}Z", &body[..dot])
            }
        }
        _ => s.to_owned(),
    }
}

fn message_type(t: &MessageType) -> &'static str {
    match t {
        MessageType::Chat => "chat",
        MessageType::Error => "error",
        MessageType::Groupchat => "groupchat",
        MessageType::Headline => "headline",
        MessageType::Normal => "normal",
    }
}

fn muc_base(u: &MucUser) -> String {
    let mut s = String::from(" muc");
    for i in &u.items {
        s += &format!(
            " item={}|{}|{}|{}",
            lower_debug(&i.affiliation),
            lower_debug(&i.role),
            opt(i.jid.as_ref()),
            opt(i.nick.as_ref()),
        );
    }
    for c in &u.status {
        let e = Element::from(c.clone());
        s += &format!(" status={}", e.attr("code").unwrap_or("?"));
    }
    s
}

fn summary_message_base(m: &BaseMessage) -> String {
    let mut s = format!(
        "message from={} to={} id={} type={} bodies={:?} subject={:?}",
        opt(m.from.as_ref()),
        opt(m.to.as_ref()),
        opt(m.id.as_ref()),
        message_type(&m.kind),
        {
            let mut texts: Vec<&str> = m.bodies.iter().map(|(_, t)| t.as_str()).collect();
            texts.sort_unstable();
            texts
        },
        m.subject,
    );
    for sid in &m.stanza_ids {
        s += &format!(" sid={}@{}", sid.id, sid.by);
    }
    s += &format!(
        " origin={} occupant={} delay={}|{} state={} markable={} url={}",
        opt(m.origin_id.as_ref().map(|o| &o.id)),
        opt(m.occupant_id.as_ref().map(|o| &o.id)),
        opt(m.delay.as_ref().and_then(|d| d.from.as_ref())),
        opt(m.delay.as_ref().map(stamp)),
        opt(m.chat_state.as_ref().map(lower_debug)),
        m.markable,
        opt(m.oob.as_ref().map(|x| &x.url)),
    );
    s += &format!(" receipt={}|{}", m.receipt_request, opt(m.receipt.as_ref()));
    if let Some(u) = &m.muc_user {
        s += &muc_base(u);
    }
    if m.muc_refused {
        s += REFUSED;
    }
    if let Some(r) = &m.mam {
        s += &format!(
            " mam={}|{}|{}|{}|[{}]",
            r.id,
            opt(r.query_id.as_ref()),
            opt(r.delay.as_ref().and_then(|d| d.from.as_ref())),
            opt(r.delay.as_ref().map(stamp)),
            summary_message_base(&r.message),
        );
    }
    s + &format!(" payloads={}", names(&m.payloads))
}

fn summary_presence_base(p: &BasePresence) -> String {
    let kind = match p.kind {
        PresenceType::None => "available".to_owned(),
        PresenceType::Unavailable => "unavailable".to_owned(),
        PresenceType::Error => "error".to_owned(),
        _ => "other".to_owned(),
    };
    let mut s = format!(
        "presence from={} to={} id={} type={} show={} status={:?} join={} occupant={}",
        opt(p.from.as_ref()),
        opt(p.to.as_ref()),
        opt(p.id.as_ref()),
        kind,
        opt(p.show.as_ref().map(lower_debug)),
        p.status,
        p.muc_join,
        opt(p.occupant_id.as_ref().map(|o| &o.id)),
    );
    if let Some(u) = &p.muc_user {
        s += &muc_base(u);
    }
    if p.muc_refused {
        s += REFUSED;
    }
    if let Some(c) = &p.caps {
        use base64::Engine as _;
        let ver = base64::engine::general_purpose::STANDARD.encode(&c.ver);
        s += &format!(" caps={} {} {ver}", String::from(c.hash.clone()), c.node);
    }
    if let Some(u) = &p.vcard_update {
        let hex = |d: &[u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let photo = u
            .photo
            .as_ref()
            .map(|p| p.data.as_ref().map(hex).unwrap_or_default());
        s += &format!(" avatar={photo:?}");
    }
    s + &format!(" payloads={}", names(&p.payloads))
}

/// One line with everything both decoders extract from a stanza (baseline).
pub(crate) fn summary_base(s: &BaseStanza) -> String {
    match s {
        BaseStanza::Message(m) => summary_message_base(m),
        BaseStanza::Presence(p) => summary_presence_base(p),
        BaseStanza::Iq(iq) => {
            use xmpp_parsers::iq::Iq as X;
            let (kind, payload) = match &**iq {
                X::Get { payload, .. } => ("get", Some(payload)),
                X::Set { payload, .. } => ("set", Some(payload)),
                X::Result { payload, .. } => ("result", payload.as_ref()),
                X::Error { .. } => ("error", None),
            };
            summary_iq(opt(iq.from()), iq.id(), kind, payload)
        }
    }
}

/// Runs every implementation once and checks that they see the same stanzas with the same
/// information. Panics with the first difference.
pub(crate) fn check_same_information(
    corpus: &groupchat_benches::Corpus,
    rt: &tokio::runtime::Runtime,
    base_input: &[u8],
) {
    let now = std::time::Instant::now();
    let mut session = groupchat_benches::logged_in_session(corpus.header(), now);
    let mut ours = Vec::with_capacity(corpus.len());
    let dropped = groupchat_benches::feed(&mut session, now, corpus.body(), |s| {
        ours.push(summary_ours(&s));
    });
    assert_eq!(dropped, 0, "our session dropped stanzas of the corpus");
    assert_eq!(ours.len(), corpus.len(), "our session saw every stanza");
    let mut base = Vec::with_capacity(corpus.len());
    baseline(rt, base_input, |s| base.push(summary_base(&s)));
    assert_eq!(base.len(), corpus.len(), "tokio-xmpp saw every stanza");
    for (i, (a, b)) in ours.iter().zip(&base).enumerate() {
        assert_eq!(
            a, b,
            "stanza {i}: ours and the baseline extract different information"
        );
    }
    assert_eq!(
        floor(&corpus.bytes),
        corpus.len(),
        "quick-xml saw every stanza"
    );
    eprintln!(
        "checked: {} stanzas, the same information from ours and tokio-xmpp + xmpp-parsers",
        corpus.len()
    );
}
