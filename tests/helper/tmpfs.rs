//! A small tmpfs mounted for one test (disk-full and read-only faults), unmounted on drop.
//! Mounting needs root: without it the test is skipped loudly, except under `CI=true`, where
//! it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `kib` KiB; `None` (after a loud notice) when this process cannot.
    pub fn mount(kib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            super::skip(
                "cannot mount a tmpfs here",
                "the disk-fault tests need root",
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes mount options (`size=16m`, `ro`, `rw`).
    pub fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.dir.path())
            .status()
            .expect("mount runs")
            .success();
        assert!(ok, "remount {opts}");
    }

    /// Fills the file system, leaving about `keep_kib` KiB free.
    pub fn fill(&self, keep_kib: u64) -> PathBuf {
        let filler = self.dir.path().join("filler");
        let stat = nix_free_kib(self.dir.path());
        let n = stat.saturating_sub(keep_kib) * 1024;
        std::fs::write(&filler, vec![0u8; n as usize]).expect("filler written");
        filler
    }
}

fn nix_free_kib(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the zeroed struct we pass; the path is a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut s), 0, "statvfs");
        s.f_bavail * s.f_frsize / 1024
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
