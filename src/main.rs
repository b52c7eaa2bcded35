//! `redcell-server [CONFIG_FILE] [--directive value ...] [--shards N] [--cores LIST]`

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

use std::sync::Arc;

use clap::Parser;
use mimalloc::MiMalloc;

use redcell::config::Config;
use redcell::server::{self, cpus, Topology};
use redcell::shard::Shared;
use redcell::util::{daemon, process};

/// mimalloc, counted: INFO's `used_memory` and `maxmemory` read the count.
#[global_allocator]
static GLOBAL: redcell::util::mem::Counting<MiMalloc> = redcell::util::mem::Counting(MiMalloc);

/// Flags that are redcell's own; every other `--name value...` is a redis.conf directive.
#[derive(Parser, Debug)]
#[command(
    name = "redcell-server",
    version,
    about = "A Redis-compatible, thread-per-core key-value server on io_uring.",
    after_help = "Any redis.conf directive can be given as --name value, e.g. --port 7000 --bind 127.0.0.1.\nA config file, if given, must be the first argument."
)]
struct Flags {
    /// Number of shards (one glommio executor each). Default: one per allowed CPU, less one
    /// for the control executor when more than two CPUs are allowed.
    #[arg(long)]
    shards: Option<usize>,
    /// CPUs to run on (e.g. 0,2-3), among those the process is allowed to use.
    #[arg(long)]
    cores: Option<String>,
    /// Microseconds an idle shard busy-polls before sleeping (0: sleep at once). Trades CPU
    /// for latency: waking a sleeping core costs tens of microseconds on virtual machines.
    #[arg(long, default_value_t = 0)]
    busy_poll_us: u64,
    /// How shards learn that client sockets (plain and TLS) have data: epoll (one epoll set
    /// per shard, as Redis's event loop) or glommio (an io_uring poll per read that finds
    /// the socket empty: the earlier path). See tuning.md.
    #[arg(long, default_value = "epoll", value_parser = ["epoll", "glommio"])]
    io: String,
    /// Microseconds an idle shard on the epoll path waits in its epoll set before it sleeps
    /// through glommio (0: at once). Glommio's timers and I/O completions may be this late.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    nap_us: u64,
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(1);
}

