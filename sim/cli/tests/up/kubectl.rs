//! Stock `kubectl`, run against a cluster's kubeconfig.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Kubectl {
    pub bin: String,
    pub kubeconfig: String,
}

impl Kubectl {
    pub fn find() -> Option<Kubectl> {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = Command::new(&bin)
            .args(["version", "--client", "-o", "json"])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let minor: u32 = v["clientVersion"]["minor"]
            .as_str()?
            .trim_end_matches('+')
            .parse()
            .ok()?;
        eprintln!("kubectl: {bin}, client version 1.{minor}");
        Some(Kubectl {
            bin,
            kubeconfig: String::new(),
        })
    }

    /// Runs kubectl; returns its stdout, panicking with its stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args, None);
        assert_eq!(code, Some(0), "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
        use std::io::Write;
        let mut child = Command::new(&self.bin)
            .args(args)
            .arg("--request-timeout=30s")
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().expect("piped");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("kubectl reads its input");
        drop(input);
        let out = child.wait_with_output().expect("kubectl ends");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend(extra);
        let (code, out, err) = self.run(&args, Some(yaml));
        assert_eq!(code, Some(0), "kubectl apply failed:\n{out}\n{err}");
        out
    }

    /// Polls `args` until its output satisfies `want` (or panics after
    /// `secs`, showing the last output).
    #[allow(clippy::disallowed_methods)] // a real-mode test waits in real time
    pub fn until(&self, secs: u64, args: &[&str], want: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < Duration::from_secs(secs) {
            let (code, out, err) = self.run(args, None);
            if code == Some(0) && want(&out) {
                return out;
            }
            last = format!("{out}{err}");
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("kubectl {args:?} never showed what was wanted; last:\n{last}");
    }
}
