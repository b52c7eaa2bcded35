//! Client-side caching (CLIENT TRACKING, CACHING, GETREDIR, TRACKINGINFO): invalidations byte-compared with stock Redis 7, and across shards.

mod common;

use std::time::Duration;

use common::*;

/// A scripted conversation run against one server: the replies and pushes read, in order,
/// with client ids replaced by `<id>` (they differ between servers).
struct Script {
    port: u16,
    conns: Vec<Raw>,
    ids: Vec<Vec<u8>>,
    log: Vec<Vec<u8>>,
}

impl Script {
    /// `n` connections to the server on `port`; each knows its CLIENT ID.
    fn new(port: u16, n: usize) -> Script {
        let mut s = Script {
            port,
            conns: Vec::new(),
            ids: Vec::new(),
            log: Vec::new(),
        };
        for _ in 0..n {
            s.connect();
        }
        s
    }

    /// One more connection (returns its index).
    fn connect(&mut self) -> usize {
        let mut c = Raw::connect(self.port);
        let id = c.call(&[b"CLIENT", b"ID"]);
        let id = id[1..id.len() - 2].to_vec();
        self.conns.push(c);
        self.ids.push(id);
        self.conns.len() - 1
    }

    fn id(&self, i: usize) -> Vec<u8> {
        self.ids[i].clone()
    }

    /// Records a reply; `ids`: with client ids (as integer replies) shown as `:<id>`.
    fn record(&mut self, reply: Vec<u8>, ids: bool) {
        let mut text = reply;
        if ids {
            for id in self.ids.clone() {
                let int = [b":".as_slice(), &id, b"\r\n"].concat();
                text = replace_all(&text, &int, b":<id>\r\n");
            }
        }
        if std::env::var_os("TRACKING_TRACE").is_some() {
            eprintln!("{}: {}", self.port, show(&text));
        }
        self.log.push(text);
    }

    /// Sends a command on connection `i` and records its reply.
    fn call(&mut self, i: usize, args: &[&[u8]]) {
        let r = self.conns[i].call(args);
        self.record(r, false);
    }

    /// `call` for a reply that shows client ids.
    fn call_ids(&mut self, i: usize, args: &[&[u8]]) {
        let r = self.conns[i].call(args);
        self.record(r, true);
    }

    /// Switches connection `i` to RESP3 (HELLO's reply, which differs, is not recorded).
    fn hello3(&mut self, i: usize) {
        let r = self.conns[i].call(&[b"HELLO", b"3"]);
        assert!(r.starts_with(b"%7"), "{}", show(&r));
    }

    /// Records the next frame connection `i` receives (a push, or a reply sent earlier).
    fn read(&mut self, i: usize) {
        let r = self.conns[i].read_reply_within(Duration::from_secs(5));
        self.record(r, false);
    }

    /// `read` for a frame that shows client ids.
    fn read_ids(&mut self, i: usize) {
        let r = self.conns[i].read_reply_within(Duration::from_secs(5));
        self.record(r, true);
    }

    /// Checks connection `i` receives nothing for a while (recorded, so both servers agree).
    fn silent(&mut self, i: usize) {
        self.conns[i].expect_silence(Duration::from_millis(150));
        self.log.push(b"(silence)".to_vec());
    }
}

