//! The simulator's in-memory filesystem: every inode's *current* state
//! (what a running program reads back) beside its *durable* state (what a
//! disk holds after a power cut), and the operations that move the one to
//! the other. No FUSE here: [`super::fs`] adapts these methods to the
//! kernel's requests, and the unit tests call them directly.
//!
//! A file keeps its durable bytes plus the list of write operations since
//! its last `fsync`, so that syncing costs the dirty bytes rather than the
//! file size. A directory keeps its current entries and the entries its
//! last `fsyncdir` made durable.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use super::image::{Image, ImageNode};

mod names;

/// An inode number. The root directory is [`ROOT`].
pub type Ino = u64;

/// The root directory's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: Ino = 1;

/// Why an operation failed, as the kernel will be told (see
/// [`super::fs`] for the errno of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsError {
    /// No such inode or name (`ENOENT`).
    NotFound,
    /// The name exists already (`EEXIST`).
    Exists,
    /// A directory was needed (`ENOTDIR`).
    NotDir,
    /// A file was needed (`EISDIR`).
    IsDir,
    /// The directory still has entries (`ENOTEMPTY`).
    NotEmpty,
    /// An argument makes no sense, such as moving a directory into itself
    /// (`EINVAL`).
    Invalid,
    /// The simulator does not model this variant of the operation
    /// (`EOPNOTSUPP`).
    NotSupported,
    /// The power is off: every operation after a cut fails (`EIO`).
    PowerOff,
}

/// Whether an inode is a regular file or a directory (the only kinds the
/// simulator models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// What `getattr` reports about an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// The inode number.
    pub ino: Ino,
    /// File or directory.
    pub kind: Kind,
    /// The current size in bytes (0 for a directory).
    pub size: u64,
    /// The permission bits.
    pub perm: u16,
    /// Current hard links (2 for a directory).
    pub nlink: u32,
    /// Last access, as set by the kernel or by `utimensat`.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last change of the inode.
    pub ctime: SystemTime,
}

/// A write operation not yet made durable by an `fsync` of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `data` written at `offset` (zeros fill any gap before it).
    Write {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The size set to this (a truncate, or a size-extending fallocate).
    SetLen(u64),
}

impl Op {
    /// Applies this operation to `bytes`, keeping only the first `keep`
    /// bytes of a write (a torn write); `usize::MAX` keeps all of it.
    pub(crate) fn apply(&self, bytes: &mut Vec<u8>, keep: usize) {
        match self {
            Op::Write { offset, data } => {
                let data = &data[..keep.min(data.len())];
                let start = *offset as usize;
                let end = start + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[start..end].copy_from_slice(data);
            }
            Op::SetLen(len) => bytes.resize(*len as usize, 0),
        }
    }

    /// The bytes this operation carries (0 for a size change).
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Op::Write { data, .. } => data.len() as u64,
            Op::SetLen(_) => 0,
        }
    }
}

/// A regular file's two states.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileNode {
    /// What reads return now.
    pub(crate) current: Vec<u8>,
    /// What the last `fsync` made durable.
    pub(crate) durable: Vec<u8>,
    /// The writes since then, in order: `durable` with all of them applied
    /// is `current`.
    pub(crate) pending: Vec<Op>,
}

/// A directory's two states.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirNode {
    /// The parent directory now (the root is its own parent).
    parent: Ino,
    /// The names now.
    pub(crate) current: BTreeMap<OsString, Ino>,
    /// The names the last `fsyncdir` made durable.
    pub(crate) durable: BTreeMap<OsString, Ino>,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub(crate) body: Body,
    pub(crate) perm: u16,
    /// Current names that refer to this inode.
    nlink: u32,
    /// Durable names (entries of a durable directory state) that refer to
    /// it: while any exists, a cut may bring it back.
    durable_links: u32,
    /// Open file handles: an unlinked inode lives while one is open.
    opens: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Inode {
    fn new(body: Body, perm: u16) -> Self {
        let now = SystemTime::now();
        Inode {
            body,
            perm,
            nlink: 0,
            durable_links: 0,
            opens: 0,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }
}

/// When a cut happens on its own, from inside an operation: the harness
/// arms one to cut at an exact point (during a checkpoint's write, a few
/// operations after a rollback began), which polling from outside would
/// miss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The power goes off before the `n`-th next mutating operation
    /// (0: the very next one fails).
    AfterOps(u64),
    /// Once a file whose name starts with `prefix` and ends with `suffix`
    /// is created, behaves as [`Trigger::AfterOps`]`(then)`.
    AfterCreate {
        /// The start of the name to watch for, such as `"ckpt-"`.
        prefix: String,
        /// The end of the name to watch for, such as `".tmp"`.
        suffix: String,
        /// Mutating operations allowed after that create.
        then: u64,
    },
}

