//! Packet filter rules and routes inside a container's network namespace,
//! set from the machine with `nsenter` (util-linux) and the machine's own
//! `iptables` and `ip` (iproute2): the containers need no privileges and
//! their image no tools.
#![allow(clippy::disallowed_methods)] // real mode: real programs

use std::time::Duration;

/// How long one `nsenter` may take before the run says so.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `PROGRAM ARGS` in the network namespace of process `pid`.
pub async fn run(pid: i64, program: &str, args: &[String]) -> Result<(), String> {
    let pid_s = pid.to_string();
    let mut cmd = tokio::process::Command::new("nsenter");
    cmd.args(["-t", &pid_s, "-n", program])
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            format!(
                "nsenter -t {pid} -n {program} {}: timed out",
                args.join(" ")
            )
        })?
        .map_err(|e| format!("nsenter -t {pid} -n {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nsenter -t {pid} -n {program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One packet filter rule of a fault: in the namespace it lives in, drop
/// what comes in from `peer` (or goes out to it), all of it or a fraction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// `INPUT` (from `peer`) or `OUTPUT` (to `peer`).
    pub chain: &'static str,
    pub peer: String,
    /// Drop probability in millionths (`None`: everything).
    pub loss_ppm: Option<u32>,
}

impl Rule {
    /// `iptables` arguments that add (`-A`) or delete (`-D`) this rule.
    pub fn args(&self, op: &str) -> Vec<String> {
        let mut a: Vec<String> = vec!["-w".into(), op.into(), self.chain.into()];
        a.push(if self.chain == "INPUT" { "-s" } else { "-d" }.into());
        a.push(self.peer.clone());
        if let Some(ppm) = self.loss_ppm {
            a.extend([
                "-m".into(),
                "statistic".into(),
                "--mode".into(),
                "random".into(),
                "--probability".into(),
                format!("{:.6}", f64::from(ppm) / 1e6),
            ]);
        }
        a.extend(["-j".into(), "DROP".into()]);
        a
    }
}

/// Checks that this machine can set rules and routes in a namespace: the
/// programs are there and we may use them (root).
pub fn check_tools() -> Result<(), String> {
    for (program, package) in [
        ("nsenter", "util-linux"),
        ("iptables", "iptables"),
        ("ip", "iproute2"),
    ] {
        let found = std::process::Command::new(program)
            .arg("--version")
            .output()
            .is_ok();
        if !found {
            return Err(format!(
                "`{program}` is not on this machine (Debian's {package}): a real run sets packet \
                 filter rules and routes in its containers' network namespaces with it"
            ));
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "a real run enters its containers' network namespaces (nsenter) to cut \
                    links: run it as root"
                .into(),
        );
    }
    Ok(())
}

/// Whether this machine's kernel has netem (`sch_netem`), tried in a
/// namespace of its own.
pub fn has_netem() -> bool {
    std::process::Command::new("unshare")
        .args([
            "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}
