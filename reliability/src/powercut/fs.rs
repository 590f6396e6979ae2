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

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BackgroundSession, BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::image::{CutMode, CutStats, Image};
use super::model::{Attr, FsError, Ino, Kind, Model, Trigger};

/// How long the kernel may cache names and attributes. Only the kernel
/// changes this filesystem, so its caches stay right.
const TTL: Duration = Duration::from_secs(1);

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
        let fs = SimFs {
            model: Arc::clone(&model),
            next_fh: AtomicU64::new(1),
            uid,
            gid,
        };
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

/// The `fuser` filesystem: each request locks the model, does one
/// operation and replies.
struct SimFs {
    model: Arc<Mutex<Model>>,
    next_fh: AtomicU64,
    uid: u32,
    gid: u32,
}

fn errno(error: FsError) -> Errno {
    match error {
        FsError::NotFound => Errno::ENOENT,
        FsError::Exists => Errno::EEXIST,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::IsDir => Errno::EISDIR,
        FsError::NotEmpty => Errno::ENOTEMPTY,
        FsError::Invalid => Errno::EINVAL,
        FsError::NotSupported => Errno::EOPNOTSUPP,
        FsError::PowerOff => Errno::EIO,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl SimFs {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file_attr(&self, attr: Attr) -> FileAttr {
        FileAttr {
            ino: INodeNo(attr.ino),
            size: attr.size,
            blocks: attr.size.div_ceil(512),
            atime: attr.atime,
            mtime: attr.mtime,
            ctime: attr.ctime,
            crtime: attr.ctime,
            kind: match attr.kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            },
            perm: attr.perm,
            nlink: attr.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn handle(&self) -> FileHandle {
        FileHandle(self.next_fh.fetch_add(1, Ordering::Relaxed))
    }

    fn entry(&self, result: Result<Ino, FsError>, reply: ReplyEntry) {
        let model = self.model();
        match result.and_then(|ino| model.attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &self.file_attr(attr), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(result: Result<(), FsError>, reply: ReplyEmpty) {
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn perm_of(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for SimFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = self.model().lookup(parent.0, name);
        self.entry(result, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.model().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &self.file_attr(attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut model = self.model();
        let mut result = Ok(());
        if let Some(mode) = mode {
            result = result.and_then(|()| model.set_perm(ino.0, (mode & 0o7777) as u16));
        }
        if let Some(size) = size {
            result = result.and_then(|()| model.set_len(ino.0, size));
        }
        if atime.is_some() || mtime.is_some() {
            result = result.and_then(|()| model.set_times(ino.0, atime.map(time), mtime.map(time)));
        }
        match result.and_then(|()| model.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &self.file_attr(attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        const S_IFMT: u32 = 0o170_000;
        const S_IFREG: u32 = 0o100_000;
        if mode & S_IFMT != S_IFREG {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let result = self
            .model()
            .create(parent.0, name, Kind::File, perm_of(mode, umask));
        self.entry(result, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self
            .model()
            .create(parent.0, name, Kind::Dir, perm_of(mode, umask));
        self.entry(result, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.model().unlink(parent.0, name), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        Self::empty(self.model().rmdir(parent.0, name), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            reply.error(Errno::EINVAL);
            return;
        }
        let result = self.model().rename(
            parent.0,
            name,
            newparent.0,
            newname,
            flags.contains(RenameFlags::RENAME_NOREPLACE),
            flags.contains(RenameFlags::RENAME_EXCHANGE),
        );
        Self::empty(result, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut model = self.model();
        let result = match model.attr(ino.0) {
            Ok(attr) if attr.kind == Kind::Dir => Err(FsError::IsDir),
            Ok(_) => model.open(ino.0),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => reply.opened(self.handle(), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut model = self.model();
        let result = model
            .create(parent.0, name, Kind::File, perm_of(mode, umask))
            .and_then(|ino| model.open(ino).map(|()| ino))
            .and_then(|ino| model.attr(ino));
        match result {
            Ok(attr) => reply.created(
                &TTL,
                &self.file_attr(attr),
                Generation(0),
                self.handle(),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.model().read(ino.0, offset, size as usize) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model().write(ino.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() does not make anything durable; with the power off it
        // reports the error, as a real disk's would.
        if self.model().is_frozen() {
            reply.error(Errno::EIO);
        } else {
            reply.ok();
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.model().release(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty(self.model().fsync(ino.0), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut model = self.model();
        let result = match model.attr(ino.0) {
            Ok(attr) if attr.kind == Kind::File => Err(FsError::NotDir),
            Ok(_) => model.open(ino.0),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => reply.opened(self.handle(), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.model().entries(ino.0) {
            Ok(entries) => entries,
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        for (i, (name, child, kind)) in entries.into_iter().enumerate().skip(offset as usize) {
            let kind = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.model().release(ino.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty(self.model().fsync_dir(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        if self.model().is_frozen() {
            reply.error(Errno::EIO);
            return;
        }
        // Plenty of room: running out of space is fault_sweep's subject.
        let blocks = 1 << 30;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        Self::empty(self.model().attr(ino.0).map(|_| ()), reply);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        Self::empty(self.model().fallocate(ino.0, offset, length, mode), reply);
    }
}
