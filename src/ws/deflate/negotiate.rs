//! permessage-deflate negotiation (RFC 7692 §5, §7.1): the client's offer, the server's choice
//! among a client's offers, and the client's check of the server's answer. Pure: header values
//! in, parameters and header values out.

use super::{DeflateOptions, Negotiated, SERVER_CLIENT_BITS};

/// The extension's registered name.
pub(crate) const NAME: &str = "permessage-deflate";

/// The parameters of one permessage-deflate offer or answer, checked (RFC 7692 §7.1): known
/// names only, each at most once, window bits a decimal 8–15. `Some(None)` is a bare
/// `client_max_window_bits` (allowed in an offer only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: Option<u8>,
    pub(crate) client_max_window_bits: Option<Option<u8>>,
}

/// One extension of a `Sec-WebSocket-Extensions` list: its name and raw parameters.
type Extension = (String, Vec<(String, Option<String>)>);

/// Parse `Sec-WebSocket-Extensions` values (RFC 6455 §9.1: a comma-separated list of
/// `name *(";" param["=" value])`, values tokens or quoted strings), all header lines in order.
pub(crate) fn parse_list<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Extension>, String> {
    let mut out = Vec::new();
    for value in values {
        let mut rest = value;
        while !rest.trim().is_empty() {
            let (ext, after) = parse_extension(rest)?;
            out.extend(ext);
            rest = after;
        }
    }
    Ok(out)
}

/// One list element from the front of `s` (`None` for an empty element), and what follows it.
fn parse_extension(s: &str) -> Result<(Option<Extension>, &str), String> {
    let (name, mut rest) = token(s);
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start();
        match rest.chars().next() {
            None => break,
            Some(',') => {
                rest = &rest[1..];
                break;
            }
            Some(';') => {
                let (key, after) = token(&rest[1..]);
                if key.is_empty() {
                    return Err("a parameter without a name".into());
                }
                let after = after.trim_start();
                let (value, after) = match after.strip_prefix('=') {
                    Some(v) => value(v.trim_start()).map(|(v, a)| (Some(v), a))?,
                    None => (None, after),
                };
                params.push((key.to_ascii_lowercase(), value));
                rest = after;
            }
            Some(c) => return Err(format!("unexpected {c:?} in the extension list")),
        }
    }
    if name.is_empty() {
        return if params.is_empty() {
            Ok((None, rest))
        } else {
            Err("parameters without an extension name".into())
        };
    }
    Ok((Some((name.to_ascii_lowercase(), params)), rest))
}

/// A token (RFC 7230 tchar) after optional whitespace, and the rest.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// A parameter value: a token or a quoted string (with `\` escapes).
fn value(s: &str) -> Result<(String, &str), String> {
    let Some(quoted) = s.strip_prefix('"') else {
        let (t, rest) = token(s);
        if t.is_empty() {
            return Err("a parameter with '=' but no value".into());
        }
        return Ok((t.to_string(), rest));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &quoted[i + 1..])),
            '\\' => out.push(chars.next().ok_or("an unfinished quoted value")?.1),
            c => out.push(c),
        }
    }
    Err("an unfinished quoted value".into())
}

impl Params {
    /// Check the raw parameters of one permessage-deflate element. `answer`: a server's answer,
    /// where `client_max_window_bits` needs a value.
    pub(crate) fn check(raw: &[(String, Option<String>)], answer: bool) -> Result<Params, String> {
        let mut p = Params::default();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in raw {
            if seen.contains(&key.as_str()) {
                return Err(format!("{key} given twice"));
            }
            seen.push(key);
            match key.as_str() {
                "server_no_context_takeover" | "client_no_context_takeover" => {
                    if value.is_some() {
                        return Err(format!("{key} takes no value"));
                    }
                    if key.starts_with("server") {
                        p.server_no_context_takeover = true;
                    } else {
                        p.client_no_context_takeover = true;
                    }
                }
                "server_max_window_bits" => {
                    let v = value.as_deref().ok_or(format!("{key} needs a value"))?;
                    p.server_max_window_bits = Some(bits(key, v)?);
                }
                "client_max_window_bits" => {
                    p.client_max_window_bits = Some(match value.as_deref() {
                        Some(v) => Some(bits(key, v)?),
                        None if answer => return Err(format!("{key} needs a value")),
                        None => None,
                    });
                }
                _ => return Err(format!("unknown parameter {key}")),
            }
        }
        Ok(p)
    }
}

/// A window size: a decimal 8–15 without leading zeroes.
fn bits(key: &str, v: &str) -> Result<u8, String> {
    match v.parse::<u8>() {
        Ok(b @ 8..=15) if !v.starts_with('0') && !v.starts_with('+') => Ok(b),
        _ => Err(format!("{key}={v} is not a window size (8 to 15)")),
    }
}

