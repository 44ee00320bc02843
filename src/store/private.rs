//! The files that hold personal data (the store, backups, exports) and the folders made for
//! them: the owner's alone on Unix (files 0600, folders 0700), whatever the umask says. A
//! student's ID number and guardians' phones must not be one `cat` away for every local user.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `path` and any missing parents as 0700. Folders that exist keep their mode: the
/// operator may have chosen it (e.g. a shared parent such as `/var/lib`).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Options that create a file as 0600 (an existing file keeps its mode: see [`restrict`]).
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Makes an existing file 0600: one written before this rule, or kept from an earlier run.
pub fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `bytes` to `path` (created or replaced), 0600.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = options().create(true).truncate(true).open(path)?;
    restrict(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Copies `from` to `to` (created or replaced), 0600 whatever the mode of `from`.
pub fn copy(from: &Path, to: &Path) -> io::Result<u64> {
    let mut src = File::open(from)?;
    let mut dst = options().create(true).truncate(true).open(to)?;
    restrict(to)?;
    let n = io::copy(&mut src, &mut dst)?;
    dst.sync_all()?;
    Ok(n)
}