/// The whole filesystem. Inodes live in a `BTreeMap` so that a cut visits
/// them in a fixed order and a seeded cut is reproducible.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    frozen: bool,
    trigger: Option<Trigger>,
    fired: bool,
}

impl Default for Model {
    fn default() -> Self {
        Self::from_image(&Image::empty())
    }
}

impl Model {
    /// A filesystem whose current and durable states are both `image`.
    pub fn from_image(image: &Image) -> Self {
        let mut inodes = BTreeMap::new();
        let mut parents = BTreeMap::from([(ROOT, ROOT)]);
        for (&ino, node) in image.nodes() {
            if let ImageNode::Dir { entries, .. } = node {
                for &child in entries.values() {
                    parents.entry(child).or_insert(ino);
                }
            }
        }
        for (&ino, node) in image.nodes() {
            let (body, perm) = match node {
                ImageNode::File { data, perm } => (
                    Body::File(FileNode {
                        current: data.clone(),
                        durable: data.clone(),
                        pending: Vec::new(),
                    }),
                    *perm,
                ),
                ImageNode::Dir { entries, perm } => (
                    Body::Dir(DirNode {
                        parent: parents.get(&ino).copied().unwrap_or(ROOT),
                        current: entries.clone(),
                        durable: entries.clone(),
                    }),
                    *perm,
                ),
            };
            inodes.insert(ino, Inode::new(body, perm));
        }
        let links: Vec<Ino> = image
            .nodes()
            .values()
            .filter_map(|node| match node {
                ImageNode::Dir { entries, .. } => Some(entries.values().copied()),
                ImageNode::File { .. } => None,
            })
            .flatten()
            .collect();
        for child in links {
            if let Some(inode) = inodes.get_mut(&child) {
                inode.nlink += 1;
                inode.durable_links += 1;
            }
        }
        let next_ino = inodes.keys().max().copied().unwrap_or(ROOT) + 1;
        Model {
            inodes,
            next_ino,
            frozen: false,
            trigger: None,
            fired: false,
        }
    }

    /// Turns the power off: from now on every operation fails with
    /// [`FsError::PowerOff`]. The state stays as it was, for
    /// [`Model::cut`].
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Whether the power is off.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Arms `trigger`, replacing any armed one.
    pub fn arm(&mut self, trigger: Trigger) {
        self.trigger = Some(trigger);
    }

    /// Whether an armed trigger turned the power off (rather than
    /// [`Model::freeze`] from outside).
    pub fn trigger_fired(&self) -> bool {
        self.fired
    }

    /// Fails when the power is off, and counts one mutating operation
    /// against an armed [`Trigger::AfterOps`], turning the power off when
    /// it runs out.
    fn mutating(&mut self) -> Result<(), FsError> {
        self.powered()?;
        if let Some(Trigger::AfterOps(left)) = &mut self.trigger {
            if *left == 0 {
                self.trigger = None;
                self.fired = true;
                self.frozen = true;
                return Err(FsError::PowerOff);
            }
            *left -= 1;
        }
        Ok(())
    }

    fn powered(&self) -> Result<(), FsError> {
        if self.frozen {
            Err(FsError::PowerOff)
        } else {
            Ok(())
        }
    }