impl DeflateOptions {
    /// The client's offer: always `client_max_window_bits` (the server may then limit our
    /// window); the server's window and context takeover limited as configured.
    pub(crate) fn offer(&self) -> String {
        let mut s = format!("{NAME}; client_max_window_bits");
        if let Some(b @ ..15) = self.window_bits {
            // Never 8 from us: zlib-based peers cannot compress with it and refuse the offer.
            s.push_str(&format!("; server_max_window_bits={}", b.max(9)));
        }
        if self.no_context_takeover {
            s.push_str("; server_no_context_takeover; client_no_context_takeover");
        }
        s
    }

    /// The client's check of the server's answer (`values`: its `Sec-WebSocket-Extensions`
    /// lines). `Ok(None)`: the server declined. An answer the offer does not allow is an error.
    pub(crate) fn accept_answer(&self, values: &[&str]) -> Result<Option<Negotiated>, String> {
        let list = parse_list(values.iter().copied())?;
        let Some((name, raw)) = list.first() else {
            return Ok(None);
        };
        if name != NAME {
            return Err(format!(
                "the server chose the extension '{name}', which was not offered"
            ));
        }
        if list.len() > 1 {
            return Err(format!(
                "the server answered with {} extensions; one was offered",
                list.len()
            ));
        }
        let p = Params::check(raw, true)?;
        if self.no_context_takeover && !p.server_no_context_takeover {
            return Err("server_no_context_takeover was asked for and not confirmed".into());
        }
        let asked = self.window_bits.unwrap_or(15).max(9);
        match p.server_max_window_bits {
            Some(b) if b > asked => {
                return Err(format!(
                    "server_max_window_bits={b} is over the {asked} asked for"
                ));
            }
            None if asked < 15 => {
                return Err(format!(
                    "server_max_window_bits={asked} was asked for and not confirmed"
                ));
            }
            _ => {}
        }
        let client_bits = p.client_max_window_bits.flatten().unwrap_or(15);
        Ok(Some(Negotiated {
            tx_bits: client_bits.min(self.window_bits.unwrap_or(15)),
            tx_takeover: !(p.client_no_context_takeover || self.no_context_takeover),
            rx_takeover: !p.server_no_context_takeover,
            rx_bits: p.server_max_window_bits.unwrap_or(15),
            level: self.level,
            answer: None,
        }))
    }

    /// The server's choice (RFC 7692 §5.1): the first valid permessage-deflate offer among
    /// `values`, with the answer to send; `None` when there is none (or compression is off).
    /// Offers with bad parameters are declined, never refused.
    pub fn choose(&self, values: &[&str]) -> Option<Negotiated> {
        if !self.enabled {
            return None;
        }
        // A list that does not parse at all is treated as no offer.
        let list = parse_list(values.iter().copied()).ok()?;
        list.iter()
            .filter(|(name, _)| name == NAME)
            .find_map(|(_, raw)| Params::check(raw, false).ok())
            .map(|offer| self.answer(&offer))
    }

