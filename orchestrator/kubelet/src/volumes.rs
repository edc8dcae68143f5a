//! A pod's ConfigMap and Secret volumes as files, and where its containers
//! mount them.
//!
//! A volume projects one file per key of its object (a Secret's values
//! decoded, a ConfigMap's `binaryData` too), or only the `items` it lists
//! at their paths, with the volume's `defaultMode` (0644) or an item's
//! `mode`. The kubelet hands the files to its runtime
//! ([`crate::ContainerRuntime::write_volume`]), which writes them where its
//! containers see them, and again whenever they change while the pod runs.
//!
//! Pure functions: the shell fetches each volume's object (into the same
//! [`Lookups`] the environment is built from). Errors read as Kubernetes'
//! `MountVolume.SetUp failed` messages.

use std::collections::BTreeMap;

use base64::Engine as _;
use faultline_api::{Container, KeyToPath, Pod, Volume};

use crate::envvars::Lookups;

/// The permission bits of a projected file when nothing says otherwise.
pub const DEFAULT_MODE: u32 = 0o644;

/// One projected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    pub data: Vec<u8>,
    /// Permission bits (0 to 0777).
    pub mode: u32,
}

/// A volume's files by path relative to the volume (`a`, `conf/b.txt`).
pub type VolumeFiles = BTreeMap<String, VolumeFile>;

/// Where one container sees one of its pod's volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The volume's name in the pod's `spec.volumes`.
    pub volume: String,
    /// An absolute path in the container.
    pub path: String,
    pub read_only: bool,
}

/// The files `volume` holds, given the objects it names; an error (a
/// missing object or key that is not optional) leaves the volume
/// unmounted and the pod's containers waiting.
pub fn project(volume: &Volume, lookups: &Lookups) -> Result<VolumeFiles, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (kind, name, values, items, default_mode, optional) =
        match (&volume.config_map, &volume.secret) {
            (Some(c), _) => {
                let values = lookups
                    .config_maps
                    .get(&c.name)
                    .cloned()
                    .flatten()
                    .map(|m| {
                        let mut values: BTreeMap<String, Vec<u8>> = m
                            .data
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                            .collect();
                        for (k, v) in &m.binary_data {
                            values.insert(k.clone(), b64.decode(v).unwrap_or_default());
                        }
                        values
                    });
                let optional = c.optional.unwrap_or(false);
                (
                    "configmap",
                    &c.name,
                    values,
                    &c.items,
                    c.default_mode,
                    optional,
                )
            }
            (None, Some(s)) => {
                let values = lookups
                    .secrets
                    .get(&s.secret_name)
                    .cloned()
                    .flatten()
                    .map(|m| {
                        m.data
                            .iter()
                            .map(|(k, v)| (k.clone(), b64.decode(v).unwrap_or_default()))
                            .collect::<BTreeMap<_, _>>()
                    });
                let optional = s.optional.unwrap_or(false);
                (
                    "secret",
                    &s.secret_name,
                    values,
                    &s.items,
                    s.default_mode,
                    optional,
                )
            }
            (None, None) => return Err("the volume has no source this node can mount".into()),
        };
    let Some(values) = values else {
        return if optional {
            Ok(VolumeFiles::new())
        } else {
            Err(format!("{kind} {name:?} not found"))
        };
    };
    let mode = |m: Option<i32>| {
        m.or(default_mode)
            .map_or(DEFAULT_MODE, |m| m as u32 & 0o777)
    };
    let mut files = VolumeFiles::new();
    if items.is_empty() {
        for (key, data) in values {
            files.insert(
                key,
                VolumeFile {
                    data,
                    mode: mode(None),
                },
            );
        }
        return Ok(files);
    }
    for KeyToPath { key, path, mode: m } in items {
        match values.get(key) {
            Some(data) => {
                files.insert(
                    path.clone(),
                    VolumeFile {
                        data: data.clone(),
                        mode: mode(*m),
                    },
                );
            }
            None if optional => {}
            None => {
                let what = if kind == "configmap" {
                    "config"
                } else {
                    "secret"
                };
                return Err(format!("{kind} references non-existent {what} key: {key}"));
            }
        }
    }
    Ok(files)
}

