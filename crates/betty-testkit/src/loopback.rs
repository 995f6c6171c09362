//! Loopback servers for network tests: an HTTP/1.1 server and an SMTP server on 127.0.0.1 that
//! record what they receive. Each is started by the test, listens on a port the system picks,
//! answers every connection on its own thread and lives until the test process ends.
//!
//! What a server recorded is complete once the client got its answer: the HTTP server records a
//! request before it answers, the SMTP server a mail before it accepts the DATA. A binary that
//! has exited has therefore left all it sent in [`HttpServer::requests`] and
//! [`SmtpServer::mails`]; a detached deliverer is waited for with [`HttpServer::wait_for`].

#![allow(clippy::missing_panics_doc)]

use std::io::BufReader;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for a detached deliverer before failing (a bound against hanging,
/// not a speed assertion).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// One HTTP request as the server read it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics, failing the test, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body of {} {} is not JSON ({e}): {}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP/1.1 server answering every request with a status the test chose.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
}

impl HttpServer {
    /// A server that answers `200 OK` to everything.
    pub fn start() -> HttpServer {
        HttpServer::answering(|_| 200)
    }

    /// A server that answers the `n`-th request (from 0) with `status(n)`.
    pub fn answering(status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let status = Arc::new(status);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, status) = (Arc::clone(&seen), Arc::clone(&status));
                std::thread::spawn(move || serve_http(stream, &seen, &*status));
            }
        });
        HttpServer { addr, requests }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().expect("lock").clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<HttpRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits (up to [`PATIENCE`]) until `n` requests have arrived, for a detached deliverer.
    pub fn wait_for(&self, n: usize) -> Vec<HttpRequest> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests on {}, got {}",
                self.addr,
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve_http(stream: TcpStream, seen: &Mutex<Vec<HttpRequest>>, status: &dyn Fn(usize) -> u16) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut writer = stream;
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let code = {
        let mut all = seen.lock().expect("lock");
        let code = status(all.len());
        all.push(request);
        code
    };
    let answer = format!(
        "HTTP/1.1 {code} {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        if (200..300).contains(&code) {
            "OK"
        } else {
            "Test Answer"
        }
    );
    let _ = writer.write_all(answer.as_bytes());
    let _ = writer.flush();
}

fn read_request(reader: &mut impl BufRead) -> Option<HttpRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// One mail as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The address of `MAIL FROM:<…>`.
    pub from: String,
    /// The addresses of every `RCPT TO:<…>`.
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed, with CRLF line ends.
    pub data: String,
    /// Every command of the session, in order, without its line end.
    pub commands: Vec<String>,
}

impl Mail {
    /// The value of the first header of that (case-insensitive) name, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = &mut value {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }

    /// The body: what follows the headers.
    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// A plain SMTP server (no TLS, no auth) accepting every mail.
#[derive(Debug)]
pub struct SmtpServer {
    addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&mails);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve_smtp(stream, &seen));
            }
        });
        SmtpServer { addr, mails }
    }

    /// `127.0.0.1:PORT`, the relay form our configuration takes for plain SMTP.
    pub fn relay(&self) -> String {
        self.addr.to_string()
    }

    /// Every mail accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }
}

fn serve_smtp(stream: TcpStream, seen: &Mutex<Vec<Mail>>) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut w = stream;
    let mut say = |s: &str| {
        let _ = w.write_all(s.as_bytes());
        let _ = w.flush();
    };
    say("220 loopback ESMTP test\r\n");
    let (mut from, mut to, mut commands) = (String::new(), Vec::new(), Vec::new());
    let bracketed = |s: &str| {
        s.split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map_or_else(String::new, |(a, _)| a.to_string())
    };
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end_matches(['\r', '\n']).to_string();
        commands.push(cmd.clone());
        let verb = cmd
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => say("250-loopback\r\n250 8BITMIME\r\n"),
            "MAIL" => {
                from = bracketed(&cmd);
                say("250 ok\r\n");
            }
            "RCPT" => {
                to.push(bracketed(&cmd));
                say("250 ok\r\n");
            }
            "DATA" => {
                say("354 go ahead\r\n");
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    match reader.read_line(&mut l) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                seen.lock().expect("lock").push(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                    commands: std::mem::take(&mut commands),
                });
                say("250 queued\r\n");
            }
            "QUIT" => {
                say("221 bye\r\n");
                return;
            }
            _ => say("250 ok\r\n"),
        }
    }
}

/// An address on 127.0.0.1 where nothing listens (bound, then released): a delivery there
/// fails at once with "connection refused".
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address")
}
