//! Arbitrary bytes → `RequestHead::parse` → `check_upgrade`.
//!
//! The first byte picks the server options (subprotocols, allowed origins, a required header,
//! a bearer token, a path, at capacity); the rest is the request. Asserts: no panic; a complete
//! head's length is within the input and re-parsing exactly that many bytes gives the same
//! head; an accepted upgrade is a GET on the right path, not at capacity, with a 28-character
//! accept key, an offered and supported subprotocol, the required header and the token; a
//! refusal has a known status and never echoes the bearer token unless the request contains it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use wsbridge::internals::RequestHead;
use wsbridge::internals::check_upgrade;
use wsbridge::internals::{Header, ServerOptions};

const TOKEN: &str = "s3cret-t0ken";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let (&sel, req) = match data.split_first() {
        Some(x) => x,
        None => return,
    };
    let mut opts = ServerOptions::default();
    if sel & 1 != 0 {
        opts.protocols = vec!["superchat".into(), "chat".into()];
    }
    if sel & 2 != 0 {
        opts.origin_allow = vec!["http://example.com".into()];
    }
    if sel & 4 != 0 {
        opts.require_headers = vec![Header {
            name: HeaderName::from_static("x-api-key"),
            value: HeaderValue::from_static("k3y"),
        }];
    }
    if sel & 8 != 0 {
        opts.auth_token = Some(TOKEN.into());
    }
    let path = (sel & 16 != 0).then_some("/chat");
    let at_capacity = sel & 32 != 0;

    let Ok(Some((head, used))) = RequestHead::parse(req) else {
        return;
    };
    assert!(
        used > 0 && used <= req.len(),
        "used {used} of {}",
        req.len()
    );
    assert_eq!(
        RequestHead::parse(&req[..used]),
        Ok(Some((head.clone(), used))),
        "re-parsing the head alone differs"
    );
    assert!(head.path().len() <= head.uri.len());

    match check_upgrade(&head, &opts, path, at_capacity) {
        Ok(up) => {
            assert!(!at_capacity, "upgrade accepted at capacity");
            assert_eq!(head.method, "GET");
            if let Some(p) = path {
                assert_eq!(head.path(), p);
            }
            assert_eq!(up.accept_key.len(), 28, "accept key {:?}", up.accept_key);
            if let Some(p) = &up.protocol {
                assert!(opts.protocols.contains(p), "unsupported protocol {p:?}");
            } else {
                // No protocol agreed: either none offered or the server speaks none.
                let offered = head
                    .headers
                    .iter()
                    .filter(|(n, _)| n == "sec-websocket-protocol")
                    .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                    .flat_map(|v| v.split(','))
                    .any(|t| !t.trim().is_empty());
                assert!(
                    opts.protocols.is_empty() || !offered,
                    "protocols offered and supported, but none agreed"
                );
            }
            if opts.auth_token.is_some() {
                assert!(
                    head.headers
                        .iter()
                        .any(|(n, v)| n == "authorization" && contains(v, TOKEN.as_bytes())),
                    "accepted without the token"
                );
            }
            if !opts.require_headers.is_empty() {
                assert!(
                    head.headers
                        .iter()
                        .any(|(n, v)| n == "x-api-key" && v == b"k3y"),
                    "accepted without the required header"
                );
            }
        }
        Err(r) => {
            assert!(
                matches!(r.status, 400 | 401 | 403 | 404 | 405 | 426 | 503),
                "unexpected status {}",
                r.status
            );
            if !contains(req, TOKEN.as_bytes()) {
                assert!(
                    !r.why.contains(TOKEN),
                    "refusal echoes the token: {}",
                    r.why
                );
                assert!(r.headers.iter().all(|(_, v)| !v.contains(TOKEN)));
            }
        }
    }
});
