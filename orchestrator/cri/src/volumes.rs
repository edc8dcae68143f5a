//! Pods' volumes on the node's disk, for the real runtimes:
//! `ROOT/UID/volumes/NAME/`, which containers mount (the process runtime
//! with a bind mount in a mount namespace of the container's own, Docker
//! with a bind mount).
//!
//! A volume is written as Kubernetes' atomic writer writes one, so a
//! program never reads half of an update and an update reaches programs
//! that already run:
//!
//! ```text
//! NAME/..3/a          the files, in a directory of this version
//! NAME/..data -> ..3  switched with one rename(2)
//! NAME/a -> ..data/a  what programs open
//! ```
//!
//! A new version is written beside the current one, `..data` is switched
//! to it atomically, the top-level links are added or removed, and the
//! old version is deleted. Writing what the volume already holds changes
//! nothing.
#![allow(clippy::disallowed_methods)] // real mode: the node's disk

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use faultline_kubelet::{RuntimeError, VolumeFile, VolumeFiles};

/// The link that names the current version.
const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// The volumes of every pod on one node.
#[derive(Debug, Clone)]
pub struct VolumeDirs {
    root: PathBuf,
}

impl VolumeDirs {
    /// Volumes under `root` (`DATA_DIR/pods`).
    pub fn new(root: &Path) -> VolumeDirs {
        VolumeDirs {
            root: root.to_path_buf(),
        }
    }

    /// Where volume `name` of pod `uid` lives (what a container mounts).
    pub fn dir(&self, uid: &str, name: &str) -> PathBuf {
        self.root.join(uid).join("volumes").join(name)
    }

    /// The directory a container mounts for volume `name` of pod `uid`,
    /// or why it cannot.
    pub fn source(&self, uid: &str, name: &str) -> Result<PathBuf, RuntimeError> {
        let dir = self.dir(uid, name);
        if dir.join(DATA).exists() {
            Ok(dir)
        } else {
            Err(RuntimeError::BadSpec {
                message: format!("volume {name:?} was never written on this node"),
            })
        }
    }

    /// Makes the volume hold exactly `files` (see the module docs); true
    /// when anything changed.
    pub fn write(&self, uid: &str, name: &str, files: &VolumeFiles) -> Result<bool, RuntimeError> {
        let dir = self.dir(uid, name);
        write_atomically(&dir, files).map_err(|e| RuntimeError::Failed {
            message: format!("cannot write volume {}: {e}", dir.display()),
        })
    }

    /// The uids of the pods with volumes here.
    pub fn pods(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut uids: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        uids.sort();
        uids
    }

    /// Removes every volume of pod `uid`.
    pub fn remove(&self, uid: &str) -> Result<(), RuntimeError> {
        let dir = self.root.join(uid);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Failed {
                message: format!("cannot remove {}: {e}", dir.display()),
            }),
        }
    }
}

/// Implements the kubelet's `VolumeRuntime` for a runtime whose
/// `volumes` field is its [`VolumeDirs`] (both real runtimes keep pods'
/// volumes the same way; only how they mount them differs).
macro_rules! volume_runtime {
    ($runtime:ty) => {
        #[async_trait::async_trait(?Send)]
        impl faultline_kubelet::VolumeRuntime for $runtime {
            async fn write_volume(
                &self,
                pod_uid: &str,
                volume: &str,
                files: &faultline_kubelet::VolumeFiles,
            ) -> Result<bool, faultline_kubelet::RuntimeError> {
                self.volumes.write(pod_uid, volume, files)
            }

            async fn volume_pods(&self) -> Vec<String> {
                self.volumes.pods()
            }

            async fn remove_volumes(
                &self,
                pod_uid: &str,
            ) -> Result<(), faultline_kubelet::RuntimeError> {
                self.volumes.remove(pod_uid)
            }
        }
    };
}
pub(crate) use volume_runtime;