/// `text` with every `from` replaced by `to`.
fn replace_all(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// Runs `scenario` on redcell (two shards) and on stock Redis and compares the transcripts.
fn compare(conns: usize, scenario: impl Fn(&mut Script)) {
    compare_with(conns, &[], scenario)
}

fn compare_with(conns: usize, extra: &[&str], scenario: impl Fn(&mut Script)) {
    let ours = Server::start(2, extra);
    let stock = StockRedis::start(extra);
    let mut a = Script::new(ours.port, conns);
    let mut b = Script::new(stock.port, conns);
    scenario(&mut a);
    scenario(&mut b);
    let show_all = |s: &Script| s.log.iter().map(|l| show(l)).collect::<Vec<_>>().join("\n");
    assert_eq!(
        show_all(&a),
        show_all(&b),
        "\nredcell (left) and redis (right) differ"
    );
}

/// Keys of one shard of two (so a command on several of them is one shard's change, and
/// their invalidations keep Redis's order).
fn keys_on(shard: usize, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut i = 0;
    while keys.len() < n {
        let k = format!("key:{i}");
        if shard_of(k.as_bytes(), 2) == shard {
            keys.push(k);
        }
        i += 1;
    }
    keys
}

#[test]
fn resp3_invalidation_push_matches_redis() {
    compare(2, |s| {
        s.hello3(0);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on"]);
        s.call(0, &[b"GET", b"k"]);
        s.call(1, &[b"SET", b"k", b"v"]);
        s.read(0);
        // Forgotten once invalidated: a second write sends nothing.
        s.call(1, &[b"SET", b"k", b"w"]);
        s.silent(0);
        // A key on each shard, read with one MGET each and changed by another client.
        for shard in 0..2 {
            let ks = keys_on(shard, 2);
            s.call(0, &[b"MGET", ks[0].as_bytes(), ks[1].as_bytes()]);
            s.call(1, &[b"DEL", ks[0].as_bytes()]);
            s.call(
                1,
                &[b"MSET", ks[0].as_bytes(), b"1", ks[1].as_bytes(), b"2"],
            );
            s.read(0);
            s.read(0);
        }
        // The client's own write: the invalidation comes after the reply.
        s.call(0, &[b"GET", b"own"]);
        s.call(0, &[b"SET", b"own", b"1"]);
        s.read(0);
        // A write that changes nothing invalidates nothing.
        s.call(0, &[b"GET", b"k"]);
        s.call(1, &[b"SET", b"k", b"x", b"NX"]);
        s.silent(0);
        s.call(1, &[b"APPEND", b"k", b"y"]);
        s.read(0);
    });
}

#[test]
fn resp3_push_bytes_are_exact() {
    let ours = Server::start(2, &[]);
    let mut a = ours.raw();
    let mut b = ours.raw();
    a.call(&[b"HELLO", b"3"]);
    assert_eq!(a.call(&[b"CLIENT", b"TRACKING", b"on"]), b"+OK\r\n");
    assert_eq!(a.call(&[b"GET", b"k"]), b"_\r\n");
    assert_eq!(b.call(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    a.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
}

#[test]
fn resp2_redirect_to_pubsub_client_matches_redis() {
    compare(3, |s| {
        // Connection 2 receives the invalidations of connection 0 on __redis__:invalidate.
        s.call(2, &[b"SUBSCRIBE", b"__redis__:invalidate"]);
        let rid = s.id(2);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &rid]);
        s.call_ids(0, &[b"CLIENT", b"GETREDIR"]);
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call(0, &[b"SET", b"a", b"1"]);
        s.call(0, &[b"SET", b"b", b"1"]);
        s.call(0, &[b"GET", b"a"]);
        s.call(0, &[b"INCR", b"b"]);
        s.call(0, &[b"INCR", b"a"]);
        s.read(2);
        s.silent(0);
        // FLUSHALL: a null for "every key".
        s.call(0, &[b"GET", b"a"]);
        s.call(1, &[b"FLUSHALL"]);
        s.read(2);
        s.call(1, &[b"FLUSHDB"]);
        s.read(2);
        // Without a redirection a RESP2 client gets nothing.
        s.call(0, &[b"CLIENT", b"TRACKING", b"on"]);
        s.call(0, &[b"GET", b"c"]);
        s.call(1, &[b"SET", b"c", b"1"]);
        s.silent(0);
        s.silent(2);
        s.call(0, &[b"CLIENT", b"TRACKING", b"off"]);
        s.call_ids(0, &[b"CLIENT", b"GETREDIR"]);
    });
}

#[test]
fn resp3_redirect_and_broken_redirect_match_redis() {
    compare(3, |s| {
        s.hello3(0);
        s.hello3(2);
        let rid = s.id(2);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &rid]);
        s.call(0, &[b"GET", b"k"]);
        s.call(1, &[b"SET", b"k", b"1"]);
        s.read(2);
        s.silent(0);
        // The target goes away: the tracking client hears about it at the next message.
        s.call(0, &[b"GET", b"k"]);
        s.call(2, &[b"QUIT"]);
        std::thread::sleep(Duration::from_millis(100));
        s.call(1, &[b"SET", b"k", b"2"]);
        s.read_ids(0);
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call(1, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &rid]);
    });
}

#[test]
fn flush_sends_null_invalidation_like_redis() {
    compare(2, |s| {
        s.hello3(0);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on"]);
        s.call(0, &[b"GET", b"a"]);
        s.call(1, &[b"FLUSHALL"]);
        s.read(0);
        s.call(1, &[b"FLUSHDB", b"ASYNC"]);
        s.read(0);
        s.call(0, &[b"SET", b"a", b"1"]);
        s.call(0, &[b"GET", b"a"]);
        // Inside a transaction the null comes after EXEC's reply.
        s.call(0, &[b"MULTI"]);
        s.call(0, &[b"FLUSHDB"]);
        s.call(0, &[b"EXEC"]);
        s.read(0);
        // The table was emptied: a later write sends nothing.
        s.call(1, &[b"SET", b"a", b"2"]);
        s.silent(0);
    });
}

