//! The directory store: one file per id in one directory (`[upload] dir`), which the nodes
//! of a cluster share through a shared volume.
//!
//! A body streams into a partial file named for its id and a random suffix, which is then
//! hard-linked to the id's name — never renamed over another: of two PUTs of one slot at
//! once, the second finds the name taken — and removed.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures_util::StreamExt;
use parley_proto::upload;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{io, FileBody, StoreError};

/// Bytes read from the disk at a time when serving.
const READ_CHUNK: usize = 64 * 1024;
/// Partial files start with this (ids never do: they are lowercase letters and digits).
const PARTIAL: &str = ".partial-";

/// One directory of files named by id.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// The store in `dir`, created if absent.
    pub(crate) fn open(dir: &Path) -> Result<DirStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("{}: {e}", dir.display())))?;
        Ok(DirStore {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub(crate) fn exists(&self, id: &str) -> bool {
        self.path(id).exists()
    }

    pub(crate) async fn create(&self, id: &str) -> Result<DirSink, StoreError> {
        let partial = self
            .dir
            .join(format!("{PARTIAL}{id}-{}", upload::new_file_id()));
        let file = tokio::fs::File::create(&partial).await.map_err(io)?;
        Ok(DirSink {
            partial,
            target: self.path(id),
            file: Some(file),
            done: false,
        })
    }

    pub(crate) async fn read(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<FileBody>, StoreError> {
        let mut file = match tokio::fs::File::open(self.path(id)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let range = match range {
            Some(r) => r,
            None => 0..file.metadata().await.map_err(io)?.len(),
        };
        file.seek(SeekFrom::Start(range.start)).await.map_err(io)?;
        let left = range.end.saturating_sub(range.start);
        let body = futures_util::stream::try_unfold((file, left), |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let mut buf = vec![0; READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK))];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                // Shorter than recorded: the listener's sized body reports it.
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((bytes::Bytes::from(buf), (file, left - n as u64))))
        });
        Ok(Some(body.boxed()))
    }

    pub(crate) async fn remove(&self, id: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    pub(crate) async fn sweep(&self, before: SystemTime) -> Result<usize, StoreError> {
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(io)?;
        let mut swept = 0;
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            if !entry.file_name().to_string_lossy().starts_with(PARTIAL) {
                continue;
            }
            let stale = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < before);
            if stale && tokio::fs::remove_file(entry.path()).await.is_ok() {
                swept += 1;
            }
        }
        Ok(swept)
    }
}

/// A body streaming into a partial file; dropped before it is committed (the request went
/// away), the partial file goes.
#[derive(Debug)]
pub(crate) struct DirSink {
    partial: PathBuf,
    target: PathBuf,
    file: Option<tokio::fs::File>,
    /// Committed or discarded: nothing left to clean up.
    done: bool,
}

impl Drop for DirSink {
    fn drop(&mut self) {
        if !self.done {
            self.file = None;
            // Sync on purpose: a drop cannot wait, and removing one file is short.
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl DirSink {
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::Io("file already closed".into()))?;
        file.write_all(chunk).await.map_err(io)
    }

    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        let result = self.place().await;
        self.discard().await;
        result
    }

    async fn place(&mut self) -> Result<(), StoreError> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| StoreError::Io("file already closed".into()))?;
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        // Linked, not renamed: a second PUT of the same slot racing this one finds the name
        // taken instead of replacing the bytes.
        match tokio::fs::hard_link(&self.partial, &self.target).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Exists),
            Err(e) => Err(io(e)),
        }
    }

    /// Removes the partial file (after a commit, only its name: the bytes stay linked).
    pub(crate) async fn discard(&mut self) {
        self.file = None;
        let _ = tokio::fs::remove_file(&self.partial).await;
        self.done = true;
    }
}
