//! The program from argv to exit code: parse, validate, set up logging, choose the runtime, run,
//! and print the one-line error. `main.rs` only calls [`main`].

use std::process::ExitCode;

use crate::{app, config::Config, error::exit};

/// Parse argv, set up logging, run, and turn the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = crate::cli::parse();
    crate::logging::set_format(cli.log_format);
    if let Some(dir) = &cli.generate {
        return match crate::generate::write_all(dir) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                crate::logging::line(
                    tracing::Level::ERROR,
                    &format!("wsbridge: --generate {}: {e}", dir.display()),
                );
                ExitCode::from(exit::INTERNAL)
            }
        };
    }
    let config = match Config::from_cli(cli, std::env::var_os("SSL_CERT_FILE").map(Into::into)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    crate::logging::init(config.log);
    crate::fdlimit::raise();
    // One thread; a listener adds one runtime per further CPU for its sessions (src/workers.rs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return fail(&crate::error::Error::io("starting the runtime", e)),
    };
    let result = runtime.block_on(app::run(config));
    // Do not wait for a blocked stdin reader thread: we are done.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => fail(&e),
    }
}

/// The error, once, on one line: text from the network in it is escaped (a server cannot send
/// terminal control sequences or line breaks to the user's terminal through a message). Under
/// journald it starts with `<3>`; with `--log-format json` it is a JSON object.
fn fail(e: &crate::error::Error) -> ExitCode {
    let message = e.to_string();
    let text = crate::text::escape_controls(&message);
    crate::logging::line(tracing::Level::ERROR, &format!("wsbridge: {text}"));
    ExitCode::from(e.exit_code())
}
