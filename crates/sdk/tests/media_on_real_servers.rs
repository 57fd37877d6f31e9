//! Media on real servers: each media kind goes through the server's upload service and
//! comes back byte for byte; metadata-only messages; the group's media gallery; the checks
//! made before anything is uploaded; downloads under hostile names, cut downloads, cancelled
//! uploads. Each user is a separate client.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use groupchat_sdk::jid::BareJid;
use groupchat_sdk::{
    Client, DownloadOptions, DownloadProblem, Event, EventStream, GroupMessage, Media, MediaFile,
    MediaKind, MediaMetadata, MediaOptions, MediaProblem, Progress, RequestError,
};
use groupchat_test_support::{
    DEFAULT_UPLOAD_LIMIT, FaultProxy, ServerKind, TestServer, UploadService,
};

mod support;
use support::{expect, group_of};

async fn login(server: &TestServer, user: &str) -> (Client, EventStream) {
    let client = support::tcp_builder(server, user)
        .allow_insecure_http_loopback()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {user} cannot connect: {e}", server.kind()));
    let events = client.events();
    (client, events)
}

/// Deterministic bytes that do not compress or repeat.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A file of each kind, recognisable by its magic number, with `n` bytes of noise.
fn sample(kind: MediaKind, n: usize) -> (&'static str, Vec<u8>) {
    let mut data = match kind {
        MediaKind::Image => return ("photo.png", png(320, 200)),
        MediaKind::Audio => b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec(),
        MediaKind::Video => b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec(),
        MediaKind::Document => b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec(),
    };
    data.extend(noise(n, kind as u64 + 1));
    let name = match kind {
        MediaKind::Audio => "voice note.mp3",
        MediaKind::Video => "clip.mp4",
        _ => "report.pdf",
    };
    (name, data)
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "groupchat-media-{tag}-{}-{:x}",
        std::process::id(),
        rand_u64()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(42);
    h.finish()
}

/// The files in `dir`, by name.
fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

async fn media_message(events: &mut EventStream, group: &BareJid, what: &str) -> GroupMessage {
    match expect(
        events,
        what,
        |e| matches!(e, Event::GroupMessage(m) if m.group == *group && m.media.is_some()),
    )
    .await
    {
        Event::GroupMessage(m) => m,
        _ => unreachable!(),
    }
}

fn progress_recorder() -> (Arc<Mutex<Vec<Progress>>>, impl Fn(Progress) + Send + Sync) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |p| s.lock().unwrap().push(p))
}

fn assert_progress(seen: &[Progress], total: u64, what: &str) {
    assert!(seen.len() >= 2, "{what}: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].done <= w[1].done),
        "{what}: progress must not go back"
    );
    assert!(seen.iter().all(|p| p.total == total && p.done <= total));
    assert_eq!(
        seen.last().unwrap().done,
        total,
        "{what}: ends at the total"
    );
}