#[test]
fn bcast_prefixes_match_redis() {
    let ks = keys_on(0, 3);
    compare(3, |s| {
        s.hello3(0);
        s.call(
            0,
            &[
                b"CLIENT",
                b"TRACKING",
                b"on",
                b"BCAST",
                b"PREFIX",
                b"key:",
                b"PREFIX",
                b"user:",
            ],
        );
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        // Keys of one shard changed in one command: one message, keys in order.
        s.call(
            1,
            &[
                b"MSET",
                ks[2].as_bytes(),
                b"1",
                ks[0].as_bytes(),
                b"2",
                ks[1].as_bytes(),
                b"3",
            ],
        );
        s.read(0);
        s.call(1, &[b"SET", b"other", b"1"]);
        s.call(1, &[b"SET", b"user:1", b"1"]);
        s.read(0);
        // Adding a prefix, and the overlap errors.
        s.call(
            0,
            &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"obj:"],
        );
        s.call(
            0,
            &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"ke"],
        );
        s.call(
            0,
            &[
                b"CLIENT",
                b"TRACKING",
                b"on",
                b"BCAST",
                b"PREFIX",
                b"user:x",
            ],
        );
        s.call(
            0,
            &[
                b"CLIENT",
                b"TRACKING",
                b"on",
                b"BCAST",
                b"PREFIX",
                b"zz",
                b"PREFIX",
                b"z",
            ],
        );
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call(1, &[b"SET", b"obj:1", b"1"]);
        s.read(0);
        // RESP2 BCAST redirected to a subscriber, with the empty prefix.
        s.call(2, &[b"SUBSCRIBE", b"__redis__:invalidate"]);
        let rid = s.id(2);
        s.call(
            1,
            &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"REDIRECT", &rid],
        );
        s.call(0, &[b"SET", b"anything", b"1"]);
        s.read(2);
        s.call(0, &[b"CLIENT", b"TRACKING", b"off"]);
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call(0, &[b"SET", b"key:x", b"1"]);
        s.read(2);
        s.silent(0);
    });
}

#[test]
fn optin_optout_caching_match_redis() {
    compare(2, |s| {
        s.hello3(0);
        s.call(0, &[b"CLIENT", b"CACHING", b"yes"]);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"OPTIN"]);
        s.call(0, &[b"CLIENT", b"CACHING", b"no"]);
        s.call(0, &[b"GET", b"a"]);
        s.call(1, &[b"SET", b"a", b"1"]);
        s.silent(0);
        s.call(0, &[b"CLIENT", b"CACHING", b"yes"]);
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call(0, &[b"GET", b"a"]);
        s.call(0, &[b"GET", b"b"]);
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call(1, &[b"SET", b"a", b"2"]);
        s.read(0);
        s.call(1, &[b"SET", b"b", b"2"]);
        s.silent(0);
        // CACHING yes covers a whole transaction.
        s.call(0, &[b"CLIENT", b"CACHING", b"yes"]);
        s.call(0, &[b"MULTI"]);
        s.call(0, &[b"GET", b"a{t}"]);
        s.call(0, &[b"GET", b"b{t}"]);
        s.call(0, &[b"EXEC"]);
        s.call(1, &[b"MSET", b"a{t}", b"3", b"b{t}", b"3"]);
        s.read(0);
        s.read(0);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"OPTOUT"]);
        s.call(0, &[b"CLIENT", b"TRACKING", b"off"]);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"OPTOUT"]);
        s.call(0, &[b"CLIENT", b"CACHING", b"yes"]);
        s.call(0, &[b"CLIENT", b"CACHING", b"no"]);
        s.call(0, &[b"GET", b"c"]);
        s.call(0, &[b"GET", b"d"]);
        s.call(1, &[b"MSET", b"c", b"1", b"d", b"1"]);
        s.read(0);
        s.silent(0);
        s.call(0, &[b"CLIENT", b"CACHING", b"maybe"]);
    });
}

#[test]
fn noloop_matches_redis() {
    compare(2, |s| {
        s.hello3(0);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"NOLOOP"]);
        s.call(0, &[b"GET", b"a"]);
        s.call(0, &[b"GET", b"b"]);
        s.call(0, &[b"SET", b"a", b"1"]);
        s.silent(0);
        s.call(1, &[b"SET", b"b", b"1"]);
        s.read(0);
        // A script's writes are the caller's own.
        s.call(0, &[b"GET", b"a"]);
        s.call(
            0,
            &[
                b"EVAL",
                b"return redis.call('set', KEYS[1], '2')",
                b"1",
                b"a",
            ],
        );
        s.silent(0);
        s.call(0, &[b"CLIENT", b"TRACKING", b"off"]);
        // BCAST NOLOOP: own keys left out of the array.
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"NOLOOP"]);
        s.call(0, &[b"SET", b"c", b"1"]);
        s.silent(0);
        s.call(1, &[b"SET", b"c", b"2"]);
        s.read(0);
    });
}

