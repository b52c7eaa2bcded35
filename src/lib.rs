//! redcell: a Redis-compatible key-value server, one glommio executor per core.
//!
//! Module map, lowest layer first; a module imports only from its own layer or those before
//! it (`layering` below checks it). See README for the request path.
//! - `error`, `util`, `slot`: the error catalogue, numbers, time, globs, CRC, listeners.
//! - `resp`: request decoder, argument access and reply encoder.
//! - `types`: value types and their encodings.
//! - `db`: one shard's databases (per-slot keyspaces, expiry, WATCH registrations) and the
//!   view a command has of them.
//! - `rdb`, `aof`: RDB objects and files; the multi-part append-only file.
//! - `config`, `acl`, `tls`: redis.conf parsing and CONFIG GET/SET; ACL users, rules and log;
//!   the TLS contexts built from the `tls-*` directives and the TLS stream adapter.
//! - `cluster` (all but `member`): the bus wire codec, cluster state, slot maps, nodes.conf.
//! - `shard`: per-core state, the cross-core mesh, borrowing shards' data (`tx`), the
//!   journal, blocked-client queues, client state, Pub/Sub.
//! - `cluster::member`: the cluster member on the control core.
//! - `persist`, `repl`: snapshots written as dump.rdb, save points, loading at start-up, the
//!   AOF; the replication backlog and the replicas of this master; a replica's link to its
//!   master (control core).
//! - `cmd`: the command table, `call()`, one file per command family.
//! - `server`: executors, listeners, the connection task and the gate.

/// Log lines, as std's `eprintln!` writes them but never panicking: std's panics when
/// stderr is a closed pipe (a log reader that went away), which would take down the task
/// that logs. Redis ignores a failed log write too. Defined before every module, so it
/// stands in for std's macro throughout the crate.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod acl;
pub mod aof;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod db;
pub mod error;
pub mod persist;
pub mod rdb;
pub mod repl;
pub mod resp;
pub mod server;
pub mod shard;
pub mod slot;
pub mod tls;
pub mod types;
pub mod util;

/// The Redis version whose behaviour we implement; reported by HELLO and INFO.
pub const REDIS_VERSION: &str = "7.0.15";
/// Our own version.
pub const REDCELL_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod layering {
    //! Every `crate::` path in a source file must name a module of its own layer or a lower
    //! one (the order in the crate doc above).

    use std::path::Path;

    /// Layers, lowest first; a path matches the longest prefix listed.
    const LAYERS: &[&[&str]] = &[
        &["error", "util", "slot"],
        &["resp"],
        &["types"],
        &["db"],
        &["rdb", "aof"],
        &["config", "acl", "tls"],
        &["cluster"],
        &["shard"],
        &["cluster::member"],
        &["persist", "repl"],
        &["cmd"],
        &["server"],
    ];

    fn layer_of(path: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, names) in LAYERS.iter().enumerate() {
            for name in *names {
                let matches = path == *name || path.starts_with(&format!("{name}::"));
                if matches && best.is_none_or(|(len, _)| name.len() > len) {
                    best = Some((name.len(), i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// The module path of a source file under `src/` (`cluster/member.rs` → `cluster::member`).
    fn module_of(rel: &Path) -> String {
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        parts.join("::")
    }

    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }

    #[test]
    fn no_module_imports_from_a_layer_above_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let mut violations = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).expect("under src");
            let module = module_of(rel);
            let Some(own) = layer_of(&module) else {
                continue; // lib.rs, main.rs: the top
            };
            let text = std::fs::read_to_string(&file).expect("read source");
            // Paths in `use` lines (with braces) and inline `crate::a::b` paths.
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let mut rest = code;
                while let Some(at) = rest.find("crate::") {
                    let tail = &rest[at + "crate::".len()..];
                    // `crate::{a, b::c}`: each name in the braces.
                    if let Some(group) = tail.strip_prefix('{') {
                        let inner = group.split('}').next().unwrap_or("");
                        for name in inner.split(',') {
                            let first = name.trim().split("::").next().unwrap_or("");
                            if layer_of(first).is_some_and(|theirs| theirs > own) {
                                violations.push(format!(
                                    "{}:{}: {module} imports crate::{first}",
                                    rel.display(),
                                    n + 1
                                ));
                            }
                        }
                        rest = group;
                        continue;
                    }
                    let path: String = tail
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let path = path.trim_end_matches(':');
                    let first_two: Vec<&str> = path.split("::").take(2).collect();
                    let target = first_two.join("::");
                    if let Some(theirs) = layer_of(&target) {
                        if theirs > own {
                            violations.push(format!(
                                "{}:{}: {module} imports crate::{path}",
                                rel.display(),
                                n + 1
                            ));
                        }
                    }
                    rest = &tail[path.len().max(1).min(tail.len())..];
                }
            }
        }
        assert!(
            violations.is_empty(),
            "imports from a layer above:\n{}",
            violations.join("\n")
        );
    }

    #[test]
    fn layers_resolve_by_longest_prefix() {
        assert_eq!(layer_of("cluster::member"), Some(8));
        assert_eq!(layer_of("cluster::slotmap"), Some(6));
        assert_eq!(layer_of("shard::tx"), Some(7));
        assert_eq!(layer_of("std"), None);
        assert_eq!(layer_of("repl::replica"), layer_of("persist"));
        assert_eq!(module_of(Path::new("cluster/member.rs")), "cluster::member");
        assert_eq!(module_of(Path::new("db/mod.rs")), "db");
    }
}