/// Each of the four kinds, alice → group: bob receives name, type, size, caption,
/// duration, thumbnail and hash, and his download is byte-identical; progress is monotonic
/// and ends at the size; the same call sends to a user; another client's OOB-only image is
/// a media message too.
async fn each_kind_arrives_whole(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice").await;
    let (bob, mut bob_ev) = login(&server, "bob").await;
    let g = group_of(&alice, "Media", &["bob@localhost"], &mut [&mut bob_ev]).await;
    let src = temp_dir("src");
    let dst = temp_dir("dst");
    let thumb = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, png(32, 24));
    for (i, k) in [
        MediaKind::Image,
        MediaKind::Audio,
        MediaKind::Video,
        MediaKind::Document,
    ]
    .into_iter()
    .enumerate()
    {
        let (name, data) = sample(k, 300_000 + i * 1000);
        let path = write(&src, name, &data);
        let (seen, record) = progress_recorder();
        let mut options = MediaOptions::default()
            .caption(format!("{k} caption"))
            .on_progress(record);
        if matches!(k, MediaKind::Audio | MediaKind::Video) {
            options = options.duration("02:05".parse().unwrap());
        }
        if k == MediaKind::Video {
            options = options.thumbnail(thumb.clone());
        }
        if k == MediaKind::Document {
            options = options.message_id("my-document-1");
        }
        let sent = alice
            .send_media(&g, k, MediaFile::open(&path), options)
            .await
            .unwrap_or_else(|e| panic!("{kind}: sending {k}: {e}"));
        assert!(sent.message.stanza_id.is_some());
        assert_progress(
            &seen.lock().unwrap(),
            data.len() as u64,
            &format!("{kind} {k}"),
        );

        let m = media_message(&mut bob_ev, &g, &format!("bob gets the {k}")).await;
        if k == MediaKind::Document {
            assert_eq!(sent.message.id, "my-document-1");
            assert_eq!(
                m.origin_id.as_deref(),
                Some("my-document-1"),
                "the chosen id"
            );
        }
        let media = m.media.as_deref().unwrap();
        assert_eq!(m.body.as_deref(), Some(media.url.as_str()), "body = URL");
        assert_eq!(media.name.as_deref(), Some(name));
        assert_eq!(media.size, Some(data.len() as u64));
        assert_eq!(
            MediaKind::of_media_type(media.media_type.as_deref().unwrap()),
            k
        );
        assert_eq!(
            media.caption.as_deref(),
            Some(format!("{k} caption").as_str())
        );
        assert_eq!(media.hashes.len(), 1, "{kind} {k}: sha-256");
        if matches!(k, MediaKind::Audio | MediaKind::Video) {
            assert_eq!(media.duration_ms, Some(125_000));
        }
        match k {
            MediaKind::Image => {
                assert_eq!((media.width, media.height), (Some(320), Some(200)));
                let t = media.thumbnail.as_ref().expect("a made thumbnail");
                assert!(t.uri.starts_with("data:image/jpeg;base64,"));
                assert_eq!((t.width, t.height), (Some(128), Some(80)));
            }
            MediaKind::Video => {
                let t = media.thumbnail.as_ref().expect("the given thumbnail");
                assert!(t.uri.ends_with(&thumb));
            }
            _ => assert!(media.thumbnail.is_none()),
        }
        let (seen, record) = progress_recorder();
        let saved = bob
            .download_media(media, &dst, DownloadOptions::default().on_progress(record))
            .await
            .unwrap_or_else(|e| panic!("{kind}: downloading {k}: {e}"));
        assert_eq!(saved, dst.join(name));
        assert!(
            std::fs::read(&saved).unwrap() == data,
            "{kind} {k}: byte-identical"
        );
        assert_progress(
            &seen.lock().unwrap(),
            data.len() as u64,
            &format!("{kind} {k} down"),
        );
    }
    // A second download of the same file does not overwrite the first.
    let again = media_message_again(&bob, &g, &dst).await;
    assert_eq!(again, dst.join("report (1).pdf"));

    // 1:1: the same call to a user's JID.
    let (name, data) = sample(MediaKind::Document, 10_000);
    alice
        .send_document(
            "bob@localhost",
            MediaFile::from_bytes(name, data.clone()),
            MediaOptions::default(),
        )
        .await
        .unwrap();
    let ev = expect(&mut bob_ev, "a 1:1 document", |e| {
        matches!(e, Event::ChatMessage { media: Some(_), .. })
    })
    .await;
    let Event::ChatMessage {
        media: Some(media), ..
    } = ev
    else {
        unreachable!()
    };
    let chat_dir = temp_dir("chat");
    let saved = bob
        .download_media(&media, &chat_dir, DownloadOptions::default())
        .await
        .unwrap();
    assert!(std::fs::read(saved).unwrap() == data);

    // Another client's image with nothing but an OOB URL.
    let url = media.url.clone();
    let mut raw = support::raw_client(&server, "carol").await;
    alice
        .add_participants(&g, &["carol@localhost"])
        .await
        .unwrap();
    support::raw_join(&mut raw, &g, "carol").await;
    raw.send(
        format!(
            "<message to='{g}' type='groupchat' id='oob1'><body>{url}</body>\
             <x xmlns='jabber:x:oob'><url>{url}</url></x></message>"
        )
        .into_bytes(),
    )
    .await
    .unwrap();
    let m = media_message(&mut bob_ev, &g, "carol's OOB-only image").await;
    assert_eq!(m.media.unwrap().url, url);
    for d in [src, dst, chat_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// bob downloads the newest document of the group's gallery again.
async fn media_message_again(bob: &Client, g: &BareJid, dst: &Path) -> PathBuf {
    let page = bob.media_messages(g, None).await.unwrap();
    let doc = page
        .messages
        .iter()
        .find(|m| m.media.as_ref().and_then(|x| x.name.as_deref()) == Some("report.pdf"))
        .expect("the document in the gallery");
    bob.download_media(
        doc.media.as_deref().unwrap(),
        dst,
        DownloadOptions::default(),
    )
    .await
    .unwrap()
}

on_both_servers!(each_kind_arrives_whole: each_kind_arrives_whole_on_prosody, each_kind_arrives_whole_on_ejabberd);

/// A metadata-only message carries every field; audio without a duration and video without
/// a thumbnail are refused with 400 naming the field.
async fn metadata_messages(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice").await;
    let (_bob, mut bob_ev) = login(&server, "bob").await;
    let g = group_of(&alice, "Meta", &["bob@localhost"], &mut [&mut bob_ev]).await;
    let thumb = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, png(8, 8));
    let meta = MediaMetadata {
        kind: MediaKind::Video,
        file_name: "talk.mp4".into(),
        file_url: "https://media.example.org/talk.mp4".into(),
        file_size: 123_456_789,
        duration: Some("61:05".parse().unwrap()),
        thumbnail: Some(thumb.clone()),
        caption: Some("the talk".into()),
    };
    alice.send_media_metadata(&g, meta.clone()).await.unwrap();
    let m = media_message(&mut bob_ev, &g, "the metadata message").await;
    let media = m.media.unwrap();
    assert_eq!(media.url, "https://media.example.org/talk.mp4");
    assert_eq!(media.name.as_deref(), Some("talk.mp4"));
    assert_eq!(media.media_type.as_deref(), Some("video/mp4"));
    assert_eq!(media.size, Some(123_456_789));
    assert_eq!(media.duration_ms, Some(3_665_000));
    assert_eq!(media.caption.as_deref(), Some("the talk"));
    assert!(media.thumbnail.unwrap().uri.ends_with(&thumb));

    let no_duration = MediaMetadata {
        kind: MediaKind::Audio,
        duration: None,
        ..meta.clone()
    };
    let e = alice
        .send_media_metadata(&g, no_duration)
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 400);
    assert!(
        matches!(
            e,
            RequestError::InvalidMedia(MediaProblem::MissingField {
                field: "duration",
                ..
            })
        ),
        "{e:?}"
    );
    let no_thumb = MediaMetadata {
        thumbnail: None,
        ..meta
    };
    let e = alice.send_media_metadata(&g, no_thumb).await.unwrap_err();
    assert!(e.to_string().contains("thumbImg"), "{e}");
    assert_eq!(e.status_code(), 400);
}

