//! The binary: everything is in the library's `entry::main`.

fn main() -> std::process::ExitCode {
    wsbridge::main()
}
