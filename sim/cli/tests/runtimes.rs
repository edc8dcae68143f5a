//! The real runtimes on `faultline up`: with `--runtime process`, real
//! programs (Python HTTP servers) as pods, checked on the machine's process
//! table and files; with `--runtime docker`, containers of a locally built
//! busybox image, checked on Docker's containers and networks. Both are
//! driven with stock kubectl.
//!
//! Like the kubectl test, they need kubectl (and python3, or Docker):
//! without them they say so and pass, unless `FAULTLINE_REQUIRE_KUBECTL=1`
//! (`.ci/run`, which also provides Docker's daemon and busybox-static).
#![allow(clippy::disallowed_methods)] // a real-mode test: real time, real processes

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod up;
use up::kubectl::Kubectl;
use up::Up;

/// A ConfigMap and a Secret the servers of both tests read.
const CONFIG: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  MODE: fast
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: hunter2"#;

/// Three replicas of a server that answers with its pod's name and what it
/// read from [`CONFIG`].
const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: python3
        command: ["python3", "-c"]
        args:
        - |
          import http.server, os, sys
          # The mounted volumes' files, by URL prefix.
          mounts = {"/config/": "/tmp/faultline-web-config/", "/secret/": "/tmp/faultline-web-secret/"}
          class H(http.server.BaseHTTPRequestHandler):
              def do_GET(self):
                  body = f"{os.environ['HOSTNAME']} mode={os.environ.get('MODE')} password={os.environ.get('DB_PASSWORD')}\n".encode()
                  for prefix, dir in mounts.items():
                      if self.path.startswith(prefix):
                          try:
                              body = open(dir + self.path[len(prefix):], "rb").read()
                          except OSError as e:
                              body = str(e).encode()
                  self.send_response(200)
                  self.send_header("Content-Length", str(len(body)))
                  self.end_headers()
                  self.wfile.write(body)
          print("serving on", os.environ["POD_IP"], flush=True)
          http.server.HTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
        env:
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: web-secret, key: password}}
        envFrom:
        - configMapRef: {name: web-config}
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
        volumeMounts:
        - {name: config, mountPath: /tmp/faultline-web-config}
        - {name: secret, mountPath: /tmp/faultline-web-secret}
      volumes:
      - name: config
        configMap: {name: web-config}
      - name: secret
        secret: {secretName: web-secret}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 8080
    targetPort: 8080
"#;

/// A pod whose readiness and liveness are `exec` probes: ready once
/// `READY` exists, killed (and restarted) once `DEAD` exists.
const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  containers:
  - name: app
    image: IMAGE
    command: ["sh", "-c", "mkdir -p /tmp && exec sleep 3600"]
    env:
    - {name: READY, value: "DIR/ready"}
    - {name: DEAD, value: "DIR/dead"}
    readinessProbe:
      exec: {command: ["sh", "-c", "test -e $READY"]}
      periodSeconds: 1
    livenessProbe:
      exec: {command: ["sh", "-c", "test ! -e $DEAD"]}
      periodSeconds: 1
      failureThreshold: 1
"#;