/// The mounts of `container`: its `volumeMounts`, read-only for the
/// projected kinds whatever they ask (as in Kubernetes).
pub fn mounts(pod: &Pod, container: &Container) -> Vec<Mount> {
    container
        .volume_mounts
        .iter()
        .map(|m| {
            let projected = pod
                .spec
                .volumes
                .iter()
                .any(|v| v.name == m.name && (v.config_map.is_some() || v.secret.is_some()));
            Mount {
                volume: m.name.clone(),
                path: m.mount_path.clone(),
                read_only: m.read_only || projected,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_api::{ConfigMap, Secret};

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "volumes": [
                    {"name": "all", "configMap": {"name": "app"}},
                    {"name": "some", "configMap": {"name": "app", "defaultMode": 0o600,
                        "items": [{"key": "b", "path": "conf/b.txt", "mode": 0o400},
                                  {"key": "bin", "path": "bin"}]}},
                    {"name": "creds", "secret": {"secretName": "db"}},
                    {"name": "maybe", "secret": {"secretName": "gone", "optional": true}},
                    {"name": "missing", "configMap": {"name": "gone"}},
                    {"name": "badkey", "configMap": {"name": "app",
                        "items": [{"key": "nope", "path": "x"}]}}
                ],
                "containers": [{"name": "c", "image": "echo", "volumeMounts": [
                    {"name": "all", "mountPath": "/etc/app"},
                    {"name": "creds", "mountPath": "/etc/creds"}
                ]}]
            }
        }))
        .expect("pod decodes")
    }

    fn lookups() -> Lookups {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app", "namespace": "default"},
            "data": {"a": "one", "b": "two"},
            "binaryData": {"bin": "AAEC"}
        }))
        .expect("configmap decodes");
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "default"},
            "data": {"password": "aHVudGVyMg=="}
        }))
        .expect("secret decodes");
        let mut l = Lookups::default();
        l.config_maps.insert("app".into(), Some(cm));
        l.config_maps.insert("gone".into(), None);
        l.secrets.insert("db".into(), Some(secret));
        l.secrets.insert("gone".into(), None);
        l
    }

    fn file(data: &[u8], mode: u32) -> VolumeFile {
        VolumeFile {
            data: data.to_vec(),
            mode,
        }
    }

    #[test]
    fn volumes_project_keys_items_and_modes() {
        let p = pod();
        let l = lookups();
        let v = |i: usize| project(&p.spec.volumes[i], &l);
        let all = v(0).expect("all keys");
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            vec![
                ("a".to_string(), file(b"one", 0o644)),
                ("b".to_string(), file(b"two", 0o644)),
                ("bin".to_string(), file(&[0, 1, 2], 0o644)),
            ]
        );
        let some = v(1).expect("items");
        assert_eq!(some.get("conf/b.txt"), Some(&file(b"two", 0o400)));
        assert_eq!(some.get("bin"), Some(&file(&[0, 1, 2], 0o600)));
        assert_eq!(some.len(), 2);
        assert_eq!(
            v(2).expect("secret").get("password"),
            Some(&file(b"hunter2", 0o644))
        );
        assert_eq!(v(3), Ok(VolumeFiles::new()));
        assert_eq!(v(4), Err("configmap \"gone\" not found".to_string()));
        assert_eq!(
            v(5),
            Err("configmap references non-existent config key: nope".to_string())
        );
    }

    #[test]
    fn projected_volumes_mount_read_only() {
        let p = pod();
        assert_eq!(
            mounts(&p, &p.spec.containers[0]),
            vec![
                Mount {
                    volume: "all".into(),
                    path: "/etc/app".into(),
                    read_only: true
                },
                Mount {
                    volume: "creds".into(),
                    path: "/etc/creds".into(),
                    read_only: true
                },
            ]
        );
    }
}
