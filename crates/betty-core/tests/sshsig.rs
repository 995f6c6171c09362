//! SSH signatures and `allowed_signers`, judged against `ssh-keygen` as the oracle: for every
//! row of a table of allowed signers lines × (principal, namespace, verification time,
//! signature), our verdict must be `ssh-keygen -Y verify`'s verdict, and the row's expected one.
//! Real Ed25519 keys are made by `ssh-keygen` in a temporary folder. Without `ssh-keygen` these
//! tests skip, and with `BETTY_REQUIRE_ALL=1` (CI) they fail instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use betty_core::principal;
use betty_core::source::SourceName;
use betty_core::sshsig::{self, AllowedSigners, KeyRef, NAMESPACE, SigError};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;

const MESSAGE: &[u8] = b"{\"approve\":\"deploy payments to production\"}\n";

fn have_ssh_keygen() -> bool {
    let found = Command::new("ssh-keygen")
        .arg("-?")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        betty_testkit::skip("`ssh-keygen` is not on PATH (install openssh-client; `.ci/run` does)");
    }
    found
}

/// Runs a command with `stdin`; (success, stdout, stderr).
fn run(cmd: &mut Command, stdin: &[u8]) -> (bool, Vec<u8>, String) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary folder with keys `alice`, `bob` and `carol` and signatures over [`MESSAGE`].
struct Kit {
    dir: tempfile::TempDir,
}

impl Kit {
    fn new() -> Option<Kit> {
        if !have_ssh_keygen() {
            return None;
        }
        let kit = Kit {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["alice", "bob", "carol"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "x", "-f"])
                .arg(kit.path(name))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen made the key {name}");
        }
        std::fs::write(kit.path("msg"), MESSAGE).unwrap();
        Some(kit)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `keytype base64` of a key.
    fn public(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.path(&format!("{name}.pub"))).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `ssh-keygen -Y sign` over `message` in `namespace` with `key`.
    fn sign(&self, key: &str, namespace: &str, message: &[u8]) -> String {
        let (ok, out, err) = run(
            Command::new("ssh-keygen")
                .args(["-Y", "sign", "-n", namespace, "-f"])
                .arg(self.path(key)),
            message,
        );
        assert!(ok, "ssh-keygen -Y sign: {err}");
        String::from_utf8(out).unwrap()
    }

    /// `ssh-keygen -Y verify`'s verdict.
    #[allow(clippy::too_many_arguments)] // one place that spells out an ssh-keygen call
    fn oracle(
        &self,
        allowed: &str,
        principal: &str,
        namespace: &str,
        armored: &str,
        message: &[u8],
        at: &str,
        tz: &str,
    ) -> (bool, String) {
        let file = self.path("allowed_signers");
        std::fs::write(&file, allowed).unwrap();
        let sig = self.path("sig");
        std::fs::write(&sig, armored).unwrap();
        let (ok, _, err) = run(
            Command::new("ssh-keygen")
                .env("TZ", tz)
                .args(["-Y", "verify", "-f"])
                .arg(&file)
                .args(["-I", principal, "-n", namespace, "-s"])
                .arg(&sig)
                .arg(format!("-Overify-time={at}")),
            message,
        );
        (ok, err)
    }

    /// Replaces `{A}`, `{B}`, `{C}` with the keys of alice, bob and carol.
    fn expand(&self, template: &str) -> String {
        template
            .replace("{A}", &self.public("alice"))
            .replace("{B}", &self.public("bob"))
            .replace("{C}", &self.public("carol"))
    }
}

fn ts(t: &str) -> Timestamp {
    sshsig::parse_time(t, &TimeZone::UTC, "time").unwrap()
}

fn named(name: &str) -> SourceName {
    SourceName::Named(name.into())
}

/// What we expect of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Accept,
    Principal,
    Unknown,
    Namespace,
    WrongNamespace,
    NotYet,
    Expired,
    BadSignature,
    /// The line is malformed: we refuse the file at load; ssh-keygen skips the line.
    LoadError,
}

fn kind(e: &SigError) -> Want {
    match e {
        SigError::PrincipalNotAllowed { .. } => Want::Principal,
        SigError::UnknownKey { .. } => Want::Unknown,
        SigError::NamespaceNotAllowed { .. } => Want::Namespace,
        SigError::WrongNamespace { .. } => Want::WrongNamespace,
        SigError::NotYetValid { .. } => Want::NotYet,
        SigError::Expired { .. } => Want::Expired,
        SigError::BadSignature { .. } => Want::BadSignature,
        other => panic!("unexpected {other:?}"),
    }
}