#[test]
fn expiry_invalidates_like_redis() {
    compare_with(2, &["--enable-debug-command", "yes"], |s| {
        s.hello3(0);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on"]);
        // Active expiry.
        s.call(1, &[b"SET", b"a", b"1", b"PX", b"50"]);
        s.call(0, &[b"GET", b"a"]);
        s.read(0);
        // Lazy expiry, met by another client's read.
        s.call(1, &[b"DEBUG", b"SET-ACTIVE-EXPIRE", b"0"]);
        s.call(1, &[b"SET", b"b", b"1", b"PX", b"30"]);
        s.call(0, &[b"GET", b"b"]);
        std::thread::sleep(Duration::from_millis(80));
        s.call(1, &[b"GET", b"b"]);
        s.read(0);
        s.call(1, &[b"DEBUG", b"SET-ACTIVE-EXPIRE", b"1"]);
    });
}

#[test]
fn errors_and_info_shapes_match_redis() {
    compare(2, |s| {
        let t: &[u8] = b"TRACKING";
        for args in [
            &[b"CLIENT" as &[u8], t][..],
            &[b"CLIENT", t, b"maybe"],
            &[b"CLIENT", t, b"on", b"bogus"],
            &[b"CLIENT", t, b"on", b"REDIRECT"],
            &[b"CLIENT", t, b"on", b"REDIRECT", b"x"],
            &[b"CLIENT", t, b"on", b"REDIRECT", b"999999"],
            &[b"CLIENT", t, b"on", b"REDIRECT", b"0"],
            &[b"CLIENT", t, b"on", b"PREFIX", b"a"],
            &[b"CLIENT", t, b"on", b"BCAST", b"OPTIN"],
            &[b"CLIENT", t, b"on", b"OPTIN", b"OPTOUT"],
            &[
                b"CLIENT", t, b"on", b"BCAST", b"PREFIX", b"FOOBAR", b"PREFIX", b"FOO",
            ],
            &[
                b"CLIENT", t, b"on", b"BCAST", b"PREFIX", b"FOO", b"PREFIX", b"FOOBAR",
            ],
            &[b"CLIENT", b"CACHING", b"yes"],
            &[b"CLIENT", b"CACHING"],
            &[b"CLIENT", b"GETREDIR", b"x"],
            &[b"CLIENT", b"TRACKINGINFO", b"x"],
            &[b"CLIENT", b"GETREDIR"],
            &[b"CLIENT", b"TRACKINGINFO"],
            &[b"CLIENT", t, b"off"],
            &[b"CLIENT", t, b"on", b"OPTIN"],
            &[b"CLIENT", t, b"on", b"OPTOUT"],
            &[b"CLIENT", b"CACHING", b"no"],
            &[b"CLIENT", t, b"on", b"BCAST"],
            &[b"CLIENT", t, b"off"],
            &[b"CLIENT", t, b"on", b"BCAST"],
            &[b"CLIENT", t, b"on"],
            &[b"CLIENT", b"TRACKINGINFO"],
        ] {
            s.call(0, args);
        }
        let rid = s.id(1);
        s.call(
            0,
            &[
                b"CLIENT",
                t,
                b"on",
                b"BCAST",
                b"REDIRECT",
                &rid,
                b"REDIRECT",
                &rid,
            ],
        );
        s.call(
            0,
            &[b"CLIENT", t, b"on", b"BCAST", b"NOLOOP", b"REDIRECT", &rid],
        );
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call_ids(0, &[b"CLIENT", b"GETREDIR"]);
        s.hello3(0);
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
        s.call(0, &[b"CLIENT", t, b"off"]);
        s.call(0, &[b"CLIENT", t, b"on", b"OPTIN", b"NOLOOP"]);
        s.call(0, &[b"CLIENT", b"CACHING", b"YES"]);
        s.call_ids(0, &[b"CLIENT", b"TRACKINGINFO"]);
    });
}

