//! The integration tests, as one test binary (`cargo test --test all`): each former
//! `tests/*.rs` file is a module here, so the test code links against wsbridge once instead of
//! once per file.

mod harness;

mod client_tls;
mod errors;
mod framing_props;
mod framing_python;
mod generated;
mod hardening;
mod interop;
mod listeners;
mod proxy;
mod reconnect;
mod redirects;
mod rfc;
mod secret_files;
mod secrets;
mod server_exec;
mod server_http;
mod server_python;
mod server_tls_roles;
mod stdio_client;
mod systemd;
mod tls_python;
mod tls_self_signed;
mod uptime;