struct Row {
    allowed: &'static str,
    principal: &'static str,
    /// The namespace the verifier asks for.
    namespace: &'static str,
    /// Who signed, and in which namespace.
    signer: &'static str,
    signed_ns: &'static str,
    tampered: bool,
    at: &'static str,
    want: Want,
}

const T: &str = "20250601Z";

fn row(allowed: &'static str, principal: &'static str, want: Want) -> Row {
    Row {
        allowed,
        principal,
        namespace: NAMESPACE,
        signer: "alice",
        signed_ns: NAMESPACE,
        tampered: false,
        at: T,
        want,
    }
}

fn at(allowed: &'static str, at: &'static str, want: Want) -> Row {
    Row {
        at,
        ..row(allowed, "alice@example.com", want)
    }
}

fn table() -> Vec<Row> {
    use Want::*;
    let a = "alice@example.com";
    vec![
        // Principals: one, several, patterns, negation, quotes.
        row("alice@example.com {A}\n", a, Accept),
        row("alice@example.com {A} a comment here\n", a, Accept),
        row("alice@example.com {A}\n", "bob@example.com", Principal),
        row("bob@example.com,alice@example.com {A}\n", a, Accept),
        row(
            "bob@example.com,alice@example.com {A}\n",
            "bob@example.com",
            Accept,
        ),
        row("bob@example.com,carol@example.com {A}\n", a, Principal),
        row("*@example.com {A}\n", a, Accept),
        row("*@example.com {A}\n", "alice@example.org", Principal),
        row("*@example.com,!alice@example.com {A}\n", a, Principal),
        row("!alice@example.com,*@example.com {A}\n", a, Principal),
        row(
            "*@example.com,!alice@example.com {A}\n",
            "bob@example.com",
            Accept,
        ),
        row("!bob@example.com {A}\n", a, Principal),
        row("?lice@example.com {A}\n", a, Accept),
        row("?@example.com {A}\n", a, Principal),
        row("al*ce@*.com {A}\n", a, Accept),
        row("*alice* {A}\n", a, Accept),
        row("\"bob@example.com,alice@example.com\" {A}\n", a, Accept),
        row("alice@example.com, {A}\n", a, Accept),
        // Comments, blank lines, white space, CRLF.
        row("# the approvers\n\n   \nalice@example.com {A}\n", a, Accept),
        row("  \talice@example.com \t {A}\n", a, Accept),
        row(
            "alice@example.com {A}\r\nbob@example.com {B}\r\n",
            a,
            Accept,
        ),
        row("#alice@example.com {A}\n", a, Unknown),
        // Keys: not listed, listed for another principal, listed twice.
        row("alice@example.com {B}\n", a, Unknown),
        row("bob@example.com {A}\nalice@example.com {B}\n", a, Principal),
        row("bob@example.com {A}\nalice@example.com {A}\n", a, Accept),
        row(
            "alice@example.com namespaces=\"git\" {A}\nalice@example.com {A}\n",
            a,
            Accept,
        ),
        Row {
            signer: "carol",
            ..row("alice@example.com {A}\nbob@example.com {B}\n", a, Unknown)
        },
        // namespaces=
        row(
            "alice@example.com namespaces=\"betty-approval\" {A}\n",
            a,
            Accept,
        ),
        row(
            "alice@example.com NAMESPACES=\"betty-approval\" {A}\n",
            a,
            Accept,
        ),
        row(
            "alice@example.com namespaces=\"git,file\" {A}\n",
            a,
            Namespace,
        ),
        row(
            "alice@example.com namespaces=\"git,betty-*\" {A}\n",
            a,
            Accept,
        ),
        row(
            "alice@example.com namespaces=\"*,!betty-approval\" {A}\n",
            a,
            Namespace,
        ),
        row(
            "alice@example.com namespaces=\"betty-approva?\" {A}\n",
            a,
            Accept,
        ),
        row("alice@example.com namespaces=\"\" {A}\n", a, Namespace),
        row(
            "alice@example.com namespaces=\"a\\\"b,betty-approval\" {A}\n",
            a,
            Accept,
        ),
        row(
            "alice@example.com namespaces=\"a b,betty-approval\" {A}\n",
            a,
            Accept,
        ),
        // The signature's own namespace must be the one asked for.
        Row {
            signed_ns: "git",
            ..row("alice@example.com {A}\n", a, WrongNamespace)
        },
        Row {
            signed_ns: "git",
            namespace: "git",
            ..row(
                "alice@example.com namespaces=\"betty-approval\" {A}\n",
                a,
                Namespace,
            )
        },
        // Tampered statement.
        Row {
            tampered: true,
            ..row("alice@example.com {A}\n", a, BadSignature)
        },
        // valid-after / valid-before, inclusive, whole seconds, Z and not.
        at(
            "alice@example.com valid-after=\"20250101Z\" {A}\n",
            "20241231Z",
            NotYet,
        ),
        at(
            "alice@example.com valid-after=\"20250101Z\" {A}\n",
            "20250101Z",
            Accept,
        ),
        at(
            "alice@example.com valid-after=\"20250101000001Z\" {A}\n",
            "20250101Z",
            NotYet,
        ),
        at(
            "alice@example.com valid-after=\"202501010000\" {A}\n",
            "20250101Z",
            Accept,
        ),
        at(
            "alice@example.com valid-after=\"202501011200UTC\" {A}\n",
            "202501011159Z",
            NotYet,
        ),
        at(
            "alice@example.com Valid-After=\"20250101\" {A}\n",
            "20241231235959Z",
            NotYet,
        ),
        at(
            "alice@example.com valid-before=\"20250101Z\" {A}\n",
            "20250101Z",
            Accept,
        ),
        at(
            "alice@example.com valid-before=\"20250101Z\" {A}\n",
            "20250101000001Z",
            Expired,
        ),
        at(
            "alice@example.com valid-before=\"20250101\" {A}\n",
            "20250102Z",
            Expired,
        ),
        at(
            "alice@example.com valid-after=\"20250101Z\",valid-before=\"20260101Z\" {A}\n",
            "20250601Z",
            Accept,
        ),
        at(
            "alice@example.com valid-after=\"20250101Z\",valid-before=\"20260101Z\" {A}\n",
            "20260601Z",
            Expired,
        ),
        at(
            "alice@example.com valid-before=\"20250101Z\" {A}\nalice@example.com valid-after=\"20250101Z\" {A}\n",
            "20250601Z",
            Accept,
        ),
        at(
            "alice@example.com namespaces=\"betty-approval\",valid-before=\"20250101Z\" {A}\n",
            "20250601Z",
            Expired,
        ),
        // Malformed lines: refused at load by us, skipped (so not verified) by ssh-keygen.
        row("alice@example.com cert-authority {A}\n", a, LoadError),
        row("alice@example.com valid-after=20250101 {A}\n", a, LoadError),
        row("alice@example.com valid-after=\"2025\" {A}\n", a, LoadError),
        row(
            "alice@example.com valid-after=\"19000101Z\" {A}\n",
            a,
            LoadError,
        ),
        row(
            "alice@example.com valid-after=\"20260101Z\",valid-before=\"20250101Z\" {A}\n",
            a,
            LoadError,
        ),
        row(
            "alice@example.com namespaces=\"a\",namespaces=\"b\" {A}\n",
            a,
            LoadError,
        ),
        row("alice@example.com namespaces=\"a\", {A}\n", a, LoadError),
        row("alice@example.com no-touch-required {A}\n", a, LoadError),
        row("alice@example.com namespaces=\"a {A}\n", a, LoadError),
        row("alice@example.com ssh-ed25519 AAAAnotakey\n", a, LoadError),
        row("alice@example.com\n", a, LoadError),
        row("\"alice@example.com {A}\n", a, LoadError),
    ]
}

