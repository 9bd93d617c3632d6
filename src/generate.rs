//! Man page and shell completions, generated from the clap definition (`--generate DIR`).
//! The committed copies in man/ and completions/ are checked against this by a test.

use std::path::Path;

use clap_complete::Shell;

/// The generated files: (relative path, contents).
pub fn files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = crate::cli::command();
    let mut man = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut man)
        .expect("rendering to a Vec cannot fail");
    out.push(("man/wsbridge.1".to_string(), man));
    for (shell, name) in [
        (Shell::Bash, "wsbridge.bash"),
        (Shell::Zsh, "_wsbridge"),
        (Shell::Fish, "wsbridge.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "wsbridge", &mut buf);
        out.push((format!("completions/{name}"), buf));
    }
    out
}

pub fn write_all(dir: &Path) -> std::io::Result<()> {
    for (rel, data) in files() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, data)?;
    }
    Ok(())
}
