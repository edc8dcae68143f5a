//! Real mode: three `faultline master` processes on loopback serve the
//! store over TCP with fsync, and the Kubernetes-style API beside it; and
//! `faultline up`, whose API speaks HTTPS only, to clients that trust its
//! CA.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

mod up;
use std::sync::Arc;
use std::time::Duration;
use up::Up;

struct Masters(Vec<Child>);

impl Drop for Masters {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP/1.1 request over `s`; returns (status, body). An empty
/// `token` sends no Authorization header.
fn exchange(
    mut s: impl Read + Write,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> Option<(u16, String)> {
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    // A TLS peer that closes without close_notify ends the read with an
    // error after the response: keep what arrived.
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).to_string();
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

fn connect(port: u16) -> Option<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(s)
}

/// One plain HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, token: &str, body: &str) -> Option<(u16, String)> {
    exchange(connect(port)?, method, path, token, body)
}

/// A TLS client that trusts `ca_pem` and presents `identity` (certificate
/// and key, PEM) if given.
#[allow(deprecated)] // ring's provider, as the server uses
fn tls_client(ca_pem: &[u8], identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

/// One HTTPS request to 127.0.0.1:`port`; `None` when the connection or
/// the handshake fails.
fn https(
    tls: &Arc<rustls::ClientConfig>,
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> Option<(u16, String)> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls.clone(), name).ok()?;
    exchange(
        rustls::StreamOwned::new(conn, connect(port)?),
        method,
        path,
        token,
        body,
    )
}

#[test]
#[allow(clippy::disallowed_methods)] // a real-mode test waits in real time
fn masters_serve_the_api_for_real() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("real-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        "admin,admin,1,\"system:masters\"\nsched,scheduler,2,\"system:kube-scheduler\"\nctl,controller,3,\"system:kube-controller-manager\"\n",
    )
    .unwrap();
    let base = 20000 + (std::process::id() % 20000) as u16;
    // Without certificates, the API is not served in the clear by default.
    let refused = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "master",
            "--id",
            "1",
            "--members",
            &format!("1=127.0.0.1:{}", base + 9),
        ])
        .arg("--data-dir")
        .arg(dir.join("refused"))
        .args(["--api-port", &(base + 99).to_string()])
        .arg("--token-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--tls-cert-file") && err.contains("--insecure-plain-http"),
        "{err}"
    );
    let members: Vec<String> = (1..=3)
        .map(|i| format!("{i}=127.0.0.1:{}", base + i))
        .collect();
    let api = base + 100;
    let api_servers: Vec<String> = (1..=3).map(|i| format!("127.0.0.1:{}", api + i)).collect();
    let mut procs = Masters(Vec::new());
    for i in 1..=3u16 {
        let data = dir.join(format!("m{i}"));
        let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args([
                "master",
                "--id",
                &i.to_string(),
                "--members",
                &members.join(","),
            ])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-ip",
                "127.0.0.1",
                "--api-port",
                &(api + i).to_string(),
            ])
            .arg("--token-file")
            .arg(&tokens)
            .args(["--api-servers", &api_servers.join(",")])
            .arg("--insecure-plain-http")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("faultline master starts");
        procs.0.push(child);
    }
    // The masters share one address, so each serves the API on its own port.
    let port = api + 1;
    let mut ready = false;
    for _ in 0..100 {
        if let Some((200, _)) = http(port, "GET", "/readyz", "admin", "") {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ready, "the API never became ready");
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"hello","namespace":"default"},"spec":{"containers":[{"name":"c","image":"echo"}]}}"#;
    // The default namespace is created by whichever API server starts first.
    let mut created = None;
    for _ in 0..50 {
        created = http(
            port,
            "POST",
            "/api/v1/namespaces/default/pods",
            "admin",
            pod,
        );
        if matches!(created, Some((201, _))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, body) = created.expect("an answer");
    assert_eq!(code, 201, "{body}");
    let (code, body) = http(
        port,
        "GET",
        "/api/v1/namespaces/default/pods/hello",
        "admin",
        "",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"uid\""), "{body}");
    let (code, _) = http(
        port,
        "POST",
        "/api/v1/namespaces/default/pods",
        "admin",
        "{nope",
    )
    .unwrap();
    assert_eq!(code, 400);
    let (code, _) = http(port, "GET", "/api/v1/nodes", "wrong", "").unwrap();
    assert_eq!(code, 401);
}

