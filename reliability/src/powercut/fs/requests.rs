//! The kernel's requests, answered from the model: the `fuser`
//! [`Filesystem`] that [`Simulator`](super::Simulator) mounts.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

use crate::powercut::model::{Attr, FsError, Ino, Kind, Model};

/// How long the kernel may cache names and attributes. Only the kernel
/// changes this filesystem, so its caches stay right.
const TTL: Duration = Duration::from_secs(1);

/// The `fuser` filesystem: each request locks the model, does one
/// operation and replies.
pub(super) struct SimFs {
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
    /// A filesystem answering from `model`, its files owned by `uid` and
    /// `gid` (the mount point's owner).
    pub(super) fn new(model: Arc<Mutex<Model>>, uid: u32, gid: u32) -> Self {
        SimFs {
            model,
            next_fh: AtomicU64::new(1),
            uid,
            gid,
        }
    }

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
