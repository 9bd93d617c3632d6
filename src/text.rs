//! Text that came from the network, made safe for a terminal before it is printed: HTTP bodies,
//! status lines, header values, proxy answers, certificate names. A server must not be able to
//! set the window title, clear the screen or forge a line by what it sends (`ESC ] 0 ; … BEL`,
//! `ESC [ 2 J`, a carriage return).

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character shown as an escape: C0 (including tab, CR and LF), DEL and
/// C1 (U+0080-U+009F, which some terminals take as CSI and friends), and the Unicode bidi
/// controls that reorder what is shown. C0 and DEL become `\x1b`, the rest `\u{9b}`; all other
/// characters are kept as they are. Borrowed (no copy) when there is nothing to escape.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Marks and embeddings/overrides/isolates that change the order text is displayed in.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let table = [
            ("plain text, ünïcödé ✓", "plain text, ünïcödé ✓"),
            ("\u{1b}]0;pwned\u{7}\u{1b}[2J", "\\x1b]0;pwned\\x07\\x1b[2J"),
            ("a\rb\nc\td\0", "a\\x0db\\x0ac\\x09d\\x00"),
            ("del\u{7f}", "del\\x7f"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("\u{80}\u{9f}", "\\u{80}\\u{9f}"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
            // Already-escaped text stays as it is (escaping twice changes nothing).
            ("\\x1b", "\\x1b"),
        ];
        for (input, want) in table {
            assert_eq!(escape_controls(input), want, "{input:?}");
            assert_eq!(escape_controls(&escape_controls(input)), want);
        }
        assert!(matches!(escape_controls("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_control_character_is_escaped() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let shown = escape_controls(c.encode_utf8(&mut [0; 4])).into_owned();
            assert!(
                !shown.chars().any(|s| s.is_control() || is_bidi_control(s)),
                "{c:?} shown as {shown:?}"
            );
        }
    }
}
