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

/// Text for a Slack-compatible `text` field: `&`, `<` and `>` escaped as Slack asks (so user
/// text cannot mention `<!channel>` or forge a link) and control characters shown escaped.
pub fn slack_text(s: &str) -> String {
    crate::escape::escape(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// POSTs `body` as JSON to an `http://` URL and requires a 2xx answer. The body is redacted
/// ([`crate::redact`]) before it leaves; errors name the URL with its secrets redacted (a
/// webhook URL is a credential).
pub fn post_json(url: &str, body: &Value, user_agent: &str) -> Result<(), DeliveryError> {
    let shown = crate::redact::redact_text(url).into_owned();
    // A line break or space in the URL would end the request line and start a header.
    let rest = url
        .strip_prefix("http://")
        .filter(|r| !r.chars().any(|c| c.is_whitespace() || c.is_control()))
        .ok_or_else(|| DeliveryError::UnsupportedUrl(shown.clone()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // User-info is never sent on (nor named in an error): the host is what follows the last `@`.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let io = |source| DeliveryError::Io {
        target: shown.clone(),
        source,
    };
    let payload = serde_json::to_vec(&crate::redact::redacted(body)).map_err(|e| io(e.into()))?;
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
            target: shown,
            status: crate::redact::redact_text(status.trim()).into_owned(),
        })
    }
}

/// An address as it goes into `MAIL FROM:<…>`, `RCPT TO:<…>` and a header: no whitespace, no
/// control characters, no angle brackets (so no extra SMTP parameters, commands or headers).
pub fn mail_address(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>'))
        .filter(|c| !crate::escape::is_unsafe_char(*c))
        .collect()
}

