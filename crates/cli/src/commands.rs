//! One function per subcommand: an SDK call, its result printed.

use std::path::Path;

use base64::Engine as _;
use groupchat_sdk::{
    Client, Direction, DownloadOptions, Event, GroupImage, HistoryMessage, HistoryRequest,
    MediaDuration, MediaFile, MediaKind, MediaMetadata, MediaOptions, RequestError, TypingState,
};

use crate::args::{Command, DownloadArgs, FileArgs, GroupsCommand, HistoryArgs, SendCommand};
use crate::output::{CliError, Printer, json_line, progress_bar, table};

/// Runs a command that needs a session.
pub(crate) async fn run(client: &Client, command: Command, out: Printer) -> Result<(), CliError> {
    match command {
        Command::Groups(g) => groups(client, g, out).await,
        Command::Send(s) => send(client, s, out).await,
        Command::History(h) => history(client, h, out).await,
        Command::Media { group, last_row_id } => {
            let page = client
                .media_messages(&group, last_row_id.as_deref())
                .await?;
            out.ok(&page, || {
                let mut lines: Vec<String> = page.messages.iter().map(message_line).collect();
                lines.push(match (&page.last_row_id, page.complete) {
                    (_, true) => "(no older media)".to_owned(),
                    (Some(r), false) => format!("(more: --last-row-id {r})"),
                    (None, false) => String::new(),
                });
                lines.join("\n")
            });
            Ok(())
        }
        Command::Download(d) => download(client, d, out).await,
        Command::Typing { to } => {
            client.send_typing(&to).await?;
            out.ok(&(), || format!("typing in {to}"));
            Ok(())
        }
        Command::Gone { to } => {
            client.send_typing_gone(&to).await?;
            out.ok(&(), || format!("stopped typing in {to}"));
            Ok(())
        }
        Command::Info { group, row_id } => {
            let info = client.message_info(&group, &row_id).await?;
            out.ok(&info, || {
                let who = |r: &[groupchat_sdk::Receipt]| {
                    r.iter()
                        .map(|x| x.jid.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "received by {}/{}: {}\nseen by {}/{}: {}",
                    info.received_count(),
                    info.members,
                    who(&info.received),
                    info.seen_count(),
                    info.members,
                    who(&info.seen)
                )
            });
            Ok(())
        }
        Command::Delete {
            group,
            row_id,
            for_me,
        } => {
            if for_me {
                client.delete_for_me(&group, &[row_id.as_str()]).await?;
            } else {
                client.delete_for_everyone(&group, &row_id).await?;
            }
            out.ok(&(), || {
                format!(
                    "deleted {row_id} {}",
                    if for_me { "for you" } else { "for everyone" }
                )
            });
            Ok(())
        }
        Command::Clear { group } => {
            client.clear_chat(&group).await?;
            out.ok(&(), || format!("cleared {group}"));
            Ok(())
        }
        Command::Watch => watch(client, out).await,
        Command::Demo(_) | Command::Completions { .. } => unreachable!("handled without a session"),
    }
}

async fn groups(client: &Client, command: GroupsCommand, out: Printer) -> Result<(), CliError> {
    match command {
        GroupsCommand::Create {
            name,
            members,
            image,
        } => {
            let image = match image {
                Some(i) => Some(group_image(&i).await?),
                None => None,
            };
            let g = client.create_group(&name, &members, image).await?;
            out.ok(&g, || format!("created {} ({name})", g.jid));
        }
        GroupsCommand::List => {
            let list = client.groups().await?;
            out.ok(&list, || {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|g| {
                        vec![
                            g.jid.to_string(),
                            g.name.clone().unwrap_or_default(),
                            g.role
                                .map(|r| format!("{r:?}").to_lowercase())
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&["GROUP", "NAME", "ROLE"], &rows)
            });
        }
        GroupsCommand::Jid { id } => {
            let jid = client.group_jid(&id)?;
            out.ok(&jid, || jid.to_string());
        }
        GroupsCommand::Profile { group } => {
            let p = client.group_profile(&group).await?;
            out.ok(&p, || {
                let image = match &p.image {
                    Some(GroupImage::Url { url }) => url.clone(),
                    Some(GroupImage::Data { media_type, data }) => {
                        format!("{media_type}, {} bytes", data.len())
                    }
                    _ => "none".to_owned(),
                };
                format!(
                    "{}\nname: {}\nimage: {image}",
                    p.jid,
                    p.name.as_deref().unwrap_or("")
                )
            });
        }
        GroupsCommand::SetProfile { group, name, image } => {
            let image = match image {
                Some(i) => Some(group_image(&i).await?),
                None => None,
            };
            let p = client.set_group_profile(&group, &name, image).await?;
            out.ok(&p, || format!("{group} is now {name:?}"));
        }
        GroupsCommand::Participants { group } => {
            let list = client.participants(&group).await?;
            out.ok(&list, || {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        vec![
                            p.jid.to_string(),
                            format!("{:?}", p.role).to_lowercase(),
                            if p.online { "online" } else { "" }.to_owned(),
                        ]
                    })
                    .collect();
                table(&["PARTICIPANT", "ROLE", ""], &rows)
            });
        }
        GroupsCommand::Add { group, users } => {
            client.add_participants(&group, &users).await?;
            out.ok(&users, || format!("added {} to {group}", users.join(", ")));
        }
        GroupsCommand::Remove { group, user } => {
            client.remove_participant(&group, &user).await?;
            out.ok(&(), || format!("removed {user} from {group}"));
        }
        GroupsCommand::MakeAdmin { group, user } => {
            client.make_admin(&group, &user).await?;
            out.ok(&(), || format!("{user} is an admin of {group}"));
        }
        GroupsCommand::Exit { group } => {
            client.exit_group(&group).await?;
            out.ok(&(), || format!("left {group}"));
        }
        GroupsCommand::Delete { group } => {
            client.delete_group(&group).await?;
            out.ok(&(), || format!("deleted {group}"));
        }
    }
    Ok(())
}

