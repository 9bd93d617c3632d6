//! The framing options (`--framing`, `-0`, `-b`, prefixes, `--split-long`, …), checked for flags
//! that do not apply to the chosen framing.

use super::DEFAULT_MAX_MESSAGE;
use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::relay::framing::{Framing, FramingOptions, Mode, NewlinePolicy};

/// The framing options, checked for flags that do not apply to the chosen framing.
pub(super) fn framing_options(cli: &Cli) -> Result<FramingOptions> {
    let mode = if cli.binary { Mode::Binary } else { Mode::Text };
    let framing = match (cli.framing, cli.null_terminated) {
        (Some(f), _) => f,
        (None, true) => Framing::Nul,
        (None, false) if cli.binary => Framing::Raw,
        (None, false) => Framing::Lines,
    };
    let delimited = matches!(framing, Framing::Lines | Framing::Nul);
    let needs = [
        (
            delimited,
            cli.newline_policy != NewlinePolicy::Space,
            "--newline-policy",
            "lines or nul framing",
        ),
        (
            delimited,
            cli.text_prefix.is_some(),
            "--text-prefix",
            "lines or nul framing",
        ),
        (
            delimited,
            cli.binary_prefix.is_some(),
            "--binary-prefix",
            "lines or nul framing",
        ),
        (delimited, cli.base64, "--base64", "lines or nul framing"),
        (
            delimited,
            cli.split_long,
            "--split-long",
            "lines or nul framing",
        ),
        (
            framing == Framing::Lines,
            cli.jsonrpc,
            "--jsonrpc",
            "lines framing",
        ),
        (
            framing == Framing::Jsonl,
            cli.jsonl_events,
            "--jsonl-events",
            "jsonl framing",
        ),
    ];
    if let Some((_, _, flag, what)) = needs.iter().find(|(ok, set, _, _)| *set && !*ok) {
        return Err(Error::Usage(format!(
            "{flag} needs {what} (framing is {})",
            framing_name(framing)
        )));
    }
    if cli.split_long && (cli.base64 || cli.jsonrpc) {
        return Err(Error::Usage(
            "--split-long cannot cut base64 or JSON-RPC lines; drop one of them".into(),
        ));
    }
    if let (Some(t), Some(b)) = (&cli.text_prefix, &cli.binary_prefix)
        && (t.starts_with(b.as_str()) || b.starts_with(t.as_str()))
    {
        return Err(Error::Usage(
            "--text-prefix and --binary-prefix must differ, and neither may start with the other"
                .into(),
        ));
    }
    if [&cli.text_prefix, &cli.binary_prefix]
        .iter()
        .any(|p| p.as_deref() == Some(""))
    {
        return Err(Error::Usage(
            "--text-prefix/--binary-prefix must not be empty".into(),
        ));
    }
    Ok(FramingOptions {
        framing,
        mode,
        max_message_size: cli.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE),
        newline_policy: cli.newline_policy,
        text_prefix: cli.text_prefix.clone(),
        binary_prefix: cli.binary_prefix.clone(),
        base64: cli.base64,
        split_long: cli.split_long,
        jsonl_events: cli.jsonl_events,
        jsonrpc: cli.jsonrpc,
        ready_line: cli.ready_line,
    })
}

pub(super) fn framing_name(f: Framing) -> String {
    use clap::ValueEnum;
    f.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}
