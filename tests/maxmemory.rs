//! `maxmemory` with the `noeviction` policy, beside stock redis-server: writes are refused with
//! Redis's OOM error once used memory (bytes allocated, INFO `used_memory`) passes the limit,
//! reads and deletes keep working, MULTI is refused as Redis refuses it, and freeing memory
//! lets writes in again. The evicting policies: `tests/eviction.rs`.

mod common;

use common::{show, Raw, Server, StockRedis};

const OOM: &[u8] = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";

fn call(raw: &mut Raw, line: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    raw.call(&args)
}

fn used_memory(raw: &mut Raw) -> usize {
    let info = String::from_utf8_lossy(&call(raw, "INFO memory")).to_string();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used_memory in {info}"))
}

/// Sets a limit `room` bytes above what the server uses now, then writes 1 KiB values until
/// refused. Returns how many writes got in and the limit.
fn fill(raw: &mut Raw, room: usize) -> (usize, usize) {
    let limit = used_memory(raw) + room;
    assert_eq!(
        call(raw, &format!("CONFIG SET maxmemory {limit}")),
        b"+OK\r\n"
    );
    let value = vec![b'v'; 1024];
    for i in 0..100_000 {
        let key = format!("key:{i}");
        let reply = raw.call(&[b"SET", key.as_bytes(), &value]);
        if reply != b"+OK\r\n" {
            assert_eq!(reply, OOM, "SET #{i}: {}", show(&reply));
            return (i, limit);
        }
    }
    panic!("100000 writes of 1 KiB never reached maxmemory {limit}");
}

#[test]
fn noeviction_refuses_writes_over_the_limit_as_stock() {
    let server = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let mut ours = server.raw();
    let mut theirs = Raw::connect(stock.port);
    let room = 4 << 20;
    let (n_ours, limit) = fill(&mut ours, room);
    let (n_stock, _) = fill(&mut theirs, room);
    // Roughly as many 1 KiB values fit in the same room (per-key overheads differ).
    assert!(
        n_ours > n_stock / 2 && n_ours < n_stock * 2,
        "redcell stored {n_ours} values in 4 MiB, stock {n_stock}"
    );
    // Used memory ends at most one write above the limit.
    let used = used_memory(&mut ours);
    assert!(
        used > limit - room / 10 && used < limit + 64 * 1024,
        "used_memory {used}, maxmemory {limit}"
    );
    eprintln!("1 KiB values in 4 MiB: redcell {n_ours}, stock {n_stock}; redcell used_memory {used} for maxmemory {limit}");
    // At the limit, a server's own buffers coming and going can let one more small write in:
    // go 1 MiB below what both use, so both are surely over it.
    for raw in [&mut ours, &mut theirs] {
        let below = used_memory(raw) - (1 << 20);
        assert_eq!(
            call(raw, &format!("CONFIG SET maxmemory {below}")),
            b"+OK\r\n"
        );
    }
    // The same replies from here on: reads and deletes work, writes and MULTI do not.
    let script = [
        "SET another v",
        "APPEND key:1 more",
        "GET key:1",
        "STRLEN key:1",
        "EXISTS key:1",
        "INCR counter",
        "MULTI",
        "GET key:1",
        "SET x y",
        "EXEC",
        "MULTI",
        "DISCARD",
        "DEL key:0",
        "PING",
        "ECHO hi",
    ];
    for line in script {
        let (a, b) = (call(&mut ours, line), call(&mut theirs, line));
        assert_eq!(a, b, "`{line}`: redcell {} vs stock {}", show(&a), show(&b));
    }
    // Free it all: writes get in again.
    for (raw, n) in [(&mut ours, n_ours), (&mut theirs, n_stock)] {
        for i in 1..n {
            raw.send_cmd(&[b"DEL", format!("key:{i}").as_bytes()]);
        }
        for _ in 1..n {
            raw.read_reply();
        }
        assert_eq!(call(raw, "SET again v"), b"+OK\r\n");
    }
    // No limit: anything goes.
    assert_eq!(call(&mut ours, "CONFIG SET maxmemory 0"), b"+OK\r\n");
    assert_eq!(call(&mut ours, "SET big v"), b"+OK\r\n");
}

