//! Delivering notifications: JSON over plain HTTP/1.1 (Slack-compatible and generic webhooks)
//! and plain-text mail over SMTP. Synchronous, std-only, with timeouts; no TLS (point `https`
//! hooks at a local relay). Callers record failures; a failed delivery never fails a command.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

/// How long one connect, read or write may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("`{0}`: only http:// is supported; use a local relay for https")]
    UnsupportedUrl(String),
    #[error("cannot resolve `{0}`")]
    Resolve(String),
    #[error("cannot connect to `{target}`: {source}")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot talk to `{target}`: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{target}` answered `{status}`")]
    Status { target: String, status: String },
    #[error("SMTP `{target}`: expected {expected}, got `{got}`")]
    Smtp {
        target: String,
        expected: &'static str,
        got: String,
    },
}

fn connect(host_port: &str) -> Result<TcpStream, DeliveryError> {
    let addr = host_port
        .to_socket_addrs()
        .map_err(|_| DeliveryError::Resolve(host_port.to_string()))?
        .next()
        .ok_or_else(|| DeliveryError::Resolve(host_port.to_string()))?;
    let s =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|source| DeliveryError::Connect {
            target: host_port.to_string(),
            source,
        })?;
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    Ok(s)
}

/// POSTs `body` as JSON to an `http://` URL and requires a 2xx answer.
pub fn post_json(url: &str, body: &Value, user_agent: &str) -> Result<(), DeliveryError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| DeliveryError::UnsupportedUrl(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let io = |source| DeliveryError::Io {
        target: url.to_string(),
        source,
    };
    let payload = serde_json::to_vec(body).map_err(|e| io(e.into()))?;
    let mut s = connect(&host_port)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: {user_agent}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(&payload))
        .map_err(io)?;
    let mut status = String::new();
    BufReader::new(&s).read_line(&mut status).map_err(io)?;
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(DeliveryError::Status {
            target: url.to_string(),
            status: status.trim().to_string(),
        })
    }
}

/// Sends one plain-text mail through an SMTP relay (`host:port`, no TLS, no auth).
pub fn send_mail(
    server: &str,
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), DeliveryError> {
    let s = connect(server)?;
    let io = |source| DeliveryError::Io {
        target: server.to_string(),
        source,
    };
    let mut reader = BufReader::new(s.try_clone().map_err(io)?);
    let mut w = s;
    let expect =
        |reader: &mut BufReader<TcpStream>, code: &'static str| -> Result<(), DeliveryError> {
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).map_err(io)?;
                if !line.starts_with(code) {
                    return Err(DeliveryError::Smtp {
                        target: server.to_string(),
                        expected: code,
                        got: line.trim().to_string(),
                    });
                }
                // Multi-line replies continue with `250-`.
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok(());
                }
            }
        };
    let say =
        |w: &mut TcpStream, line: &str| w.write_all(format!("{line}\r\n").as_bytes()).map_err(io);
    // Header values are single lines: no header injection through a subject or an address.
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    expect(&mut reader, "220")?;
    say(&mut w, "HELO betty")?;
    expect(&mut reader, "250")?;
    say(&mut w, &format!("MAIL FROM:<{}>", clean(from)))?;
    expect(&mut reader, "250")?;
    for rcpt in to {
        say(&mut w, &format!("RCPT TO:<{}>", clean(rcpt)))?;
        expect(&mut reader, "25")?;
    }
    say(&mut w, "DATA")?;
    expect(&mut reader, "354")?;
    let safe_body = body
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .replace("\r\n.", "\r\n..");
    say(
        &mut w,
        &format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{safe_body}\r\n.",
            clean(from),
            clean(&to.join(", ")),
            clean(subject)
        ),
    )?;
    expect(&mut reader, "250")?;
    say(&mut w, "QUIT")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn posts_json_and_reads_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["200 OK", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .unwrap();
                assert!(req.starts_with("POST /hook HTTP/1.1\r\n"), "{req}");
            }
        });
        let url = format!("http://{addr}/hook");
        post_json(&url, &serde_json::json!({"text": "hi"}), "test").unwrap();
        let err = post_json(&url, &serde_json::json!({}), "test").unwrap_err();
        assert!(err.to_string().contains("500"), "{err}");
        server.join().unwrap();
        assert!(matches!(
            post_json("https://example.com", &Value::Null, "t"),
            Err(DeliveryError::UnsupportedUrl(_))
        ));
    }
}
