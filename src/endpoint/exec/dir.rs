//! `exec-dir:DIR` (`--exec-dir`): which program a request path names, decided before the
//! upgrade (404 when none). `/chat` is `DIR/chat`; `/a/b/c` is `DIR/a/b` with `PATH_INFO=/c` when
//! `DIR/a/b` is a program. Only executable regular files; never outside DIR (after following
//! symlinks); no `..`, `.`, empty or hidden components, as asked for or as resolved.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use crate::conn::Script;

/// The program `request_path` (the URL path, without the query) names under `root`, if any.
pub(crate) fn resolve(root: &Path, request_path: &str) -> Option<Script> {
    let decoded = crate::endpoint::ws_server::decode_path(request_path)?;
    let parts: Vec<&str> = decoded.strip_prefix('/')?.split('/').collect();
    let root = root.canonicalize().ok()?;
    let mut at = root.clone();
    for (i, part) in parts.iter().enumerate() {
        if !plain_name(part) {
            return None;
        }
        at = at.join(part).canonicalize().ok()?;
        let inside = at.strip_prefix(&root).ok()?;
        if !inside
            .components()
            .all(|c| matches!(c, Component::Normal(n) if plain_name(&n.to_string_lossy())))
        {
            return None;
        }
        let meta = at.metadata().ok()?;
        if meta.is_dir() {
            continue;
        }
        let runnable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
        let rest = &parts[i + 1..];
        return runnable.then(|| Script {
            program: at.clone(),
            script_name: format!("/{}", parts[..=i].join("/")),
            path_info: if rest.is_empty() {
                String::new()
            } else {
                format!("/{}", rest.join("/"))
            },
        });
    }
    None
}

/// A name that is not empty, `.`, `..` or hidden.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// tmp/{bin/{chat*, notes.txt, sub/deep*, .hidden*, up -> .., esc -> ../outside*,
    /// inner -> sub/deep}, outside*}
    fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(bin.join("sub")).unwrap();
        let exe = |p: &Path| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(&bin.join("chat"));
        exe(&bin.join("sub/deep"));
        exe(&bin.join(".hidden"));
        exe(&tmp.path().join("outside"));
        std::fs::write(bin.join("notes.txt"), "x").unwrap();
        symlink("..", bin.join("up")).unwrap();
        symlink("../outside", bin.join("esc")).unwrap();
        symlink("sub/deep", bin.join("inner")).unwrap();
        (tmp, bin)
    }

    #[test]
    fn programs_are_found_with_their_path_info() {
        let (_tmp, bin) = tree();
        let root = bin.canonicalize().unwrap();
        let s = resolve(&bin, "/chat").unwrap();
        assert_eq!(
            (s.program, s.script_name.as_str(), s.path_info.as_str()),
            (root.join("chat"), "/chat", "")
        );
        let s = resolve(&bin, "/sub/deep/x/y").unwrap();
        assert_eq!(
            (s.script_name.as_str(), s.path_info.as_str()),
            ("/sub/deep", "/x/y")
        );
        let s = resolve(&bin, "/%63hat").unwrap();
        assert_eq!(s.script_name, "/chat");
        // A symlink that stays inside DIR is followed.
        assert_eq!(
            resolve(&bin, "/inner").unwrap().program,
            root.join("sub/deep")
        );
    }

    #[test]
    fn nothing_outside_hidden_or_not_runnable_is_found() {
        let (_tmp, bin) = tree();
        for path in [
            "/",
            "",
            "chat",
            "/sub",
            "/sub/",
            "/notes.txt",
            "/.hidden",
            "/missing",
            "/../outside",
            "/sub/../chat",
            "/./chat",
            "//chat",
            "/%2e%2e/outside",
            "/up/outside",
            "/esc",
            "/up/bin/chat",
            "/chat%00",
            "/ch%zzat",
            "/sub\\deep",
        ] {
            assert!(resolve(&bin, path).is_none(), "{path}");
        }
    }
}