/// INFO's tracking counters and CLIENT LIST's flags, from redcell alone (the counts differ
/// by design nowhere, but other INFO fields do).
#[test]
fn info_counters_and_client_list_flags() {
    let ours = Server::start(2, &[]);
    let mut a = ours.raw();
    let mut b = ours.raw();
    let mut admin = ours.raw();
    a.call(&[b"CLIENT", b"TRACKING", b"on"]);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for k in &keys {
        a.call(&[b"GET", k.as_bytes()]);
    }
    b.call(&[b"GET", b"k0"]);
    b.call(&[
        b"CLIENT",
        b"TRACKING",
        b"on",
        b"BCAST",
        b"PREFIX",
        b"p:",
        b"PREFIX",
        b"q:",
    ]);
    let info = String::from_utf8(admin.call(&[b"INFO"])).unwrap();
    let field = |name: &str| -> String {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("tracking_clients"), "2");
    assert_eq!(field("tracking_total_keys"), "10");
    assert_eq!(field("tracking_total_items"), "10");
    assert_eq!(field("tracking_total_prefixes"), "2");
    let list = String::from_utf8(admin.call(&[b"CLIENT", b"LIST"])).unwrap();
    let flags: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("flags=")))
        .collect();
    assert!(flags.contains(&"t"), "{list}");
    assert!(flags.contains(&"tB"), "{list}");
    // Writes forget keys; disconnecting clears the counters.
    admin.call(&[b"MSET", b"k0", b"1", b"k1", b"1"]);
    drop(a);
    drop(b);
    assert!(wait_until(Duration::from_secs(5), || {
        let info = String::from_utf8(admin.call(&[b"INFO", b"stats"])).unwrap();
        info.contains("tracking_total_keys:8\r\n") && info.contains("tracking_total_prefixes:0\r\n")
    }));
    let info = String::from_utf8(admin.call(&[b"INFO", b"clients"])).unwrap();
    assert!(info.contains("tracking_clients:0\r\n"), "{info}");
}

/// Invalidations reach a client whatever core it and the keys live on, each shard's in the
/// order of the writes, after the replies of the reads they follow; writes in MULTI and in
/// Lua scripts invalidate too.
#[test]
fn cross_shard_invalidations_arrive_in_order() {
    let ours = Server::start(2, &[]);
    // Several tracking clients, so some live on each core.
    let mut readers: Vec<Raw> = (0..4).map(|_| ours.raw()).collect();
    let mut writer = ours.raw();
    let keys: Vec<Vec<String>> = (0..2).map(|s| keys_on(s, 20)).collect();
    for r in readers.iter_mut() {
        r.call(&[b"HELLO", b"3"]);
        r.call(&[b"CLIENT", b"TRACKING", b"on"]);
        // Reads pipelined, so most are forwarded together to the other core.
        for k in keys.iter().flatten() {
            r.send_cmd(&[b"GET", k.as_bytes()]);
        }
        for _ in keys.iter().flatten() {
            assert_eq!(r.read_reply(), b"_\r\n");
        }
    }
    // Writes alternating between the shards, pipelined.
    for i in 0..20 {
        for shard_keys in &keys {
            writer.send_cmd(&[b"SET", shard_keys[i].as_bytes(), b"v"]);
        }
    }
    for _ in 0..40 {
        assert_eq!(writer.read_reply(), b"+OK\r\n");
    }
    for r in readers.iter_mut() {
        let mut got: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
        for _ in 0..40 {
            let push = r.read_reply();
            let text = String::from_utf8(push.clone()).unwrap();
            let key = text
                .rsplit("\r\n")
                .nth(1)
                .unwrap_or_else(|| panic!("{}", show(&push)))
                .to_string();
            assert!(
                text.starts_with(">2\r\n$10\r\ninvalidate\r\n*1\r\n"),
                "{text}"
            );
            got[shard_of(key.as_bytes(), 2)].push(key);
        }
        assert_eq!(got, keys, "each shard's invalidations in write order");
        r.expect_silence(Duration::from_millis(50));
    }
    // MULTI and Lua: keys on both shards changed in one unit.
    let (k0, k1) = (keys[0][0].as_bytes(), keys[1][0].as_bytes());
    for r in readers.iter_mut() {
        r.call(&[b"MGET", k0, k1]);
    }
    writer.call(&[b"MULTI"]);
    writer.call(&[b"SET", k0, b"m"]);
    writer.call(&[b"SET", k1, b"m"]);
    writer.call(&[b"EXEC"]);
    let expect_both = |r: &mut Raw| {
        let mut got = vec![r.read_reply(), r.read_reply()];
        got.sort();
        let mut want = vec![
            [b">2\r\n$10\r\ninvalidate\r\n*1\r\n".to_vec(), bulk(k0)].concat(),
            [b">2\r\n$10\r\ninvalidate\r\n*1\r\n".to_vec(), bulk(k1)].concat(),
        ];
        want.sort();
        assert_eq!(got, want);
    };
    for r in readers.iter_mut() {
        expect_both(r);
        r.call(&[b"MGET", k0, k1]);
    }
    writer.call(&[
        b"EVAL",
        b"redis.call('set', KEYS[1], 'l'); redis.call('del', KEYS[2])",
        b"2",
        k0,
        k1,
    ]);
    for r in readers.iter_mut() {
        expect_both(r);
    }
    // A read (forwarded, for some readers), then a write: the push follows the reply.
    for r in readers.iter_mut() {
        let reply = r.call(&[b"GET", k1]);
        assert!(
            reply.starts_with(b"$") || reply == b"_\r\n",
            "{}",
            show(&reply)
        );
        assert_eq!(writer.call(&[b"SET", k1, b"z"]), b"+OK\r\n");
        r.expect(
            [b">2\r\n$10\r\ninvalidate\r\n*1\r\n".to_vec(), bulk(k1)]
                .concat()
                .as_slice(),
        );
    }
}

