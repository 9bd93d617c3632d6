//! Secrets from files: `--basic-auth-file` and `--header-credential NAME` (systemd credentials,
//! `$CREDENTIALS_DIRECTORY/NAME`). The server receives them; no output, at any verbosity, on
//! success or failure, contains them.

use crate::harness::{self, Finished, assert_one_line_error, servers};
use base64::Engine;
use tempfile::TempDir;

const BASIC_PASSWORD: &str = "SECRETfileBasic";
const CRED_TOKEN: &str = "SECRETcredToken";
const CRED_COOKIE: &str = "SECRETcredCookie";
const CRED_PLAIN: &str = "SECRETcredPlainHeader";

/// A directory laid out like systemd's `$CREDENTIALS_DIRECTORY`, and a basic-auth file.
struct Secrets {
    dir: TempDir,
}

impl Secrets {
    fn new() -> Secrets {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(
            creds.join("api"),
            format!(
                "# written by LoadCredential=\nX-Api-Token: {CRED_TOKEN}\r\nCookie: s={CRED_COOKIE}\n"
            ),
        )
        .unwrap();
        // A header whose name does not look secret: from a credential, still never printed.
        std::fs::write(creds.join("plain"), format!("X-Tenant: {CRED_PLAIN}\n")).unwrap();
        std::fs::write(
            dir.path().join("basic"),
            format!("svc-user:{BASIC_PASSWORD}\n"),
        )
        .unwrap();
        Secrets { dir }
    }

    fn command(&self, extra: &[&str], url: &str) -> tokio::process::Command {
        let basic = self.dir.path().join("basic");
        let mut args = extra.to_vec();
        args.extend([
            "--basic-auth-file",
            basic.to_str().unwrap(),
            "--header-credential",
            "api",
            "--header-credential",
            "plain",
            url,
        ]);
        let mut cmd = harness::command(&args);
        cmd.env("CREDENTIALS_DIRECTORY", self.dir.path().join("credentials"));
        cmd
    }
}

#[track_caller]
fn assert_no_secret(what: &str, f: &Finished) {
    let all = format!("{}\n{}", f.stderr, f.stdout_str());
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("svc-user:{BASIC_PASSWORD}"));
    for s in [
        BASIC_PASSWORD,
        CRED_TOKEN,
        CRED_COOKIE,
        CRED_PLAIN,
        b64.as_str(),
    ] {
        let leaks: Vec<&str> = all.lines().filter(|l| l.contains(s)).collect();
        assert!(leaks.is_empty(), "{what}: {s} leaked: {leaks:?}");
    }
}

#[tokio::test]
async fn secrets_from_files_reach_the_server_and_never_the_output() {
    let secrets = Secrets::new();
    let mut server = servers::echo().await;
    let url = server.url();
    for (verbosity, rust_log) in [
        (&["-vvv"][..], None),
        (&[][..], Some("trace")),
        (&[][..], None),
    ] {
        let mut cmd = secrets.command(verbosity, &url);
        if let Some(l) = rust_log {
            cmd.env("RUST_LOG", l);
        }
        let f = harness::run_cmd(cmd, b"hello\n").await;
        assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
        assert_eq!(f.stdout_str(), "hello\n");
        assert_no_secret(&format!("{verbosity:?} RUST_LOG={rust_log:?}"), &f);

        let (_, headers) = server.requests.try_recv().expect("the upgrade request");
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("svc-user:{BASIC_PASSWORD}"));
        assert_eq!(
            headers.get("authorization").unwrap(),
            &format!("Basic {basic}")
        );
        assert_eq!(headers.get("x-api-token").unwrap(), CRED_TOKEN);
        assert_eq!(headers.get("cookie").unwrap(), &format!("s={CRED_COOKIE}"));
        assert_eq!(headers.get("x-tenant").unwrap(), CRED_PLAIN);
    }
}

#[tokio::test]
async fn secrets_from_files_stay_hidden_when_refused() {
    let secrets = Secrets::new();
    let refusing =
        servers::http_responder("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n").await;
    let url = format!("ws://127.0.0.1:{refusing}/");
    let f = harness::run_cmd(secrets.command(&["-vvv"], &url), b"hello\n").await;
    assert_eq!(f.code, Some(6), "stderr: {}", f.stderr);
    assert!(f.stderr.contains("HTTP 401"), "{}", f.stderr);
    assert_no_secret("refused", &f);
}

#[tokio::test]
async fn credential_errors_are_clear() {
    let secrets = Secrets::new();
    let url = "ws://127.0.0.1:9/";

    // Outside systemd: no CREDENTIALS_DIRECTORY.
    let mut cmd = secrets.command(&[], url);
    cmd.env_remove("CREDENTIALS_DIRECTORY");
    let f = harness::run_cmd(cmd, b"").await;
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert_one_line_error(
        &f,
        "--header-credential api: CREDENTIALS_DIRECTORY is not set",
    );

    // A credential that was not loaded.
    let mut cmd = harness::command(&["--header-credential", "nope", url]);
    cmd.env(
        "CREDENTIALS_DIRECTORY",
        secrets.dir.path().join("credentials"),
    );
    let f = harness::run_cmd(cmd, b"").await;
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "--header-credential nope: cannot read header file");

    // --basic-auth-file and --basic-auth (here from the environment) exclude each other.
    let mut cmd = secrets.command(&[], url);
    cmd.env("WSBRIDGE_BASIC_AUTH", "x:SECRETenv");
    let f = harness::run_cmd(cmd, b"").await;
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "--basic-auth-file and --basic-auth");
    assert!(!f.stderr.contains("SECRETenv"), "{}", f.stderr);

    // A basic-auth file without a colon: the content is not echoed.
    let bad = secrets.dir.path().join("bad");
    std::fs::write(&bad, format!("{BASIC_PASSWORD}\n")).unwrap();
    let f = harness::run_cmd(
        harness::command(&["--basic-auth-file", bad.to_str().unwrap(), url]),
        b"",
    )
    .await;
    assert_eq!(f.code, Some(2), "stderr: {}", f.stderr);
    assert_one_line_error(&f, "expected USER:PASS");
    assert_no_secret("bad basic-auth file", &f);
}
