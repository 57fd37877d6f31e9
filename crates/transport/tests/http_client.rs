//! The HTTP client's own rules, against a loopback web server that answers each request
//! from a script: bounded redirects, every hop held to the plaintext rule, size limits while
//! reading, typed statuses. (Fetching from the servers' real upload and host-meta services
//! is proven by the SDK's and the WebSocket transport's real-server tests.)

use std::time::Duration;

use groupchat_transport::{HttpClient, HttpError, HttpOptions, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A web server on loopback whose answer to a request for `path` is `respond(path, port)`.
async fn web_server(respond: fn(&str, u16) -> String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let _ = socket.write_all(respond(&path, port).as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

fn client(allow_loopback_plain: bool) -> HttpClient {
    let mut options = HttpOptions::default();
    options.timeout = Duration::from_secs(5);
    options.max_redirects = 3;
    options.allow_loopback_plain = allow_loopback_plain;
    HttpClient::new(&TlsOptions::default(), &options).unwrap()
}

fn redirect(to: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit_and_no_further() {
    let port = web_server(|path, port| match path {
        "/a" => redirect(&format!("http://127.0.0.1:{port}/b")),
        "/b" => ok("arrived"),
        // /loop/N redirects to /loop/N+1 forever.
        p => {
            let n: u32 = p.trim_start_matches("/loop/").parse().unwrap_or(0);
            redirect(&format!("/loop/{}", n + 1))
        }
    })
    .await;
    let http = client(true);
    let fetched = http
        .get(&format!("http://127.0.0.1:{port}/a"), 1024)
        .await
        .unwrap();
    assert_eq!(&fetched.body[..], b"arrived");
    assert_eq!(fetched.content_type.as_deref(), Some("text/plain"));
    let start = format!("http://127.0.0.1:{port}/loop/0");
    assert_eq!(
        http.get(&start, 1024).await,
        Err(HttpError::TooManyRedirects { url: start })
    );
}

#[tokio::test]
async fn a_redirect_to_plain_http_elsewhere_is_refused() {
    let port = web_server(|_, _| redirect("http://192.0.2.1/image.png")).await;
    let url = format!("http://127.0.0.1:{port}/image.png");
    assert_eq!(
        client(true).get(&url, 1024).await,
        Err(HttpError::PlaintextRefused {
            url: "http://192.0.2.1/image.png".into()
        })
    );
}

#[tokio::test]
async fn plain_http_needs_the_opt_in_even_to_loopback() {
    let url = "http://127.0.0.1:9/x".to_owned();
    assert_eq!(
        client(false).get(&url, 1024).await,
        Err(HttpError::PlaintextRefused { url })
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_declared_or_not() {
    let port = web_server(|path, _| match path {
        "/declared" => ok(&"x".repeat(2000)),
        // No Content-Length: the body runs to the end of the connection.
        _ => format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",
            "y".repeat(2000)
        ),
    })
    .await;
    let http = client(true);
    for path in ["declared", "undeclared"] {
        let e = http
            .get(&format!("http://127.0.0.1:{port}/{path}"), 1000)
            .await
            .unwrap_err();
        assert!(
            matches!(e, HttpError::TooLarge { limit: 1000, size } if size > 1000),
            "{path}: {e:?}"
        );
    }
}

#[tokio::test]
async fn an_error_status_is_reported_with_its_code() {
    let port =
        web_server(|_, _| "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()).await;
    let url = format!("http://127.0.0.1:{port}/gone.png");
    assert_eq!(
        client(true).get(&url, 1024).await,
        Err(HttpError::Status { url, status: 404 })
    );
}