#[test]
fn allowed_signers_are_judged_as_ssh_keygen_judges_them() {
    let Some(kit) = Kit::new() else { return };
    let mut sigs = std::collections::HashMap::new();
    let tampered: Vec<u8> = MESSAGE
        .iter()
        .map(|b| if *b == b'9' { b'8' } else { *b })
        .collect();
    let tampered = [&tampered[..], b"x"].concat();
    for (i, r) in table().iter().enumerate() {
        let sig = sigs
            .entry((r.signer, r.signed_ns))
            .or_insert_with(|| kit.sign(r.signer, r.signed_ns, MESSAGE))
            .clone();
        let allowed = kit.expand(r.allowed);
        let message = if r.tampered { &tampered[..] } else { MESSAGE };
        let (oracle, why) = kit.oracle(
            &allowed,
            r.principal,
            r.namespace,
            &sig,
            message,
            r.at,
            "UTC",
        );
        let ours = AllowedSigners::parse_in(&named("allowed_signers"), &allowed, &TimeZone::UTC);
        let context = format!(
            "row {i}: {:?} -I {} -n {} at {} (ssh-keygen: {why})",
            r.allowed, r.principal, r.namespace, r.at
        );
        let verdict = match ours {
            Err(e) => {
                assert_eq!(r.want, Want::LoadError, "{context}: load failed: {e}");
                let msg = e.to_string();
                assert!(msg.starts_with("allowed_signers:"), "{context}: {msg}");
                Want::LoadError
            }
            Ok(list) => match list.verify(message, &sig, r.namespace, r.principal, ts(r.at)) {
                Ok(signer) => {
                    assert_eq!(signer.principal, r.principal, "{context}");
                    assert_eq!(
                        signer.fingerprint,
                        sshsig::signature_fingerprint(&sig).unwrap()
                    );
                    Want::Accept
                }
                Err(e) => kind(&e),
            },
        };
        assert_eq!(verdict, r.want, "{context}");
        assert_eq!(
            oracle,
            r.want == Want::Accept,
            "{context}: ssh-keygen disagrees"
        );
    }
}

