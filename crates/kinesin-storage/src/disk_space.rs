//! How full the file system holding the database is: what an operator's "disk nearly full"
//! alert watches, before a write fails and the node stops (exit 74).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// Bytes of the file system holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Available to this (unprivileged) process.
    pub free: u64,
    pub total: u64,
}

/// The file system's space under `path`; `None` when it cannot be read.
pub fn disk_space(path: &Path) -> Option<DiskSpace> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; `stat` is a buffer of the type
    // statvfs fills, read only when it reports success.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    // The fields' types differ between platforms (u64 on 64-bit Linux, u32 elsewhere).
    #[allow(clippy::useless_conversion)]
    let (block, free, total) = (
        u64::from(stat.f_frsize),
        u64::from(stat.f_bavail),
        u64::from(stat.f_blocks),
    );
    Some(DiskSpace {
        free: free * block,
        total: total * block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_has_some_space_and_a_missing_path_none() {
        let dir = tempfile::tempdir().unwrap();
        let space = disk_space(dir.path()).unwrap();
        assert!(space.total > 0 && space.free <= space.total, "{space:?}");
        assert_eq!(disk_space(&dir.path().join("missing")), None);
    }
}
