//! `maxmemory` eviction policies, each filled well past its limit, beside stock redis-server
//! 7.0 under the same trace where the outcome is comparable: volatile policies never evict a
//! key without TTL and answer Redis's OOM once none is left; allkeys-lru keeps a hot set
//! that is read between fills; allkeys-lfu keeps frequently read keys; volatile-ttl evicts
//! the shortest TTLs first; used memory stays at the limit; evictions are counted in INFO,
//! propagated as DEL (UNLINK under lazyfree-lazy-eviction) and invalidate WATCH.

mod common;

use std::time::Duration;

use common::{show, Raw, Server, StockRedis};

/// Eviction quality depends on the shards answering each other promptly (a shard defers to
/// another's better candidate until memory overshoots by 1/32): with seven of these tests
/// and their fourteen servers on two cores at once, the hot-set hit rate fell to 0.92. So
/// they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const OOM: &[u8] = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";
const SHARDS: usize = 2;

fn call(raw: &mut Raw, line: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    raw.call(&args)
}

fn ok(raw: &mut Raw, line: &str) {
    let r = call(raw, line);
    assert_eq!(r, b"+OK\r\n", "`{line}`: {}", show(&r));
}

fn info_field(raw: &mut Raw, section: &str, field: &str) -> u64 {
    let info = String::from_utf8_lossy(&call(raw, &format!("INFO {section}"))).to_string();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {info}"))
}

fn used_memory(raw: &mut Raw) -> u64 {
    info_field(raw, "memory", "used_memory")
}

fn int_reply(r: &[u8]) -> i64 {
    assert_eq!(r.first(), Some(&b':'), "not an integer: {}", show(r));
    String::from_utf8_lossy(&r[1..r.len() - 2])
        .parse()
        .expect("integer")
}

/// Empties the server, sets `policy`, and a limit `room` bytes above what it uses empty.
/// Returns the limit.
fn prepare(raw: &mut Raw, policy: &str, room: u64) -> u64 {
    ok(raw, "CONFIG SET maxmemory 0");
    ok(raw, "FLUSHALL");
    ok(raw, &format!("CONFIG SET maxmemory-policy {policy}"));
    ok(raw, "CONFIG RESETSTAT");
    let limit = used_memory(raw) + room;
    ok(raw, &format!("CONFIG SET maxmemory {limit}"));
    limit
}

/// Runs `f` with eviction stopped (maxmemory 0), then puts `limit` back: a server over its
/// limit may evict between two reads (the cron, or any command, as Redis's
/// `performEvictions`), so counts read together must be read with eviction stopped.
fn frozen<T>(raw: &mut Raw, limit: u64, f: impl FnOnce(&mut Raw) -> T) -> T {
    ok(raw, "CONFIG SET maxmemory 0");
    let r = f(raw);
    ok(raw, &format!("CONFIG SET maxmemory {limit}"));
    r
}

/// Pipelines `SET prefix:i <1 KiB> [EX ttl(i)]` for i in `range`; returns the replies.
fn set_many(
    raw: &mut Raw,
    prefix: &str,
    range: std::ops::Range<usize>,
    ttl: impl Fn(usize) -> Option<u64>,
) -> Vec<Vec<u8>> {
    let value = vec![b'v'; 1024];
    let mut replies = Vec::new();
    for chunk in range.collect::<Vec<_>>().chunks(100) {
        for &i in chunk {
            let key = format!("{prefix}:{i}");
            match ttl(i) {
                Some(t) => {
                    let t = t.to_string();
                    raw.send_cmd(&[b"SET", key.as_bytes(), &value, b"EX", t.as_bytes()])
                }
                None => raw.send_cmd(&[b"SET", key.as_bytes(), &value]),
            }
        }
        for _ in chunk {
            replies.push(raw.read_reply());
        }
    }
    replies
}

/// How many of `prefix:i`, i in `range`, exist.
fn count_present(raw: &mut Raw, prefix: &str, range: std::ops::Range<usize>) -> usize {
    let keys: Vec<String> = range.map(|i| format!("{prefix}:{i}")).collect();
    let mut n = 0;
    for chunk in keys.chunks(200) {
        let mut args: Vec<&[u8]> = vec![b"EXISTS"];
        args.extend(chunk.iter().map(|k| k.as_bytes()));
        n += int_reply(&raw.call(&args)) as usize;
    }
    n
}

fn assert_bounded(raw: &mut Raw, limit: u64, what: &str) {
    let used = used_memory(raw);
    // At most about one write above the limit (5% would be the issue's bound).
    assert!(
        used <= limit + limit / 20,
        "{what}: used_memory {used} for maxmemory {limit}"
    );
}

