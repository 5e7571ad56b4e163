//! An in-memory target, shaped like an object store: objects are written
//! once under `HOST/NAME/OBJECT`, nothing is renamed, and a backup is
//! visible only once its catalog was created (create-only). For unit tests
//! of everything above the transport, without root or disks.

use super::{Listed, ObjectRead, ObjectWriter, Objects, State, Target, Upload, CATALOG};
use crate::ArchiveError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

type Object = Arc<Vec<u8>>;
type Store = Arc<Mutex<BTreeMap<String, Object>>>;
type Live = Arc<Mutex<BTreeSet<String>>>;

/// An object store in memory (`mem://NAME` in messages).
#[derive(Debug, Clone, Default)]
pub struct MemoryTarget {
    objects: Store,
    /// `HOST/NAME` of the uploads that are running.
    live: Live,
}

fn poisoned() -> ArchiveError {
    ArchiveError::Target("mem://".into(), "the in-memory store was poisoned by a panic".into())
}

impl MemoryTarget {
    /// An empty store.
    pub fn new() -> MemoryTarget {
        MemoryTarget::default()
    }

    /// Every object key, sorted (for tests that look at what was written).
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// Replace an object's bytes (for tests that damage a backup).
    pub fn tamper(&self, key: &str, data: Vec<u8>) {
        if let Ok(mut m) = self.objects.lock() {
            m.insert(key.to_string(), Arc::new(data));
        }
    }

    /// Remove an object (for tests of a lost object).
    pub fn remove(&self, key: &str) {
        if let Ok(mut m) = self.objects.lock() {
            m.remove(key);
        }
    }
}

fn plain(what: &str, n: &str) -> Result<(), ArchiveError> {
    if n.is_empty() || n.contains('/') || n.starts_with('.') {
        return Err(ArchiveError::Target(format!("{what} {n:?}"), "is not a plain name (refused)".into()));
    }
    Ok(())
}

impl Target for MemoryTarget {
    fn url(&self) -> String {
        "mem://".into()
    }

    fn hosts(&self) -> Result<Vec<String>, ArchiveError> {
        let m = self.objects.lock().map_err(|_| poisoned())?;
        // Markers (`.lifeboat-check-1`) are no hosts.
        let hosts: BTreeSet<String> =
            m.keys().filter_map(|k| k.split('/').next()).filter(|h| !h.starts_with('.')).map(str::to_string).collect();
        Ok(hosts.into_iter().collect())
    }