#[test]
#[allow(clippy::disallowed_methods)] // a real-mode test waits in real time
fn up_brings_a_cluster_that_serves_a_deployment_through_every_node() {
    let up = Up::start("up", 2, 0);
    let printed = &up.printed;
    assert!(
        printed
            .first()
            .is_some_and(|l| l.starts_with("cluster up: 3 master(s), 2 node(s)")),
        "{printed:?}"
    );
    let (dir, api, store, node_net) = (&up.dir, up.api, up.store, &up.node_net);
    let admin = up.admin.clone();
    let ca = std::fs::read(dir.join("pki/ca.crt")).expect("up wrote the cluster CA");
    let tls = tls_client(&ca, None);
    https_is_the_only_way_in(dir, api, store, &tls, &admin);
    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"echo","ports":[{"containerPort":8080}],"readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":1}}]}}}}"#;
    let service = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":8080,"targetPort":8080}]}}"#;
    let (code, body) = https(
        &tls,
        api,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &admin,
        deployment,
    )
    .expect("an answer");
    assert_eq!(code, 201, "{body}");
    let (code, body) = https(
        &tls,
        api,
        "POST",
        "/api/v1/namespaces/default/services",
        &admin,
        service,
    )
    .expect("an answer");
    assert_eq!(code, 201, "{body}");
    // Through either node's proxy, the pods answer, round robin, until
    // every one of the three has.
    let mut pods = std::collections::BTreeSet::new();
    for _ in 0..300 {
        for node in 1..=2 {
            let addr = format!("{node_net}.{node}:8080");
            let answer = TcpStream::connect(&addr).ok().and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                s.write_all(b"GET /hello HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            });
            if let Some(a) = answer.filter(|a| a.starts_with("HTTP/1.1 200")) {
                let body = a.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
                let v: serde_json::Value = serde_json::from_str(body).expect("the echo's JSON");
                assert_eq!(v["path"], "/hello", "{a}");
                pods.insert(v["pod"].as_str().unwrap().to_string());
            }
        }
        if pods.len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(pods.len(), 3, "pods that answered: {pods:?}");
    drop(up);
}

/// The token of the first user of `group` in a token file.
fn token_of(tokens: &str, group: &str) -> String {
    tokens
        .lines()
        .find(|l| l.ends_with(&format!("\"{group}\"")))
        .and_then(|l| l.split(',').next())
        .unwrap_or_else(|| panic!("no user in {group}"))
        .to_string()
}

/// A CA of someone else's, and a client certificate it signed.
fn foreign_identity() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "someone-elses-ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "admin");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// `up`'s API over TLS: refusals without a token, with a wrong one or the
/// wrong role, a node's credentials kept to its own objects, no plain
/// HTTP, no server from another CA trusted, no client certificate from
/// another CA accepted; the store's port takes only peers with a cluster
/// certificate; secrets readable by their owner only.
fn https_is_the_only_way_in(
    dir: &std::path::Path,
    api: u16,
    store: u16,
    tls: &Arc<rustls::ClientConfig>,
    admin: &str,
) {
    use std::os::unix::fs::PermissionsExt;
    let code = |r: Option<(u16, String)>| r.map(|(c, _)| c);
    assert_eq!(
        code(https(tls, api, "GET", "/api/v1/nodes", admin, "")),
        Some(200)
    );
    assert_eq!(
        code(https(tls, api, "GET", "/api/v1/nodes", "", "")),
        Some(401)
    );
    assert_eq!(
        code(https(tls, api, "GET", "/api/v1/nodes", "wrong", "")),
        Some(401)
    );
    let tokens = std::fs::read_to_string(dir.join("tokens.csv")).unwrap();
    let scheduler = token_of(&tokens, "system:kube-scheduler");
    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"nope","namespace":"default"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"nope"}},"template":{"metadata":{"labels":{"app":"nope"}},"spec":{"containers":[{"name":"c","image":"echo"}]}}}}"#;
    let path = "/apis/apps/v1/namespaces/default/deployments";
    assert_eq!(
        code(https(tls, api, "POST", path, &scheduler, deployment)),
        Some(403)
    );
    // n1's token against n2's Node: refused, and n2 unchanged.
    let n1 = token_of(&tokens, "system:nodes");
    let (c, n2) = https(tls, api, "GET", "/api/v1/nodes/n2", admin, "").unwrap();
    assert_eq!(c, 200, "{n2}");
    let (c, body) = https(tls, api, "PUT", "/api/v1/nodes/n2", &n1, &n2).unwrap();
    assert_eq!(c, 403, "{body}");
    let (c, body) = https(
        tls,
        api,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/nope",
        admin,
        "",
    )
    .unwrap();
    assert_eq!(c, 404, "nothing stored on a refusal: {body}");
    // Plain HTTP gets no HTTP answer from the HTTPS port.
    assert_eq!(code(http(api, "GET", "/api/v1/nodes", admin, "")), None);
    // A client that trusts another CA does not trust this server; a client
    // certificate from another CA is refused.
    let (foreign_ca, foreign_cert, foreign_key) = foreign_identity();
    let stranger = tls_client(foreign_ca.as_bytes(), None);
    assert_eq!(
        code(https(&stranger, api, "GET", "/api/v1/nodes", admin, "")),
        None
    );
    let ca = std::fs::read(dir.join("pki/ca.crt")).unwrap();
    let impostor = tls_client(&ca, Some((&foreign_cert, &foreign_key)));
    assert_eq!(
        code(https(&impostor, api, "GET", "/api/v1/nodes", admin, "")),
        None
    );
    // The server keeps serving.
    assert_eq!(
        code(https(tls, api, "GET", "/api/v1/nodes", admin, "")),
        Some(200)
    );
    for secret in ["tokens.csv", "kubeconfig", "pki/ca.key", "pki/m1.key"] {
        let mode = std::fs::metadata(dir.join(secret))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret}");
    }
    // The store's port: mutual TLS, only certificates from the cluster CA.
    let m1 = (
        std::fs::read_to_string(dir.join("pki/m1.crt")).unwrap(),
        std::fs::read_to_string(dir.join("pki/m1.key")).unwrap(),
    );
    let peer = tls_client(&ca, Some((&m1.0, &m1.1)));
    assert!(
        handshake_accepted(&peer, store),
        "a cluster certificate is accepted"
    );
    assert!(
        !handshake_accepted(tls, store),
        "no client certificate: refused"
    );
    assert!(
        !handshake_accepted(&impostor, store),
        "another CA's certificate: refused"
    );
    let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains(&format!("https://127.0.0.1:{api}")),
        "{kubeconfig}"
    );
    assert!(kubeconfig.contains("certificate-authority"), "{kubeconfig}");
}

/// Whether a TLS server on 127.0.0.1:`port` keeps a connection from `tls`
/// open after the handshake (it then waits for a request), rather than
/// ending it with an alert (TLS 1.3 refuses a client certificate only
/// after the client has finished its side of the handshake).
fn handshake_accepted(tls: &Arc<rustls::ClientConfig>, port: u16) -> bool {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(tls.clone(), name).unwrap();
    let mut tcp = connect(port).expect("the port is open");
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            return false;
        }
    }
    let mut byte = [0u8; 1];
    match rustls::Stream::new(&mut conn, &mut tcp).read_exact(&mut byte) {
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        Ok(_) => false,
    }
}