fn main() {
    // A file-size limit (`ulimit -f`) then fails a write with EFBIG, which persistence
    // reports (MISCONF for the AOF, a failed save) and retries, instead of killing us.
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // SORT ... ALPHA collates as Redis does: by the environment's LC_COLLATE (before any
    // thread starts; setlocale is not thread-safe).
    // SAFETY: a NUL-terminated empty string; no other thread exists yet.
    unsafe {
        libc::setlocale(libc::LC_COLLATE, c"".as_ptr());
    }
    let argv: Vec<String> = std::env::args().collect();
    // Split our flags (for clap) from redis-style directives.
    let mut ours = vec![argv[0].clone()];
    let mut directives = String::new();
    let mut config_file = None;
    let mut i = 1;
    if argv.len() > 1 && !argv[1].starts_with('-') {
        config_file = Some(argv[1].clone());
        i = 2;
    }
    while i < argv.len() {
        let a = &argv[i];
        match a.as_str() {
            "--shards" | "--cores" | "--busy-poll-us" | "--io" | "--nap-us" => {
                ours.push(a.clone());
                if let Some(v) = argv.get(i + 1) {
                    ours.push(v.clone());
                }
                i += 2;
            }
            "-h" | "--help" | "-v" | "--version" | "-V" => {
                ours.push(if a == "-v" {
                    "--version".into()
                } else {
                    a.clone()
                });
                i += 1;
            }
            _ if a.starts_with("--") && a.len() > 2 => {
                directives.push_str(&a[2..]);
                i += 1;
                let first_value = i;
                while i < argv.len() && !(argv[i].starts_with("--") && argv[i].len() > 2) {
                    directives.push(' ');
                    directives.push_str(&quote(&argv[i]));
                    i += 1;
                }
                // As Redis 7.0.1+: `--save` with no value is `--save ""`.
                if i == first_value && a.eq_ignore_ascii_case("--save") {
                    directives.push_str(" \"\"");
                }
                directives.push('\n');
            }
            _ => fail(&format!(
                "Unexpected argument '{a}'. Directives are given as --name value."
            )),
        }
    }
    let flags = Flags::parse_from(ours);
    redcell::util::time::ns_per_tick(); // calibrate the command timer before serving

    // As Redis's `loadServerConfig`: the file, then a newline, then the options, read as one
    // text (so line numbers in errors and `save` lines count as Redis counts them).
    let mut text = match &config_file {
        Some(path) => redcell::config::read_config_file(std::path::Path::new(path))
            .unwrap_or_else(|e| fail(&e)),
        None => String::new(),
    };
    text.push('\n');
    text.push_str(&directives);
    let mut config = Config::default();
    if let Err(e) = config.load_text(&text) {
        fail(&e);
    }
    // Before anything builds the command table.
    if let Err((i, why)) = redcell::cmd::set_renames(&config.renames) {
        fail(&format!("{}{why}", config.renames[i].2));
    }

    // From here on the log goes where `logfile` says (Redis checks it opens at start-up).
    let logfile = config.get("logfile").to_string();
    let redirect_log = || {
        if !logfile.is_empty() {
            if let Err(e) = process::redirect_log(&logfile) {
                fail(&format!(
                    "\n*** FATAL CONFIG FILE ERROR (redcell {}) ***\n{e}",
                    redcell::REDCELL_VERSION
                ));
            }
        }
    };
    redirect_log();
    // Redis's order: supervision, then `daemonize` unless supervised (a fork: before any
    // thread starts), whose /dev/null the log file then replaces again.
    let supervised = daemon::supervise(daemon::Mode::parse(config.get("supervised")));
    let background = config.get_bool("daemonize") && !supervised;
    if background {
        if let Err(e) = daemon::daemonize() {
            fail(&e);
        }
        redirect_log();
    }
    daemon::plan_pid_file(
        config.get_bool("daemonize"),
        background,
        config.get("pidfile"),
    );
    redcell::util::listen::set_socket_mark(config.get_i64("socket-mark-id") as u32);
    if config.get_bool("disable-thp") && process::disable_thp() {
        eprintln!("Transparent huge pages turned off for this process (disable-thp yes).");
    }
    config.apply_oom_score_adj(config.replicaof.is_some());

    // As Redis's `dir` directive: every file (dump.rdb, nodes.conf) is relative to it.
    let dir = config.get("dir").to_string();
    if let Err(e) = std::env::set_current_dir(&dir) {
        fail(&format!("Can't chdir to '{dir}': {e}"));
    }
    // With appendonly yes the AOF must be open (recording) before the first write, data or not.
    let load_at_start =
        redcell::persist::load::has_data_to_load(&config) || config.get_bool("appendonly");

    let allowed = cpus::allowed_cpus();
    // `server_cpulist` places the shards as `--cores` does (Redis pins its main thread).
    let server_cpulist = config.get("server_cpulist").to_string();
    let cores = flags
        .cores
        .clone()
        .or_else(|| (!server_cpulist.is_empty()).then_some(server_cpulist));
    let cpus = match &cores {
        Some(list) => {
            let wanted = cpus::parse_cpu_list(list).unwrap_or_else(|e| fail(&e));
            if let Some(c) = wanted.iter().find(|c| !allowed.contains(c)) {
                fail(&format!(
                    "--cores: CPU {c} is not among the CPUs this process may use ({allowed:?})"
                ));
            }
            wanted
        }
        None => allowed,
    };
    if flags.shards == Some(0) {
        fail("--shards must be at least 1");
    }
    let mut topo = Topology::plan(&cpus, flags.shards);
    topo.busy_poll =
        (flags.busy_poll_us > 0).then(|| std::time::Duration::from_micros(flags.busy_poll_us));
    if flags.io == "glommio" {
        topo.io = redcell::server::IoPath::Glommio;
    }
    topo.nap = (flags.nap_us > 0).then(|| std::time::Duration::from_micros(flags.nap_us));
    let port: u16 = config.get_i64("port") as u16;
    let tls_port: u16 = config.get_i64("tls-port") as u16;
    if let Err(e) = redcell::tls::configure(&config) {
        fail(&format!(
            "{e}\nFailed to configure TLS. Check logs for more info."
        ));
    }
    let acl = redcell::cmd::acl::startup_acl(&config).unwrap_or_else(|e| fail(&e));
    // After the ACL checks, so a configuration both would refuse names its ACL problem.
    if port == 0 && tls_port == 0 && config.get("unixsocket").is_empty() {
        fail("Configured to not listen anywhere, exiting.");
    }
    let shared = Arc::new(Shared {
        run_id: run_id(),
        tcp_port: port,
        tls_port,
        executable: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        config_file: config_file
            .map(|p| {
                std::fs::canonicalize(&p)
                    .map(|c| c.display().to_string())
                    .unwrap_or(p)
            })
            .unwrap_or_default(),
        upcalls: redcell::cmd::upcalls(),
        acl: std::sync::Mutex::new(acl),
        ..Shared::new(topo.shard_cpus.len(), config)
    });
    eprintln!(
        "redcell {} (Redis {} compatible) pid {} port {} shards {} on CPUs {:?}, control on CPU {}",
        redcell::REDCELL_VERSION,
        redcell::REDIS_VERSION,
        std::process::id(),
        port,
        topo.shard_cpus.len(),
        topo.shard_cpus,
        topo.control_cpu
    );
    shared
        .load_progress
        .loading
        .store(load_at_start, std::sync::atomic::Ordering::Relaxed);
    redcell::persist::catch_shutdown_signals(shared.clone());
    if let Err(e) = server::run(shared, topo) {
        fail(&e);
    }
}

/// Quotes an argument for the directive parser as Redis's `sdscatrepr` does (always, so a
/// start-up error shows the line as Redis shows it).
fn quote(arg: &str) -> String {
    let mut s = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\x07' => s.push_str("\\a"),
            '\x08' => s.push_str("\\b"),
            c if c.is_ascii_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
            _ => s.push(c),
        }
    }
    s.push('"');
    s
}

/// 40 random hex characters, as Redis's run_id.
fn run_id() -> String {
    let mut bytes = [0u8; 20];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