/// Waits until pod `name`'s container is (not) ready with `restarts`.
fn wait_probed(k: &Kubectl, name: &str, ready: bool, restarts: i64) {
    until(
        40,
        &format!("{name} ready={ready} restarts={restarts}"),
        || {
            let out = k.ok(&["get", "pod", name, "-o", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let c = &v["status"]["containerStatuses"][0];
            let running = !c["state"]["running"].is_null();
            if running && c["ready"] == ready && c["restartCount"] == restarts {
                Ok(())
            } else {
                Err(c.to_string())
            }
        },
    );
}

/// Bad input: a program that does not exist, one that writes 200 MB, and
/// one asking for more memory than any node has.
const BAD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: nocmd
spec:
  containers:
  - name: app
    image: none
    command: ["no-such-program", "--flag"]
---
apiVersion: v1
kind: Pod
metadata:
  name: chatty
spec:
  containers:
  - name: app
    image: python3
    command: ["python3", "-c"]
    args:
    - |
      import sys, time
      line = "x" * 99 + "\n"
      for _ in range(2_000_000):
          sys.stdout.write(line)
      print("done", flush=True)
      time.sleep(3600)
---
apiVersion: v1
kind: Pod
metadata:
  name: huge
spec:
  containers:
  - name: app
    image: python3
    command: ["sleep", "3600"]
    resources:
      requests: {memory: 100Gi}
"#;

/// A node process started by the test (a restarted kubelet), killed when
/// dropped.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /` to `ip:8080`; the answer's body.
fn get(ip: &str) -> Option<String> {
    get_path(ip, "/")
}

/// `GET path` to `ip:8080`; the answer's body.
fn get_path(ip: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect((ip, 8080)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: web\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The mounted files through `ip`'s proxy: the ConfigMap's `MODE` and
/// the Secret's `password` (`/config/...` and `/secret/...` of both
/// tests' servers), once they are what is expected of every pod
/// answering (a ConfigMap edit reaches each pod's files in its own time).
fn mounted_files_read(ip: &str, mode: &str) -> Result<(), String> {
    for _ in 0..10 {
        let got = (
            get_path(ip, "/config/MODE"),
            get_path(ip, "/secret/password"),
        );
        if got != (Some(mode.to_string()), Some("hunter2".to_string())) {
            return Err(format!("through {ip}: {got:?}"));
        }
    }
    Ok(())
}

/// Changes the ConfigMap's `MODE` (its mounted files follow; the
/// environment of running containers does not, as in Kubernetes).
fn edit_mode(k: &Kubectl, mode: &str) {
    k.ok(&[
        "patch",
        "configmap",
        "web-config",
        "-p",
        &format!("{{\"data\":{{\"MODE\":\"{mode}\"}}}}"),
    ]);
}

/// The pods that answer through `ip`'s proxy, over 30 requests.
fn reached(ip: &str) -> BTreeSet<String> {
    (0..30)
        .filter_map(|_| get(ip))
        .filter_map(|b| b.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Waits until `check` holds (or panics after `secs`, with what it said).
fn until(secs: u64, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if start.elapsed() > Duration::from_secs(secs) => {
                panic!("{what}: not within {secs}s: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The process runtime's directory of a container (by its id).
fn container_dir(cluster: &Path, id: &str) -> Option<PathBuf> {
    (1..=3)
        .map(|i| cluster.join(format!("n{i}/containers/{id}")))
        .find(|d| d.is_dir())
}

/// Whether any node holds volumes of pod `uid` (`DATA_DIR/pods/UID`).
fn has_volumes(cluster: &Path, uid: &str) -> bool {
    (1..=3).any(|i| cluster.join(format!("n{i}/pods/{uid}")).exists())
}

/// The program's pid of a container, from the shim's state file.
fn program_pid(cluster: &Path, id: &str) -> Option<i32> {
    let state = std::fs::read(container_dir(cluster, id)?.join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&state).ok()?;
    v["program"]["pid"].as_i64().map(|p| p as i32)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// The `faultline node` process of node `name` of the cluster in `dir`,
/// and its command line.
fn node_process(dir: &Path, name: &str) -> Option<(i32, Vec<String>)> {
    let dir = dir.display().to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let named = args.windows(2).any(|w| w[0] == "--name" && w[1] == name);
        if args.get(1).map(String::as_str) == Some("node")
            && named
            && args.iter().any(|a| a.contains(&dir))
        {
            return Some((pid, args));
        }
    }
    None
}

/// One pod as kubectl sees it: (name, node, container id, restarts, ready).
fn pods(k: &Kubectl, selector: &str) -> Vec<(String, String, String, i64, bool)> {
    let out = k.ok(&["get", "pods", "-l", selector, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let c = &p["status"]["containerStatuses"][0];
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                c["containerID"].as_str().unwrap_or("").to_string(),
                c["restartCount"].as_i64().unwrap_or(0),
                c["ready"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn all_ready(k: &Kubectl, n: usize) -> Result<(), String> {
    let p = pods(k, "app=web");
    if p.len() == n && p.iter().all(|p| p.4) {
        Ok(())
    } else {
        Err(format!("{p:?}"))
    }
}

/// Every node's proxy reaches every pod of `web`.
fn every_proxy_reaches_every_pod(k: &Kubectl, up: &Up, nodes: &[u32]) -> Result<(), String> {
    let names: BTreeSet<String> = pods(k, "app=web").into_iter().map(|p| p.0).collect();
    for i in nodes {
        let ip = format!("{}.{i}", up.node_net);
        let got = reached(&ip);
        if got != names {
            return Err(format!("through {ip}: {got:?}, pods {names:?}"));
        }
    }
    Ok(())
}

#[test]
fn real_programs_run_restart_and_leave_nothing_behind() {
    let Some(mut k) = Kubectl::find() else {
        assert!(
            std::env::var("FAULTLINE_REQUIRE_KUBECTL").as_deref() != Ok("1"),
            "FAULTLINE_REQUIRE_KUBECTL=1 but no kubectl runs (set KUBECTL or PATH)"
        );
        eprintln!("no kubectl on this machine: the process runtime test is skipped");
        return;
    };
    if Command::new("python3").arg("-V").output().is_err() {
        eprintln!("no python3 on this machine: the process runtime test is skipped");
        return;
    }
    let up = Up::start_with(
        "process-runtime",
        3,
        0,
        &[
            "--runtime",
            "process",
            "--node-monitor-grace-period",
            "6s",
            "--pod-eviction-timeout",
            "2s",
        ],
    );
    assert!(
        up.printed[0].contains("(process runtime)"),
        "{:?}",
        up.printed
    );
    k.kubeconfig = up.dir.join("kubeconfig").display().to_string();
    k.apply(&format!("{CONFIG}\n---{APP}"), &[]);

    // Three replicas become Ready; every node's proxy reaches all three,
    // which read the ConfigMap and the Secret from their environment.
    until(60, "3 ready replicas", || all_ready(&k, 3));
    until(30, "every proxy reaches every pod", || {
        every_proxy_reaches_every_pod(&k, &up, &[1, 2, 3])
    });
    let body = get(&format!("{}.1", up.node_net)).expect("an answer");
    assert!(body.contains("mode=fast password=hunter2"), "{body}");
    // ... and as mounted files, which follow an edit of the ConfigMap. The
    // mounts are the containers' own: the machine's directories stay
    // empty.
    let node1 = format!("{}.1", up.node_net);
    mounted_files_read(&node1, "fast").unwrap();
    for dir in ["/tmp/faultline-web-config", "/tmp/faultline-web-secret"] {
        let entries = std::fs::read_dir(dir).map(|d| d.count());
        assert_eq!(entries.ok(), Some(0), "{dir} on the machine");
    }
    edit_mode(&k, "slow");
    until(30, "the edited ConfigMap reaches every pod's file", || {
        mounted_files_read(&node1, "slow")
    });
    let body = get(&node1).expect("an answer");
    assert!(body.contains("mode=fast"), "the environment stays: {body}");
    let logs = k.ok(&["logs", &pods(&k, "app=web")[0].0]);
    assert!(logs.contains("serving on 127."), "{logs}");

    // kill -9 of a container's program: it restarts (restartCount 1) and
    // serves again; its last state says how it ended.
    let (victim, _, id, _, _) = pods(&k, "app=web")[0].clone();
    let pid = program_pid(&up.dir, id.trim_start_matches("process://")).expect("a pid");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    until(30, "the killed container restarted and ready", || {
        let p = pods(&k, "app=web");
        match p.iter().find(|p| p.0 == victim) {
            Some(p) if p.3 == 1 && p.4 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let last = k.ok(&[
        "get",
        "pod",
        &victim,
        "-o",
        "jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}",
    ]);
    assert_eq!(last, "137");
    until(30, "every proxy reaches every pod again", || {
        every_proxy_reaches_every_pod(&k, &up, &[1, 2, 3])
    });

    // A restarted kubelet keeps its running containers: same programs,
    // same pids, no restart.
    let before = pods(&k, "app=web");
    let (_, node, _, _, _) = before[0].clone();
    let on_node: Vec<_> = before.iter().filter(|p| p.1 == node).cloned().collect();
    let pids: Vec<i32> = on_node
        .iter()
        .map(|p| program_pid(&up.dir, &p.2).expect("a pid"))
        .collect();
    let (node_pid, args) = node_process(&up.dir, &node).expect("the node's process");
    Command::new("kill")
        .args(["-9", &node_pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let log = std::fs::File::create(up.dir.join(format!("{node}-restarted.log"))).unwrap();
    let restarted = Restarted(
        Command::new(&args[0])
            .args(&args[1..])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("the node restarts"),
    );
    until(20, "the restarted node adopted its containers", || {
        let said = std::fs::read_to_string(up.dir.join(format!("{node}-restarted.log")))
            .unwrap_or_default();
        said.contains(&format!("adopted {} containers", on_node.len()))
            .then_some(())
            .ok_or(said)
    });
    std::thread::sleep(Duration::from_secs(3));
    let after = pods(&k, "app=web");
    for (p, pid) in on_node.iter().zip(&pids) {
        let now = after.iter().find(|a| a.0 == p.0).expect("the pod stays");
        assert_eq!((&now.2, now.3), (&p.2, p.3), "same container, no restart");
        assert!(alive(*pid), "{} still runs as pid {pid}", p.0);
        assert_eq!(program_pid(&up.dir, &p.2), Some(*pid));
    }
    all_ready(&k, 3).expect("still all ready");

    // Deleting a pod leaves no process and no files behind.
    let (gone, _, gone_id, _, _) = pods(&k, "app=web")[1].clone();
    let gone_pid = program_pid(&up.dir, &gone_id).expect("a pid");
    let gone_uid = k.ok(&["get", "pod", &gone, "-o", "jsonpath={.metadata.uid}"]);
    assert!(
        has_volumes(&up.dir, &gone_uid),
        "its volumes are on its node"
    );
    k.ok(&["delete", "pod", &gone]);
    until(20, "the deleted pod's program is gone", || {
        if alive(gone_pid)
            || container_dir(&up.dir, &gone_id).is_some()
            || has_volumes(&up.dir, &gone_uid)
        {
            Err(format!(
                "pid {gone_pid}, its directory or its volumes remain"
            ))
        } else {
            Ok(())
        }
    });
    until(60, "3 ready replicas after the deletion", || {
        all_ready(&k, 3)
    });

    // exec probes: run as the container's programs run (its environment).
    let probe_dir = up.dir.join("probe-files");
    std::fs::create_dir_all(&probe_dir).unwrap();
    let probed = PROBED
        .replace("IMAGE", "sh")
        .replace("DIR", &probe_dir.display().to_string());
    k.apply(&probed, &[]);
    wait_probed(&k, "probed", false, 0);
    std::fs::write(probe_dir.join("ready"), "").unwrap();
    wait_probed(&k, "probed", true, 0);
    std::fs::write(probe_dir.join("dead"), "").unwrap();
    until(
        30,
        "a failed exec liveness probe restarts the container",
        || {
            let out = k.ok(&[
                "get",
                "pod",
                "probed",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ]);
            (out != "0").then_some(()).ok_or(out)
        },
    );
    std::fs::remove_file(probe_dir.join("dead")).unwrap();

    // Bad input, each reported on its pod.
    k.apply(BAD, &[]);
    until(
        30,
        "a missing program crash-loops with the exec error",
        || {
            let out = k.ok(&["get", "pod", "nocmd", "-o", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let c = &v["status"]["containerStatuses"][0];
            let t = &c["lastState"]["terminated"];
            let waiting = c["state"]["waiting"]["reason"].as_str().unwrap_or("");
            if waiting == "CrashLoopBackOff"
                && t["reason"] == "StartError"
                && t["exitCode"] == 128
                && t["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("\"no-such-program\": executable file not found"))
            {
                Ok(())
            } else {
                Err(c.to_string())
            }
        },
    );
    until(30, "an event says why the program did not start", || {
        let out = k.ok(&["get", "events", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let found = v["items"].as_array().into_iter().flatten().any(|e| {
            e["involvedObject"]["name"] == "nocmd"
                && e["reason"] == "Failed"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("executable file not found"))
        });
        found
            .then_some(())
            .ok_or_else(|| "no such event yet".to_string())
    });
    let described = k.ok(&["describe", "pod", "nocmd"]);
    assert!(described.contains("BackOff"), "{described}");
    until(
        30,
        "an impossible memory request stays Pending with the reason",
        || {
            let out = k.ok(&["get", "pod", "huge", "-o", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let phase = v["status"]["phase"].as_str().unwrap_or("");
            let why = v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "PodScheduled")
                .and_then(|c| c["message"].as_str())
                .unwrap_or("");
            if phase == "Pending" && why.contains("Insufficient memory") {
                Ok(())
            } else {
                Err(format!("{phase}: {why}"))
            }
        },
    );
    until(120, "200 MB of output written", || {
        let (_, out, _) = k.run(&["logs", "chatty", "--tail=1"], None);
        (out.trim() == "done").then_some(()).ok_or(out)
    });
    let chatty = k.ok(&[
        "get",
        "pod",
        "chatty",
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    let dir = container_dir(&up.dir, &chatty).expect("chatty's directory");
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    assert!(
        on_disk < 25 << 20,
        "200 MB of output take {on_disk} bytes on disk"
    );

    // A node whose process dies: its pods are evicted and replaced on the
    // others (its programs keep running until the cluster stops, as a
    // kubelet-less node's containers do).
    let node_pids: Vec<i32> = pods(&k, "app=web")
        .iter()
        .filter_map(|p| program_pid(&up.dir, &p.2))
        .collect();
    let dead = if node == "n3" { "n2" } else { "n3" };
    let (dead_pid, _) = node_process(&up.dir, dead).expect("the node's process");
    Command::new("kill")
        .args(["-9", &dead_pid.to_string()])
        .status()
        .unwrap();
    until(90, "the dead node's pods are replaced elsewhere", || {
        let p = pods(&k, "app=web");
        if p.len() == 3 && p.iter().all(|p| p.4 && p.1 != dead) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });
    let alive_nodes: Vec<u32> = (1..=3).filter(|i| format!("n{i}") != dead).collect();
    until(30, "the live proxies reach the replacements", || {
        every_proxy_reaches_every_pod(&k, &up, &alive_nodes)
    });

    // Stopping the cluster leaves no program and no container behind.
    let mut all_pids = node_pids;
    all_pids.extend(
        pods(&k, "app=web")
            .iter()
            .filter_map(|p| program_pid(&up.dir, &p.2)),
    );
    let cluster = up.dir.clone();
    drop(restarted);
    drop(up);
    let left: Vec<i32> = all_pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "programs left running: {left:?}");
    for i in 1..=3 {
        let d = cluster.join(format!("n{i}/containers"));
        assert!(!d.exists(), "{} is left", d.display());
    }
}

/// The Docker test's pods: the same servers as [`APP`]'s, as busybox
/// `httpd` in a locally built image, answering with their pod's name and
/// what they read from the ConfigMap and the Secret.
const DOCKER_APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: IMAGE
        args:
        - sh
        - -c
        - mkdir -p /tmp/www && echo "$HOSTNAME mode=$MODE password=$DB_PASSWORD" > /tmp/www/index.html && ln -s /etc/web-config /tmp/www/config && ln -s /etc/web-secret /tmp/www/secret && exec httpd -f -v -p 8080 -h /tmp/www
        env:
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: web-secret, key: password}}
        envFrom:
        - configMapRef: {name: web-config}
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
        volumeMounts:
        - {name: config, mountPath: /etc/web-config}
        - {name: secret, mountPath: /etc/web-secret}
      volumes:
      - name: config
        configMap: {name: web-config}
      - name: secret
        secret: {secretName: web-secret}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 8080
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: noimage
spec:
  containers:
  - name: app
    image: nginx:1.27
---
apiVersion: v1
kind: Pod
metadata:
  name: nocmd
spec:
  containers:
  - name: app
    image: IMAGE
    command: ["/no-such-program"]
"#;

/// `docker ARGS`; its stdout, or `None` when it fails.
fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A test image, removed when dropped.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// Builds `faultline-test-httpd:PID`: busybox alone, from scratch.
fn build_image() -> Option<Image> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::copy(busybox, dir.join("busybox")).ok()?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENTRYPOINT []\n",
    )
    .ok()?;
    let tag = format!("faultline-test-httpd:{}", std::process::id());
    let run = format!("faultline.run=test-{}", std::process::id());
    docker(&[
        "build",
        "-q",
        "--label",
        &run,
        "-t",
        &tag,
        &dir.display().to_string(),
    ])?;
    let _ = std::fs::remove_dir_all(&dir);
    Some(Image(tag))
}

/// The Docker containers of pod `name` (its sandbox among them).
fn containers_of(pod: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.kubernetes.pod.name={pod}"),
    ])
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn docker_containers_run_restart_and_leave_nothing_behind() {
    let required = std::env::var("FAULTLINE_REQUIRE_KUBECTL").as_deref() == Ok("1");
    let Some(mut k) = Kubectl::find() else {
        assert!(!required, "FAULTLINE_REQUIRE_KUBECTL=1 but no kubectl runs");
        eprintln!("no kubectl on this machine: the docker runtime test is skipped");
        return;
    };
    if docker(&["info", "-f", "{{.ServerVersion}}"]).is_none() {
        assert!(
            !required,
            "FAULTLINE_REQUIRE_KUBECTL=1 but no Docker daemon answers"
        );
        eprintln!("no Docker daemon: the docker runtime test is skipped");
        return;
    }
    let image = build_image().expect("the test image builds from a static busybox");
    let up = Up::start_with("docker-runtime", 3, 1, &["--runtime", "docker"]);
    assert!(
        up.printed[0].contains("(docker runtime)"),
        "{:?}",
        up.printed
    );
    k.kubeconfig = up.dir.join("kubeconfig").display().to_string();
    k.apply(
        &format!("{CONFIG}\n---{}", DOCKER_APP.replace("IMAGE", &image.0)),
        &[],
    );

    until(90, "3 ready replicas", || all_ready(&k, 3));
    until(30, "every proxy reaches every pod", || {
        every_proxy_reaches_every_pod(&k, &up, &[1, 2, 3])
    });
    let body = get(&format!("{}.2", up.node_net)).expect("an answer");
    assert!(body.contains("mode=fast password=hunter2"), "{body}");
    // ... and as files mounted into the containers, which follow an edit
    // of the ConfigMap.
    let node2 = format!("{}.2", up.node_net);
    mounted_files_read(&node2, "fast").unwrap();
    edit_mode(&k, "slow");
    until(30, "the edited ConfigMap reaches every pod's file", || {
        mounted_files_read(&node2, "slow")
    });
    let (first, _, first_id, _, _) = pods(&k, "app=web")[0].clone();
    let run = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"faultline.run\"}}",
        &first_id,
    ])
    .expect("the container is Docker's");
    let logs = k.ok(&["logs", &first]);
    assert!(logs.contains("response:200"), "{logs}");

    // docker kill: the container restarts, in the same sandbox (same IP).
    docker(&["kill", &first_id]).expect("docker kill");
    until(
        30,
        "the killed container restarted and ready",
        || match pods(&k, "app=web").iter().find(|p| p.0 == first) {
            Some(p) if p.3 == 1 && p.4 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    until(30, "every proxy reaches every pod again", || {
        every_proxy_reaches_every_pod(&k, &up, &[1, 2, 3])
    });

    // A restarted kubelet keeps its containers (same ids, no restart).
    let before = pods(&k, "app=web");
    let node = before[1].1.clone();
    let (node_pid, args) = node_process(&up.dir, &node).expect("the node's process");
    Command::new("kill")
        .args(["-9", &node_pid.to_string()])
        .status()
        .unwrap();
    let log = std::fs::File::create(up.dir.join(format!("{node}-restarted.log"))).unwrap();
    let restarted = Restarted(
        Command::new(&args[0])
            .args(&args[1..])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("the node restarts"),
    );
    until(20, "the restarted node adopted its containers", || {
        let said = std::fs::read_to_string(up.dir.join(format!("{node}-restarted.log")))
            .unwrap_or_default();
        said.contains("adopted").then_some(()).ok_or(said)
    });
    std::thread::sleep(Duration::from_secs(3));
    let after = pods(&k, "app=web");
    for p in before.iter().filter(|p| p.1 == node) {
        let now = after.iter().find(|a| a.0 == p.0).expect("the pod stays");
        assert_eq!((&now.2, now.3), (&p.2, p.3), "same container, no restart");
    }

    // exec probes run in the container (`docker exec`).
    k.apply(
        &PROBED.replace("IMAGE", &image.0).replace("DIR", "/tmp"),
        &[],
    );
    wait_probed(&k, "probed", false, 0);
    let probed_id = k.ok(&[
        "get",
        "pod",
        "probed",
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    docker(&["exec", &probed_id, "touch", "/tmp/ready"]).expect("docker exec");
    wait_probed(&k, "probed", true, 0);
    docker(&["exec", &probed_id, "touch", "/tmp/dead"]).expect("docker exec");
    // The restarted container starts afresh: no /tmp/dead, not ready.
    wait_probed(&k, "probed", false, 1);

    // Deleting a pod removes its containers, sandbox included.
    let gone = pods(&k, "app=web")[2].0.clone();
    assert_eq!(
        containers_of(&gone).len(),
        2,
        "the container and its sandbox"
    );
    let gone_uid = k.ok(&["get", "pod", &gone, "-o", "jsonpath={.metadata.uid}"]);
    assert!(
        has_volumes(&up.dir, &gone_uid),
        "its volumes are on its node"
    );
    k.ok(&["delete", "pod", &gone]);
    until(
        20,
        "the deleted pod's containers and volumes are gone",
        || {
            let left = containers_of(&gone);
            let volumes = has_volumes(&up.dir, &gone_uid);
            (left.is_empty() && !volumes)
                .then_some(())
                .ok_or(format!("{left:?}, volumes left: {volumes}"))
        },
    );

    // Bad input, reported on the pods.
    until(30, "a missing image waits with ErrImageNeverPull", || {
        let out = k.ok(&[
            "get",
            "pod",
            "noimage",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
        ]);
        (out == "ErrImageNeverPull").then_some(()).ok_or(out)
    });
    until(30, "a missing program crash-loops with the error", || {
        let out = k.ok(&["get", "pod", "nocmd", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let c = &v["status"]["containerStatuses"][0];
        let t = &c["lastState"]["terminated"];
        if c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && t["reason"] == "StartError"
            && t["message"]
                .as_str()
                .is_some_and(|m| m.contains("/no-such-program"))
        {
            Ok(())
        } else {
            Err(c.to_string())
        }
    });

    // Stopping the cluster leaves no container and no network of its run.
    drop(restarted);
    drop(up);
    let filter = format!("label=faultline.run={run}");
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &filter]).as_deref(),
        Some("")
    );
    assert_eq!(
        docker(&["network", "ls", "-q", "--filter", &filter]).as_deref(),
        Some("")
    );
}
