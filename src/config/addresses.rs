//! The two addresses from the command line (`ADDR1 ADDR2`, one `ws://` URL, or `-s`), and the
//! word splitting of `exec:` commands.

use crate::addr::Address;
use crate::cli::Cli;
use crate::error::{Error, Result};

/// The two addresses (ADDR1, ADDR2) and whether to serve one client only.
pub(super) fn addresses(cli: &Cli) -> Result<(Address, Address, bool)> {
    let parse = |s: &str| {
        s.parse::<Address>()
            .map_err(|e| Error::Usage(e.to_string()))
    };
    if let Some(server) = &cli.server {
        // -s [HOST:]PORT [ADDR]: ws-listen there; ADDR (default stdio, one client) behind it.
        if cli.addr2.is_some() {
            return Err(Error::Usage(
                "-s takes at most one address (what to serve)".into(),
            ));
        }
        let hp = if server.contains(':') {
            server.clone()
        } else {
            format!("127.0.0.1:{server}")
        };
        let left = parse(&format!("ws-listen:{hp}"))?;
        let right = match (&cli.exec_dir, cli.addr1.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(
                    "--exec-dir takes the place of the address to serve".into(),
                ));
            }
            (Some(dir), None) => Address::ExecDir(dir.clone()),
            (None, a) => a.map(parse).transpose()?.unwrap_or(Address::Stdio),
        };
        let oneshot = cli.oneshot || right.uses_stdio();
        return Ok((left, right, oneshot));
    }
    let first = parse(
        cli.addr1
            .as_deref()
            .ok_or_else(|| Error::Usage("no address given".into()))?,
    )?;
    if let Some(dir) = &cli.exec_dir {
        if cli.addr2.is_some() {
            return Err(Error::Usage(
                "--exec-dir takes the place of ADDR2: give one address (ws-listen:…)".into(),
            ));
        }
        return Ok((first, Address::ExecDir(dir.clone()), cli.oneshot));
    }
    match cli.addr2.as_deref() {
        Some(second) => Ok((first, parse(second)?, cli.oneshot)),
        None => match first {
            Address::Ws(_) => Ok((Address::Stdio, first, cli.oneshot)),
            other => Err(Error::Usage(format!(
                "one address given ('{other}'): a single address must be a ws:// or wss:// URL (the other side is then stdio); otherwise give two addresses"
            ))),
        },
    }
}

/// Split `prog 'arg one' "arg two"` into words: whitespace separates, single and double quotes
/// group, backslash escapes the next character outside single quotes. No expansions.
pub fn split_command(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unbalanced single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or("unbalanced double quote")?),
                        Some(c) => cur.push(c),
                        None => return Err("unbalanced double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or("trailing backslash")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}
