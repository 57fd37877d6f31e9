//! XEP-0045: Multi-User Chat — the owner's use cases: the room configuration form (in each
//! server's dialect) and destruction.

use minidom::Element;

use crate::codec::write::{field, iq};
use crate::codec::{DecodeError, Iq};

/// `http://jabber.org/protocol/muc#owner`
pub const NS: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0004 `jabber:x:data`
pub const DATA_NS: &str = "jabber:x:data";
/// The room configuration form type.
pub const ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";

/// What a group's room is configured to be.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RoomConfig {
    /// The group name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Survives when empty (always, for groups).
    pub persistent: bool,
    /// Only members may enter (always, for groups).
    pub members_only: bool,
    /// Not listed in the service's room list.
    pub hidden: bool,
    /// Real JIDs visible to everyone (so that messages show who sent them).
    pub whois_anyone: bool,
    /// Messages archived (XEP-0313), for history.
    pub archiving: bool,
    /// Moderated: only occupants with voice may post. Off for groups: every member posts,
    /// and ejabberd 23.01 gives a returning user of a moderated room the role they had
    /// before, which let a removed member back in.
    pub moderated: bool,
}

impl RoomConfig {
    /// A group's configuration: persistent, members-only, hidden, non-anonymous, archived.
    pub fn group(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            persistent: true,
            members_only: true,
            hidden: true,
            whois_anyone: true,
            archiving: true,
            moderated: false,
        }
    }
}

/// The form the server sent: the field variables it knows. Servers name some fields
/// differently (archiving: Prosody `muc#roomconfig_enablearchiving`, ejabberd `mam`), so
/// the submission is built from what the form offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigForm {
    /// Field variables offered.
    pub vars: Vec<String>,
    /// The room's current name, if the form says.
    pub name: Option<String>,
}

/// The request for the configuration form.
pub fn get_config(room: &str, id: &str) -> Vec<u8> {
    iq("get", Some(room), id, |w| w.empty_ns("query", NS))
}

/// The data form inside a `muc#owner` query.
fn form_of(iq: &Iq) -> Result<&Element, DecodeError> {
    iq.payload
        .as_ref()
        .filter(|p| p.is("query", NS))
        .and_then(|q| q.get_child("x", DATA_NS))
        .ok_or_else(|| DecodeError::invalid("room configuration", "no form"))
}

/// Reads the configuration form from the IQ result (through xmpp-parsers' `DataForm`).
pub fn decode_config_form(iq: &Iq) -> Result<ConfigForm, DecodeError> {
    let x = form_of(iq)?;
    let form = xmpp_parsers::data_forms::DataForm::try_from(x.clone())
        .map_err(|e| DecodeError::invalid("room configuration form", &e.to_string()))?;
    let mut f = ConfigForm::default();
    for field in form.fields {
        let Some(var) = field.var else { continue };
        if var == "muc#roomconfig_roomname" {
            f.name = field.values.into_iter().next();
        }
        f.vars.push(var);
    }
    Ok(f)
}

/// The submission of `config` for a room whose form is `form`: fields the form does not
/// offer are left out, so that the server does not refuse the whole submission.
pub fn submit_config(room: &str, id: &str, config: &RoomConfig, form: &ConfigForm) -> Vec<u8> {
    let has = |v: &str| form.vars.iter().any(|x| x == v);
    let b = |x: bool| if x { "1" } else { "0" };
    iq("set", Some(room), id, |w| {
        w.open_ns("query", NS);
        w.close_start();
        w.open_ns("x", DATA_NS);
        w.attr("type", "submit");
        w.close_start();
        field(w, "FORM_TYPE", Some("hidden"), &[ROOMCONFIG]);
        field(w, "muc#roomconfig_roomname", None, &[&config.name]);
        if has("muc#roomconfig_roomdesc") {
            field(
                w,
                "muc#roomconfig_roomdesc",
                None,
                &[config.description.as_deref().unwrap_or("")],
            );
        }
        field(
            w,
            "muc#roomconfig_persistentroom",
            None,
            &[b(config.persistent)],
        );
        field(
            w,
            "muc#roomconfig_membersonly",
            None,
            &[b(config.members_only)],
        );
        field(w, "muc#roomconfig_publicroom", None, &[b(!config.hidden)]);
        if has("muc#roomconfig_whois") {
            field(
                w,
                "muc#roomconfig_whois",
                None,
                &[if config.whois_anyone {
                    "anyone"
                } else {
                    "moderators"
                }],
            );
        }
        if has("muc#roomconfig_moderatedroom") {
            field(
                w,
                "muc#roomconfig_moderatedroom",
                None,
                &[b(config.moderated)],
            );
        }
        for archiving in ["muc#roomconfig_enablearchiving", "mam"] {
            if has(archiving) {
                field(w, archiving, None, &[b(config.archiving)]);
            }
        }
        // Members may see the member list (ejabberd; Prosody allows it by default).
        if has("muc#roomconfig_getmemberlist") {
            field(
                w,
                "muc#roomconfig_getmemberlist",
                None,
                &["moderator", "participant", "visitor"],
            );
        }
        w.end("x");
        w.end("query");
    })
}

/// Destroys the room (owner only).
pub fn destroy(room: &str, id: &str, reason: Option<&str>) -> Vec<u8> {
    iq("set", Some(room), id, |w| {
        w.open_ns("query", NS);
        w.close_start();
        w.open("destroy");
        w.close_start();
        if let Some(r) = reason {
            w.text_element("reason", r);
        }
        w.end("destroy");
        w.end("query");
    })
}

/// Reads a configuration submission back (the inverse of [`submit_config`]), through
/// xmpp-parsers' `DataForm`.
pub fn decode_submission(iq: &Iq) -> Result<RoomConfig, DecodeError> {
    let form = xmpp_parsers::data_forms::DataForm::try_from(form_of(iq)?.clone())
        .map_err(|e| DecodeError::invalid("room configuration", &e.to_string()))?;
    let value = |var: &str| {
        form.fields
            .iter()
            .find(|f| f.var.as_deref() == Some(var))
            .and_then(|f| f.values.first().cloned())
    };
    let flag = |var: &str| matches!(value(var).as_deref(), Some("1" | "true"));
    Ok(RoomConfig {
        name: value("muc#roomconfig_roomname").unwrap_or_default(),
        description: value("muc#roomconfig_roomdesc").filter(|d| !d.is_empty()),
        persistent: flag("muc#roomconfig_persistentroom"),
        members_only: flag("muc#roomconfig_membersonly"),
        hidden: !flag("muc#roomconfig_publicroom"),
        whois_anyone: value("muc#roomconfig_whois").as_deref() == Some("anyone"),
        archiving: flag("muc#roomconfig_enablearchiving") || flag("mam"),
        moderated: flag("muc#roomconfig_moderatedroom"),
    })
}