on_both_servers!(metadata_messages: metadata_messages_on_prosody, metadata_messages_on_ejabberd);

/// 25 media (23 from the SDK; one with only OOB and one with only XEP-0447 from another
/// client, each with the URL as its body, as such clients send it so that servers archive it) and 25
/// texts: the gallery serves 3, 10, 10, 2 and says the last is the end, newest first, media
/// only.
async fn media_gallery_pages(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice").await;
    let (bob, mut bob_ev) = login(&server, "bob").await;
    let g = group_of(
        &alice,
        "Gallery",
        &["bob@localhost", "carol@localhost"],
        &mut [&mut bob_ev],
    )
    .await;
    let mut raw = support::raw_client(&server, "carol").await;
    support::raw_join(&mut raw, &g, "carol").await;
    let mut expected = Vec::new();
    for i in 0..25 {
        alice.send_text(&g, &format!("text {i}")).await.unwrap();
        let name = format!("m{i:02}.png");
        let url = format!("https://media.example.org/{name}");
        match i {
            10 => {
                raw.send(
                    format!(
                        "<message to='{g}' type='groupchat' id='o{i}'><body>{url}</body>\
                         <x xmlns='jabber:x:oob'><url>{url}</url></x></message>"
                    )
                    .into_bytes(),
                )
                .await
                .unwrap();
                media_message(&mut bob_ev, &g, "the OOB-only image").await;
            }
            20 => {
                raw.send(
                    format!(
                        "<message to='{g}' type='groupchat' id='s{i}'><body>{url}</body>\
                         <file-sharing xmlns='urn:xmpp:sfs:0'>\
                         <file xmlns='urn:xmpp:file:metadata:0'><name>{name}</name></file>\
                         <sources><url-data xmlns='http://jabber.org/protocol/url-data' \
                         target='{url}'/></sources></file-sharing></message>"
                    )
                    .into_bytes(),
                )
                .await
                .unwrap();
                media_message(&mut bob_ev, &g, "the SFS-only image").await;
            }
            _ => {
                let meta = MediaMetadata {
                    kind: MediaKind::Image,
                    file_name: name.clone(),
                    file_url: url.clone(),
                    file_size: 1000 + i as u64,
                    duration: None,
                    thumbnail: None,
                    caption: None,
                };
                alice.send_media_metadata(&g, meta).await.unwrap();
            }
        }
        expected.push(url);
    }
    expected.reverse();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = bob.media_messages(&g, cursor.as_deref()).await.unwrap();
        let urls: Vec<String> = page
            .messages
            .iter()
            .map(|m| m.media.as_ref().expect("media only").url.clone())
            .collect();
        pages.push(urls);
        if page.complete {
            break;
        }
        cursor = page.last_row_id.clone();
        assert!(pages.len() < 10, "{kind}: the gallery does not end");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 10, 10, 2],
        "{kind}"
    );
    assert_eq!(pages.concat(), expected, "{kind}: newest first, each once");
}

