//! What a disk holds after a power cut: an [`Image`], made by
//! [`Model::cut`] from the durable state and, depending on the
//! [`CutMode`], some of the writes that were never synced.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path};

use super::model::{Body, FileNode, Ino, Model, Op, ROOT};
use crate::workload::Rng;

/// A whole filesystem at rest: the inodes reachable from the root
/// ([`ROOT`]), by number. [`Model::from_image`] mounts one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    nodes: BTreeMap<Ino, ImageNode>,
}

/// One inode of an [`Image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageNode {
    /// A regular file.
    File {
        /// Its bytes.
        data: Vec<u8>,
        /// Its permission bits.
        perm: u16,
    },
    /// A directory.
    Dir {
        /// Its names.
        entries: BTreeMap<OsString, Ino>,
        /// Its permission bits.
        perm: u16,
    },
}

impl Image {
    /// An empty filesystem: only the root directory.
    pub fn empty() -> Self {
        Image {
            nodes: BTreeMap::from([(
                ROOT,
                ImageNode::Dir {
                    entries: BTreeMap::new(),
                    perm: 0o755,
                },
            )]),
        }
    }

    /// The inodes, by number.
    pub fn nodes(&self) -> &BTreeMap<Ino, ImageNode> {
        &self.nodes
    }

    /// The inode at `path` (relative to the root; `""` is the root).
    pub fn node(&self, path: impl AsRef<Path>) -> Option<&ImageNode> {
        let mut ino = ROOT;
        for part in path.as_ref().components() {
            let name: &OsStr = match part {
                Component::Normal(name) => name,
                Component::RootDir | Component::CurDir => continue,
                _ => return None,
            };
            match self.nodes.get(&ino)? {
                ImageNode::Dir { entries, .. } => ino = *entries.get(name)?,
                ImageNode::File { .. } => return None,
            }
        }
        self.nodes.get(&ino)
    }

    /// The bytes of the file at `path`, if there is one.
    pub fn file(&self, path: impl AsRef<Path>) -> Option<&[u8]> {
        match self.node(path)? {
            ImageNode::File { data, .. } => Some(data),
            ImageNode::Dir { .. } => None,
        }
    }

    /// The names in the directory at `path`, if there is one.
    pub fn names(&self, path: impl AsRef<Path>) -> Option<Vec<String>> {
        match self.node(path)? {
            ImageNode::Dir { entries, .. } => Some(
                entries
                    .keys()
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect(),
            ),
            ImageNode::File { .. } => None,
        }
    }

    /// Total bytes of file data.
    pub fn bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|node| match node {
                ImageNode::File { data, .. } => data.len() as u64,
                ImageNode::Dir { .. } => 0,
            })
            .sum()
    }

    /// The current state of `model`, everything as if synced.
    pub(crate) fn of_current(model: &Model) -> Self {
        Self::collect(model, false, |file| file.current.clone())
    }

    /// The inodes reachable from the root through current (`durable`
    /// false) or durable names, each file's bytes from `data`. A directory
    /// reached a second time (possible only through durable names, when
    /// a directory moved between two parents and both were synced at
    /// different moments) is left out there: a tree has one path to each
    /// directory.
    fn collect(model: &Model, durable: bool, mut data: impl FnMut(&FileNode) -> Vec<u8>) -> Self {
        let mut nodes = BTreeMap::new();
        let mut queue = VecDeque::from([ROOT]);
        let mut seen = BTreeSet::from([ROOT]);
        while let Some(ino) = queue.pop_front() {
            let Some(inode) = model.inodes.get(&ino) else {
                continue;
            };
            let node = match &inode.body {
                Body::File(file) => ImageNode::File {
                    data: data(file),
                    perm: inode.perm,
                },
                Body::Dir(dir) => {
                    let names = if durable { &dir.durable } else { &dir.current };
                    let mut entries = BTreeMap::new();
                    for (name, &child) in names {
                        let Some(child_inode) = model.inodes.get(&child) else {
                            continue;
                        };
                        let is_dir = matches!(child_inode.body, Body::Dir(_));
                        if seen.insert(child) {
                            queue.push_back(child);
                        } else if is_dir {
                            continue;
                        }
                        entries.insert(name.clone(), child);
                    }
                    ImageNode::Dir {
                        entries,
                        perm: inode.perm,
                    }
                }
            };
            nodes.insert(ino, node);
        }
        Image { nodes }
    }
}

/// Which of the writes that were never synced survive a cut. Names that
/// were never synced (a create, rename or unlink with no `fsyncdir` of
/// the directory after it) are lost in every mode: the simulator models a
/// filesystem whose metadata reaches the disk only through `fsyncdir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Only durable state survives: the strictest disk.
    DropAll,
    /// Everything survives, synced or not: what a process crash (SIGKILL)
    /// leaves, since the page cache outlives the process. Not a power
    /// cut: the harness's control, which shows that its checks find
    /// nothing where nothing was lost.
    KeepAll,
    /// Each unsynced write of each file survives with probability 1/2,
    /// applied in order onto the durable bytes: disks reorder writes.
    RandomSubset {
        /// The seed of the choice.
        seed: u64,
    },
    /// Per file, a random prefix of its unsynced writes survives, the last
    /// one cut at a random byte: a disk that writes in order and lost
    /// power mid-write.
    TornPrefix {
        /// The seed of the choice.
        seed: u64,
    },
}

