//! Loopback servers for network tests: an HTTP/1.1 server (plain, or HTTPS with a certificate
//! from a [`TestCa`]) and an SMTP server on 127.0.0.1 that record what they receive. Each is
//! started by the test, listens on a port the system picks, answers every connection on its own
//! thread and lives until the test process ends.
//!
//! What a server recorded is complete once the client got its answer: the HTTP server records a
//! request before it answers, the SMTP server a mail before it accepts the DATA. A binary that
//! has exited has therefore left all it sent in [`HttpServer::requests`] and
//! [`SmtpServer::mails`]; a detached deliverer is waited for with [`HttpServer::wait_for`].

#![allow(clippy::missing_panics_doc)]

use std::io::BufReader;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

/// A certificate authority made for one test (rcgen, ECDSA P-256): it signs the loopback
/// HTTPS server's certificate (for `127.0.0.1`, `::1` and `localhost`), and its PEM is what a
/// client is told to trust (`SSL_CERT_FILE`).
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "betty-testkit test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate as `dir/test-ca.pem` and returns its path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.pem).expect("write the test CA");
        path
    }

    /// A server configuration with a fresh certificate for the loopback names, signed by this CA.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().expect("server key");
        let names = ["127.0.0.1", "::1", "localhost"]
            .map(str::to_string)
            .to_vec();
        let params = rcgen::CertificateParams::new(names).expect("server parameters");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server certificate and key");
        Arc::new(config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// An HTTP/1.1 server answering every request with a status the test chose, over plain TCP or
/// TLS.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    scheme: &'static str,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    handshakes_failed: Arc<Mutex<usize>>,
}

impl HttpServer {
    /// A server that answers `200 OK` to everything.
    pub fn start() -> HttpServer {
        HttpServer::answering(|_| 200)
    }

    /// A server that answers the `n`-th request (from 0) with `status(n)`.
    pub fn answering(status: impl Fn(usize) -> u16 + Send + Sync + 'static) -> HttpServer {
        HttpServer::listen(None, Arc::new(status))
    }

    /// An HTTPS server (TLS 1.2 and 1.3, rustls) with a certificate `ca` signed, answering
    /// `200 OK` to everything.
    pub fn start_tls(ca: &TestCa) -> HttpServer {
        HttpServer::answering_tls(ca, |_| 200)
    }

    /// An HTTPS server answering the `n`-th request (from 0) with `status(n)`.
    pub fn answering_tls(
        ca: &TestCa,
        status: impl Fn(usize) -> u16 + Send + Sync + 'static,
    ) -> HttpServer {
        HttpServer::listen(Some(ca.server_config()), Arc::new(status))
    }

    fn listen(tls: Option<Arc<rustls::ServerConfig>>, status: Arc<StatusFn>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handshakes_failed = Arc::new(Mutex::new(0));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (seen, refused) = (Arc::clone(&requests), Arc::clone(&handshakes_failed));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(PATIENCE));
                let (seen, status, refused) =
                    (Arc::clone(&seen), Arc::clone(&status), Arc::clone(&refused));
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve_http(stream, &seen, &*status),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let mut tls = rustls::StreamOwned::new(conn, stream);
                        // Finish the handshake first, so a client that refuses the certificate
                        // is counted rather than mistaken for one that sent nothing.
                        while tls.conn.is_handshaking() {
                            if tls.conn.complete_io(&mut tls.sock).is_err() {
                                *refused.lock().expect("lock") += 1;
                                return;
                            }
                        }
                        serve_http(tls, &seen, &*status);
                    }
                });
            }
        });
        HttpServer {
            addr,
            scheme,
            requests,
            handshakes_failed,
        }
    }

    /// `http://127.0.0.1:PORT{path}` (`https://` for a TLS server).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// `https://localhost:PORT{path}` for a TLS server: the same server by its loopback name.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("{}://localhost:{}{path}", self.scheme, self.addr.port())
    }

    /// How many TLS handshakes failed so far (a client that did not trust the certificate).
    pub fn handshakes_failed(&self) -> usize {
        *self.handshakes_failed.lock().expect("lock")
    }

    /// Waits (up to [`PATIENCE`]) until `n` TLS handshakes have failed: the server sees the
    /// client's refusal a moment after the client gave up.
    pub fn wait_for_failed_handshakes(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.handshakes_failed() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} failed TLS handshakes on {}, got {}",
                self.addr,
                self.handshakes_failed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

type StatusFn = dyn Fn(usize) -> u16 + Send + Sync;

fn serve_http(stream: impl Read + Write, seen: &Mutex<Vec<HttpRequest>>, status: &StatusFn) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let writer = reader.get_mut();
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
