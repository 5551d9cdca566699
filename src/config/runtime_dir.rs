//! Where the upgrade socket lives by default: a directory only this user can enter.
//!
//! Whoever can connect to the upgrade socket can hand a starting scopegate its listeners,
//! and whoever can create the socket's path first can take them: a fixed name in a shared
//! `/tmp` gives both to every local user. The default is `$XDG_RUNTIME_DIR/scopegate/`
//! (per user, mode 0700 by systemd), else `/tmp/scopegate-<uid>/`, created with mode 0700
//! and refused at start-up if it exists with another owner or wider permissions.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The default upgrade socket path for this process's user.
pub fn default_upgrade_socket() -> PathBuf {
    default_dir_from(std::env::var_os("XDG_RUNTIME_DIR"), current_uid()).join("upgrade.sock")
}

fn default_dir_from(xdg: Option<std::ffi::OsString>, uid: u32) -> PathBuf {
    match xdg.filter(|d| !d.is_empty()) {
        Some(dir) => Path::new(&dir).join("scopegate"),
        None => PathBuf::from(format!("/tmp/scopegate-{uid}")),
    }
}

fn current_uid() -> u32 {
    // The owner of this process's /proc entry is its real user id.
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// Makes sure the folder of `socket` exists; a folder scopegate creates is private (0700).
/// For the default folder, an existing one must belong to this user and be private.
pub fn prepare(socket: &Path) -> Result<(), String> {
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let is_default = default_upgrade_socket().parent() == Some(dir);
    match std::fs::metadata(dir) {
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display())),
        Ok(meta) if is_default => check_private(dir, &meta, current_uid()),
        Ok(_) => Ok(()),
    }
}

fn check_private(dir: &Path, meta: &std::fs::Metadata, uid: u32) -> Result<(), String> {
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} must be a directory owned by uid {uid} with mode 0700 (it holds the upgrade socket); remove it or set upgrade_socket",
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_per_user() {
        assert_eq!(
            default_dir_from(Some("/run/user/1000".into()), 1000),
            Path::new("/run/user/1000/scopegate")
        );
        assert_eq!(
            default_dir_from(None, 1000),
            Path::new("/tmp/scopegate-1000")
        );
        assert_eq!(
            default_dir_from(Some("".into()), 7),
            Path::new("/tmp/scopegate-7")
        );
    }

    #[test]
    fn a_created_folder_is_private_and_a_shared_one_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let socket = base.path().join("run/scopegate/upgrade.sock");
        prepare(&socket).unwrap();
        let meta = std::fs::metadata(socket.parent().unwrap()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        let uid = current_uid();
        assert!(check_private(socket.parent().unwrap(), &meta, uid).is_ok());
        let shared = base.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let meta = std::fs::metadata(&shared).unwrap();
        assert!(check_private(&shared, &meta, uid).is_err());
        assert!(check_private(&shared, &meta, uid + 1).is_err());
    }
}
