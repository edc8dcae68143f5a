//! Stock `kubectl` against `faultline up`, over TLS with the kubeconfig
//! `up` writes: the everyday steps a Kubernetes user takes, each checked
//! on kubectl's own output.
//!
//! kubectl comes from `$KUBECTL` or the `PATH` (CI installs Debian's
//! `kubernetes-client` where none is there). Without one, the test says so
//! and passes, unless `FAULTLINE_REQUIRE_KUBECTL=1` (set by `.ci/run`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod up;
use up::kubectl::Kubectl;
use up::Up;

/// A ConfigMap and a Secret (its password given in the clear, as
/// `stringData`).
const CONFIG: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  MODE: fast
  app.conf: |
    debug=true
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: hunter2
";

/// A pod whose container exits with code 3 a second after it starts.
const CRASHER: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: app
    image: crash
    args: [\"after=1s\", \"code=3\"]
";

/// A pod that runs for a few seconds and completes.
const JOB: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: job
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: exit0
    args: [\"after=6s\"]
";

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3
  progressDeadlineSeconds: 600
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: echo
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet:
            path: /healthz
            port: 8080
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 8080
    targetPort: 8080
";

fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
#[allow(clippy::disallowed_methods)] // a real-mode test waits in real time
fn stock_kubectl_drives_a_faultline_cluster() {
    let Some(mut k) = Kubectl::find() else {
        assert!(
            std::env::var("FAULTLINE_REQUIRE_KUBECTL").as_deref() != Ok("1"),
            "FAULTLINE_REQUIRE_KUBECTL=1 but no kubectl runs (set KUBECTL or PATH)"
        );
        eprintln!("no kubectl on this machine: the kubectl test is skipped");
        return;
    };
    let up = Up::start("kubectl", 2, 1);
    let kubeconfig = up.dir.join("kubeconfig");
    assert!(Path::new(&kubeconfig).exists(), "up writes a kubeconfig");
    k.kubeconfig = kubeconfig.display().to_string();

    // Discovery, with short names and the `all` category.
    let resources = k.ok(&["api-resources"]);
    for (name, short) in [
        ("deployments", "deploy"),
        ("services", "svc"),
        ("pods", "po"),
    ] {
        assert!(
            resources
                .lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(short)),
            "{name} ({short}) in:\n{resources}"
        );
    }

    // Every node Ready.
    let nodes = k.until(60, &["get", "nodes"], |out| {
        let r = rows(out);
        r.len() == 2 && r.iter().all(|r| r.get(1) == Some(&"Ready"))
    });
    assert!(nodes.starts_with("NAME"), "{nodes}");
    assert!(
        nodes.contains("-faultline"),
        "VERSION is the kubelet's: {nodes}"
    );

    // Apply a Deployment and a Service from one multi-document file.
    let applied = k.apply(APP, &[]);
    assert!(applied.contains("deployment.apps/web created"), "{applied}");
    assert!(applied.contains("service/web created"), "{applied}");
    let rolled = k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");

    // The Table columns, and -o wide with pod IPs and nodes.
    let pods = k.until(30, &["get", "pods"], |out| {
        rows(out).len() == 3 && rows(out).iter().all(|r| r[1] == "1/1" && r[2] == "Running")
    });
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&header[5..7], ["IP", "NODE"], "{wide}");
    for r in rows(&wide) {
        assert!(r[5].starts_with("127."), "a pod IP: {wide}");
        assert!(r[6] == "n1" || r[6] == "n2", "a node: {wide}");
    }

    // A misspelt field is refused, by name: kubectl 1.27+ asks the server
    // to validate strictly (it read /openapi/v3), older ones validate
    // against /openapi/v2 themselves.
    let typo = APP.replace("imagePullPolicy", "imagePolicy");
    let (code, _, err) = k.run(&["apply", "-f", "-"], Some(&typo));
    assert_ne!(code, Some(0), "a misspelt field is refused");
    assert!(err.contains("imagePolicy"), "{err}");

    // Re-applying the same file changes nothing.
    let again = k.apply(APP, &[]);
    assert!(again.contains("deployment.apps/web unchanged"), "{again}");
    assert!(again.contains("service/web unchanged"), "{again}");

    // Scale, then a new image rolls out (a strategic merge patch).
    assert!(k
        .ok(&["scale", "deployment/web", "--replicas=4"])
        .contains("scaled"));
    k.until(60, &["get", "deployment", "web"], |out| {
        rows(out).first().is_some_and(|r| r[1] == "4/4")
    });
    assert!(k
        .ok(&["set", "image", "deployment/web", "app=echo:v2"])
        .contains("image updated"));
    let rolled = k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    let images = k.until(
        60,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
        |out| {
            let v: Vec<&str> = out.split_whitespace().collect();
            v.len() == 4 && v.iter().all(|i| *i == "echo:v2")
        },
    );
    assert!(images.contains("echo:v2"));

    // `get pods -w` streams: a deleted pod shows, and its replacement.
    let mut watch = Command::new(&k.bin)
        .args(["get", "pods", "-w", "--output-watch-events"])
        .env("KUBECONFIG", &k.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w runs");
    let names = k.ok(&["get", "pods", "-o", "name"]);
    let victim = names.lines().next().expect("a pod").to_string();
    std::thread::sleep(Duration::from_secs(1));
    let deleted = k.ok(&["delete", &victim, "--wait=false"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    let short = victim.trim_start_matches("pod/").to_string();
    // Lines arrive on a thread, so a silent watch fails the test instead
    // of hanging it.
    let stream = BufReader::new(watch.stdout.take().expect("piped"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stream.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = line.contains(&short) && (line.contains("DELETED") || line.contains("MODIFIED"));
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.iter().any(|l| l.contains(&short)),
        "the watch showed the deleted pod: {seen:?}"
    );
    k.until(60, &["get", "pods"], |out| {
        let r = rows(out);
        r.len() == 4 && !out.contains(&short) && r.iter().all(|r| r[1] == "1/1")
    });

    // describe shows the container's state object, the IP and the node.
    let first = k.ok(&["get", "pods", "-o", "name"]);
    let described = k.ok(&["describe", first.lines().next().unwrap()]);
    for want in ["Status:", "Running", "IP:", "Node:", "Ready:", "True"] {
        assert!(described.contains(want), "{want} in:\n{described}");
    }

    // The Service's endpoints are exactly the ready pods' IPs.
    let svc = k.ok(&["get", "svc,endpoints"]);
    assert!(svc.contains("service/web"), "{svc}");
    assert!(svc.contains("endpoints/web"), "{svc}");
    let sorted = |s: String| {
        let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        v.sort();
        v
    };
    let pod_ips = sorted(k.ok(&["get", "pods", "-o", "jsonpath={.items[*].status.podIP}"]));
    k.until(
        30,
        &[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ],
        |out| sorted(out.to_string()) == pod_ips,
    );

    // Container output, read from the pods' kubelets over HTTPS.
    let logs = k.ok(&["logs", "deployment/web"]);
    assert!(logs.contains("echo: listening on 127."), "{logs}");
    let stamped = k.ok(&[
        "logs",
        first.lines().next().unwrap(),
        "--tail=1",
        "--timestamps",
    ]);
    assert!(
        stamped.starts_with("20") && stamped.contains("Z "),
        "one line with its time: {stamped}"
    );
    // A crash loop: its status, then the crashed instance's output.
    k.apply(CRASHER, &[]);
    k.until(60, &["get", "pod", "crasher"], |out| {
        rows(out)
            .first()
            .is_some_and(|r| r[2] == "CrashLoopBackOff" || r[2] == "Error")
    });
    let previous = k.ok(&["logs", "crasher", "--previous"]);
    assert!(
        previous.contains("crash: exiting with code 3"),
        "{previous}"
    );
    let described = k.ok(&["describe", "pod", "crasher"]);
    for want in ["Last State:", "Terminated", "Exit Code:", "3"] {
        assert!(described.contains(want), "{want} in:\n{described}");
    }
    // -f follows a running container until it exits.
    k.apply(JOB, &[]);
    k.until(60, &["get", "pod", "job"], |out| {
        rows(out).first().is_some_and(|r| r[2] == "Running")
    });
    let followed = k.ok(&["logs", "-f", "job"]);
    assert!(followed.contains("exit0: done"), "{followed}");
    k.until(60, &["get", "pod", "job"], |out| {
        rows(out).first().is_some_and(|r| r[2] == "Completed")
    });
    k.ok(&["delete", "pod", "crasher", "job", "--wait=false"]);

    // ConfigMaps and Secrets: the Secret's clear text is stored as base64.
    k.apply(CONFIG, &[]);
    let listed = k.ok(&["get", "configmaps,secrets"]);
    assert!(
        listed.contains("configmap/app-config") && listed.contains("secret/db"),
        "{listed}"
    );
    let password = k.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert_eq!(password, "aHVudGVyMg==");
    let (code, out, err) = k.run(&["delete", "-f", "-"], Some(CONFIG));
    assert_eq!(code, Some(0), "{out}{err}");

    // A namespace, something in it, and its deletion, which takes its content.
    k.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n",
        &[],
    );
    k.apply(APP, &["-n", "scratch"]);
    k.apply(CONFIG, &["-n", "scratch"]);
    k.until(60, &["get", "pods", "-n", "scratch"], |out| {
        rows(out).len() == 3
    });
    let gone = k.ok(&["delete", "namespace", "scratch", "--timeout=120s"]);
    assert!(gone.contains("namespace \"scratch\" deleted"), "{gone}");
    let namespaces = k.ok(&["get", "namespaces"]);
    assert!(!namespaces.contains("scratch"), "{namespaces}");

    // Cleanup through the same file.
    let (code, cleaned, err) = k.run(&["delete", "-f", "-"], Some(APP));
    assert_eq!(code, Some(0), "{cleaned}{err}");
    assert!(
        cleaned.contains("deployment.apps \"web\" deleted"),
        "{cleaned}"
    );
    k.until(60, &["get", "pods"], |out| rows(out).is_empty());
    drop(up);
}