on_both_servers!(media_gallery_pages: media_gallery_pages_on_prosody, media_gallery_pages_on_ejabberd);

/// Refusals before any upload: a PNG named .pdf (400), a file one byte over the limit (413,
/// nothing stored), a server without upload service (403); downloads that do not match what
/// was announced (502) and downloads under hostile names.
async fn refusals_and_hostile_names(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice").await;
    let (bob, mut bob_ev) = login(&server, "bob").await;
    let g = group_of(&alice, "Checks", &["bob@localhost"], &mut [&mut bob_ev]).await;
    let src = temp_dir("checks");

    let fake = write(&src, "invoice.pdf", &png(10, 10));
    let e = alice
        .send_document(&g, MediaFile::open(&fake), MediaOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 400, "{e}");
    assert!(
        matches!(
            e,
            RequestError::InvalidMedia(MediaProblem::ContentMismatch { .. })
        ),
        "{e:?}"
    );
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(DEFAULT_UPLOAD_LIMIT as usize + 1, b'x');
    let big = write(&src, "big.pdf", &big);
    let e = alice
        .send_document(&g, MediaFile::open(&big), MediaOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 413, "{e}");
    assert_eq!(
        e,
        RequestError::TooLarge {
            size: DEFAULT_UPLOAD_LIMIT + 1,
            limit: DEFAULT_UPLOAD_LIMIT
        }
    );
    assert!(
        !stored_file_of_size(server.dir(), DEFAULT_UPLOAD_LIMIT + 1),
        "{kind}: nothing uploaded"
    );

    // A real upload, then downloads of it under hostile names.
    let (_, data) = sample(MediaKind::Document, 5000);
    let sent = alice
        .send_document(
            &g,
            MediaFile::from_bytes("a.pdf", data.clone()),
            MediaOptions::default(),
        )
        .await
        .unwrap();
    let dst = temp_dir("hostile");
    let long = "x".repeat(300);
    for (hostile, safe) in [
        ("../../etc/passwd", "passwd".to_owned()),
        ("/abs/x", "x".to_owned()),
        ("CON", "_CON".to_owned()),
        ("", "download".to_owned()),
        (long.as_str(), "x".repeat(200)),
    ] {
        let mut m: Media = sent.media.clone();
        m.name = Some(hostile.to_owned());
        let saved = bob
            .download_media(&m, &dst, DownloadOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{kind}: {hostile:?}: {e}"));
        assert_eq!(saved.parent(), Some(dst.as_path()), "{hostile:?}");
        assert_eq!(saved.file_name().unwrap().to_str(), Some(safe.as_str()));
        assert!(std::fs::read(&saved).unwrap() == data);
    }
    assert_eq!(files_in(&dst).len(), 5, "nothing else written");

    // Announced size or hash not matching the bytes: 502, and no file left.
    let clean = temp_dir("mismatch");
    let mut wrong_size = sent.media.clone();
    wrong_size.size = Some(data.len() as u64 + 1);
    let e = bob
        .download_media(&wrong_size, &clean, DownloadOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RequestError::DownloadRejected(DownloadProblem::SizeMismatch { .. })
        ),
        "{e:?}"
    );
    assert_eq!(e.status_code(), 502);
    let mut wrong_hash = sent.media.clone();
    wrong_hash.hashes[0].value =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let e = bob
        .download_media(&wrong_hash, &clean, DownloadOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RequestError::DownloadRejected(DownloadProblem::HashMismatch { .. })
        ),
        "{e:?}"
    );
    // The web server's refusal keeps its status; plain HTTP without the opt-in is refused.
    // (The slot's random segment replaced: Prosody serves a file whatever name follows it.)
    let (base, name) = sent.media.url.rsplit_once('/').unwrap();
    let (base, _) = base.rsplit_once('/').unwrap();
    let missing = format!("{base}/no-such-file/{name}");
    let e = bob
        .download_url(&missing, &clean, DownloadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 404, "{kind}: {e}");
    let carol = support::tcp_builder(&server, "carol")
        .connect()
        .await
        .unwrap();
    let e = carol
        .download_media(&sent.media, &clean, DownloadOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RequestError::Http(groupchat_sdk::HttpError::PlaintextRefused { .. })
        ),
        "{kind}: {e:?}"
    );
    assert_eq!(e.status_code(), 400);
    assert!(files_in(&clean).is_empty(), "{:?}", files_in(&clean));

    // No upload service at all: 403.
    drop((alice, bob, carol));
    drop(server);
    let Some(bare) = TestServer::start_with(kind, UploadService::Off) else {
        return;
    };
    let (alice, _ev) = login(&bare, "alice").await;
    let e = alice
        .send_document(
            "bob@localhost",
            MediaFile::from_bytes("a.pdf", data),
            MediaOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status_code(), 403, "{kind}: {e}");
    for d in [src, dst, clean] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Whether a file of exactly `size` bytes is anywhere under `dir` (the server's storage).
fn stored_file_of_size(dir: &Path, size: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => stored_file_of_size(&p, size),
            Ok(m) => m.len() == size,
            Err(_) => false,
        }
    })
}