    fn scan(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        plain("host", host)?;
        let m = self.objects.lock().map_err(|_| poisoned())?;
        let live = self.live.lock().map_err(|_| poisoned())?;
        let prefix = format!("{host}/");
        // Per backup name: its bytes, and its catalog when it has one.
        let mut by_name: BTreeMap<String, (u64, Option<Object>)> = BTreeMap::new();
        for (k, v) in m.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
            let Some((name, object)) = k[prefix.len()..].split_once('/') else { continue };
            let e = by_name.entry(name.to_string()).or_default();
            e.0 += v.len() as u64;
            if object == CATALOG {
                e.1 = Some(Arc::clone(v));
            }
        }
        Ok(by_name
            .into_iter()
            .map(|(name, (bytes, catalog))| {
                let state = match catalog {
                    Some(c) => super::catalog_state(&c),
                    None if live.contains(&format!("{host}/{name}")) => State::Running,
                    None => State::Interrupted,
                };
                Listed { location: format!("mem://{host}/{name}"), name, state, bytes, modified: None }
            })
            .collect())
    }

    fn begin(&self, host: &str, name: &str) -> Result<Arc<dyn Upload>, ArchiveError> {
        plain("host", host)?;
        plain("backup", name)?;
        let key = format!("{host}/{name}");
        if !self.live.lock().map_err(|_| poisoned())?.insert(key.clone()) {
            return Err(ArchiveError::Target(self.url(), format!("{key} is being written by another run")));
        }
        Ok(Arc::new(MemUpload { objects: Arc::clone(&self.objects), live: Arc::clone(&self.live), prefix: key }))
    }

    fn backup(&self, host: &str, name: &str) -> Result<Arc<dyn Objects>, ArchiveError> {
        plain("host", host)?;
        plain("backup", name)?;
        Ok(Arc::new(MemObjects { objects: Arc::clone(&self.objects), prefix: format!("{host}/{name}") }))
    }

    fn remove_interrupted(&self, host: &str, l: &Listed) -> Result<bool, ArchiveError> {
        let key = format!("{host}/{}", l.name);
        if self.live.lock().map_err(|_| poisoned())?.contains(&key) {
            return Ok(false);
        }
        let mut m = self.objects.lock().map_err(|_| poisoned())?;
        if m.contains_key(&format!("{key}/{CATALOG}")) {
            return Ok(false);
        }
        m.retain(|k, _| !k.starts_with(&format!("{key}/")));
        Ok(true)
    }

    fn delete(&self, host: &str, name: &str) -> Result<(), ArchiveError> {
        let key = format!("{host}/{name}/");
        let mut m = self.objects.lock().map_err(|_| poisoned())?;
        m.remove(&format!("{key}{CATALOG}"));
        m.retain(|k, _| !k.starts_with(&key));
        Ok(())
    }

    fn create_marker(&self, key: &str, data: &[u8]) -> Result<bool, ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        let mut m = self.objects.lock().map_err(|_| poisoned())?;
        if m.contains_key(key) {
            return Ok(false);
        }
        m.insert(key.to_string(), Arc::new(data.to_vec()));
        Ok(true)
    }

    fn read_marker(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let m = self.objects.lock().map_err(|_| poisoned())?;
        Ok(m.get(key).map(|v| v.to_vec()))
    }

    fn remove_marker(&self, key: &str) -> Result<(), ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        self.objects.lock().map_err(|_| poisoned())?.remove(key);
        Ok(())
    }

    fn refresh_marker(&self, key: &str, data: &[u8]) -> Result<(), ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        self.objects.lock().map_err(|_| poisoned())?.insert(key.to_string(), Arc::new(data.to_vec()));
        Ok(())
    }

    fn remove_stale_marker(&self, key: &str, seen: &[u8]) -> Result<bool, ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        let mut m = self.objects.lock().map_err(|_| poisoned())?;
        if m.get(key).is_some_and(|v| v.as_slice() == seen) {
            m.remove(key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// A running upload to a [`MemoryTarget`].
#[derive(Debug)]
struct MemUpload {
    objects: Store,
    live: Live,
    prefix: String,
}

impl Drop for MemUpload {
    fn drop(&mut self) {
        if let Ok(mut l) = self.live.lock() {
            l.remove(&self.prefix);
        }
    }
}

/// An object being written; it appears when finished (as a PUT completes).
struct MemWriter {
    objects: Store,
    key: String,
    data: Vec<u8>,
}

impl std::io::Write for MemWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for MemWriter {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let mut m = self.objects.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        if m.contains_key(&self.key) {
            return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{} exists", self.key)));
        }
        m.insert(self.key, Arc::new(self.data));
        Ok(())
    }
}

impl Upload for MemUpload {
    fn location(&self) -> String {
        format!("mem://{}", self.prefix)
    }

    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
        plain("object", name).map_err(std::io::Error::other)?;
        let key = format!("{}/{name}", self.prefix);
        if self.objects.lock().map_err(|_| std::io::Error::other("poisoned"))?.contains_key(&key) {
            return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{key} exists")));
        }
        Ok(Box::new(MemWriter { objects: Arc::clone(&self.objects), key, data: Vec::new() }))
    }

    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError> {
        let key = format!("{}/{CATALOG}", self.prefix);
        let mut m = self.objects.lock().map_err(|_| poisoned())?;
        // If-None-Match: * — a second commit of the same name fails.
        if m.contains_key(&key) {
            return Err(ArchiveError::Target(self.location(), "a backup of this name exists already".into()));
        }
        m.insert(key, Arc::new(catalog.to_vec()));
        Ok(Arc::new(MemObjects { objects: Arc::clone(&self.objects), prefix: self.prefix.clone() }))
    }

    fn abort(&self) {
        if let Ok(mut m) = self.objects.lock() {
            let p = format!("{}/", self.prefix);
            if !m.contains_key(&format!("{p}{CATALOG}")) {
                m.retain(|k, _| !k.starts_with(&p));
            }
        }
    }
}

/// The objects of one backup in a [`MemoryTarget`].
#[derive(Debug)]
struct MemObjects {
    objects: Store,
    prefix: String,
}

#[derive(Debug)]
struct MemObject(Arc<Vec<u8>>);

impl ObjectRead for MemObject {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end of the object"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl MemObjects {
    fn get(&self, name: &str, max: u64) -> std::io::Result<Arc<Vec<u8>>> {
        let m = self.objects.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let v = m
            .get(&format!("{}/{name}", self.prefix))
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{name}: no such object")))?;
        if v.len() as u64 > max {
            return Err(std::io::Error::other(format!("is {} bytes, more than the {max} it may have", v.len())));
        }
        Ok(v)
    }
}

impl Objects for MemObjects {
    fn location(&self) -> String {
        format!("mem://{}", self.prefix)
    }

    fn open_volume(&self, name: &str, max: u64) -> std::io::Result<Arc<dyn ObjectRead>> {
        Ok(Arc::new(MemObject(self.get(name, max)?)))
    }

    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        Ok(self.get(name, max)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_invisible_until_committed_and_a_dead_one_is_pruned() {
        let t = MemoryTarget::new();
        let up = t.begin("h", "b1").expect("begin");
        let mut w = up.create("vol-0001.tar.zst").expect("create");
        std::io::Write::write_all(&mut w, b"abc").expect("write");
        w.finish().expect("finish");
        assert_eq!(t.scan("h").expect("scan")[0].state, State::Running);
        assert!(t.begin("h", "b1").is_err(), "one run per name");
        drop(up);
        assert_eq!(t.scan("h").expect("scan")[0].state, State::Interrupted);
        assert_eq!(t.prune_partial("h").expect("prune").len(), 1);
        assert!(t.keys().is_empty(), "orphans removed");
        let up = t.begin("h", "b2").expect("begin");
        up.commit(b"{}").expect("commit");
        assert!(up.commit(b"{}").is_err(), "create-only catalog");
        assert!(matches!(t.scan("h").expect("scan")[0].state, State::Damaged(_)), "{{}} is not a catalog");
    }
}
