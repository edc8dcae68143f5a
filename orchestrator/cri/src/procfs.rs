//! What `/proc` says about a process.

use std::fs;

/// The process' start time (clock ticks after boot, field 22 of
/// `/proc/PID/stat`); `None` when there is no such process or it is a
/// zombie (it ended and waits to be reaped: as good as gone).
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE ...`: COMM may hold spaces and parentheses, so
    // count from the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    // After COMM, STATE is field 3 of the file; start time is field 22.
    fields.get(22 - 3)?.parse().ok()
}

/// Every process of process group `pgid` still running.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // STATE is field 3, PGRP field 5.
        if fields.first().is_some_and(|s| *s != "Z")
            && fields.get(2) == Some(&pgid.to_string().as_str())
        {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_a_group() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(0), None);
        // SAFETY: plain system call.
        let pgid = unsafe { libc::getpgrp() };
        assert!(group_members(pgid).contains(&me));
    }
}