/// Scripts: a read-only command inside tracks the keys the script declared (Redis's rule).
#[test]
fn scripts_track_declared_keys_like_redis() {
    compare(2, |s| {
        s.hello3(0);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on"]);
        s.call(1, &[b"MSET", b"key2{t}", b"1", b"key1{t}", b"1"]);
        s.call(
            0,
            &[
                b"EVAL",
                b"redis.call('set', 'key3{t}', 'bar')",
                b"2",
                b"key1{t}",
                b"key2{t}",
            ],
        );
        s.call(1, &[b"MSET", b"key2{t}", b"2", b"key1{t}", b"2"]);
        s.silent(0);
        s.call(
            0,
            &[
                b"EVAL",
                b"redis.call('get', 'key3{t}')",
                b"2",
                b"key1{t}",
                b"key2{t}",
            ],
        );
        s.call(1, &[b"MSET", b"key2{t}", b"2", b"key1{t}", b"2"]);
        s.read(0);
        s.read(0);
    });
}

/// `tracking-table-max-keys`: over the limit, remembered keys are forgotten with an
/// invalidation each, until the table fits.
#[test]
fn table_limit_evicts_with_invalidations() {
    let ours = Server::start(2, &[]);
    let mut a = ours.raw();
    let mut admin = ours.raw();
    a.call(&[b"HELLO", b"3"]);
    a.call(&[b"CLIENT", b"TRACKING", b"on"]);
    for i in 0..50 {
        a.call(&[b"GET", format!("k{i}").as_bytes()]);
    }
    assert_eq!(
        admin.call(&[b"CONFIG", b"SET", b"tracking-table-max-keys", b"10"]),
        b"+OK\r\n"
    );
    for _ in 0..40 {
        let push = a.read_reply();
        assert!(
            push.starts_with(b">2\r\n$10\r\ninvalidate\r\n*1\r\n"),
            "{}",
            show(&push)
        );
    }
    a.expect_silence(Duration::from_millis(300));
    let info = String::from_utf8(admin.call(&[b"INFO", b"stats"])).unwrap();
    assert!(info.contains("tracking_total_keys:10\r\n"), "{info}");
}

/// A tracking client that stops reading is disconnected by its output buffer limit instead
/// of making the server buffer without bound.
#[test]
fn tracking_client_that_stops_reading_is_disconnected() {
    let ours = Server::start(2, &["--client-output-buffer-limit", "normal 256kb 0 0"]);
    let mut a = ours.raw();
    let mut writer = ours.raw();
    a.call(&[b"HELLO", b"3"]);
    let a_id = a.call(&[b"CLIENT", b"ID"]);
    a.call(&[b"CLIENT", b"TRACKING", b"on", b"BCAST"]);
    // `a` never reads again; each write sends it a ~2 KB push.
    let filler = "x".repeat(2000);
    let gone = wait_until(Duration::from_secs(30), || {
        for i in 0..500 {
            writer.send_cmd(&[b"SET", format!("{filler}{i}").as_bytes(), b"v"]);
        }
        for _ in 0..500 {
            writer.read_reply();
        }
        let list = String::from_utf8(writer.call(&[b"CLIENT", b"LIST"])).unwrap();
        let id = String::from_utf8_lossy(&a_id[1..a_id.len() - 2]).to_string();
        !list.contains(&format!("id={id} "))
    });
    assert!(gone, "the tracking client was not disconnected");
    assert!(ours.stderr().contains("output buffer limits"));
}