/// An image argument: an http(s) URL, else a file.
async fn group_image(arg: &str) -> Result<GroupImage, RequestError> {
    if arg.starts_with("https://") || arg.starts_with("http://") {
        GroupImage::from_url(arg)
    } else {
        GroupImage::from_file(arg).await
    }
}

async fn send(client: &Client, command: SendCommand, out: Printer) -> Result<(), CliError> {
    let (kind, args) = match command {
        SendCommand::Text { to, body } => {
            let sent = client.send_text(&to, &body).await?;
            out.ok(&sent, || sent_line(&sent.id, sent.stanza_id.as_deref()));
            return Ok(());
        }
        SendCommand::Media(m) => {
            let kind: MediaKind = m.kind.parse()?;
            let meta = MediaMetadata {
                kind,
                file_name: m.name,
                file_url: m.url,
                file_size: m.size,
                duration: m.duration.as_deref().map(str::parse).transpose()?,
                thumbnail: thumbnail(m.thumbnail.as_deref()).await?,
                caption: m.caption,
            };
            let sent = client.send_media_metadata(&m.to, meta).await?;
            out.ok(&sent, || {
                sent_line(&sent.message.id, sent.message.stanza_id.as_deref())
            });
            return Ok(());
        }
        SendCommand::Image(a) => (MediaKind::Image, a),
        SendCommand::Audio(a) => (MediaKind::Audio, a),
        SendCommand::Video(a) => (MediaKind::Video, a),
        SendCommand::Document(a) => (MediaKind::Document, a),
    };
    let FileArgs {
        to,
        file,
        caption,
        duration,
        thumbnail: thumb,
        id,
    } = args;
    let mut options = MediaOptions::default();
    if let Some(c) = caption {
        options = options.caption(c);
    }
    if let Some(d) = duration {
        options = options.duration(d.parse::<MediaDuration>()?);
    }
    if let Some(t) = thumbnail(thumb.as_deref()).await? {
        options = options.thumbnail(t);
    }
    if let Some(i) = id {
        options = options.message_id(i);
    }
    if let Some(bar) = progress_bar("upload") {
        options = options.on_progress(bar);
    }
    let sent = client
        .send_media(&to, kind, MediaFile::open(file), options)
        .await?;
    out.ok(&sent, || {
        format!(
            "{}\nurl: {}",
            sent_line(&sent.message.id, sent.message.stanza_id.as_deref()),
            sent.media.url
        )
    });
    Ok(())
}

