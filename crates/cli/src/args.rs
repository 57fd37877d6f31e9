//! The command line (clap, derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// groupchat: group chat over your own XMPP server, from a shell.
///
/// Connection options can also come from a config file (`--config`, default
/// `<config dir>/groupchat/config.toml`, keys as the long options: `jid`, `password_file`,
/// `server`, `ws`, `ca_file`, `plaintext`, `http_loopback`). The password comes from
/// `--password-file`, the `GROUPCHAT_PASSWORD` environment variable, or a prompt without echo
/// — never from a plain option.
#[derive(Debug, Parser)]
#[command(name = "groupchat", version, about, long_about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// Print the seed's `{statusCode, message, data}` JSON (one object per line for `watch`
    /// and `history --all`).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How to reach the server.
#[derive(Debug, Args, Default, Clone)]
pub(crate) struct ConnectionArgs {
    /// Your JID, e.g. alice@example.org.
    #[arg(long, global = true, env = "GROUPCHAT_JID")]
    pub(crate) jid: Option<String>,
    /// A file holding the password (its first line).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) password_file: Option<PathBuf>,
    /// Connect over TCP to HOST:PORT (STARTTLS) instead of the domain's SRV records; the
    /// nodes of a cluster comma-separated (HOST:PORT,HOST:PORT), tried in order.
    #[arg(long, global = true, value_name = "HOST:PORT", conflicts_with = "ws")]
    pub(crate) server: Option<String>,
    /// Connect over WebSocket (RFC 7395) to this wss:// URL (ws:// with --plaintext); a
    /// cluster's endpoints comma-separated, tried in order.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) ws: Option<String>,
    /// Trust the certificates of this PEM file instead of the built-in roots.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) ca_file: Option<PathBuf>,
    /// No TLS: only to a loopback address (a local test server).
    #[arg(long, global = true)]
    pub(crate) plaintext: bool,
    /// Allow plain http:// uploads and downloads to loopback (a local test server's upload
    /// service).
    #[arg(long, global = true)]
    pub(crate) http_loopback: bool,
    /// The config file.
    #[arg(long, global = true, value_name = "PATH", env = "GROUPCHAT_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Seconds to wait for the server's answer to each call.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Groups: create, list, profile, participants, admins, exit, delete.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Send a message (text, image, audio, video, document, or media metadata) to a group
    /// or a user.
    #[command(subcommand)]
    Send(SendCommand),
    /// A page of a group's or a 1:1 chat's history (oldest first), or all of it.
    History(HistoryArgs),
    /// A page of a group's media messages, newest first (3, then 10 from --last-row-id).
    Media {
        /// The group.
        group: String,
        /// The previous page's last row id.
        #[arg(long, allow_hyphen_values = true)]
        last_row_id: Option<String>,
    },
    /// Download a message's media (by group and row id) or a URL into a directory.
    Download(DownloadArgs),
    /// Tell a group or a user you are typing.
    Typing {
        /// The group or user.
        to: String,
    },
    /// Tell a group or a user you stopped typing.
    Gone {
        /// The group or user.
        to: String,
    },
    /// Who received and who saw a message of yours.
    Info {
        /// The group.
        group: String,
        /// The message's row id (Prosody's may start with '-').
        #[arg(allow_hyphen_values = true)]
        row_id: String,
    },
    /// Delete a message: for everyone (your own; any as an admin where the server allows),
    /// or only for you.
    Delete {
        /// The group.
        group: String,
        /// The message's row id (Prosody's may start with '-').
        #[arg(allow_hyphen_values = true)]
        row_id: String,
        /// Only for you (on all your devices).
        #[arg(long)]
        for_me: bool,
    },
    /// Clear a group's chat for you (on all your devices).
    Clear {
        /// The group.
        group: String,
    },
    /// Print events as they come, until Ctrl-C.
    Watch,
    /// Start a local server and play a scripted scenario with three users
    /// (`--server ejabberd` for ejabberd).
    Demo(DemoArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// Create a group with members and an optional image (file or URL).
    Create {
        /// Its name.
        name: String,
        /// A member's JID (repeat for more).
        #[arg(long = "member", value_name = "JID")]
        members: Vec<String>,
        /// An image file (png, jpg, gif, svg) or an https URL.
        #[arg(long)]
        image: Option<String>,
    },
    /// The groups you are in.
    List,
    /// The JID of a group id on your server.
    Jid {
        /// The id.
        id: String,
    },
    /// A group's name and image.
    Profile {
        /// The group.
        group: String,
    },
    /// Change a group's name and image.
    SetProfile {
        /// The group.
        group: String,
        /// The new name.
        #[arg(long)]
        name: String,
        /// A new image (file or URL).
        #[arg(long)]
        image: Option<String>,
    },
    /// A group's participants and their roles.
    Participants {
        /// The group.
        group: String,
    },
    /// Add participants.
    Add {
        /// The group.
        group: String,
        /// Their JIDs.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove a participant.
    Remove {
        /// The group.
        group: String,
        /// Their JID.
        user: String,
    },
    /// Make a participant an admin.
    MakeAdmin {
        /// The group.
        group: String,
        /// Their JID.
        user: String,
    },
    /// Leave a group.
    Exit {
        /// The group.
        group: String,
    },
    /// Delete a group (for everyone, as an admin).
    Delete {
        /// The group.
        group: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SendCommand {
    /// A text message.
    Text {
        /// The group or user.
        to: String,
        /// The text.
        body: String,
    },
    /// An image (png, jpg, jpeg, gif, svg).
    Image(FileArgs),
    /// An audio file (mp3, mpeg, wav).
    Audio(FileArgs),
    /// A video (mp4).
    Video(FileArgs),
    /// A document (pdf, doc, docx, xls, xlsx, csv, ppt, pptx, txt).
    Document(FileArgs),
    /// Media uploaded elsewhere, announced by its metadata.
    Media(MetadataArgs),
}

#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// The group or user.
    pub(crate) to: String,
    /// The file.
    pub(crate) file: PathBuf,
    /// A caption.
    #[arg(long)]
    pub(crate) caption: Option<String>,
    /// Length of audio or video, mm:ss.
    #[arg(long)]
    pub(crate) duration: Option<String>,
    /// A thumbnail image file (png, jpeg, gif; at most 48 KiB).
    #[arg(long, value_name = "PATH")]
    pub(crate) thumbnail: Option<PathBuf>,
    /// The message id to use.
    #[arg(long)]
    pub(crate) id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MetadataArgs {
    /// The group or user.
    pub(crate) to: String,
    /// image, video, audio or file.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) kind: String,
    /// The file's name.
    #[arg(long)]
    pub(crate) name: String,
    /// Where it can be downloaded.
    #[arg(long)]
    pub(crate) url: String,
    /// Its size in bytes.
    #[arg(long)]
    pub(crate) size: u64,
    /// Length, mm:ss (required for audio and video).
    #[arg(long)]
    pub(crate) duration: Option<String>,
    /// A thumbnail image file (required for video).
    #[arg(long, value_name = "PATH")]
    pub(crate) thumbnail: Option<PathBuf>,
    /// A caption.
    #[arg(long)]
    pub(crate) caption: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The group, or a user for the 1:1 chat.
    pub(crate) conversation: String,
    /// Older messages than --last-row-id (the default direction).
    #[arg(long, conflicts_with = "down")]
    pub(crate) up: bool,
    /// Newer messages than --last-row-id (without it: from the oldest).
    #[arg(long)]
    pub(crate) down: bool,
    /// The row to page from.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) last_row_id: Option<String>,
    /// Messages per page (1-100).
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    /// Every page, newest to oldest (or oldest to newest with --down).
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    /// The group holding the message.
    #[arg(required_unless_present = "url", requires = "row_id")]
    pub(crate) group: Option<String>,
    /// The message's row id (Prosody's may start with '-').
    #[arg(allow_hyphen_values = true)]
    pub(crate) row_id: Option<String>,
    /// A URL instead of a message.
    #[arg(long, conflicts_with = "group")]
    pub(crate) url: Option<String>,
    /// The directory to save into.
    #[arg(long, default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Save under this name (sanitised).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Replace a file of the same name.
    #[arg(long)]
    pub(crate) overwrite: bool,
}

/// `groupchat demo [--server prosody|ejabberd] [--keep]`: the global `--server` names the
/// server to start.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Leave the server running and print how to connect to it.
    #[arg(long)]
    pub(crate) keep: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, Command};

    #[test]
    fn a_row_id_starting_with_a_hyphen_is_a_value_not_a_flag() {
        // Prosody's archive ids are base64url and may start with '-'.
        let cli =
            Cli::try_parse_from(["groupchat", "download", "g@conference.x", "-s9LMMlMyS"]).unwrap();
        let Command::Download(d) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(d.row_id.as_deref(), Some("-s9LMMlMyS"));
        let cli = Cli::try_parse_from(["groupchat", "info", "g@conference.x", "-abc"]).unwrap();
        assert!(
            matches!(&cli.command, Command::Info { row_id, .. } if row_id == "-abc"),
            "{:?}",
            cli.command
        );
    }
}