/// Scripts over the limit (noeviction), beside stock: one with flags is refused before it
/// runs unless it declares `allow-oom` or `no-writes` (EVAL, EVALSHA, FCALL and in MULTI);
/// one without runs, but its first write may not be one that grows memory, as Redis's
/// `scriptVerifyOOM`; a transaction queued under the limit and run over it sees the same.
#[test]
fn scripts_over_the_limit_are_refused_as_stock() {
    let server = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let (mut ours, mut theirs) = (server.raw(), Raw::connect(stock.port));
    let library = "#!lua name=oomlib\n\
        redis.register_function('f_write', function() return redis.call('set','fx','1') end)\n\
        redis.register_function{function_name='f_ro', callback=function() return redis.call('get','fx') end, flags={'no-writes'}}\n\
        redis.register_function{function_name='f_oom', callback=function() return redis.call('set','fx','1') end, flags={'allow-oom'}}";
    let compat_set = "return redis.call('set','x','1')";
    let mut sha = Vec::new();
    for raw in [&mut ours, &mut theirs] {
        let loaded = raw.call(&[b"FUNCTION", b"LOAD", library.as_bytes()]);
        assert_eq!(loaded, b"$6\r\noomlib\r\n", "{}", show(&loaded));
        sha = raw.call(&[b"SCRIPT", b"LOAD", compat_set.as_bytes()]);
        assert_eq!(call(raw, "SET k v"), b"+OK\r\n");
    }
    let sha = String::from_utf8_lossy(&sha[5..45]).to_string();
    let limit = |raw: &mut Raw, bytes: &str| {
        assert_eq!(
            call(raw, &format!("CONFIG SET maxmemory {bytes}")),
            b"+OK\r\n"
        )
    };
    let same = |ours: &mut Raw, theirs: &mut Raw, args: &[&[u8]], what: &str| {
        let (a, b) = (ours.call(args), theirs.call(args));
        assert_eq!(a, b, "{what}: redcell {} vs stock {}", show(&a), show(&b));
    };
    limit(&mut ours, "1");
    limit(&mut theirs, "1");
    let scripts = [
        compat_set,
        "redis.call('get','k') return redis.pcall('incr','y')",
        "return redis.call('get','k')",
        "return redis.call('del','nothing')",
        "redis.call('del','k') return redis.call('set','x','1')",
        "#!lua\nreturn redis.call('set','x','1')",
        "#!lua\nreturn 1",
        "#!lua flags=no-writes\nreturn redis.call('get','x')",
        "#!lua flags=allow-oom\nreturn redis.call('set','x','2')",
    ];
    for script in scripts {
        let eval: [&[u8]; 3] = [b"EVAL", script.as_bytes(), b"0"];
        same(&mut ours, &mut theirs, &eval, script);
        for step in [&[&b"MULTI"[..]][..], &eval, &[b"EXEC"]] {
            same(&mut ours, &mut theirs, step, &format!("in MULTI: {script}"));
        }
    }
    let ro_script: &[u8] = b"return redis.call('get','x')";
    let calls: [&[&[u8]]; 6] = [
        &[b"EVAL_RO", ro_script, b"0"],
        &[b"FCALL", b"f_write", b"0"],
        &[b"FCALL", b"f_ro", b"0"],
        &[b"FCALL_RO", b"f_ro", b"0"],
        &[b"FCALL", b"f_oom", b"0"],
        &[b"EVALSHA", sha.as_bytes(), b"0"],
    ];
    for args in calls {
        same(&mut ours, &mut theirs, args, &show(args[1]));
    }
    // Queued under no limit, run over it: EXEC is refused when a queued script has flags
    // that need memory (the client stays in the transaction); a script without flags runs
    // and finds its first write refused.
    for queued in [
        vec!["#!lua\nreturn redis.call('set','x','3')"],
        vec![
            compat_set,
            "#!lua flags=allow-oom\nreturn redis.call('set','x','4')",
        ],
    ] {
        for (raw, port) in [(&mut ours, server.port), (&mut theirs, stock.port)] {
            limit(raw, "0");
            assert_eq!(call(raw, "MULTI"), b"+OK\r\n");
            for script in &queued {
                assert_eq!(
                    raw.call(&[b"EVAL", script.as_bytes(), b"0"]),
                    b"+QUEUED\r\n"
                );
            }
            limit(&mut Raw::connect(port), "1");
        }
        same(
            &mut ours,
            &mut theirs,
            &[b"EXEC"],
            &format!("EXEC of {queued:?}"),
        );
        same(&mut ours, &mut theirs, &[b"DISCARD"], "DISCARD after");
    }
    for raw in [&mut ours, &mut theirs] {
        limit(raw, "0");
    }
    same(
        &mut ours,
        &mut theirs,
        &[b"MGET", b"x", b"y", b"fx"],
        "the data",
    );
}