/// A thumbnail file as base64.
async fn thumbnail(path: Option<&Path>) -> Result<Option<String>, RequestError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| RequestError::File {
            path: path.to_owned(),
            kind: e.kind(),
            reason: e.to_string(),
        })?;
    Ok(Some(base64::engine::general_purpose::STANDARD.encode(data)))
}

fn sent_line(id: &str, row: Option<&str>) -> String {
    match row {
        Some(r) => format!("sent {id} (row id {r})"),
        None => format!("sent {id}"),
    }
}

/// One message as a line: `[time] row nick: text` (media: name, type, size, URL).
fn message_line(m: &HistoryMessage) -> String {
    let who = m
        .nick
        .clone()
        .or_else(|| m.from.as_ref().map(ToString::to_string))
        .unwrap_or_default();
    let text = match &m.media {
        Some(media) => format!(
            "[{}] {} {} bytes {}{}",
            media.media_type.as_deref().unwrap_or("file"),
            media.name.as_deref().unwrap_or(""),
            media.size.map(|s| s.to_string()).unwrap_or_default(),
            media.url,
            media
                .caption
                .as_deref()
                .map(|c| format!(" — {c}"))
                .unwrap_or_default()
        ),
        None => m.body.clone().unwrap_or_default(),
    };
    format!(
        "{} {} {who}: {text}",
        m.timestamp.as_deref().unwrap_or("-"),
        m.row_id
    )
}