/// On a replica, the keys its master's stream changes are invalidated like any write (the
/// replication applier runs through the same `call()` path), and a full resync's flush
/// sends the null.
#[test]
fn replica_applier_invalidates_tracked_keys() {
    let master = StockRedis::start(&["--repl-diskless-sync-delay", "0"]);
    let dir = TempDir::new("tracking-replica");
    let port = master.port.to_string();
    let replica = Server::start(
        2,
        &[
            "--dir",
            dir.path.to_str().expect("utf-8 dir"),
            "--replicaof",
            "127.0.0.1",
            &port,
        ],
    );
    let mut m = Raw::connect(master.port);
    let mut r = replica.raw();
    let up = wait_until(Duration::from_secs(10), || {
        let info = String::from_utf8(r.call(&[b"INFO", b"replication"])).unwrap();
        info.contains("master_link_status:up")
    });
    assert!(up, "the replica's link did not come up");
    let keys: Vec<String> = (0..2).map(|s| keys_on(s, 1).remove(0)).collect();
    for k in &keys {
        m.call(&[b"SET", k.as_bytes(), b"1"]);
    }
    // Polled by a client that does not track, so no invalidation races the polling.
    let mut poll = replica.raw();
    for k in &keys {
        assert!(wait_until(Duration::from_secs(5), || poll
            .call(&[b"GET", k.as_bytes()])
            .starts_with(b"$1")));
    }
    r.call(&[b"HELLO", b"3"]);
    r.call(&[b"CLIENT", b"TRACKING", b"on"]);
    // Each key is read on the replica, then changed on the master.
    for k in &keys {
        assert_eq!(r.call(&[b"GET", k.as_bytes()]), b"$1\r\n1\r\n");
        m.call(&[b"INCR", k.as_bytes()]);
        r.expect(
            [
                b">2\r\n$10\r\ninvalidate\r\n*1\r\n".to_vec(),
                bulk(k.as_bytes()),
            ]
            .concat()
            .as_slice(),
        );
    }
    // A transaction on the master: both keys in one unit.
    for k in &keys {
        r.call(&[b"GET", k.as_bytes()]);
    }
    m.call(&[b"MULTI"]);
    for k in &keys {
        m.call(&[b"DEL", k.as_bytes()]);
    }
    m.call(&[b"EXEC"]);
    let mut got = vec![r.read_reply(), r.read_reply()];
    got.sort();
    let mut want: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| {
            [
                b">2\r\n$10\r\ninvalidate\r\n*1\r\n".to_vec(),
                bulk(k.as_bytes()),
            ]
            .concat()
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    m.call(&[b"FLUSHALL"]);
    r.expect(b">2\r\n$10\r\ninvalidate\r\n_\r\n");
}

/// A write that makes the server evict a key its client tracks: the invalidation comes
/// before the write's reply, OK or OOM, as Redis flushes it right after `performEvictions`.
#[test]
fn eviction_invalidation_comes_before_the_reply() {
    let ours = Server::start(1, &["--maxmemory-policy", "volatile-random"]);
    let mut r = ours.raw();
    r.call(&[b"HELLO", b"3"]);
    r.call(&[b"CLIENT", b"TRACKING", b"on"]);
    r.call(&[b"SETBIT", b"big-key", b"3200000", b"0"]);
    // Just below what is used (the write's own shard evicts), then far below (the gate
    // evicts, and refuses the write).
    for below in [|used: u64| used - 100 * 1024, |used: u64| used / 2] {
        assert_eq!(r.call(&[b"CONFIG", b"SET", b"maxmemory", b"0"]), b"+OK\r\n");
        assert_eq!(
            r.call(&[b"SETEX", b"volatile-key", b"10000", b"x"]),
            b"+OK\r\n"
        );
        assert_eq!(r.call(&[b"GET", b"volatile-key"]), b"$1\r\nx\r\n");
        let info = String::from_utf8(r.call(&[b"INFO", b"memory"])).unwrap();
        let used: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory");
        let limit = below(used).to_string();
        r.send(
            &[
                encode(&[b"CONFIG", b"SET", b"maxmemory", limit.as_bytes()]),
                encode(&[b"SET", b"small", b"1"]),
            ]
            .concat(),
        );
        r.expect(b"+OK\r\n");
        r.expect(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$12\r\nvolatile-key\r\n");
        // Whether evicting it made enough room depends on allocator slack: either will do.
        let reply = r.read_reply();
        assert!(
            reply == b"+OK\r\n" || reply.starts_with(b"-OOM"),
            "{}",
            show(&reply)
        );
    }
    r.call(&[b"CONFIG", b"SET", b"maxmemory", b"0"]);
}

/// Clients of both protocols tracking one key, and a redirect target under CLIENT REPLY
/// OFF (pushes still arrive, replies do not).
#[test]
fn mixed_protocols_and_reply_off_match_redis() {
    compare(4, |s| {
        s.call(3, &[b"SUBSCRIBE", b"__redis__:invalidate"]);
        let rid = s.id(3);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &rid]);
        s.hello3(1);
        s.call(1, &[b"CLIENT", b"TRACKING", b"on"]);
        s.call(0, &[b"GET", b"k"]);
        s.call(1, &[b"GET", b"k"]);
        s.call(2, &[b"SET", b"k", b"1"]);
        s.read(3);
        s.read(1);
        // A RESP3 redirect target that turned its replies off.
        s.hello3(2);
        let rid = s.id(2);
        s.call(1, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &rid]);
        s.call(1, &[b"GET", b"foo"]);
        s.conns[2].send_cmd(&[b"CLIENT", b"REPLY", b"OFF"]);
        s.call(0, &[b"SET", b"foo", b"bar"]);
        s.read(2);
        s.call(2, &[b"CLIENT", b"REPLY", b"ON"]);
        s.call(2, &[b"PING"]);
        // A client's own HDEL: the reply, then the push.
        s.call(1, &[b"CLIENT", b"TRACKING", b"off"]);
        s.call(1, &[b"CLIENT", b"TRACKING", b"on"]);
        s.call(1, &[b"HSET", b"myhash", b"f", b"1"]);
        s.call(1, &[b"HGET", b"myhash", b"f"]);
        s.call(1, &[b"HDEL", b"myhash", b"f"]);
        s.read(1);
    });
}