#[test]
fn times_without_z_are_local_standard_time_as_in_ssh_keygen() {
    let Some(kit) = Kit::new() else { return };
    let sig = kit.sign("alice", NAMESPACE, MESSAGE);
    let ny = TimeZone::get("America/New_York").unwrap();
    for (line, at, want) in [
        // Winter: EST, -05:00.
        ("valid-after=\"202501011200\"", "202501011659Z", false),
        ("valid-after=\"202501011200\"", "202501011700Z", true),
        // Summer: ssh-keygen still reads EST (mktime with tm_isdst = 0), not EDT.
        ("valid-after=\"202407011200\"", "202407011659Z", false),
        ("valid-after=\"202407011200\"", "202407011700Z", true),
        ("valid-before=\"202407011200\"", "202407011700Z", true),
        ("valid-before=\"202407011200\"", "202407011701Z", false),
        // The hour that does not exist (2024-03-10 02:30 local) and the one that happens twice.
        ("valid-after=\"202403100230\"", "202403100729Z", false),
        ("valid-after=\"202403100230\"", "202403100730Z", true),
        ("valid-after=\"202411030130\"", "202411030629Z", false),
        ("valid-after=\"202411030130\"", "202411030630Z", true),
    ] {
        let allowed = kit.expand(&format!("alice@example.com {line} {{A}}\n"));
        let (oracle, why) = kit.oracle(
            &allowed,
            "alice@example.com",
            NAMESPACE,
            &sig,
            MESSAGE,
            at,
            "America/New_York",
        );
        let ours = AllowedSigners::parse_in(&named("a"), &allowed, &ny)
            .unwrap()
            .verify(MESSAGE, &sig, NAMESPACE, "alice@example.com", ts(at))
            .is_ok();
        assert_eq!((ours, oracle), (want, want), "{line} at {at}: {why}");
    }
}

#[test]
fn ssh_keygen_accepts_our_signatures_and_we_accept_its_own() {
    let Some(kit) = Kit::new() else { return };
    let allowed = kit.expand("alice@example.com {A}\nbob@example.com {B}\n");
    let list = AllowedSigners::parse(&named("a"), &allowed).unwrap();
    // KeyRef::sign (ssh-keygen under the hood), verified by both.
    let ours = KeyRef::from_path(&kit.path("alice"))
        .sign(NAMESPACE, MESSAGE)
        .unwrap();
    let (ok, why) = kit.oracle(
        &allowed,
        "alice@example.com",
        NAMESPACE,
        &ours,
        MESSAGE,
        T,
        "UTC",
    );
    assert!(ok, "ssh-keygen refused KeyRef::sign's signature: {why}");
    let signer = list
        .verify(MESSAGE, &ours, NAMESPACE, "Alice@Example.COM", ts(T))
        .unwrap();
    assert_eq!(signer.principal, "alice@example.com");
    assert_eq!(
        signer.key.key_data(),
        KeyRef::from_path(&kit.path("alice"))
            .public_key()
            .unwrap()
            .key_data()
    );
    // A signature made by the ssh-key crate itself, verified by ssh-keygen and by us.
    let private = ssh_key::PrivateKey::read_openssh_file(&kit.path("bob")).unwrap();
    let crate_sig = ssh_key::SshSig::sign(&private, NAMESPACE, ssh_key::HashAlg::Sha512, MESSAGE)
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap();
    let (ok, why) = kit.oracle(
        &allowed,
        "bob@example.com",
        NAMESPACE,
        &crate_sig,
        MESSAGE,
        T,
        "UTC",
    );
    assert!(ok, "ssh-keygen refused ssh-key's signature: {why}");
    assert!(
        list.verify(MESSAGE, &crate_sig, NAMESPACE, "bob@example.com", ts(T))
            .is_ok()
    );
    // sha256 signatures too.
    let sha256 = ssh_key::SshSig::sign(&private, NAMESPACE, ssh_key::HashAlg::Sha256, MESSAGE)
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap();
    let (ok, why) = kit.oracle(
        &allowed,
        "bob@example.com",
        NAMESPACE,
        &sha256,
        MESSAGE,
        T,
        "UTC",
    );
    assert!(ok, "{why}");
    assert!(
        list.verify(MESSAGE, &sha256, NAMESPACE, "bob@example.com", ts(T))
            .is_ok()
    );
    // A signature whose lines were turned into CRLF on the way (a Windows editor) still reads.
    let crlf = sha256.replace('\n', "\r\n");
    assert!(
        list.verify(MESSAGE, &crlf, NAMESPACE, "bob@example.com", ts(T))
            .is_ok()
    );
    // Signing in another namespace is refused by the verifier, with a message saying so.
    let git = KeyRef::from_path(&kit.path("alice"))
        .sign("git", MESSAGE)
        .unwrap();
    let err = list
        .verify(MESSAGE, &git, NAMESPACE, "alice@example.com", ts(T))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("namespace `git`, not `betty-approval`"),
        "{err}"
    );
}

