//! `Cli` → `Config`: the only place where clap's types become domain types. `from_cli` reads the
//! addresses (`addresses`), checks the rules (`rules`), and builds each section (`sections`);
//! headers and secrets are in `headers`, framing options in `framing`.

use std::path::PathBuf;

use crate::addr::Address;
use crate::cli::Cli;
use crate::error::Result;

mod addresses;
mod framing;
mod headers;
mod rules;
mod sections;

pub use crate::endpoint::{ExecOptions, Header, ListenOptions, ServerOptions, WsClientOptions};
use crate::relay::framing::Framing;
use crate::relay::{RelayOptions, UptimeOptions};
use sections::{
    client_options, exec_options, log_level, relay_options, server_options, uptime_options,
};

/// A validated run: two addresses and the options each layer needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// ADDR1: a listener or a connecting endpoint.
    pub left: Address,
    /// ADDR2: always a connecting endpoint (opened afresh for each accepted client).
    pub right: Address,
    pub relay: RelayOptions,
    pub ws: WsClientOptions,
    pub listen: ListenOptions,
    pub server: ServerOptions,
    pub uptime: UptimeOptions,
    /// How exec: / sh-c: / exec-dir: children run (argv empty without a program).
    pub exec: ExecOptions,
    pub log: LogLevel,
    /// `--max-buffered`: the process-wide budget for incoming message bytes (see `budget`).
    pub max_buffered: usize,
    /// `--metrics`: where to serve the metrics.
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Quiet,
    Normal,
    Verbose(u8),
}

impl Config {
    /// Validate what the user typed. `ssl_cert_file` is the `SSL_CERT_FILE` environment value.
    pub fn from_cli(cli: Cli, ssl_cert_file: Option<PathBuf>) -> Result<Config> {
        let (left, right, oneshot) = addresses::addresses(&cli)?;
        rules::pairing(&left, &right, oneshot)?;
        rules::needs(&cli, &left, &right)?;
        rules::options(&cli, &left, &right)?;
        rules::exec(&cli, &left, &right)?;
        let framing = framing::framing_options(&cli)?;
        rules::limits(&cli, &framing)?;
        let mut exec = exec_options(&cli, &left, &right)?;
        exec.pty_lines = matches!(framing.framing, Framing::Lines | Framing::Jsonl);
        let mut server = server_options(&cli)?;
        server.exec_dir = exec.dir.clone();
        Ok(Config {
            relay: relay_options(&cli, framing, matches!(left, Address::WsListen(_))),
            ws: client_options(&cli, ssl_cert_file)?,
            uptime: uptime_options(&cli),
            listen: ListenOptions {
                oneshot,
                max_conns: cli.max_conns,
                threads: crate::workers::count(cli.threads),
                unix_mode: cli.unix_mode,
                announce_stdout: cli.announce_stdout,
            },
            server,
            exec,
            log: log_level(&cli),
            max_buffered: cli.max_buffered,
            metrics: sections::metrics_addr(&cli)?,
            left,
            right,
        })
    }
}

