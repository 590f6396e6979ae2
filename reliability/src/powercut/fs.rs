//! The FUSE side of the simulator: [`Simulator`] mounts a [`Model`] with
//! `fuser` and answers the kernel's requests from it, and [`Simulator::cut`]
//! turns the power off.
//!
//! The model sits behind an `Arc<Mutex<..>>` shared by the FUSE thread and
//! the harness, so that the harness can cut from its own thread while a
//! program is writing. That lock is a test tool's, not the engine's.
//!
//! The kernel sends every `write` to the daemon before the call returns
//! (FUSE without the writeback cache, fuser's default), every `fsync` and
//! `fdatasync` as `FUSE_FSYNC` and every directory `fsync` as
//! `FUSE_FSYNCDIR`. `sync_file_range` sends nothing, since there is no
//! dirty page cache to write back: exactly the hole the simulator is for.
//! `flock` is handled by the kernel itself, because this filesystem does
//! not ask for `FUSE_FLOCK_LOCKS` (sled's exclusive lock on its `db` file
//! works across processes on the mount).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackgroundSession, Config, MountOption};

mod requests;

use requests::SimFs;

use super::image::{CutMode, CutStats, Image};
use super::model::{Model, Trigger};

/// Why the simulator could not be mounted or unmounted.
#[derive(Debug)]
#[non_exhaustive]
pub enum MountError {
    /// FUSE is not there: no `/dev/fuse`, or the mount was refused.
    Unavailable {
        /// The mount point.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// Unmounting failed, even lazily.
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountError::Unavailable { path, reason } => {
                write!(
                    f,
                    "cannot mount the simulator at {}: {reason}",
                    path.display()
                )
            }
            MountError::Unmount { path, reason } => {
                write!(
                    f,
                    "cannot unmount the simulator at {}: {reason}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for MountError {}

/// A mounted simulator. Dropping it unmounts (lazily if still busy).
#[derive(Debug)]
pub struct Simulator {
    model: Arc<Mutex<Model>>,
    session: Option<BackgroundSession>,
    path: PathBuf,
}

impl Simulator {
    /// Mounts a filesystem at `path` (an existing empty directory) whose
    /// current and durable state is `image`.
    ///
    /// # Errors
    ///
    /// [`MountError::Unavailable`] when there is no `/dev/fuse` or the
    /// kernel or `fusermount3` refuses the mount.
    pub fn mount(path: &Path, image: &Image) -> Result<Self, MountError> {
        let unavailable = |reason: String| MountError::Unavailable {
            path: path.to_owned(),
            reason,
        };
        if !Path::new("/dev/fuse").exists() {
            return Err(unavailable("there is no /dev/fuse".into()));
        }
        let (uid, gid) = owner_of(path).map_err(|e| unavailable(e.to_string()))?;
        let model = Arc::new(Mutex::new(Model::from_image(image)));
        let fs = SimFs::new(Arc::clone(&model), uid, gid);
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("solostate-powercut".into()),
            MountOption::Subtype("powercut".into()),
        ];
        let session =
            fuser::spawn_mount(fs, path, &config).map_err(|e| unavailable(e.to_string()))?;
        Ok(Simulator {
            model,
            session: Some(session),
            path: path.to_owned(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model, for inspection (a poisoned lock is taken over: the model
    /// is plain data and each operation leaves it whole).
    pub fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a trigger that cuts the power from inside an operation.
    pub fn arm(&self, trigger: Trigger) {
        self.model().arm(trigger);
    }

    /// Whether the power is off (cut, or a trigger fired).
    pub fn is_frozen(&self) -> bool {
        self.model().is_frozen()
    }

    /// Cuts the power: atomically, every operation from now on fails with
    /// `EIO`, and the returned image is what the disk holds. Unmount next.
    pub fn cut(&self, mode: CutMode) -> (Image, CutStats) {
        self.model().cut(mode)
    }

    /// Unmounts, and returns the current state as an image: what a clean
    /// shutdown with everything synced leaves.
    ///
    /// # Errors
    ///
    /// [`MountError::Unmount`] when neither a normal nor a lazy unmount
    /// worked.
    pub fn unmount(mut self) -> Result<Image, MountError> {
        self.unmount_inner()?;
        Ok(self.model().current_image())
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let joined = session.umount_and_join();
        // An error can come from the session thread after the unmount
        // itself went through (seen once in 500 cycles: the lazy unmount
        // below then fails with EINVAL, "not mounted"); what matters is
        // whether the mount is gone.
        if joined.is_ok() || !is_mounted(&self.path) {
            return Ok(());
        }
        // Busy (a process still has a file open): detach lazily; the FUSE
        // thread ends when the last user lets go.
        let lazy = std::process::Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.path)
            .output();
        match lazy {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(MountError::Unmount {
                path: self.path.clone(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            }),
            Err(e) => Err(MountError::Unmount {
                path: self.path.clone(),
                reason: format!("fusermount3: {e}"),
            }),
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.unmount_inner(); // best effort: nobody to tell
    }
}

/// Whether `path` is a mount point now, from `/proc/self/mounts` (where
/// it cannot be read, assume it is, so a failed unmount is reported).
fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return true;
    };
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .any(|point| Path::new(point) == path)
}

#[cfg(unix)]
fn owner_of(path: &Path) -> std::io::Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.uid(), meta.gid()))
}
