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
