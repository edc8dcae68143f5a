//! `faultline master`: one store replica for real, over TCP, with its log and
//! snapshots in a data directory (fsync on every batch).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use faultline_store::server::{serve, StoreConfig};

#[derive(Args)]
pub struct MasterArgs {
    /// This replica's id (a key of --members).
    #[arg(long)]
    id: u64,
    /// Every replica as `ID=HOST:PORT`, comma separated (this one included).
    #[arg(long, value_delimiter = ',', required = true)]
    members: Vec<String>,
    /// Where the write-ahead log, snapshots and hard state live.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on (the port comes from this replica's member entry).
    #[arg(long, default_value = "0.0.0.0")]
    listen_ip: String,
    /// Raft tick length in milliseconds (heartbeat = 1 tick, election = 10-20).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Seed for this replica's randomness (election timeouts, client ids).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn parse_members(list: &[String]) -> Result<BTreeMap<u64, String>, String> {
    let mut out = BTreeMap::new();
    for m in list {
        let (id, addr) = m
            .split_once('=')
            .ok_or_else(|| format!("--members entry {m:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("--members entry {m:?}: bad id"))?;
        if id == 0 {
            return Err(format!("--members entry {m:?}: ids start at 1"));
        }
        if !addr.contains(':') {
            return Err(format!("--members entry {m:?}: address needs a port"));
        }
        if out.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("--members: id {id} appears twice"));
        }
    }
    Ok(out)
}

pub fn run(args: MasterArgs) -> ExitCode {
    let members = match parse_members(&args.members) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(me) = members.get(&args.id) else {
        eprintln!("error: --id {} is not in --members", args.id);
        return ExitCode::from(2);
    };
    let port: u16 = match me.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("error: member {} has a bad port in {me:?}", args.id);
            return ExitCode::from(2);
        }
    };
    let host = format!("m{}", args.id);
    let env =
        match faultline_env::real::env(&host, args.seed ^ args.id, &args.data_dir, &args.listen_ip)
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: data dir {}: {e}", args.data_dir.display());
                return ExitCode::from(2);
            }
        };
    let mut cfg = StoreConfig::new(args.id, port, members);
    cfg.tick = Duration::from_millis(args.tick_ms.max(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    eprintln!(
        "faultline master {} serving on {}:{port}",
        args.id, args.listen_ip
    );
    match local.block_on(&rt, serve(env, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