impl CutMode {
    /// The mode's name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            CutMode::DropAll => "drop all",
            CutMode::KeepAll => "keep all (control)",
            CutMode::RandomSubset { .. } => "random subset",
            CutMode::TornPrefix { .. } => "torn prefix",
        }
    }
}

/// What a cut threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutStats {
    /// Unsynced write operations (writes and size changes) at the cut.
    pub unsynced_ops: u64,
    /// Bytes those carried.
    pub unsynced_bytes: u64,
    /// Unsynced bytes that did not reach the image (dropped or torn off,
    /// or in a file whose name did not survive).
    pub dropped_bytes: u64,
    /// Files and directories that existed at the cut and are not in the
    /// image (their name was never synced, or their directory's was not).
    pub lost_inodes: u64,
}

impl Model {
    /// Turns the power off (as [`Model::freeze`]) and returns what the disk
    /// holds: the durable names from the root down, each file's durable
    /// bytes with the unsynced writes that `mode` lets survive.
    pub fn cut(&mut self, mode: CutMode) -> (Image, CutStats) {
        self.freeze();
        if mode == CutMode::KeepAll {
            let stats = CutStats {
                unsynced_ops: self.unsynced().0,
                unsynced_bytes: self.unsynced().1,
                ..CutStats::default()
            };
            return (self.current_image(), stats);
        }
        let mut stats = CutStats::default();
        let mut rng = match mode {
            CutMode::DropAll | CutMode::KeepAll => Rng::new(0),
            CutMode::RandomSubset { seed } | CutMode::TornPrefix { seed } => Rng::new(seed),
        };
        // Decide per file, in inode order, so a seed gives one image.
        let mut survivors: BTreeMap<Ino, (Vec<u8>, u64)> = BTreeMap::new();
        for (&ino, inode) in &self.inodes {
            let Body::File(file) = &inode.body else {
                continue;
            };
            let mut bytes = file.durable.clone();
            let kept = apply_surviving(&file.pending, mode, &mut rng, &mut bytes);
            let total: u64 = file.pending.iter().map(Op::bytes).sum();
            stats.unsynced_ops += file.pending.len() as u64;
            stats.unsynced_bytes += total;
            stats.dropped_bytes += total - kept;
            survivors.insert(ino, (bytes, kept));
        }
        let mut image = Image::collect(self, true, |_| Vec::new());
        for (ino, node) in &mut image.nodes {
            if let ImageNode::File { data, .. } = node
                && let Some((bytes, _)) = survivors.remove(ino)
            {
                *data = bytes;
            }
        }
        // Files whose names did not survive lose what they kept, too.
        stats.dropped_bytes += survivors.values().map(|(_, kept)| kept).sum::<u64>();
        let live = Image::collect(self, false, |_| Vec::new());
        stats.lost_inodes = live
            .nodes
            .keys()
            .filter(|ino| !image.nodes.contains_key(ino))
            .count() as u64;
        (image, stats)
    }
}

impl Model {
    /// Unsynced write operations, and the bytes they carry.
    fn unsynced(&self) -> (u64, u64) {
        self.inodes
            .values()
            .filter_map(|inode| match &inode.body {
                Body::File(file) => Some(&file.pending),
                Body::Dir(_) => None,
            })
            .fold((0, 0), |(ops, bytes), pending| {
                (
                    ops + pending.len() as u64,
                    bytes + pending.iter().map(Op::bytes).sum::<u64>(),
                )
            })
    }
}

/// Applies the `pending` writes that `mode` keeps onto `bytes`; returns
/// how many of their bytes were kept.
fn apply_surviving(pending: &[Op], mode: CutMode, rng: &mut Rng, bytes: &mut Vec<u8>) -> u64 {
    match mode {
        CutMode::DropAll => 0,
        CutMode::KeepAll => {
            pending.iter().for_each(|op| op.apply(bytes, usize::MAX));
            pending.iter().map(Op::bytes).sum()
        }
        CutMode::RandomSubset { .. } => {
            let mut kept = 0;
            for op in pending {
                if rng.chance(50) {
                    op.apply(bytes, usize::MAX);
                    kept += op.bytes();
                }
            }
            kept
        }
        CutMode::TornPrefix { .. } => {
            let prefix = rng.below(pending.len() + 1);
            let mut kept = 0;
            for (i, op) in pending[..prefix].iter().enumerate() {
                let keep = if i + 1 == prefix {
                    rng.below(op.bytes() as usize + 1)
                } else {
                    usize::MAX
                };
                op.apply(bytes, keep);
                kept += op.bytes().min(keep as u64);
            }
            kept
        }
    }
}