    fn answer(&self, offer: &Params) -> Negotiated {
        let mut answer = NAME.to_string();
        let tx_takeover = !(offer.server_no_context_takeover || self.no_context_takeover);
        if !tx_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        // Our own window is ours to choose: announced only when the client asked for a limit.
        let mut tx_bits = self.window_bits.unwrap_or(15);
        if let Some(b) = offer.server_max_window_bits {
            tx_bits = tx_bits.min(b);
            answer.push_str(&format!("; server_max_window_bits={tx_bits}"));
        }
        let rx_takeover = !(offer.client_no_context_takeover || self.no_context_takeover);
        if !rx_takeover {
            answer.push_str("; client_no_context_takeover");
        }
        // The client's window bounds the decompressor we keep: limited when the offer allows.
        let mut rx_bits = 15;
        if let Some(offered) = offer.client_max_window_bits {
            // Never 8: zlib-based clients (Python websockets) cannot compress with it and fail.
            let limit = self.window_bits.unwrap_or(SERVER_CLIENT_BITS).max(9);
            rx_bits = offered.unwrap_or(15).min(limit);
            if rx_bits < 15 {
                answer.push_str(&format!("; client_max_window_bits={rx_bits}"));
            }
        }
        Negotiated {
            tx_bits,
            tx_takeover,
            rx_takeover,
            rx_bits,
            level: self.level,
            answer: Some(answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DeflateOptions {
        DeflateOptions::default()
    }

    #[test]
    fn lists_parse_with_quotes_and_several_lines() {
        let l = parse_list([
            "permessage-deflate; client_max_window_bits=\"10\", x-foo",
            " , permessage-deflate ;server_no_context_takeover",
        ])
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[0].1,
            [("client_max_window_bits".into(), Some("10".into()))]
        );
        assert_eq!(l[1], ("x-foo".into(), vec![]));
        assert_eq!(l[2].1, [("server_no_context_takeover".into(), None)]);
        for bad in ["a; =1", "a; b=", "a; b=\"x", "a b", "; b"] {
            assert!(parse_list([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_are_checked() {
        let check = |s: &str, answer| {
            let l = parse_list([s]).unwrap();
            Params::check(&l[0].1, answer)
        };
        assert!(check("p; client_max_window_bits", false).is_ok());
        assert!(check("p; client_max_window_bits", true).is_err());
        for bad in [
            "p; server_max_window_bits",
            "p; server_max_window_bits=7",
            "p; server_max_window_bits=16",
            "p; server_max_window_bits=010",
            "p; client_max_window_bits=abc",
            "p; server_no_context_takeover=1",
            "p; server_no_context_takeover; server_no_context_takeover",
            "p; mystery",
        ] {
            assert!(check(bad, false).is_err(), "{bad}");
        }
        let p = check(
            "p; server_max_window_bits=9; client_no_context_takeover",
            false,
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, Some(9));
        assert!(p.client_no_context_takeover);
    }

    #[test]
    fn the_default_offer_and_a_plain_answer() {
        assert_eq!(opts().offer(), "permessage-deflate; client_max_window_bits");
        let n = opts()
            .accept_answer(&["permessage-deflate"])
            .unwrap()
            .unwrap();
        assert_eq!((n.tx_bits, n.tx_takeover, n.rx_takeover), (15, true, true));
        assert_eq!(opts().accept_answer(&[]).unwrap(), None);
    }

    #[test]
    fn every_answer_the_rfc_allows_is_taken() {
        let n = opts()
            .accept_answer(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=9"])
            .unwrap()
            .unwrap();
        assert_eq!((n.tx_bits, n.tx_takeover, n.rx_takeover), (9, false, false));
    }

    #[test]
    fn invalid_answers_are_errors() {
        let o = DeflateOptions {
            window_bits: Some(12),
            no_context_takeover: true,
            ..opts()
        };
        for bad in [
            "x-other",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_max_window_bits; server_no_context_takeover; server_max_window_bits=12",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=13",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=12",
            "permessage-deflate; unknown=1",
        ] {
            assert!(o.accept_answer(&[bad]).is_err(), "{bad}");
        }
        assert!(
            o.accept_answer(&[
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
            ])
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn the_server_takes_the_first_valid_offer() {
        let n = opts()
            .choose(&["x-foo, permessage-deflate; bogus, permessage-deflate; client_max_window_bits; server_max_window_bits=10"])
            .unwrap();
        assert_eq!(
            n.answer.as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=12")
        );
        assert_eq!((n.tx_bits, n.tx_takeover, n.rx_takeover), (10, true, true));
        assert_eq!(n.rx_bits, 12);
        // A client that allows no limit on its window gets none: the decompressor has 15 bits.
        let n = opts().choose(&["permessage-deflate"]).unwrap();
        assert_eq!(n.answer.as_deref(), Some("permessage-deflate"));
        assert_eq!(n.rx_bits, 15);
        assert!(opts().choose(&["permessage-deflate; bogus"]).is_none());
        assert!(opts().choose(&["x-webkit-deflate-frame"]).is_none());
        let off = DeflateOptions {
            enabled: false,
            ..opts()
        };
        assert!(off.choose(&["permessage-deflate"]).is_none());
    }

    #[test]
    fn the_server_honours_no_context_takeover_and_limits() {
        let n = opts()
            .choose(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover"])
            .unwrap();
        assert_eq!(
            n.answer.as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!((n.tx_takeover, n.rx_takeover), (false, false));
        let small = DeflateOptions {
            window_bits: Some(11),
            ..opts()
        };
        let n = small
            .choose(&["permessage-deflate; client_max_window_bits"])
            .unwrap();
        assert_eq!(
            n.answer.as_deref(),
            Some("permessage-deflate; client_max_window_bits=11")
        );
        assert_eq!(n.tx_bits, 11);
        let n = opts()
            .choose(&["permessage-deflate; client_max_window_bits=9"])
            .unwrap();
        assert_eq!(
            n.answer.as_deref(),
            Some("permessage-deflate; client_max_window_bits=9")
        );
    }

    #[test]
    fn our_offer_is_one_our_server_accepts() {
        for o in [
            opts(),
            DeflateOptions {
                window_bits: Some(9),
                no_context_takeover: true,
                ..opts()
            },
        ] {
            let n = o.choose(&[o.offer().as_str()]).unwrap();
            let back = o
                .accept_answer(&[n.answer.as_deref().unwrap()])
                .unwrap()
                .unwrap();
            assert_eq!(back.rx_takeover, n.tx_takeover);
            assert_eq!(back.tx_takeover, n.rx_takeover);
            let limit = o.window_bits.unwrap_or(15);
            assert!(back.tx_bits <= limit && n.tx_bits <= limit);
            // Each side compresses within the window the other decompresses with.
            assert!(back.tx_bits <= n.rx_bits, "{o:?}");
            assert!(n.tx_bits <= back.rx_bits, "{o:?}");
        }
    }
}
