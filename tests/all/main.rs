//! The integration tests, as one test binary (`cargo test --test all`): one module per area,
//! sharing one harness (`harness/`: the wsbridge runner, in-process and third-party peers,
//! test certificates). A new test file goes here as a module; a file of its own in `tests/`
//! would be one more binary to link against wsbridge and its dependencies.

mod harness;

mod broadcast_redis;
mod client_tls;
mod deflate;
mod errors;
mod exec_programs;
mod faults;
mod framing_props;
mod framing_python;
mod generated;
mod hardening;
mod interop;
mod listeners;
mod logs;
mod metrics;
mod on_connect;
mod proxy;
mod reconnect;
mod redirects;
mod rfc;
mod scaling;
mod secret_files;
mod secrets;
mod server_exec;
mod server_http;
mod server_python;
mod server_tls_roles;
mod soak;
mod stdio_client;
mod systemd;
mod tls_python;
mod tls_self_signed;
mod uptime;