on_both_servers!(refusals_and_hostile_names: refusals_and_hostile_names_on_prosody, refusals_and_hostile_names_on_ejabberd);

/// A cancelled upload sends no message; a download cut mid-way leaves no partial file.
async fn cancelled_upload_and_cut_download(kind: ServerKind) {
    let Some(server) = TestServer::start(kind) else {
        return;
    };
    let (alice, _alice_ev) = login(&server, "alice").await;
    let (bob, mut bob_ev) = login(&server, "bob").await;
    let g = group_of(&alice, "Cancel", &["bob@localhost"], &mut [&mut bob_ev]).await;
    let src = temp_dir("cancel");
    let (_, data) = sample(MediaKind::Document, 8 * 1024 * 1024);
    let path = write(&src, "large.pdf", &data);

    // Cancel once a quarter is sent, by dropping the future.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let quarter = data.len() as u64 / 4;
    let options = MediaOptions::default().on_progress(move |p| {
        if p.done >= quarter
            && let Some(tx) = tx.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    });
    tokio::select! {
        r = alice.send_document(&g, MediaFile::open(&path), options) => {
            panic!("{kind}: the upload finished before it could be cancelled: {r:?}")
        }
        _ = rx => {}
    }
    alice.send_text(&g, "after the cancel").await.unwrap();
    let next = expect(
        &mut bob_ev,
        "the next group message",
        |e| matches!(e, Event::GroupMessage(m) if m.group == g),
    )
    .await;
    let Event::GroupMessage(m) = next else {
        unreachable!()
    };
    assert_eq!(
        m.body.as_deref(),
        Some("after the cancel"),
        "{kind}: no media sent"
    );
    assert!(m.media.is_none());

    // A download through a proxy that is cut mid-way.
    let sent = alice
        .send_document(&g, MediaFile::open(&path), MediaOptions::default())
        .await
        .unwrap();
    let proxy = FaultProxy::start(([127, 0, 0, 1], server.http_port()).into()).unwrap();
    proxy.set_chunk_size(Some(16 * 1024));
    proxy.set_delay(Duration::from_millis(2));
    let mut via_proxy = sent.media.clone();
    via_proxy.url = via_proxy.url.replace(
        &format!("localhost:{}", server.http_port()),
        &format!("localhost:{}", proxy.addr().port()),
    );
    assert_ne!(via_proxy.url, sent.media.url);
    let dst = temp_dir("cut");
    let proxy = Arc::new(proxy);
    let cutter = proxy.clone();
    let cut_at = data.len() as u64 / 3;
    let cut_once = std::sync::Once::new();
    let was_cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cut_flag = was_cut.clone();
    let options = DownloadOptions::default().on_progress(move |p| {
        if p.done >= cut_at {
            cut_once.call_once(|| {
                cutter.cut();
                cut_flag.store(true, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    let e = bob
        .download_media(&via_proxy, &dst, options)
        .await
        .unwrap_err();
    assert!(
        matches!(e, RequestError::Http(_) | RequestError::DownloadRejected(_)),
        "{kind}: {e:?}"
    );
    assert!(
        was_cut.load(std::sync::atomic::Ordering::SeqCst),
        "{kind}: failed before the cut: {e:?}"
    );
    assert!(files_in(&dst).is_empty(), "{kind}: {:?}", files_in(&dst));
    // A download dropped mid-way (cancelled) leaves nothing either.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let options = DownloadOptions::default().on_progress(move |p| {
        if p.done >= cut_at
            && let Some(tx) = tx.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    });
    tokio::select! {
        r = bob.download_media(&via_proxy, &dst, options) => {
            panic!("{kind}: the download finished before it could be cancelled: {r:?}")
        }
        _ = rx => {}
    }
    assert!(files_in(&dst).is_empty(), "{kind}: {:?}", files_in(&dst));
    // The same file, not cut, arrives whole.
    let saved = bob
        .download_media(&sent.media, &dst, DownloadOptions::default())
        .await
        .unwrap();
    assert!(std::fs::read(saved).unwrap() == data);
    for d in [src, dst] {
        let _ = std::fs::remove_dir_all(d);
    }
}

on_both_servers!(cancelled_upload_and_cut_download: cancelled_upload_and_cut_download_on_prosody, cancelled_upload_and_cut_download_on_ejabberd);