#[test]
fn public_keys_are_found_as_the_design_says() {
    let Some(kit) = Kit::new() else { return };
    let want = ssh_key::PublicKey::from_openssh(&kit.public("alice")).unwrap();
    let from_private = KeyRef::from_path(&kit.path("alice")).public_key().unwrap();
    let from_pub = KeyRef::from_path(&kit.path("alice.pub"))
        .public_key()
        .unwrap();
    assert_eq!(from_private.key_data(), want.key_data());
    assert_eq!(from_pub.key_data(), want.key_data());
    // No .pub beside the private key: ssh-keygen -y derives it.
    std::fs::copy(kit.path("alice"), kit.path("lonely")).unwrap();
    let derived = KeyRef::from_path(&kit.path("lonely")).public_key().unwrap();
    assert_eq!(derived.key_data(), want.key_data());
    // Not a key at all.
    std::fs::write(kit.path("junk"), "hello\n").unwrap();
    let err = KeyRef::from_path(&kit.path("junk"))
        .public_key()
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk") && err.contains("ssh-keygen"), "{err}");
    let err = KeyRef::from_path(&kit.path("missing"))
        .public_key()
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    // Who a key is.
    let list = AllowedSigners::parse(
        &named("a"),
        &kit.expand(
            "alice@example.com,Alice2@Example.com,*@admins.example.com,!alice2@example.com {A}\n\
             bob@example.com {B}\n\
             alice-git@example.com namespaces=\"git\" {A}\n\
             alice-old@example.com valid-before=\"20200101Z\" {A}\n\
             alice@example.com {A}\n",
        ),
    )
    .unwrap();
    assert_eq!(
        list.principals_for(&want, NAMESPACE, ts(T)),
        vec!["alice@example.com"]
    );
    assert_eq!(
        list.principals_for(&want, "git", ts(T)),
        vec!["alice@example.com", "alice-git@example.com"]
    );
    assert_eq!(
        list.principals_for(&want, NAMESPACE, ts("20190101Z")),
        vec!["alice@example.com", "alice-old@example.com"]
    );
    let carol = KeyRef::from_path(&kit.path("carol")).public_key().unwrap();
    assert!(list.principals_for(&carol, NAMESPACE, ts(T)).is_empty());
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn the_signing_key_comes_from_git_config_as_git_reads_it() {
    let Some(kit) = Kit::new() else { return };
    let repo = kit.path("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["config", "gpg.format", "openpgp"]);
    let err = KeyRef::from_git_config(&repo).unwrap_err().to_string();
    assert!(
        err.contains("`gpg.format` is `openpgp`, not `ssh`") && err.contains("--key"),
        "{err}"
    );
    git(&repo, &["config", "gpg.format", "ssh"]);
    git(&repo, &["config", "user.signingkey", ""]);
    let err = KeyRef::from_git_config(&repo).unwrap_err().to_string();
    assert!(err.contains("`user.signingkey` is not set"), "{err}");
    // A path (relative to the folder, as git runs in it).
    git(&repo, &["config", "user.signingkey", "../alice"]);
    let key = KeyRef::from_git_config(&repo).unwrap();
    assert_eq!(key, KeyRef::from_path(&repo.join("../alice")));
    assert!(key.sign(NAMESPACE, MESSAGE).is_ok());
    // `key::` literal and the older bare `ssh-` form: public keys held by the agent.
    let literal = kit.public("bob");
    git(
        &repo,
        &["config", "user.signingkey", &format!("key::{literal}")],
    );
    let key = KeyRef::from_git_config(&repo).unwrap();
    assert_eq!(key.public_key().unwrap().to_openssh().unwrap(), literal);
    git(&repo, &["config", "user.signingkey", &literal]);
    assert_eq!(KeyRef::from_git_config(&repo).unwrap(), key);
    // No agent holds bob's key (made by this test): signing fails with ssh-keygen's reason,
    // and the literal key's temporary file is gone.
    let before = temp_key_files();
    let err = key.sign(NAMESPACE, MESSAGE).unwrap_err().to_string();
    assert!(
        err.contains("ssh-keygen") && err.contains("key::ssh-ed25519"),
        "{err}"
    );
    assert_eq!(
        temp_key_files(),
        before,
        "the literal key's temporary file is removed"
    );
    git(&repo, &["config", "user.signingkey", "key::not a key"]);
    let err = KeyRef::from_git_config(&repo)
        .unwrap()
        .public_key()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid OpenSSH public key"), "{err}");
}

fn temp_key_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains(".betty-signingkey-"))
        .collect();
    v.sort();
    v
}