/// While a script runs past `busy-reply-threshold` or clients are paused, nothing is
/// refused for memory (Redis's `isSafeToPerformEvictions`): the same replies as stock's.
#[test]
fn no_oom_while_a_script_is_busy_or_clients_are_paused_as_stock() {
    let server = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let (mut ours, mut theirs) = (server.raw(), Raw::connect(stock.port));
    for raw in [&mut ours, &mut theirs] {
        assert_eq!(call(raw, "SET k v"), b"+OK\r\n");
        assert_eq!(call(raw, "CONFIG SET busy-reply-threshold 100"), b"+OK\r\n");
        assert_eq!(call(raw, "CONFIG SET maxmemory 1"), b"+OK\r\n");
    }
    let same = |ours: &mut Raw, theirs: &mut Raw, line: &str| {
        let (a, b) = (call(ours, line), call(theirs, line));
        assert_eq!(a, b, "`{line}`: redcell {} vs stock {}", show(&a), show(&b));
    };
    same(&mut ours, &mut theirs, "SET x y");
    let mut busy = Vec::new();
    for port in [server.port, stock.port] {
        let mut b = Raw::connect(port);
        b.send_cmd(&[b"EVAL", b"while true do end", b"0"]);
        busy.push(b);
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    for line in ["SET x y", "MULTI", "GET k", "EXEC", "GET k"] {
        same(&mut ours, &mut theirs, line);
    }
    let mut killed = Vec::new();
    for (raw, b) in [&mut ours, &mut theirs].into_iter().zip(&mut busy) {
        assert_eq!(call(raw, "SCRIPT KILL"), b"+OK\r\n");
        killed.push(show(&b.read_reply()));
    }
    assert_eq!(killed[0], killed[1]);
    same(&mut ours, &mut theirs, "CLIENT PAUSE 2000 WRITE");
    for line in ["MULTI", "GET k", "DISCARD", "GET k"] {
        same(&mut ours, &mut theirs, line);
    }
    same(&mut ours, &mut theirs, "CLIENT UNPAUSE");
    for line in ["SET x y", "MULTI", "GET k", "DISCARD"] {
        same(&mut ours, &mut theirs, line);
    }
}

/// An AOF loads whole under a `maxmemory` it exceeds: the loading client is not refused
/// (Redis loads without `processCommand`); the limit applies to clients afterwards.
#[test]
fn an_aof_over_maxmemory_loads_whole() {
    let dir = common::TempDir::new("aof-maxmemory");
    let d = dir.path.display().to_string();
    let aof = ["--dir", &d, "--save", "", "--appendonly", "yes"];
    // `always`: every acknowledged write is in the file before the kill.
    let mut first_args = aof.to_vec();
    first_args.extend_from_slice(&["--appendfsync", "always"]);
    let mut first = Server::start(2, &first_args);
    let mut c = first.raw();
    for i in 0..100 {
        assert_eq!(call(&mut c, &format!("SET k{i} {i}")), b"+OK\r\n");
    }
    for line in ["MULTI", "SET m1 1", "SET m2 2"] {
        call(&mut c, line);
    }
    assert_eq!(call(&mut c, "EXEC"), b"*2\r\n+OK\r\n+OK\r\n");
    first.signal(libc::SIGKILL);
    first.wait_exit(std::time::Duration::from_secs(10));
    let mut second_args = aof.to_vec();
    second_args.extend_from_slice(&["--maxmemory", "1"]);
    let second = Server::start(2, &second_args);
    let mut c = second.raw();
    assert_eq!(call(&mut c, "DBSIZE"), b":102\r\n", "{}", second.stderr());
    assert_eq!(call(&mut c, "GET k42"), b"$2\r\n42\r\n");
    assert_eq!(call(&mut c, "SET x 1"), OOM);
}

/// A queued script's flags are judged when it is queued, as Redis's `mstate.cmd_flags`: over
/// the limit at EXEC, one queued without flags (its SHA not yet loaded, or a function
/// declaring `allow-oom` then) runs and is refused at its start, while the rest of the
/// transaction runs; one queued with flags that need memory aborts the EXEC. Stock's replies.
#[test]
fn queued_scripts_are_judged_by_their_flags_when_queued_as_stock() {
    let server = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let flagged = "#!lua\nreturn redis.call('set','x','5')";
    let sha = sha1_smol::Sha1::from(flagged).digest().to_string();
    let library = |flags: &str| {
        format!(
            "#!lua name=fliplib\nredis.register_function{{function_name='flip', \
             callback=function() return redis.call('set','fx','1') end, flags={{{flags}}}}}"
        )
    };
    let mut replies: Vec<Vec<String>> = Vec::new();
    for port in [server.port, stock.port] {
        let (mut a, mut b) = (Raw::connect(port), Raw::connect(port));
        let mut got = Vec::new();
        let mut step = |raw: &mut Raw, args: &[&[u8]]| got.push(show(&raw.call(args)));
        step(&mut b, &[b"SET", b"k", b"v"]);
        // Not in the script cache when queued.
        step(&mut a, &[b"MULTI"]);
        step(&mut a, &[b"EVALSHA", sha.as_bytes(), b"0"]);
        step(&mut b, &[b"SCRIPT", b"LOAD", flagged.as_bytes()]);
        step(&mut b, &[b"CONFIG", b"SET", b"maxmemory", b"1"]);
        step(&mut a, &[b"EXEC"]);
        step(&mut b, &[b"CONFIG", b"SET", b"maxmemory", b"0"]);
        // `allow-oom` when queued, gone by EXEC; then the other way round.
        for (queued, by_exec) in [("'allow-oom'", ""), ("", "'allow-oom'")] {
            step(
                &mut b,
                &[b"FUNCTION", b"LOAD", b"REPLACE", library(queued).as_bytes()],
            );
            step(&mut a, &[b"MULTI"]);
            step(&mut a, &[b"FCALL", b"flip", b"0"]);
            step(&mut a, &[b"DEL", b"k"]);
            step(
                &mut b,
                &[
                    b"FUNCTION",
                    b"LOAD",
                    b"REPLACE",
                    library(by_exec).as_bytes(),
                ],
            );
            step(&mut b, &[b"CONFIG", b"SET", b"maxmemory", b"1"]);
            step(&mut a, &[b"EXEC"]);
            step(&mut a, &[b"DISCARD"]);
            step(&mut b, &[b"CONFIG", b"SET", b"maxmemory", b"0"]);
            step(&mut a, &[b"SET", b"k", b"v"]);
        }
        // A WATCHed key changed: EXEC answers nil, whatever the memory (nothing was queued).
        step(&mut a, &[b"WATCH", b"k"]);
        step(&mut b, &[b"SET", b"k", b"v2"]);
        step(&mut a, &[b"MULTI"]);
        step(&mut a, &[b"SET", b"x", b"y"]);
        step(&mut b, &[b"CONFIG", b"SET", b"maxmemory", b"1"]);
        step(&mut a, &[b"EXEC"]);
        step(&mut b, &[b"CONFIG", b"SET", b"maxmemory", b"0"]);
        step(&mut a, &[b"MGET", b"x", b"fx", b"k"]);
        replies.push(got);
    }
    assert_eq!(replies[0], replies[1], "redcell, then stock");
}