async fn history(client: &Client, h: HistoryArgs, out: Printer) -> Result<(), CliError> {
    let direction = if h.down {
        Direction::Down
    } else {
        Direction::Up
    };
    let mut request = match (&h.last_row_id, h.down, h.up) {
        (Some(r), true, _) => HistoryRequest::newer_than(r.clone(), h.limit),
        (Some(r), false, _) => HistoryRequest::older_than(r.clone(), h.limit),
        (None, true, _) => HistoryRequest::oldest(h.limit),
        (None, false, _) => HistoryRequest::latest(h.limit),
    };
    let spinner = (h.all && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    let mut read = 0usize;
    loop {
        let page = client.history(&h.conversation, request.clone()).await?;
        read += page.messages.len();
        if let Some(s) = &spinner {
            s.set_message(format!("{read} messages"));
        }
        if h.all {
            // One line per page with --json; pages read upwards are printed newest page
            // first, each oldest first.
            let print = || {
                if out.json {
                    println!("{}", json_line(200, "Success", Some(&page)));
                } else {
                    for m in &page.messages {
                        println!("{}", message_line(m));
                    }
                }
            };
            match &spinner {
                Some(s) => s.suspend(print),
                None => print(),
            }
            // A page that reached the end (or a cleared mark) in its direction is the last.
            let next = if page.complete {
                None
            } else {
                page.next(direction, h.limit)
            };
            match next {
                Some(next) => request = next,
                None => {
                    if let Some(s) = spinner {
                        s.finish_and_clear();
                    }
                    return Ok(());
                }
            }
        } else {
            out.ok(&page, || {
                let mut lines: Vec<String> = page.messages.iter().map(message_line).collect();
                if !page.complete {
                    let more = match direction {
                        Direction::Up => page
                            .first_row_id
                            .as_ref()
                            .map(|r| format!("(older: --up --last-row-id {r})")),
                        _ => page
                            .last_row_id
                            .as_ref()
                            .map(|r| format!("(newer: --down --last-row-id {r})")),
                    };
                    lines.extend(more);
                }
                lines.join("\n")
            });
            return Ok(());
        }
    }
}

async fn download(client: &Client, d: DownloadArgs, out: Printer) -> Result<(), CliError> {
    let mut options = DownloadOptions::default().overwrite(d.overwrite);
    if let Some(n) = d.name {
        options = options.file_name(n);
    }
    if let Some(bar) = progress_bar("download") {
        options = options.on_progress(bar);
    }
    let saved = match (&d.url, &d.group, &d.row_id) {
        (Some(url), _, _) => client.download_url(url, &d.dir, options).await?,
        (None, Some(group), Some(row)) => {
            let m = client.message(group, row).await?;
            let media = m
                .media
                .ok_or_else(|| RequestError::NotFound(format!("message {row} has no media")))?;
            client.download_media(&media, &d.dir, options).await?
        }
        _ => return Err(CliError::usage("give GROUP ROW_ID, or --url URL")),
    };
    out.ok(&saved, || format!("saved {}", saved.display()));
    Ok(())
}

/// Prints events until Ctrl-C (or SIGTERM), then closes the session.
async fn watch(client: &Client, out: Printer) -> Result<(), CliError> {
    let mut events = client.events();
    let stop = async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::pin!(stop);
    if !out.json {
        eprintln!("watching {} (Ctrl-C to stop)", client.jid());
    }
    loop {
        tokio::select! {
            _ = &mut stop => break,
            e = events.next() => match e {
                Some(e) => {
                    if out.json {
                        println!("{}", json_line(200, "Success", Some(&e)));
                    } else if let Some(line) = event_line(&e) {
                        println!("{line}");
                    }
                }
                None => break,
            },
        }
    }
    Ok(())
}

/// One line for an event (`None` for the ones only `--json` shows).
pub(crate) fn event_line(e: &Event) -> Option<String> {
    let by = |b: &Option<groupchat_sdk::jid::BareJid>| {
        b.as_ref().map(|b| format!(" by {b}")).unwrap_or_default()
    };
    Some(match e {
        Event::Connection(c) => format!("connection: {}", serde_json::to_string(c).ok()?),
        Event::GroupMessage(m) => {
            let text = match &m.media {
                Some(media) => format!(
                    "[{}] {} {}",
                    media.media_type.as_deref().unwrap_or("file"),
                    media.name.as_deref().unwrap_or(""),
                    media.url
                ),
                None => m.body.clone().unwrap_or_default(),
            };
            format!(
                "{} {}: {text}{}",
                m.group,
                m.sender.nick,
                m.stanza_id
                    .as_deref()
                    .map(|s| format!("  (row id {s})"))
                    .unwrap_or_default()
            )
        }
        Event::ChatMessage { from, body, .. } => format!("{from} (1:1): {body}"),
        Event::Typing {
            conversation,
            from,
            nick,
            state,
            ..
        } => {
            let who = nick
                .clone()
                .or_else(|| from.as_ref().map(ToString::to_string))
                .unwrap_or_default();
            match state {
                TypingState::Composing => format!("{conversation}: {who} is typing"),
                _ => format!("{conversation}: {who} stopped typing"),
            }
        }
        Event::GroupCreated { group, name, by } => format!("{by} created {group} ({name})"),
        Event::AddedToGroup { group, name, by: b } => format!(
            "added to {group}{}{}",
            name.as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            by(b)
        ),
        Event::Invitation { group, by: b, .. } => format!("invited to {group}{}", by(b)),
        Event::ProfileUpdated {
            group,
            profile,
            by: b,
        } => format!(
            "{group} is now {:?}{}",
            profile.name.as_deref().unwrap_or(""),
            by(b)
        ),
        Event::ParticipantsAdded {
            group,
            participants,
            by,
        } => format!(
            "{by} added {} to {group}",
            participants
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Event::ParticipantRemoved {
            group,
            participant,
            by,
        } => format!("{by} removed {participant} from {group}"),
        Event::AdminGranted {
            group,
            participant,
            by,
        } => format!("{by} made {participant} an admin of {group}"),
        Event::MemberLeft { group, participant } => format!("{participant} left {group}"),
        Event::GroupDeleted { group, by: b } => format!("{group} was deleted{}", by(b)),
        Event::RemovedFromGroup { group, by: b } => format!("removed from {group}{}", by(b)),
        Event::MessageInfo {
            group,
            row_id,
            received,
            seen,
        } => format!("{group} {row_id}: received by {received}, seen by {seen}"),
        Event::MessageDeleted {
            group,
            row_id,
            by: b,
            for_everyone,
        } => format!(
            "{group} {row_id} deleted {}{}",
            if *for_everyone {
                "for everyone"
            } else {
                "for you"
            },
            by(b)
        ),
        Event::ChatCleared { group, up_to } => format!("{group} cleared up to {up_to}"),
        Event::MessagesMayBeMissing { groups } => {
            format!("messages may be missing in {} group(s)", groups.len())
        }
        Event::StanzaDropped { reason, from } => format!(
            "dropped a stanza{}: {reason}",
            from.as_ref()
                .map(|f| format!(" from {f}"))
                .unwrap_or_default()
        ),
        Event::GroupsJoined { groups, .. } => format!("in {} group(s)", groups.len()),
        _ => return None,
    })
}