#[test]
fn signing_via_the_agent_with_a_literal_key() {
    let Some(kit) = Kit::new() else { return };
    let sock = kit.path("agent.sock");
    let mut agent = match Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(a) => a,
        Err(_) => {
            betty_testkit::skip("`ssh-agent` is not on PATH (install openssh-client)");
            return;
        }
    };
    // The agent creates its socket when ready: wait on that state, not on a clock.
    let mut tries = 0;
    while !sock.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
        tries += 1;
        assert!(tries < 3000, "ssh-agent never made its socket");
    }
    let added = Command::new("ssh-add")
        .arg("-q")
        .arg(kit.path("carol"))
        .env("SSH_AUTH_SOCK", &sock)
        .status()
        .unwrap()
        .success();
    let result = std::panic::catch_unwind(|| {
        assert!(added, "ssh-add");
        let repo = kit.path("repo2");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        git(&repo, &["config", "gpg.format", "ssh"]);
        git(
            &repo,
            &[
                "config",
                "user.signingkey",
                &format!("key::{}", kit.public("carol")),
            ],
        );
        // KeyRef runs ssh-keygen, which finds the agent through SSH_AUTH_SOCK: a child
        // environment cannot be set through the API, so run the check in a child test process.
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "agent_child", "--nocapture", "--ignored"])
            .env("SSH_AUTH_SOCK", &sock)
            .env("BETTY_AGENT_REPO", &repo)
            .env("BETTY_AGENT_ALLOWED", kit.expand("carol@example.com {C}\n"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let _ = agent.kill();
    let _ = agent.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Run by [`signing_via_the_agent_with_a_literal_key`] in a child process with the agent.
#[test]
#[ignore = "run by signing_via_the_agent_with_a_literal_key"]
fn agent_child() {
    let repo = PathBuf::from(std::env::var_os("BETTY_AGENT_REPO").unwrap());
    let allowed = std::env::var("BETTY_AGENT_ALLOWED").unwrap();
    let key = KeyRef::from_git_config(&repo).unwrap();
    let sig = key.sign(NAMESPACE, MESSAGE).unwrap();
    let list = AllowedSigners::parse(&named("a"), &allowed).unwrap();
    let signer = list
        .verify(
            MESSAGE,
            &sig,
            NAMESPACE,
            "carol@example.com",
            Timestamp::now(),
        )
        .unwrap();
    assert_eq!(signer.key.key_data(), key.public_key().unwrap().key_data());
}

#[test]
fn load_reads_safely_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    // Missing: an empty list, nothing verifies.
    let list = AllowedSigners::load(&dir.path().join("none")).unwrap();
    assert!(list.is_empty());
    // A FIFO or a folder is refused before anything is read.
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let err = AllowedSigners::load(&fifo).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
    }
    let err = AllowedSigners::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("folder"), "{err}");
    // Too large, not UTF-8.
    let big = dir.path().join("big");
    std::fs::write(
        &big,
        vec![b'#'; sshsig::MAX_ALLOWED_SIGNERS_LEN as usize + 1],
    )
    .unwrap();
    let err = AllowedSigners::load(&big).unwrap_err().to_string();
    assert!(err.contains("over the limit"), "{err}");
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"# \xff\n").unwrap();
    let err = AllowedSigners::load(&bad).unwrap_err().to_string();
    assert!(err.contains("UTF-8"), "{err}");
    // A bad line: file:line:column and what to do.
    let f = dir.path().join("allowed_signers");
    std::fs::write(
        &f,
        "# approvers\n\nalice@example.com cert-authority ssh-ed25519 AAAA\n",
    )
    .unwrap();
    let err = AllowedSigners::load(&f).unwrap_err().to_string();
    assert!(
        err.contains("allowed_signers:3:19: `cert-authority` is not supported"),
        "{err}"
    );
    assert!(err.contains("list each signer's own public key"), "{err}");
    for (text, needle) in [
        ("a@x\n", "no key"),
        (
            "a@x valid-after=\"20250101Z\"\n",
            "no key after the options",
        ),
        ("a@x ssh-ed25519\n", "not followed by the base64 key"),
        ("a@x ssh-ed25519 AAAA\n", "is not valid"),
        ("a@x frob ssh-ed25519 AAAA\n", "unknown option `frob`"),
        (
            "a@x valid-after=20250101 ssh-ed25519 AAAA\n",
            "must be in double quotes",
        ),
        (
            "a@x valid-after=\"20250231Z\" ssh-ed25519 AAAA\n",
            "no such date",
        ),
        ("a\u{200b}@x ssh-ed25519 AAAA\n", "U+200B"),
        ("＊@x ssh-ed25519 AAAA\n", "adds a `*`"),
        ("\"a@x, b@x\" ssh-ed25519 AAAA\n", "white space around it"),
        ("!,! ssh-ed25519 AAAA\n", "names nobody"),
        ("a@x\0 ssh-ed25519 AAAA\n", "NUL"),
        ("a@x ssh-ed25519-cert-v01@openssh.com AAAA\n", "certificate"),
    ] {
        let err = AllowedSigners::parse(&named("as"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("as:1:") && err.contains(needle),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn signature_errors_say_what_is_wrong() {
    let list = AllowedSigners::parse(&named("a"), "").unwrap();
    for (armored, needle) in [
        ("", "does not start with `-----BEGIN SSH SIGNATURE-----`"),
        ("hello", "does not start"),
        (
            "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
            "not a valid SSH signature",
        ),
    ] {
        let err = list
            .verify(MESSAGE, armored, NAMESPACE, "a@x", ts(T))
            .unwrap_err();
        assert!(matches!(err, SigError::Malformed(_)), "{err:?}");
        assert!(err.to_string().contains(needle), "{err}");
        assert!(sshsig::signature_fingerprint(armored).is_err());
    }
    let huge = "A".repeat(sshsig::MAX_ARMORED_LEN + 1);
    let err = sshsig::signature_fingerprint(&huge)
        .unwrap_err()
        .to_string();
    assert!(err.contains("over the limit"), "{err}");
    let err = list
        .verify(MESSAGE, "x", NAMESPACE, "a\nb", ts(T))
        .unwrap_err();
    assert!(matches!(err, SigError::Principal(_)), "{err:?}");
}

#[test]
fn principals_are_normalised_before_comparison() {
    for (a, b) in [
        ("APPSEC@Example.com", "appsec@example.com"),
        (" appsec@example.com ", "appsec@example.com"),
        ("ａｐｐｓｅｃ@example.com", "appsec@example.com"),
    ] {
        assert_eq!(
            principal::normalise(a).unwrap(),
            principal::normalise(b).unwrap()
        );
    }
    for bad in [
        "app\u{200b}sec@x",
        "\u{202e}x@y",
        "\u{feff}x@y",
        "x\0@y",
        "x@y\n",
        "",
    ] {
        assert!(principal::normalise(bad).is_err(), "{bad:?}");
    }
}

/// A signature over MESSAGE made offline by the ssh-key crate (no ssh-keygen needed), for the
/// property tests.
fn some_signature() -> String {
    let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[7; 32]));
    ssh_key::SshSig::sign(&key, NAMESPACE, ssh_key::HashAlg::Sha512, MESSAGE)
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap()
}

fn line_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice@example.com".to_string()),
        Just("*".to_string()),
        Just("!".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\\\"".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("#".to_string()),
        Just("=".to_string()),
        Just("namespaces=".to_string()),
        Just("valid-after=".to_string()),
        Just("valid-before=\"".to_string()),
        Just("cert-authority".to_string()),
        Just("20250101Z".to_string()),
        Just("20250101120000".to_string()),
        Just("ssh-ed25519".to_string()),
        Just("sk-ssh-ed25519@openssh.com".to_string()),
        Just("ssh-rsa".to_string()),
        Just("ssh-ed25519-cert-v01@openssh.com".to_string()),
        Just("AAAAC3NzaC1lZDI1NTE5AAAAIM8JRRCXS1FIevNhUh+m3zXb9xn4zHVchk+5gUNTzGab".to_string()),
        Just("AAAA".to_string()),
        Just("\u{200b}".to_string()),
        Just("ｆｕｌｌ".to_string()),
        Just("\u{0}".to_string()),
        "\\PC{0,8}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn allowed_signers_parse_never_panics(pieces in proptest::collection::vec(line_piece(), 0..40)) {
        let text: String = pieces.concat();
        if let Ok(list) = AllowedSigners::parse_in(&named("p"), &text, &TimeZone::UTC) {
            let sig = some_signature();
            let _ = list.verify(MESSAGE, &sig, NAMESPACE, "alice@example.com", ts(T));
            let key = ssh_key::PublicKey::from_openssh(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8JRRCXS1FIevNhUh+m3zXb9xn4zHVchk+5gUNTzGab",
            ).unwrap();
            let _ = list.principals_for(&key, NAMESPACE, ts(T));
        }
    }

    #[test]
    fn allowed_signers_parse_never_panics_on_any_text(text in any::<String>()) {
        let _ = AllowedSigners::parse_in(&named("p"), &text, &TimeZone::UTC);
    }

    #[test]
    fn signature_parsing_never_panics(text in any::<String>()) {
        let _ = sshsig::signature_fingerprint(&text);
        let list = AllowedSigners::parse(&named("p"), "").unwrap();
        let _ = list.verify(MESSAGE, &text, NAMESPACE, "a@x", ts(T));
    }

    #[test]
    fn mutated_signatures_never_panic_and_never_verify(at in 30usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let sig = some_signature();
        let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[7; 32]));
        let line = format!("a@x {}\n", key.public_key().to_openssh().unwrap());
        let list = AllowedSigners::parse(&named("p"), &line).unwrap();
        let mut bytes = sig.clone().into_bytes();
        let i = at.min(bytes.len() - 1);
        let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n-"[byte as usize % 67];
        let changed = bytes[i] != c;
        bytes[i] = c;
        let mutated = String::from_utf8(bytes).unwrap();
        let verdict = list.verify(MESSAGE, &mutated, NAMESPACE, "a@x", ts(T));
        if changed && verdict.is_ok() {
            // Only a change the decoder ignores (line breaks, padding) may still verify:
            // then the decoded signature is the original one.
            prop_assert_eq!(
                ssh_key::SshSig::from_pem(mutated.trim()).ok(),
                ssh_key::SshSig::from_pem(sig.trim()).ok()
            );
        }
        let truncated = &sig[..cut.min(sig.len())];
        prop_assert!(list.verify(MESSAGE, truncated, NAMESPACE, "a@x", ts(T)).is_err() || cut >= sig.trim_end().len());
    }
}