/// What the version directory `dir` holds, by relative path.
fn read_version(dir: &Path) -> io::Result<VolumeFiles> {
    fn walk(base: &Path, rel: &str, out: &mut VolumeFiles) -> io::Result<()> {
        for entry in fs::read_dir(base.join(rel))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(base, &path, out)?;
            } else {
                let data = fs::read(base.join(&path))?;
                let mode = meta.permissions().mode() & 0o777;
                out.insert(path, VolumeFile { data, mode });
            }
        }
        Ok(())
    }
    let mut files = BTreeMap::new();
    walk(dir, "", &mut files)?;
    Ok(files)
}

/// The top-level names of `files` (what the volume shows as links).
fn top_level(files: &VolumeFiles) -> BTreeSet<String> {
    files
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p).to_string())
        .collect()
}

fn write_atomically(dir: &Path, files: &VolumeFiles) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    let current = fs::read_link(dir.join(DATA))
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    if let Some(cur) = &current {
        if read_version(&dir.join(cur)).ok().as_ref() == Some(files) {
            return Ok(false);
        }
    }
    // Versions are `..1`, `..2`, ...: the next after the current one (a
    // leftover of a write that was interrupted is replaced).
    let n = current
        .as_deref()
        .and_then(|c| c.strip_prefix("..")?.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let version = format!("..{n}");
    let vdir = dir.join(&version);
    if vdir.exists() {
        fs::remove_dir_all(&vdir)?;
    }
    fs::create_dir(&vdir)?;
    for (path, f) in files {
        // The API refuses absolute paths and `..`; a file may not escape
        // its volume even so.
        if path.starts_with('/') || path.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad path {path:?} in a volume"),
            ));
        }
        let target = vdir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &f.data)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(f.mode))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&version, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    let wanted = top_level(files);
    for name in &wanted {
        let link = dir.join(name);
        let target = Path::new(DATA).join(name);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let _ = fs::remove_file(&link);
            symlink(&target, &link)?;
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !wanted.contains(&name) {
            fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = current.filter(|c| *c != version) {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str, u32)]) -> VolumeFiles {
        pairs
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    VolumeFile {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("volume dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_volume_is_switched_whole_and_keeps_no_old_version() {
        let tmp = std::env::temp_dir().join(format!("faultline-volumes-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let v = VolumeDirs::new(&tmp);
        let one = files(&[("a", "1", 0o644), ("conf/b.txt", "2", 0o600)]);
        assert_eq!(v.write("uid", "cfg", &one), Ok(true));
        assert_eq!(v.write("uid", "cfg", &one), Ok(false), "nothing changed");
        let dir = v.dir("uid", "cfg");
        assert_eq!(listing(&dir), ["..1", "..data", "a", "conf"]);
        assert_eq!(fs::read_to_string(dir.join("conf/b.txt")).unwrap(), "2");
        let mode = fs::metadata(dir.join("conf/b.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // A file opened before the switch keeps reading the old version;
        // a path opened after reads the new one.
        let two = files(&[("a", "one", 0o644), ("c", "3", 0o644)]);
        let before = fs::File::open(dir.join("a")).unwrap();
        assert_eq!(v.write("uid", "cfg", &two), Ok(true));
        assert_eq!(listing(&dir), ["..2", "..data", "a", "c"]);
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(io::read_to_string(before).unwrap(), "1");
        assert!(v.source("uid", "cfg").is_ok());
        assert!(v.source("uid", "other").is_err());
        assert_eq!(v.pods(), ["uid"]);

        assert_eq!(v.write("uid", "empty", &VolumeFiles::new()), Ok(true));
        assert_eq!(listing(&v.dir("uid", "empty")), ["..1", "..data"]);
        v.remove("uid").unwrap();
        assert!(v.pods().is_empty());
        v.remove("uid").unwrap();
        let _ = fs::remove_dir_all(&tmp);
    }
}