#[test]
fn volatile_policies_never_evict_keys_without_ttl() {
    let _serial = one_at_a_time();
    let server = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let mut ours = server.raw();
    let mut theirs = Raw::connect(stock.port);
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        for (raw, who) in [(&mut ours, "redcell"), (&mut theirs, "stock")] {
            let limit = prepare(raw, policy, 3 << 20);
            // 1000 keys without TTL (about 1.2 MB), then 6000 with one: twice the room.
            let r = set_many(raw, "keep", 0..1000, |_| None);
            assert!(r.iter().all(|r| r == b"+OK\r\n"), "{who} {policy}");
            let r = set_many(raw, "vol", 0..6000, |i| Some(10_000 + i as u64));
            assert!(
                r.iter().all(|r| r == b"+OK\r\n"),
                "{who} {policy}: a write with volatile keys left was refused"
            );
            assert_bounded(raw, limit, &format!("{who} {policy}"));
            assert_eq!(
                count_present(raw, "keep", 0..1000),
                1000,
                "{who} {policy} evicted a key without TTL"
            );
            let (evicted, vol_left) = frozen(raw, limit, |raw| {
                (
                    info_field(raw, "stats", "evicted_keys"),
                    count_present(raw, "vol", 0..6000),
                )
            });
            assert!(evicted > 1000, "{who} {policy}: evicted_keys {evicted}");
            assert_eq!(
                evicted as usize + vol_left,
                6000,
                "{who} {policy}: evicted + left"
            );
            // Keys without TTL until refused: the volatile ones go first, then OOM, exactly.
            let r = set_many(raw, "more", 0..6000, |_| None);
            let first_oom = r.iter().position(|r| r != b"+OK\r\n");
            let Some(at) = first_oom else {
                panic!("{who} {policy}: 6000 more writes never hit OOM");
            };
            assert_eq!(r[at], OOM, "{who} {policy}: {}", show(&r[at]));
            assert_eq!(count_present(raw, "keep", 0..1000), 1000, "{who} {policy}");
            assert_eq!(count_present(raw, "more", 0..at), at, "{who} {policy}");
            // Reads and deletes still work; a write after a delete gets in again.
            assert_eq!(call(raw, "EXISTS keep:1"), b":1\r\n");
            eprintln!("{who} {policy}: evicted {evicted} of 6000 volatile keys, then {at} writes before OOM");
        }
    }
}