/// Two clients redirecting to one target, a protocol switch after reading, and the switch
/// from default mode to BCAST (keys read before are then covered by the prefix only).
#[test]
fn shared_redirect_and_mode_switches_match_redis() {
    compare(4, |s| {
        s.call(3, &[b"SUBSCRIBE", b"__redis__:invalidate"]);
        let rid = s.id(3);
        s.call(0, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &rid]);
        s.call(1, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &rid]);
        s.call(2, &[b"MSET", b"key1{t}", b"1", b"key2{t}", b"1"]);
        s.call(0, &[b"GET", b"key1{t}"]);
        s.call(1, &[b"GET", b"key2{t}"]);
        s.call(2, &[b"INCR", b"key1{t}"]);
        s.call(2, &[b"INCR", b"key2{t}"]);
        s.read(3);
        s.read(3);
        // Read in RESP2, invalidated after switching to RESP3: still redirected.
        s.call(0, &[b"GET", b"key1{t}"]);
        s.hello3(0);
        s.call(2, &[b"SET", b"key1{t}", b"2"]);
        s.read(3);
        s.silent(0);
        // Default mode, then BCAST: the earlier read yields nothing of its own.
        s.call(1, &[b"CLIENT", b"TRACKING", b"off"]);
        s.hello3(1);
        s.call(1, &[b"CLIENT", b"TRACKING", b"on"]);
        s.call(1, &[b"GET", b"key2{t}"]);
        s.call(1, &[b"CLIENT", b"TRACKING", b"off"]);
        s.call(1, &[b"CLIENT", b"TRACKING", b"on", b"BCAST"]);
        s.call(2, &[b"INCR", b"key2{t}"]);
        s.read(1);
        s.call(1, &[b"PING"]);
        s.silent(1);
    });
}

/// A redirect target hears of writes in the order their replies came back, whatever cores
/// the readers, the writer and the target landed on and whichever shards own the keys (an
/// invalidation may take two hops: to the reader's core, then to its target's; Redis sends
/// it before the write's reply, so the reply here waits until it arrived).
#[test]
fn redirected_invalidations_follow_the_order_of_the_writes() {
    let ours = Server::start(2, &[]);
    let (on0, on1) = (keys_on(0, 2), keys_on(1, 2));
    let pairs = [
        (on0[0].clone(), on0[1].clone()),
        (on0[0].clone(), on1[0].clone()),
        (on1[0].clone(), on0[0].clone()),
        (on1[0].clone(), on1[1].clone()),
    ];
    for round in 0..16 {
        let (first, second) = &pairs[round % pairs.len()];
        // Fresh connections each round, so they land on different cores.
        let mut s = Script::new(ours.port, 4);
        s.call(3, &[b"SUBSCRIBE", b"__redis__:invalidate"]);
        let target = s.id(3);
        for reader in [0, 1] {
            s.call(
                reader,
                &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", &target],
            );
        }
        s.call(0, &[b"GET", first.as_bytes()]);
        s.call(1, &[b"GET", second.as_bytes()]);
        s.call(2, &[b"INCR", first.as_bytes()]);
        s.call(2, &[b"INCR", second.as_bytes()]);
        s.log.clear();
        s.read(3);
        s.read(3);
        let message = |key: &str| {
            format!(
                "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n${}\r\n{key}\r\n",
                key.len()
            )
        };
        let got: Vec<String> = s.log.iter().map(|m| show(m)).collect();
        assert_eq!(
            got,
            [
                show(message(first).as_bytes()),
                show(message(second).as_bytes())
            ],
            "round {round}"
        );
        // Both keys invalidated, readers stop tracking them: nothing more arrives.
        s.call(2, &[b"DEL", first.as_bytes(), second.as_bytes()]);
        s.silent(3);
    }
}
