//! What counts as a secret, in one place: header names, URL query keys, and the password in a
//! URL's user info. Errors and logs show `***` instead (see docs/addresses.md, "Credentials and
//! redaction").

/// Words that make a header name or a query key secret (matched as substrings, any case).
const SECRET_WORDS: &[&str] = &[
    "token",
    "key",
    "secret",
    "pass",
    "auth",
    "sig",
    "session",
    "jwt",
    "credential",
    "cookie",
];

/// A query key (or any name) that looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// A header whose value is never shown: credentials and cookies, and any name with a secret
/// word, except the handshake's own `Sec-WebSocket-*` headers.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || (is_secret_name(&n) && !n.starts_with("sec-websocket"))
}

/// `scheme://user:pass@host…` → `scheme://user:***@host…` (a user without a password stays as it
/// is); anything else unchanged. For addresses shown in errors before they parsed. The user info
/// runs to the last '@' before any query or fragment: a password may hold an unescaped '/'
/// (hiding a path's `a:b@c` too is the safe mistake).
pub fn redact_userinfo(s: &str) -> String {
    redact(s, true)
}

/// The same for a proxy URL, which has no path or query: everything up to the last '@' is user
/// info, whatever characters the password holds.
pub fn redact_proxy_userinfo(s: &str) -> String {
    redact(s, false)
}

fn redact(s: &str, query: bool) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_string();
    };
    let after = &s[scheme_end + 3..];
    let end = match query {
        true => after.find(['?', '#']).unwrap_or(after.len()),
        false => after.len(),
    };
    let Some(at) = after[..end].rfind('@') else {
        return s.to_string();
    };
    let userinfo = &after[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let shown = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_string()
    };
    format!("{}{shown}{}", &s[..scheme_end + 3], &after[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_and_headers() {
        for n in [
            "access_token",
            "API-KEY",
            "X-Signature",
            "sessionid",
            "jwt",
            "password",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for h in ["Authorization", "Cookie", "X-Api-Key", "X-Auth-Token"] {
            assert!(is_secret_header(h), "{h}");
        }
        for h in ["Sec-WebSocket-Key", "Origin", "User-Agent", "Host"] {
            assert!(!is_secret_header(h), "{h}");
        }
    }

    #[test]
    fn userinfo_passwords_are_hidden() {
        let table = [
            ("ws://u:p@h/x", "ws://u:***@h/x"),
            ("socks5://u:p@h:1", "socks5://u:***@h:1"),
            ("ws://u@h/", "ws://u@h/"),
            ("ws://h/p@x", "ws://h/p@x"),
            ("ws://u:pa/ss@h/", "ws://u:***@h/"),
            ("ws://u:p@h/?q=a@b", "ws://u:***@h/?q=a@b"),
        ];
        for (input, want) in table {
            assert_eq!(redact_userinfo(input), want, "{input}");
        }
        let proxies = [
            ("http://u:p?w#d@h:1", "http://u:***@h:1"),
            ("socks5://u:a/b@h:1", "socks5://u:***@h:1"),
            ("http://h:1", "http://h:1"),
            ("tcp:h:1", "tcp:h:1"),
        ];
        for (input, want) in proxies {
            assert_eq!(redact_proxy_userinfo(input), want, "{input}");
        }
    }
}