/// One round of the hot/cold trace: read the hot set, then write `cold` new keys, with a
/// pause before each so the LRU clock (seconds) tells the three generations apart: the
/// previous round's cold keys are older than the hot set, the new ones younger. Returns the
/// hot keys found on reading.
fn hot_cold_round(raw: &mut Raw, round: usize, hot: usize, cold: usize) -> usize {
    std::thread::sleep(Duration::from_millis(1100));
    let mut hits = 0;
    for i in 0..hot {
        let r = raw.call(&[b"GET", format!("hot:{i}").as_bytes()]);
        if r.starts_with(b"$1024") {
            hits += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(1100));
    let r = set_many(raw, &format!("cold{round}"), 0..cold, |_| None);
    assert!(r.iter().all(|r| r == b"+OK\r\n"));
    hits
}

#[test]
fn allkeys_lru_keeps_the_hot_set() {
    let _serial = one_at_a_time();
    let server = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for (port, who) in [(server.port, "redcell"), (stock.port, "stock")] {
        let mut raw = Raw::connect(port);
        let limit = prepare(&mut raw, "allkeys-lru", 3 << 20);
        set_many(&mut raw, "hot", 0..200, |_| None);
        // Each round writes about half of what fits: the keys written before the last read
        // of the hot set are older than it and go first.
        let mut hits = 0;
        for round in 0..4 {
            let h = hot_cold_round(&mut raw, round, 200, 1200);
            if round > 0 {
                hits += h;
            }
        }
        assert_bounded(&mut raw, limit, who);
        let evicted = info_field(&mut raw, "stats", "evicted_keys");
        assert!(evicted > 2000, "{who}: evicted {evicted}");
        let rate = hits as f64 / 600.0;
        eprintln!("{who} allkeys-lru: hot-set hit rate {rate:.3}, evicted {evicted}");
        assert!(rate >= 0.95, "{who}: hot-set hit rate {rate}");
        // The cold keys of the first rounds are gone, the last round's mostly kept.
        assert!(count_present(&mut raw, "cold0", 0..1200) < 300, "{who}");
    }
}

#[test]
fn allkeys_lfu_keeps_frequently_read_keys() {
    let _serial = one_at_a_time();
    let server = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for (port, who) in [(server.port, "redcell"), (stock.port, "stock")] {
        let mut raw = Raw::connect(port);
        let limit = prepare(&mut raw, "allkeys-lfu", 3 << 20);
        set_many(&mut raw, "hot", 0..200, |_| None);
        for _ in 0..30 {
            for i in 0..200 {
                raw.send_cmd(&[b"GET", format!("hot:{i}").as_bytes()]);
            }
            for _ in 0..200 {
                raw.read_reply();
            }
        }
        let freq = int_reply(&call(&mut raw, "OBJECT FREQ hot:7"));
        // 30 reads from 5 with lfu-log-factor 10: about 8 (Redis's table: 100 hits give 10).
        assert!((6..=15).contains(&freq), "{who}: OBJECT FREQ {freq}");
        set_many(&mut raw, "cold", 0..8000, |_| None);
        assert_bounded(&mut raw, limit, who);
        let hot = count_present(&mut raw, "hot", 0..200);
        let cold = count_present(&mut raw, "cold", 0..8000);
        eprintln!(
            "{who} allkeys-lfu: {hot} of 200 hot keys kept, {cold} of 8000 cold, freq {freq}"
        );
        assert!(hot >= 190, "{who}: only {hot} of 200 hot keys kept");
        assert!(cold < 4000, "{who}: {cold} cold keys");
    }
}

#[test]
fn volatile_ttl_evicts_the_shortest_ttl_first() {
    let _serial = one_at_a_time();
    let server = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for (port, who) in [(server.port, "redcell"), (stock.port, "stock")] {
        let mut raw = Raw::connect(port);
        let limit = prepare(&mut raw, "volatile-ttl", 3 << 20);
        // Each key lives shorter than the one before: the newest are the best candidates.
        set_many(&mut raw, "t", 0..6000, |i| Some(100_000 - i as u64));
        assert_bounded(&mut raw, limit, who);
        let old = count_present(&mut raw, "t", 0..1000);
        let new = count_present(&mut raw, "t", 5000..6000);
        eprintln!(
            "{who} volatile-ttl: {old} of the 1000 longest TTLs kept, {new} of the 1000 shortest"
        );
        // Usually all 1000; each core evicts its own keys, so when one core has no short
        // TTLs left while the other still has, some long ones go (935 seen in 1 run of 4).
        assert!(old >= 900, "{who}: {old} of the longest TTLs kept");
        assert!(new < old / 2, "{who}: {new} shortest vs {old} longest");
    }
}

#[test]
fn allkeys_random_bounds_memory_and_policies_switch_at_run_time() {
    let _serial = one_at_a_time();
    let server = Server::start(SHARDS, &[]);
    let mut raw = server.raw();
    let limit = prepare(&mut raw, "allkeys-random", 2 << 20);
    set_many(&mut raw, "r", 0..6000, |_| None);
    assert_bounded(&mut raw, limit, "allkeys-random");
    let (left, evicted) = frozen(&mut raw, limit, |raw| {
        (
            count_present(raw, "r", 0..6000),
            info_field(raw, "stats", "evicted_keys"),
        )
    });
    assert_eq!(left + evicted as usize, 6000);
    // Random: the first and the last written thousand both lost keys.
    let (first, last) = (
        count_present(&mut raw, "r", 0..1000),
        count_present(&mut raw, "r", 5000..6000),
    );
    assert!(first < 1000 && last < 1000, "{first} {last}");
    // A lower limit is reached by the cron alone, without a write. The cron stops as soon as
    // memory is at the limit, so what the connection allocates afterwards (the INFO request
    // itself) may leave it a little above: allow 16 KiB, against the 1 MiB to free.
    let lower = limit - (1 << 20);
    ok(&mut raw, &format!("CONFIG SET maxmemory {lower}"));
    let reached = common::wait_until(Duration::from_secs(10), || {
        used_memory(&mut raw) <= lower + (16 << 10)
    });
    assert!(
        reached,
        "used_memory {} above {lower} after 10 s; {} keys left, evicted {}",
        used_memory(&mut raw),
        show(&call(&mut raw, "DBSIZE")),
        info_field(&mut raw, "stats", "evicted_keys")
    );
    // OBJECT FREQ answers Redis's error outside LFU, IDLETIME outside LRU.
    assert_eq!(
        call(&mut raw, "CONFIG GET maxmemory-samples"),
        b"*2\r\n$17\r\nmaxmemory-samples\r\n$1\r\n5\r\n"
    );
    ok(&mut raw, "SET f v");
    let r = call(&mut raw, "OBJECT FREQ f");
    assert!(
        r.starts_with(b"-ERR An LFU maxmemory policy is not selected"),
        "{}",
        show(&r)
    );
    ok(&mut raw, "CONFIG SET maxmemory-policy allkeys-lfu");
    ok(&mut raw, "SET g v");
    assert_eq!(call(&mut raw, "OBJECT FREQ g"), b":5\r\n");
    let r = call(&mut raw, "OBJECT IDLETIME g");
    assert!(
        r.starts_with(b"-ERR An LFU maxmemory policy is selected"),
        "{}",
        show(&r)
    );
}

#[test]
fn evictions_propagate_as_del_and_touch_watchers() {
    let _serial = one_at_a_time();
    let server = Server::start(SHARDS, &["--enable-debug-command", "yes"]);
    let stock = StockRedis::start(&[]);
    let mut raw = server.raw();
    assert_eq!(call(&mut raw, "DEBUG JOURNAL ON"), b"+OK\r\n");
    for (lazy, verb) in [("no", "DEL"), ("yes", "UNLINK")] {
        ok(
            &mut raw,
            &format!("CONFIG SET lazyfree-lazy-eviction {lazy}"),
        );
        prepare(&mut raw, "allkeys-lru", 1 << 20);
        call(&mut raw, "DEBUG JOURNAL READ");
        // The journal is read after every 100 writes: what it holds counts as used memory
        // (Redis leaves its AOF buffer out; ours is only for tests).
        let mut text = String::new();
        for c in 0..30 {
            let r = set_many(&mut raw, "p", c * 100..(c + 1) * 100, |_| None);
            assert!(r.iter().all(|r| r == b"+OK\r\n"), "{verb}: a write refused");
            let journal = call(&mut raw, "DEBUG JOURNAL READ");
            text.push_str(&String::from_utf8_lossy(&journal));
        }
        // A shard asked to evict for another's write, or its cron, may still evict after
        // the last reply: stop eviction, then take what the journal got meanwhile.
        ok(&mut raw, "CONFIG SET maxmemory 0");
        let journal = call(&mut raw, "DEBUG JOURNAL READ");
        text.push_str(&String::from_utf8_lossy(&journal));
        let evicted = info_field(&mut raw, "stats", "evicted_keys") as usize;
        assert!(evicted > 1000, "evicted {evicted}");
        let dels = text
            .matches(&format!("${}\r\n{verb}\r\n", verb.len()))
            .count();
        let sets = text.matches("$3\r\nSET\r\n").count();
        assert_eq!(dels, evicted, "{verb}s in the journal");
        assert_eq!(sets, 3000);
        // Each deleted key is one that is gone.
        let left = count_present(&mut raw, "p", 0..3000);
        assert_eq!(left + evicted, 3000);
        // Never wrapped in MULTI with the write that caused it.
        assert!(!text.contains("MULTI"), "evictions wrapped in MULTI");
    }
    assert_eq!(call(&mut raw, "DEBUG JOURNAL OFF"), b"+OK\r\n");
    // WATCH: a key evicted meanwhile fails the transaction, on both.
    for port in [server.port, stock.port] {
        let mut a = Raw::connect(port);
        let mut b = Raw::connect(port);
        ok(&mut a, "CONFIG SET maxmemory 0");
        ok(&mut a, "FLUSHALL");
        ok(&mut a, "CONFIG SET maxmemory-policy allkeys-lru");
        let big = vec![b'x'; 2 << 20];
        assert_eq!(a.call(&[b"SET", b"w", &big]), b"+OK\r\n");
        ok(&mut a, "WATCH w");
        let limit = used_memory(&mut b) - (1 << 20);
        ok(&mut b, &format!("CONFIG SET maxmemory {limit}"));
        assert_eq!(call(&mut b, "SET other v"), b"+OK\r\n", "port {port}");
        // Stock evicts before the write; ours too when `w` is on the written key's shard,
        // otherwise its own shard does, a moment later.
        assert!(common::wait_until(Duration::from_secs(5), || {
            call(&mut b, "EXISTS w") == b":0\r\n"
        }));
        ok(&mut a, "MULTI");
        assert_eq!(call(&mut a, "SET w v"), b"+QUEUED\r\n");
        assert_eq!(call(&mut a, "EXEC"), b"*-1\r\n", "port {port}");
        ok(&mut a, "CONFIG SET maxmemory 0");
    }
}

#[test]
fn a_shard_taking_all_writes_gets_memory_from_an_idle_one() {
    let _serial = one_at_a_time();
    // Keys with one hash tag all live on one shard: fill shard A, let its keys age, then
    // write only to shard B. B's new keys must push out A's old ones, not each other.
    let server = Server::start(SHARDS, &[]);
    let mut raw = server.raw();
    let tag = |shard: usize| {
        (0..100)
            .map(|i| format!("{{t{i}}}"))
            .find(|t| common::shard_of(t.as_bytes(), SHARDS) == shard)
            .expect("a tag on the shard")
    };
    let (a, b) = (tag(0), tag(1));
    for (first, second) in [(&a, &b), (&b, &a)] {
        let limit = prepare(&mut raw, "allkeys-lru", 3 << 20);
        let r = set_many(&mut raw, first, 0..4000, |_| None);
        assert!(r.iter().all(|r| r == b"+OK\r\n"));
        let first_kept = count_present(&mut raw, first, 0..4000);
        std::thread::sleep(Duration::from_millis(2100));
        let r = set_many(&mut raw, second, 0..4000, |_| None);
        assert!(r.iter().all(|r| r == b"+OK\r\n"));
        assert_bounded(&mut raw, limit, "one shard");
        let old_left = count_present(&mut raw, first, 0..4000);
        let new_kept = count_present(&mut raw, second, 0..4000);
        eprintln!(
            "{first} then {second}: {first_kept} fit, then {old_left} old and {new_kept} new kept"
        );
        // The writing shard asks the idle one to evict and lets memory overshoot by 1/32
        // meanwhile; past that it evicts its own keys. On a loaded machine the idle shard
        // answers later, so the bounds leave room (run alone: 0 old left, 90% new kept).
        assert!(
            old_left < first_kept / 4,
            "{old_left} of {first_kept} old keys left"
        );
        assert!(
            new_kept > first_kept / 2,
            "{new_kept} new keys kept, {first_kept} fit"
        );
    }
}

/// Writes made by scripts are paid for before the script runs, as Redis evicts before every
/// command (`performEvictions` in `processCommand`): memory stays bounded when scripts are
/// the only writers, not only once the eviction cron comes round.
#[test]
fn scripted_writes_stay_within_the_limit() {
    let _one = one_at_a_time();
    let server = Server::start(SHARDS, &[]);
    let mut raw = server.raw();
    let limit = prepare(&mut raw, "allkeys-lru", 2 << 20);
    let value = vec![b'v'; 1024];
    let script: &[u8] = b"return redis.call('set', KEYS[1], ARGV[1])";
    for chunk in 0..40 {
        for i in 0..100 {
            let key = format!("scripted:{}", chunk * 100 + i);
            raw.send_cmd(&[b"EVAL", script, b"1", key.as_bytes(), &value]);
        }
        for _ in 0..100 {
            let r = raw.read_reply();
            assert_eq!(r, b"+OK\r\n", "{}", show(&r));
        }
    }
    assert_bounded(&mut raw, limit, "after 4,000 scripted writes of 1 KiB");
    assert!(info_field(&mut raw, "stats", "evicted_keys") > 0);
}

/// A limit below what the server needs empty: the first write evicts every key there is
/// (on every shard) and is refused with OOM, as stock refuses it once `performEvictions`
/// finds nothing more to evict; reads still work.
#[test]
fn a_limit_below_what_the_server_needs_evicts_everything_then_refuses() {
    let _one = one_at_a_time();
    let server = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for (who, mut raw) in [
        ("redcell", server.raw()),
        ("stock", Raw::connect(stock.port)),
    ] {
        prepare(&mut raw, "allkeys-lru", 1 << 20);
        for i in 0..100 {
            ok(&mut raw, &format!("SET key:{i} v"));
        }
        ok(&mut raw, "CONFIG SET maxmemory 1");
        for line in ["SET another v", "INCR key:1", "SET another v"] {
            let r = call(&mut raw, line);
            assert_eq!(r, OOM, "{who}: `{line}`: {}", show(&r));
        }
        assert_eq!(int_reply(&call(&mut raw, "DBSIZE")), 0, "{who}");
        assert_eq!(info_field(&mut raw, "stats", "evicted_keys"), 100, "{who}");
        assert_eq!(call(&mut raw, "GET key:1"), b"$-1\r\n", "{who}");
    }
}