/// `--max-message-size` when not given: for what wsbridge reads as a client, and what it sends.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// `--max-message-size` when not given, for what clients of `ws-listen:` send: one client on
/// the open internet holds at most about this much of a message in memory.
pub const DEFAULT_SERVER_MAX_MESSAGE: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::headers::header_credentials;
    use super::*;
    use crate::relay::framing::Framing;
    use crate::relay::framing::Mode;
    use crate::secret::is_secret_header;
    use clap::Parser;

    fn config(args: &[&str]) -> Result<Config> {
        let mut argv = vec!["wsbridge"];
        argv.extend_from_slice(args);
        Config::from_cli(Cli::try_parse_from(argv).expect("clap"), None)
    }

    #[test]
    fn single_url_means_stdio() {
        let c = config(&["ws://h/"]).unwrap();
        assert_eq!(c.left, Address::Stdio);
        assert!(matches!(c.right, Address::Ws(_)));
        assert_eq!(c.relay.framing.mode, Mode::Text);
        assert_eq!(c.relay.framing.framing, Framing::Lines);
        assert_eq!(
            config(&["-b", "ws://h/"]).unwrap().relay.framing.framing,
            Framing::Raw
        );
        assert_eq!(
            config(&["-0", "ws://h/"]).unwrap().relay.framing.framing,
            Framing::Nul
        );
        let c = config(&["-1", "ws://h/"]).unwrap();
        assert_eq!(
            (c.relay.max_forward, c.relay.max_reverse),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn pairing_errors() {
        let table: &[(&[&str], &str)] = &[
            (
                &["tcp:h:1"],
                "a single address must be a ws:// or wss:// URL",
            ),
            (
                &["ws://h/", "tcp-l:127.0.0.1:0"],
                "a listener must be the first address: try 'wsbridge tcp-listen:127.0.0.1:0 ws://h/'",
            ),
            (
                &["tcp-l:127.0.0.1:0", "unix-l:/x"],
                "only one address can listen",
            ),
            (&["-", "stdio:"], "nothing to bridge"),
            (
                &["inetd:", "-"],
                "both standard input/output: nothing to bridge",
            ),
            (
                &["sd-listen:web", "inetd:"],
                "'sd-listen:web inetd:': standard input/output can serve only one client",
            ),
            (
                &["inetd:", "sd-listen:"],
                "a listener must be the first address: try 'wsbridge sd-listen: inetd:'",
            ),
            (
                &["--unix-mode", "0600", "sd-listen:", "ws://h/"],
                "--unix-mode needs unix-listen:",
            ),
            (
                &["--announce-stdout", "--oneshot", "sd-listen:", "inetd:"],
                "--announce-stdout needs",
            ),
            (
                &["-H", "A: b", "-", "tcp:h:1"],
                "-H/--header needs a ws:// or wss:// address",
            ),
            (
                &["--unix-mode", "0600", "tcp-l:127.0.0.1:0", "ws://h/"],
                "--unix-mode needs unix-listen:",
            ),
            (
                &["--tls-cert", "c.pem", "ws-l:127.0.0.1:0", "mirror:"],
                "--tls-cert needs wss-listen:",
            ),
            (
                &["wss-l:127.0.0.1:0", "mirror:"],
                "needs --tls-cert PEM and --tls-key PEM",
            ),
            (
                &["--origin-allow", "http://x", "tcp-l:127.0.0.1:0", "mirror:"],
                "--origin-allow needs ws-listen:",
            ),
            (
                &["--max-conns", "3", "-", "ws://h/"],
                "--max-conns needs a listener",
            ),
            (&["mirror:", "broadcast:"], "broadcast: needs a listener"),
            (
                &["ws-l:127.0.0.1:0", "exec:'unbalanced"],
                "unbalanced single quote",
            ),
            (
                &["tcp-l:127.0.0.1:0", "-"],
                "can serve only one client: add --oneshot",
            ),
            (
                &["--framing", "webfs", "--base64", "ws://h/"],
                "--base64 needs lines or nul framing (framing is webfs)",
            ),
            (
                &["-b", "--text-prefix", "t", "ws://h/"],
                "--text-prefix needs lines or nul framing (framing is raw)",
            ),
            (
                &["--jsonl-events", "ws://h/"],
                "--jsonl-events needs jsonl framing",
            ),
            (
                &["--framing", "nul", "--jsonrpc", "ws://h/"],
                "--jsonrpc needs lines framing",
            ),
            (
                &["--close-code", "1005", "ws://h/"],
                "not a code that may be sent",
            ),
            (
                &["--close-code", "999", "ws://h/"],
                "not a code that may be sent",
            ),
            (
                &["-1", "--max-messages", "2", "ws://h/"],
                "give one or the others",
            ),
            (
                &["--text-prefix", "x", "--binary-prefix", "x", "ws://h/"],
                "must differ",
            ),
            (&["-H", "bad header", "ws://h/"], "expected 'Name: value'"),
            (&["-H", "Bad Name: x", "ws://h/"], "not a valid header name"),
            (
                &["-H", "@/nonexistent/file", "ws://h/"],
                "cannot read header file",
            ),
            (&["--basic-auth", "nopass", "ws://h/"], "USER:PASS"),
            (
                &["--announce-stdout", "-", "ws://h/"],
                "--announce-stdout needs",
            ),
        ];
        for (args, want) in table {
            let err = config(args).expect_err(&format!("{args:?}")).to_string();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn server_header_foot_guns_are_usage_errors() {
        let base = ["ws-l:127.0.0.1:0", "exec:cat"];
        for (flags, want) in [
            (
                ["--pass-header", "Proxy"],
                "as HTTP_PROXY, their proxy setting (httpoxy)",
            ),
            (["--pass-header", " PROXY"], "as HTTP_PROXY"),
            (
                ["--pass-header", "Host"],
                "handshake headers cannot be passed on",
            ),
            (
                ["--require-header", "X-Api-Key: "],
                "--require-header X-Api-Key: the value is empty",
            ),
            (["--require-header", "X-Api-Key:\t"], "the value is empty"),
        ] {
            let args: Vec<&str> = base.iter().chain(&flags).copied().collect();
            let err = config(&args).expect_err(&format!("{flags:?}")).to_string();
            assert!(err.contains(want), "{flags:?}: {err}");
        }
        let c = config(&[
            "ws-l:127.0.0.1:0",
            "exec:cat",
            "--pass-header",
            "X-Proxy",
            "--require-header",
            "X-Api-Key: k",
        ])
        .unwrap();
        assert_eq!(c.server.pass_headers, ["x-proxy"]);
        assert_eq!(c.server.require_headers[0].value, "k");
    }

    #[test]
    fn header_values_are_never_in_errors() {
        let err = config(&["-H", "Authorization: Bearer sekrit\u{7f}", "ws://h/"])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("sekrit"), "{err}");
    }

    #[test]
    fn headers_from_file_and_secret_marking() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h");
        std::fs::write(&f, "# comment\nAuthorization: Bearer abc\r\n\nX-Room: 7\n").unwrap();
        let arg = format!("@{}", f.display());
        let c = config(&["-H", &arg, "-H", "Cookie: a=b", "ws://h/"]).unwrap();
        let names: Vec<_> =
            c.ws.headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.is_sensitive()))
                .collect();
        assert_eq!(
            names,
            [("authorization", true), ("x-room", false), ("cookie", true)]
        );
        assert_eq!(c.ws.headers[0].value, "Bearer abc");
    }

    #[test]
    fn secrets_from_files_and_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("basic");
        std::fs::write(&f, "alice:pa:ss\n").unwrap();
        let path = f.to_str().unwrap();
        let c = config(&["--basic-auth-file", path, "ws://h/"]).unwrap();
        assert_eq!(c.ws.basic_auth.as_deref(), Some("alice:pa:ss"));
        let err = config(&["--basic-auth-file", path, "--basic-auth", "a:b", "ws://h/"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("both given"), "{err}");
        for (content, want) in [
            ("nocolon-SECRETX\n", "expected USER:PASS"),
            ("a:SECRETX\nb:c\n", "several lines"),
        ] {
            std::fs::write(&f, content).unwrap();
            let err = config(&["--basic-auth-file", path, "ws://h/"])
                .unwrap_err()
                .to_string();
            assert!(err.contains(want) && !err.contains("SECRETX"), "{err}");
        }
        let err = config(&["--basic-auth-file", path, "-", "tcp:h:1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--basic-auth-file needs a ws://"), "{err}");

        std::fs::write(dir.path().join("auth"), "Authorization: Bearer xyz\n").unwrap();
        let names = vec!["auth".to_string()];
        let h = header_credentials(&names, Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(h.len(), 1);
        assert!(h[0].value.is_sensitive());
        let err = header_credentials(&names, None).unwrap_err().to_string();
        assert!(err.contains("CREDENTIALS_DIRECTORY is not set"), "{err}");
        let err = header_credentials(&["missing".into()], Some(dir.path().to_path_buf()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--header-credential missing: cannot read"),
            "{err}"
        );
        let err = header_credentials(&["../x".into()], Some(dir.path().to_path_buf()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("without '/'"), "{err}");
    }

    #[test]
    fn client_options_need_a_websocket_and_a_valid_proxy() {
        for (args, want) in [
            (
                &["--proxy", "http://p:1", "-", "tcp:h:1"][..],
                "--proxy needs",
            ),
            (&["-L", "-", "tcp:h:1"][..], "-L/--follow-redirects needs"),
            (
                &["--tls-roots", "system", "-", "tcp:h:1"][..],
                "--tls-roots needs",
            ),
            (
                &["--proxy", "ftp://u:pw7@p:1", "ws://h/"][..],
                "--proxy: proxy",
            ),
        ] {
            let err = config(args).expect_err(&format!("{args:?}")).to_string();
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(!err.contains("pw7"), "{err}");
        }
        let c = config(&["--proxy", "none", "-L", "ws://h/"]).unwrap();
        assert_eq!(c.ws.proxy.as_deref(), Some("none"));
        assert!(c.ws.follow_redirects);
    }

    #[test]
    fn directions_and_env_ca() {
        let c = Config::from_cli(
            Cli::try_parse_from(["wsbridge", "-u", "ws://h/"]).unwrap(),
            Some("/ca.pem".into()),
        )
        .unwrap();
        assert!(c.relay.forward && !c.relay.reverse);
        assert_eq!(c.ws.ca_files, [PathBuf::from("/ca.pem")]);
        let c = config(&["-U", "ws://h/"]).unwrap();
        assert!(!c.relay.forward && c.relay.reverse);
    }

    #[test]
    fn server_shorthand_and_exec() {
        let c = config(&["-s", "8080"]).unwrap();
        assert_eq!(c.left.to_string(), "ws-listen:127.0.0.1:8080");
        assert_eq!(c.right, Address::Stdio);
        assert!(c.listen.oneshot);
        let c = config(&["-s", "0.0.0.0:9", "mirror:"]).unwrap();
        assert_eq!(c.left.to_string(), "ws-listen:0.0.0.0:9");
        assert!(!c.listen.oneshot);
        let c = config(&[
            "ws-l:127.0.0.1:0",
            "exec:'my prog' \"a b\" c\\ d",
            "--exec-args",
            "-x",
            "--y",
        ])
        .unwrap();
        assert_eq!(c.exec.argv, ["my prog", "a b", "c d", "-x", "--y"]);
        let c = config(&["ws-l:127.0.0.1:0", "sh-c:echo $X | wc"]).unwrap();
        assert_eq!(c.exec.argv, ["/bin/sh", "-c", "echo $X | wc"]);
    }

    #[test]
    fn secret_header_names() {
        for n in [
            "Authorization",
            "Cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "Proxy-Authorization",
        ] {
            assert!(is_secret_header(n), "{n}");
        }
        for n in [
            "X-Room",
            "Origin",
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Key",
        ] {
            assert!(!is_secret_header(n), "{n}");
        }
    }
}