/// A header value on one line: every line break and control character becomes a space (no
/// header injection through a subject or an address); non-ASCII text is RFC 2047 encoded
/// (`=?UTF-8?B?…?=`, folded into encoded words of at most 75 characters).
pub fn header_value(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| {
            if c.is_control() || crate::escape::is_unsafe_char(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    if flat.is_ascii() {
        return flat;
    }
    // 45 bytes of UTF-8 are 60 base64 characters: 72 with `=?UTF-8?B?` and `?=`.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in flat.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(encoded_word(&chunk));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(encoded_word(&chunk));
    }
    words.join("\r\n ")
}

fn encoded_word(s: &str) -> String {
    format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The DATA of a plain-text mail: headers, then the body with every line break (bare CR, bare
/// LF, CRLF) made CRLF and every line that starts with `.` dot-stuffed (RFC 5321 4.5.2), so
/// no body can end the message early or smuggle SMTP commands. Ends with CRLF.
pub fn mail_message(from: &str, to: &[String], subject: &str, body: &str) -> String {
    let to: Vec<String> = to.iter().map(|a| mail_address(a)).collect();
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        mail_address(from),
        to.join(", "),
        header_value(subject)
    );
    let normalised = body.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalised.split('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
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
    expect(&mut reader, "220")?;
    say(&mut w, "HELO betty")?;
    expect(&mut reader, "250")?;
    say(&mut w, &format!("MAIL FROM:<{}>", mail_address(from)))?;
    expect(&mut reader, "250")?;
    for rcpt in to {
        say(&mut w, &format!("RCPT TO:<{}>", mail_address(rcpt)))?;
        expect(&mut reader, "25")?;
    }
    say(&mut w, "DATA")?;
    expect(&mut reader, "354")?;
    // The message ends with CRLF; `.` on a line of its own ends DATA.
    let subject = crate::redact::redact_text(subject);
    let body = crate::redact::redact_text(body);
    w.write_all(mail_message(from, to, &subject, &body).as_bytes())
        .map_err(io)?;
    say(&mut w, ".")?;
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
        assert!(matches!(
            post_json(
                "http://127.0.0.1:9/x HTTP/1.1\r\nX-Evil: 1",
                &Value::Null,
                "t"
            ),
            Err(DeliveryError::UnsupportedUrl(_))
        ));
    }

    /// What the loopback SMTP server saw: the raw DATA and the commands.
    type Seen = (Vec<u8>, Vec<String>);

    /// A loopback SMTP server: answers every command, returns what it saw.
    fn smtp_server() -> (String, std::thread::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            s.write_all(b"220 test\r\n").unwrap();
            let (mut data, mut commands, mut in_data) = (Vec::new(), Vec::new(), false);
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                    break;
                }
                if in_data {
                    if line == b".\r\n" {
                        in_data = false;
                        s.write_all(b"250 queued\r\n").unwrap();
                    } else {
                        data.extend_from_slice(&line);
                    }
                    continue;
                }
                let cmd = String::from_utf8_lossy(&line).into_owned();
                commands.push(cmd.clone());
                match cmd.split_whitespace().next().unwrap_or_default() {
                    "DATA" => {
                        in_data = true;
                        s.write_all(b"354 go\r\n").unwrap();
                    }
                    "QUIT" => break,
                    _ => s.write_all(b"250 ok\r\n").unwrap(),
                }
            }
            (data, commands)
        });
        (addr, server)
    }

    #[test]
    fn mail_bodies_and_headers_cannot_inject() {
        let (addr, server) = smtp_server();
        let body = ".first line\rbare CR\nbare LF\r\n.\r\nQUIT\n..two dots\n\r\nend.";
        send_mail(
            &addr,
            "betty@x.com>\r\nRCPT TO:<evil@x.com",
            &["sec@x.com> NOTIFY=NEVER".to_string()],
            "approval\r\nBcc: evil@x.com\n\x1b[2J réservé 日本語",
            body,
        )
        .unwrap();
        let (data, commands) = server.join().unwrap();
        // Only our commands, each on one line; no address smuggled a command or a parameter.
        assert_eq!(
            commands,
            [
                "HELO betty\r\n",
                "MAIL FROM:<betty@x.comRCPTTO:evil@x.com>\r\n",
                "RCPT TO:<sec@x.comNOTIFY=NEVER>\r\n",
                "DATA\r\n",
                "QUIT\r\n",
            ]
        );
        let text = String::from_utf8(data).unwrap();
        // Every line break is CRLF: no bare CR, no bare LF.
        let bytes = text.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}: {text:?}"),
                b'\n' => assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}: {text:?}"),
                _ => {}
            }
        }
        let (head, got_body) = text.split_once("\r\n\r\n").unwrap();
        // One Subject header, no Bcc header, no escape; the non-ASCII subject is RFC 2047.
        let headers: Vec<&str> = head.split("\r\n").collect();
        assert!(!headers.iter().any(|h| h.starts_with("Bcc")), "{head}");
        assert!(!head.contains('\x1b'));
        let subject = headers
            .iter()
            .position(|h| h.starts_with("Subject: "))
            .unwrap();
        assert!(
            headers[subject].starts_with("Subject: =?UTF-8?B?"),
            "{head}"
        );
        let words: String = headers[subject..]
            .iter()
            .take_while(|h| h.starts_with("Subject: ") || h.starts_with(' '))
            .map(|h| h.trim_start_matches("Subject: ").trim())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words
                .split(' ')
                .all(|w| w.len() <= 75 && w.starts_with("=?UTF-8?B?"))
        );
        assert!(
            head.contains("From: betty@x.comRCPTTO:evil@x.com\r\n"),
            "{head}"
        );
        // Dot-stuffed: every line that started with `.` got one more; `.` alone cannot end DATA.
        assert_eq!(
            got_body,
            "..first line\r\nbare CR\r\nbare LF\r\n..\r\nQUIT\r\n...two dots\r\n\r\nend.\r\n"
        );
    }

    #[test]
    fn header_values_and_base64() {
        assert_eq!(header_value("plain subject"), "plain subject");
        assert_eq!(header_value("a\r\nB: c"), "a  B: c");
        assert_eq!(header_value("é"), "=?UTF-8?B?w6k=?=");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let long = header_value(&"日本語".repeat(20));
        assert!(long.split("\r\n ").all(|w| w.len() <= 75), "{long}");
    }
}