/// The SSHSIG version is not covered by the signature: OpenSSH accepts any version up to 1, so
/// a blob whose version was changed to 0 still verifies there. Here it is refused.
#[test]
fn a_signature_whose_version_was_changed_does_not_verify() {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sig = some_signature();
    let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[7; 32]));
    let line = format!("a@x {}\n", key.public_key().to_openssh().unwrap());
    let list = AllowedSigners::parse(&named("p"), &line).unwrap();
    assert!(list.verify(MESSAGE, &sig, NAMESPACE, "a@x", ts(T)).is_ok());

    // Blob bytes 6..10 are the version (big-endian u32, 1). Base64 character 13 of the body
    // carries byte 9's low two bits (its top bits) and byte 10's top four: clear the two.
    let body = sig.find('\n').unwrap() + 1;
    let mut bytes = sig.clone().into_bytes();
    let v = B64.iter().position(|&c| c == bytes[body + 13]).unwrap() as u8;
    assert_eq!(
        v >> 4,
        1,
        "the version's low bits are where the format puts them"
    );
    bytes[body + 13] = B64[(v & 0b1111) as usize];
    let changed = String::from_utf8(bytes).unwrap();
    let parsed = ssh_key::SshSig::from_pem(changed.trim()).unwrap();
    assert_eq!(parsed.version(), 0, "the change reached the version field");

    let err = list
        .verify(MESSAGE, &changed, NAMESPACE, "a@x", ts(T))
        .unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
}
