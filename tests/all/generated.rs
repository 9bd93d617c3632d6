//! The committed man page and completions match the clap definition. To refresh them:
//! `cargo run -- --generate .`

#[test]
fn man_page_and_completions_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (rel, want) in wsbridge::internals::files() {
        let have = std::fs::read(root.join(&rel)).unwrap_or_default();
        assert!(
            have == want,
            "{rel} is out of date: run `cargo run -- --generate .` and commit the result"
        );
    }
}

#[test]
fn man_page_documents_exit_codes_and_addresses() {
    let (_, man) = wsbridge::internals::files()
        .into_iter()
        .find(|(p, _)| p.ends_with(".1"))
        .unwrap();
    let man = String::from_utf8(man).unwrap();
    for needle in [
        "tcp\\-listen",
        "unix\\-listen",
        "mirror:",
        "6 handshake refused",
        "11 local input refused",
        "WSBRIDGE_BASIC_AUTH",
    ] {
        assert!(man.contains(needle), "man page lacks {needle}");
    }
}
