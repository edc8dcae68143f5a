//! The cluster's certificates, as `faultline up` makes them (rcgen): one
//! cluster CA; a certificate per master naming the addresses clients dial,
//! for serving and for client authentication (store peers, and the API
//! server reaching the kubelets); and a serving-only certificate per node
//! for its kubelet, which therefore cannot authenticate as a client to
//! another node's kubelet. Keys are written readable by their owner only.
//!
//! The CA is kept across runs (so a kubeconfig written before still
//! verifies); the other certificates are issued afresh on every `up`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Where a master's certificate and key are.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files of a cluster's PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    /// One per master, in order.
    pub masters: Vec<Identity>,
    /// One per node (its kubelet's serving certificate), in order.
    pub nodes: Vec<Identity>,
}

/// Writes `contents` to `path`, readable and writable by its owner only
/// (also when the file was there before with wider permissions).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    let named = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(named)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(named)?;
    f.write_all(contents).map_err(named)
}

/// The CA's parameters: the same every time, so a kept CA key can sign
/// again (the issuer's name and key identify it, not this struct).
fn ca_params() -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "faultline-ca");
    dn.push(DnType::OrganizationName, "faultline");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// The cluster CA under `dir`: read when `ca.crt` and `ca.key` are there,
/// else made. Returns its issuer.
fn ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, String> {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if crt.exists() && key.exists() {
        let pem = fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))?;
        let kp = KeyPair::from_pem(&pem)
            .map_err(|e| format!("{}: not a usable CA key: {e}", key.display()))?;
        return Ok(Issuer::new(ca_params()?, kp));
    }
    let kp = KeyPair::generate().map_err(|e| format!("generating the CA key: {e}"))?;
    let params = ca_params()?;
    let cert = params
        .self_signed(&kp)
        .map_err(|e| format!("signing the CA: {e}"))?;
    write_private(&key, kp.serialize_pem().as_bytes())?;
    fs::write(&crt, cert.pem()).map_err(|e| format!("{}: {e}", crt.display()))?;
    Ok(Issuer::new(params, kp))
}

/// A certificate signed by the CA, for `cn`, valid for the names and
/// addresses in `sans`, for the `usages` given (server, client or both).
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    cn: &str,
    org: &str,
    sans: &[String],
    usages: Vec<ExtendedKeyUsagePurpose>,
    out: &Identity,
) -> Result<(), String> {
    let mut p = CertificateParams::new(sans.to_vec()).map_err(|e| format!("{cn}: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, org);
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = usages;
    let kp = KeyPair::generate().map_err(|e| format!("generating {cn}'s key: {e}"))?;
    let cert = p
        .signed_by(&kp, ca)
        .map_err(|e| format!("signing {cn}: {e}"))?;
    write_private(&out.key, kp.serialize_pem().as_bytes())?;
    fs::write(&out.cert, cert.pem()).map_err(|e| format!("{}: {e}", out.cert.display()))
}

/// The PKI of a cluster whose masters are reached at `master_ips` and
/// whose nodes' kubelets at `node_ips`, under `dir` (made if missing).
pub fn ensure(dir: &Path, master_ips: &[String], node_ips: &[String]) -> Result<Pki, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca = ca(dir)?;
    let mut masters = Vec::new();
    for (i, ip) in master_ips.iter().enumerate() {
        let id = Identity {
            cert: dir.join(format!("m{}.crt", i + 1)),
            key: dir.join(format!("m{}.key", i + 1)),
        };
        let mut sans = vec![ip.clone(), "localhost".to_string()];
        if ip != "127.0.0.1" {
            sans.push("127.0.0.1".to_string());
        }
        let both = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        leaf(
            &ca,
            &format!("m{}", i + 1),
            "system:masters",
            &sans,
            both,
            &id,
        )?;
        masters.push(id);
    }
    let mut nodes = Vec::new();
    for (i, ip) in node_ips.iter().enumerate() {
        let name = format!("n{}", i + 1);
        let id = Identity {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        let server_only = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cn = format!("system:node:{name}");
        leaf(
            &ca,
            &cn,
            "system:nodes",
            std::slice::from_ref(ip),
            server_only,
            &id,
        )?;
        nodes.push(id);
    }
    Ok(Pki {
        ca: dir.join("ca.crt"),
        masters,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("faultline-pki-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn keys_are_private_and_the_ca_is_kept() {
        let d = scratch("keep");
        let pki = ensure(&d, &["127.0.0.1".into()], &["127.0.1.1".into()]).unwrap();
        for key in [
            d.join("ca.key"),
            pki.masters[0].key.clone(),
            pki.nodes[0].key.clone(),
        ] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let ca = fs::read(&pki.ca).unwrap();
        ensure(&d, &["127.0.0.1".into()], &[]).unwrap();
        assert_eq!(fs::read(&pki.ca).unwrap(), ca, "a second run keeps the CA");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_master_certificate_verifies_against_the_ca() {
        let d = scratch("verify");
        let pki = ensure(&d, &["127.0.0.1".into()], &[]).unwrap();
        // The server side accepts the pair, and a client trusts the CA.
        faultline_env::tls::TlsServer::from_files(
            &pki.masters[0].cert,
            &pki.masters[0].key,
            Some(&pki.ca),
            false,
        )
        .unwrap();
        faultline_env::tls::TlsClient::from_files(&pki.ca, None).unwrap();
        let _ = fs::remove_dir_all(&d);
    }

    /// Whether a client with `identity` gets through a kubelet server's
    /// TLS (node `n1`'s certificate, clients verified against the CA).
    fn kubelet_accepts(pki: &Pki, identity: Option<&Identity>) -> bool {
        use faultline_env::tls::{TlsClient, TlsServer};
        let n1 = &pki.nodes[0];
        let server = TlsServer::from_files(&n1.cert, &n1.key, Some(&pki.ca), true).unwrap();
        let client = TlsClient::from_files(
            &pki.ca,
            identity.map(|i| (i.cert.as_path(), i.key.as_path())),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (a, b) = tokio::io::duplex(1 << 16);
            let serve = async {
                let mut conn = server.accept(Box::pin(b)).await?;
                let mut byte = [0u8; 1];
                conn.read_exact(&mut byte).await?;
                Ok::<_, std::io::Error>(byte[0])
            };
            let dial = async {
                let mut conn = client.connect("127.0.1.1:10250", Box::pin(a)).await?;
                conn.write_all(b"x").await?;
                conn.flush().await?;
                // Hold the connection until the server has read (TLS 1.3
                // reports a refused certificate only then).
                let mut byte = [0u8; 1];
                let _ = conn.read(&mut byte).await;
                Ok::<_, std::io::Error>(())
            };
            let (served, _) = tokio::join!(serve, dial);
            served.is_ok_and(|b| b == b'x')
        })
    }

    #[test]
    fn only_masters_get_through_to_a_kubelet() {
        let d = scratch("kubelet");
        let nodes = ["127.0.1.1".to_string(), "127.0.1.2".to_string()];
        let pki = ensure(&d, &["127.0.0.1".into()], &nodes).unwrap();
        assert!(kubelet_accepts(&pki, Some(&pki.masters[0])), "a master");
        // Another node's certificate is for serving only.
        assert!(!kubelet_accepts(&pki, Some(&pki.nodes[1])), "a node");
        assert!(!kubelet_accepts(&pki, None), "no certificate");
        let _ = fs::remove_dir_all(&d);
    }
}
