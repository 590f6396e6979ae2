//! The namespace half of [`Model`]: creating, removing and renaming
//! names, listing directories, and `fsyncdir`, which makes a directory's
//! names durable. Also the bookkeeping that forgets an inode once no
//! current name, durable name or open handle can reach it.

use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use super::{Body, DirNode, FileNode, FsError, Ino, Inode, Kind, Model, ROOT, Trigger};

impl Model {
    /// Creates `name` in `parent` as a new file or directory (`create`,
    /// `mknod`, `mkdir`). The name is durable only after an `fsyncdir` of
    /// `parent`.
    ///
    /// # Errors
    ///
    /// [`FsError::Exists`], [`FsError::NotFound`], [`FsError::NotDir`],
    /// [`FsError::PowerOff`].
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        perm: u16,
    ) -> Result<Ino, FsError> {
        self.mutating()?;
        if self.dir(parent)?.current.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let body = match kind {
            Kind::File => Body::File(FileNode::default()),
            Kind::Dir => Body::Dir(DirNode {
                parent,
                ..DirNode::default()
            }),
        };
        let mut inode = Inode::new(body, perm);
        inode.nlink = 1;
        self.inodes.insert(ino, inode);
        self.dir_mut(parent)?.current.insert(name.to_owned(), ino);
        if let Some(Trigger::AfterCreate {
            prefix,
            suffix,
            then,
        }) = &self.trigger
            && kind == Kind::File
            && name.as_encoded_bytes().starts_with(prefix.as_bytes())
            && name.as_encoded_bytes().ends_with(suffix.as_bytes())
        {
            self.trigger = Some(Trigger::AfterOps(*then));
        }
        Ok(ino)
    }

    /// `fsyncdir`: the directory's current names become its durable ones
    /// (names created, renamed in or out, removed). It does not sync the
    /// files' data, nor the directory's own name in its parent.
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::NotDir`], [`FsError::PowerOff`].
    pub fn fsync_dir(&mut self, ino: Ino) -> Result<(), FsError> {
        self.mutating()?;
        let dir = self.dir_mut(ino)?;
        let old = std::mem::replace(&mut dir.durable, dir.current.clone());
        let new: Vec<Ino> = dir.durable.values().copied().collect();
        for child in new {
            if let Some(inode) = self.inodes.get_mut(&child) {
                inode.durable_links += 1;
            }
        }
        self.drop_durable_links(old.into_values());
        Ok(())
    }

    fn drop_durable_links(&mut self, links: impl IntoIterator<Item = Ino>) {
        for child in links {
            if let Some(inode) = self.inodes.get_mut(&child) {
                inode.durable_links = inode.durable_links.saturating_sub(1);
            }
            self.free_if_unused(child);
        }
    }

    /// Forgets an inode that nothing can reach any more: no current name,
    /// no durable name, no open handle. A freed directory's durable names
    /// stop counting for its children.
    pub(super) fn free_if_unused(&mut self, ino: Ino) {
        let unused = self
            .inodes
            .get(&ino)
            .is_some_and(|i| ino != ROOT && i.nlink == 0 && i.durable_links == 0 && i.opens == 0);
        if unused
            && let Some(inode) = self.inodes.remove(&ino)
            && let Body::Dir(dir) = inode.body
        {
            self.drop_durable_links(dir.durable.into_values());
        }
    }

    /// Removes the file `name` from `parent` (`unlink`).
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::IsDir`], [`FsError::NotDir`],
    /// [`FsError::PowerOff`].
    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.remove(parent, name, Kind::File)
    }

    /// Removes the empty directory `name` from `parent` (`rmdir`).
    ///
    /// # Errors
    ///
    /// [`FsError::NotEmpty`], else as [`Model::unlink`].
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.remove(parent, name, Kind::Dir)
    }

    fn remove(&mut self, parent: Ino, name: &OsStr, kind: Kind) -> Result<(), FsError> {
        self.mutating()?;
        let ino = self.lookup(parent, name)?;
        match (&self.inode(ino)?.body, kind) {
            (Body::File(_), Kind::Dir) => return Err(FsError::NotDir),
            (Body::Dir(_), Kind::File) => return Err(FsError::IsDir),
            (Body::Dir(dir), Kind::Dir) if !dir.current.is_empty() => {
                return Err(FsError::NotEmpty);
            }
            _ => {}
        }
        self.dir_mut(parent)?.current.remove(name);
        self.unlinked(ino);
        Ok(())
    }

    fn unlinked(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.nlink = inode.nlink.saturating_sub(1);
            inode.ctime = SystemTime::now();
        }
        self.free_if_unused(ino);
    }

    /// Moves `name` in `parent` to `new_name` in `new_parent`, replacing
    /// what was there unless `no_replace`, or swapping the two if
    /// `exchange` (`renameat2`'s `RENAME_NOREPLACE` and
    /// `RENAME_EXCHANGE`). Durable in each directory after its own
    /// `fsyncdir`.
    ///
    /// # Errors
    ///
    /// [`FsError::Exists`] (no-replace), [`FsError::NotEmpty`] (a
    /// non-empty directory in the way), [`FsError::IsDir`] and
    /// [`FsError::NotDir`] (a file over a directory or the reverse),
    /// [`FsError::Invalid`] (a directory into itself), else as
    /// [`Model::unlink`].
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
        exchange: bool,
    ) -> Result<(), FsError> {
        self.mutating()?;
        let ino = self.lookup(parent, name)?;
        let target = self.dir(new_parent)?.current.get(new_name).copied();
        let is_dir = |model: &Self, ino: Ino| matches!(model.inodes[&ino].body, Body::Dir(_));
        if is_dir(self, ino) && self.is_ancestor(ino, new_parent) {
            return Err(FsError::Invalid);
        }
        if exchange {
            let target = target.ok_or(FsError::NotFound)?;
            if is_dir(self, target) && self.is_ancestor(target, parent) {
                return Err(FsError::Invalid);
            }
            self.dir_mut(parent)?
                .current
                .insert(name.to_owned(), target);
            self.dir_mut(new_parent)?
                .current
                .insert(new_name.to_owned(), ino);
            self.reparent(ino, new_parent);
            self.reparent(target, parent);
            return Ok(());
        }
        if let Some(target) = target {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(FsError::Exists);
            }
            match (is_dir(self, ino), &self.inodes[&target].body) {
                (false, Body::Dir(_)) => return Err(FsError::IsDir),
                (true, Body::File(_)) => return Err(FsError::NotDir),
                (true, Body::Dir(dir)) if !dir.current.is_empty() => {
                    return Err(FsError::NotEmpty);
                }
                _ => {}
            }
        }
        self.dir_mut(parent)?.current.remove(name);
        self.dir_mut(new_parent)?
            .current
            .insert(new_name.to_owned(), ino);
        self.reparent(ino, new_parent);
        if let Some(target) = target {
            self.unlinked(target);
        }
        Ok(())
    }

    /// Whether `dir` is `ino` or lies under it now.
    fn is_ancestor(&self, ino: Ino, mut dir: Ino) -> bool {
        loop {
            if dir == ino {
                return true;
            }
            match self.inodes.get(&dir).map(|i| &i.body) {
                Some(Body::Dir(node)) if dir != ROOT => dir = node.parent,
                _ => return false,
            }
        }
    }

    fn reparent(&mut self, ino: Ino, parent: Ino) {
        if let Some(Inode {
            body: Body::Dir(dir),
            ..
        }) = self.inodes.get_mut(&ino)
        {
            dir.parent = parent;
        }
    }

    /// A directory's entries now, with `.` and `..` first, as `readdir`
    /// lists them.
    ///
    /// # Errors
    ///
    /// [`FsError::NotFound`], [`FsError::NotDir`], [`FsError::PowerOff`].
    pub fn entries(&self, ino: Ino) -> Result<Vec<(OsString, Ino, Kind)>, FsError> {
        self.powered()?;
        let dir = self.dir(ino)?;
        let mut out = vec![
            (OsString::from("."), ino, Kind::Dir),
            (OsString::from(".."), dir.parent, Kind::Dir),
        ];
        for (name, &child) in &dir.current {
            let kind = match self.inodes.get(&child).map(|i| &i.body) {
                Some(Body::Dir(_)) => Kind::Dir,
                _ => Kind::File,
            };
            out.push((name.clone(), child, kind));
        }
        Ok(out)
    }
}
