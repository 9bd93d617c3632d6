//! Request headers from the command line and files: `-H`, `-H @FILE`, `--header-credential`,
//! `--basic-auth-file`, `--require-header`, `--pass-header`, `--auth-token-file`; which header
//! names are secrets. Errors name a header, never its value.

use std::path::PathBuf;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use super::Header;
use crate::error::{Error, Result};

use crate::secret::is_secret_header;

/// `--require-header 'Name: value'`: the value must not be empty (an unset variable in
/// `"X-Api-Key: $KEY"` would otherwise make an empty header pass).
pub(super) fn require_headers(args: &[String]) -> Result<Vec<Header>> {
    args.iter()
        .map(|arg| {
            let h =
                parse_header(arg).map_err(|e| Error::Usage(format!("--require-header: {e}")))?;
            if h.value.is_empty() {
                let name = arg.split_once(':').map_or(arg.as_str(), |(n, _)| n.trim());
                return Err(Error::Usage(format!(
                    "--require-header {name}: the value is empty (an unset variable?)"
                )));
            }
            Ok(h)
        })
        .collect()
}

/// `--auth-token-file FILE`: its content without surrounding whitespace; never empty.
pub(super) fn read_auth_token(path: Option<&std::path::Path>) -> Result<Option<String>> {
    path.map(|p| read_secret_file(p, "--auth-token-file"))
        .transpose()
}

/// A secret held alone in a file (surrounding whitespace removed); `flag` names it in errors,
/// which never show the content.
pub(super) fn read_secret_file(path: &std::path::Path, flag: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{flag} {}: {e}", path.display())))?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        return Err(Error::Usage(format!(
            "{flag} {}: the file is empty",
            path.display()
        )));
    }
    Ok(secret)
}

/// `--pass-header NAME`: not a header of the handshake itself, and not `Proxy`, which children
/// would get as `HTTP_PROXY`, the variable that sets their proxy (httpoxy).
pub(super) fn pass_headers(names: &[String]) -> Result<Vec<HeaderName>> {
    const HANDSHAKE: &[&str] = &[
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "content-length",
        "transfer-encoding",
    ];
    let usage = |m: String| Err(Error::Usage(format!("--pass-header {m}")));
    let mut out = Vec::new();
    for name in names {
        let lower = name.trim().to_ascii_lowercase();
        if HANDSHAKE.contains(&lower.as_str()) {
            return usage(format!("{name}: handshake headers cannot be passed on"));
        }
        if lower == "proxy" {
            return usage(format!(
                "{name}: children would get the client's value as HTTP_PROXY, their proxy setting (httpoxy)"
            ));
        }
        match HeaderName::from_bytes(lower.as_bytes()) {
            Ok(h) => out.push(h),
            Err(_) => {
                return Err(Error::Usage(format!(
                    "--pass-header: '{name}' is not a valid header name"
                )));
            }
        }
    }
    Ok(out)
}

/// `-H 'Name: value'` or `-H @FILE` (one header per line; blank lines and `#` comments skipped).
pub(super) fn parse_header_arg(arg: &str) -> Result<Vec<Header>> {
    if let Some(path) = arg.strip_prefix('@') {
        parse_header_file(std::path::Path::new(path), &format!("-H @{path}"))
    } else {
        Ok(vec![
            parse_header(arg).map_err(|e| Error::Usage(format!("-H: {e}")))?,
        ])
    }
}

/// Header lines from a file (`-H @FILE`, `--header-credential`); `what` names the source in
/// errors. Errors name the line, never its value.
pub(super) fn parse_header_file(path: &std::path::Path, what: &str) -> Result<Vec<Header>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{what}: cannot read header file: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        out.push(
            parse_header(line).map_err(|e| Error::Usage(format!("{what}, line {}: {e}", i + 1)))?,
        );
    }
    Ok(out)
}

/// `--header-credential NAME…`: header lines from `$CREDENTIALS_DIRECTORY/NAME` (systemd's
/// `LoadCredential=`), read like `-H @FILE`. `dir` is the value of CREDENTIALS_DIRECTORY.
pub(super) fn header_credentials(names: &[String], dir: Option<PathBuf>) -> Result<Vec<Header>> {
    let mut out = Vec::new();
    for name in names {
        let what = format!("--header-credential {name}");
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::Usage(format!(
                "{what}: a credential name is a file name, without '/'"
            )));
        }
        let Some(dir) = dir.as_ref().filter(|d| !d.as_os_str().is_empty()) else {
            return Err(Error::Usage(format!(
                "{what}: CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with \
                 LoadCredential={name}:FILE; outside systemd use -H @FILE)"
            )));
        };
        out.extend(parse_header_file(&dir.join(name), &what)?);
    }
    Ok(out)
}

/// `--basic-auth-file FILE`: one line `USER:PASS`; a trailing newline is not part of it. Errors
/// never show the file's content.
pub(super) fn read_basic_auth_file(path: &std::path::Path) -> Result<String> {
    let what = format!("--basic-auth-file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("{what}: {e}")))?;
    let pair = text.trim_end_matches(['\n', '\r']);
    if pair.contains(['\n', '\r']) {
        return Err(Error::Usage(format!(
            "{what}: expected one line USER:PASS, found several lines"
        )));
    }
    if !pair.contains(':') {
        return Err(Error::Usage(format!("{what}: expected USER:PASS")));
    }
    Ok(pair.to_string())
}

/// `Name: value` → Header. Error messages show the name only, never the value.
pub(super) fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| "expected 'Name: value'".to_string())?;
    let name = name.trim();
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("'{name}' is not a valid header name"))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of header '{name}' contains invalid characters"))?;
    if is_secret_header(name.as_str()) {
        value.set_sensitive(true);
    }
    Ok(Header { name, value })
}