    fn inode(&self, ino: Ino) -> Result<&Inode, FsError> {
        self.inodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn inode_mut(&mut self, ino: Ino) -> Result<&mut Inode, FsError> {
        self.inodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: Ino) -> Result<&DirNode, FsError> {
        match &self.inode(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            Body::File(_) => Err(FsError::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut DirNode, FsError> {
        match &mut self.inode_mut(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            Body::File(_) => Err(FsError::NotDir),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut FileNode, FsError> {
        let inode = self.inode_mut(ino)?;
        inode.mtime = SystemTime::now();
        inode.ctime = inode.mtime;
        match &mut inode.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(FsError::IsDir),
        }
    }

    /// The inode that `name` in directory `parent` refers to now.
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::NotDir`], [`FsError::PowerOff`].
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, FsError> {
        self.powered()?;
        self.dir(parent)?
            .current
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// An inode's attributes now.
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::PowerOff`].
    pub fn attr(&self, ino: Ino) -> Result<Attr, FsError> {
        self.powered()?;
        let inode = self.inode(ino)?;
        let (kind, size, nlink) = match &inode.body {
            Body::File(file) => (Kind::File, file.current.len() as u64, inode.nlink),
            Body::Dir(_) => (Kind::Dir, 0, 2),
        };
        Ok(Attr {
            ino,
            kind,
            size,
            perm: inode.perm,
            nlink,
            atime: inode.atime,
            mtime: inode.mtime,
            ctime: inode.ctime,
        })
    }

    /// Notes an open handle, which keeps an unlinked inode alive.
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::PowerOff`].
    pub fn open(&mut self, ino: Ino) -> Result<(), FsError> {
        self.powered()?;
        self.inode_mut(ino)?.opens += 1;
        Ok(())
    }

    /// Notes a closed handle (works with the power off too, so that a
    /// killed process can close its files).
    pub fn release(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.opens = inode.opens.saturating_sub(1);
        }
        self.free_if_unused(ino);
    }

    /// Up to `size` bytes of the current data from `offset`.
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::IsDir`], [`FsError::PowerOff`].
    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> Result<&[u8], FsError> {
        self.powered()?;
        match &self.inode(ino)?.body {
            Body::File(file) => {
                let start = (offset as usize).min(file.current.len());
                let end = start.saturating_add(size).min(file.current.len());
                Ok(&file.current[start..end])
            }
            Body::Dir(_) => Err(FsError::IsDir),
        }
    }

    /// Writes `data` at `offset`; durable after an `fsync` of the file.
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::IsDir`], [`FsError::PowerOff`].
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        self.mutating()?;
        let file = self.file_mut(ino)?;
        let op = Op::Write {
            offset,
            data: data.to_vec(),
        };
        op.apply(&mut file.current, usize::MAX);
        file.pending.push(op);
        Ok(data.len())
    }

    /// Sets the size (truncate or extend with zeros).
    ///
    /// # Errors
    ///
    /// As [`Model::write`].
    pub fn set_len(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        self.mutating()?;
        let file = self.file_mut(ino)?;
        let op = Op::SetLen(len);
        op.apply(&mut file.current, usize::MAX);
        file.pending.push(op);
        Ok(())
    }

    /// `fallocate`: mode 0 extends the size to cover the range;
    /// `FALLOC_FL_KEEP_SIZE` changes nothing a read sees; punching a hole
    /// or zeroing a range writes zeros. Other modes are not modelled.
    ///
    /// # Errors
    ///
    /// [`FsError::NotSupported`] for other modes, else as [`Model::write`].
    pub fn fallocate(&mut self, ino: Ino, offset: u64, len: u64, mode: i32) -> Result<(), FsError> {
        const KEEP_SIZE: i32 = 0x01;
        const PUNCH_HOLE: i32 = 0x02;
        const ZERO_RANGE: i32 = 0x10;
        let end = offset.saturating_add(len);
        match mode {
            0 => {
                let size = self.attr(ino)?.size;
                if end > size {
                    self.set_len(ino, end)?;
                } else {
                    self.mutating()?;
                }
                Ok(())
            }
            KEEP_SIZE => self.mutating(),
            m if m == PUNCH_HOLE | KEEP_SIZE || m == ZERO_RANGE || m == ZERO_RANGE | KEEP_SIZE => {
                let size = self.attr(ino)?.size;
                let stop = if m & KEEP_SIZE != 0 {
                    end.min(size)
                } else {
                    end
                };
                if stop > offset {
                    let zeros = vec![0; (stop - offset) as usize];
                    self.write(ino, offset, &zeros)?;
                } else {
                    self.mutating()?;
                }
                Ok(())
            }
            _ => Err(FsError::NotSupported),
        }
    }

    /// Sets the permission bits (metadata: the simulator keeps it as of
    /// the cut, see the module docs of [`super`]).
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::PowerOff`].
    pub fn set_perm(&mut self, ino: Ino, perm: u16) -> Result<(), FsError> {
        self.mutating()?;
        self.inode_mut(ino)?.perm = perm;
        Ok(())
    }

    /// Sets the access and modification times (`None` leaves one as is).
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::PowerOff`].
    pub fn set_times(
        &mut self,
        ino: Ino,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<(), FsError> {
        self.mutating()?;
        let inode = self.inode_mut(ino)?;
        inode.atime = atime.unwrap_or(inode.atime);
        inode.mtime = mtime.unwrap_or(inode.mtime);
        inode.ctime = SystemTime::now();
        Ok(())
    }

    /// `fsync` or `fdatasync` of a file: its data and size become durable.
    /// Costs the bytes written since the last one. On a directory this is
    /// [`Model::fsync_dir`] (the kernel sends `fsyncdir` for those).
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::PowerOff`].
    pub fn fsync(&mut self, ino: Ino) -> Result<(), FsError> {
        if matches!(self.inode(ino)?.body, Body::Dir(_)) {
            return self.fsync_dir(ino);
        }
        self.mutating()?;
        let Body::File(file) = &mut self.inode_mut(ino)?.body else {
            return Err(FsError::IsDir);
        };
        for op in std::mem::take(&mut file.pending) {
            op.apply(&mut file.durable, usize::MAX);
        }
        Ok(())
    }

    /// The current state as an image: what a clean unmount (every file
    /// and directory synced) leaves. The harness reuses it as the next
    /// cycle's disk.
    pub fn current_image(&self) -> Image {
        Image::of_current(self)
    }

    /// Inodes held in memory, for tests of the bookkeeping.
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }
}

#[cfg(test)]
mod tests;
