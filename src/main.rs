//! Entry point: parse arguments, set up logging, run, and turn the outcome into an exit code.

use std::process::ExitCode;

use wsbridge::{app, config::Config, error::exit};

fn main() -> ExitCode {
    let cli = wsbridge::cli::parse();
    if let Some(dir) = &cli.generate {
        return match wsbridge::generate::write_all(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wsbridge: --generate {}: {e}", dir.display());
                ExitCode::from(exit::INTERNAL)
            }
        };
    }
    let config = match Config::from_cli(cli, std::env::var_os("SSL_CERT_FILE").map(Into::into)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    wsbridge::logging::init(config.log);
    let runtime = if config.left.is_listener() {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return fail(&wsbridge::error::Error::io("starting the runtime", e)),
    };
    let result = runtime.block_on(app::run(config));
    // Do not wait for a blocked stdin reader thread: we are done.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The error, once, on one line: text from the network in it is escaped (a server cannot send
/// terminal control sequences or line breaks to the user's terminal through a message).
fn fail(e: &wsbridge::error::Error) -> ExitCode {
    eprintln!(
        "wsbridge: {}",
        wsbridge::text::escape_controls(&e.to_string())
    );
    ExitCode::from(e.exit_code())
}
