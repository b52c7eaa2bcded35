//! What every write propagates (to replicas and the AOF), byte for byte against a stock
//! redis-server 7.0 master: the stock stream is read by a fake replica (PSYNC), ours by
//! `DEBUG JOURNAL READ`, which writes the journal as the replication stream carries it.
//! The cases follow `../shared/spec/propagation.md`; absolute times (PXAT, PEXPIREAT, stream
//! ids, XCLAIM's TIME) are compared as offsets from the moment each case starts.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{encode, frame_len, show, Raw, Server, StockRedis};

/// A fake replica attached to a stock master: everything the master propagates after the
/// full sync arrives here.
struct Tap {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Tap {
    fn attach(port: u16) -> Tap {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to stock");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut tap = Tap {
            stream,
            buf: Vec::new(),
        };
        tap.stream
            .write_all(&encode(&[b"REPLCONF", b"capa", b"psync2"]))
            .expect("write");
        assert_eq!(tap.line(), b"+OK", "REPLCONF");
        tap.stream
            .write_all(&encode(&[b"PSYNC", b"?", b"-1"]))
            .expect("write");
        let full = tap.line();
        assert!(full.starts_with(b"+FULLRESYNC"), "{}", show(&full));
        let len = tap.line();
        let len: usize = std::str::from_utf8(&len[1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad RDB length line {}", show(&len)));
        while tap.buf.len() < len {
            tap.fill();
        }
        tap.buf.drain(..len);
        tap
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read from stock");
        assert!(n > 0, "stock closed the replication link");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// One line without CRLF, skipping the `\n` keep-alives sent during the full sync.
    fn line(&mut self) -> Vec<u8> {
        loop {
            while self.buf.first() == Some(&b'\n') {
                self.buf.remove(0);
            }
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return l;
            }
            self.fill();
        }
    }

    /// Everything that arrives until the link stays quiet for `quiet`.
    fn take(&mut self, quiet: Duration) -> Vec<u8> {
        self.stream.set_read_timeout(Some(quiet)).expect("timeout");
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("stock closed the replication link"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("replication link: {e}"),
            }
        }
        std::mem::take(&mut self.buf)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A stream as readable text, one command per line; numbers that are times near `t0`
/// (a unix time in ms, alone or as a stream id's first half) become `T+<offset>`, rounded
/// to the second so that the two servers' slightly different clocks compare equal.
fn normalize(stream: &[u8], t0: i64) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while pos < stream.len() {
        let Some(len) = frame_len(&stream[pos..]) else {
            out.push_str(&format!("<unparsed: {}>", show(&stream[pos..])));
            break;
        };
        let frame = &stream[pos..pos + len];
        pos += len;
        let words = bulk_words(frame);
        let line: Vec<String> = words.iter().map(|w| time_word(w, t0)).collect();
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    out
}

/// The bulk strings of one `*N` array of bulks.
fn bulk_words(frame: &[u8]) -> Vec<Vec<u8>> {
    let mut words = Vec::new();
    let mut i = frame
        .iter()
        .position(|&b| b == b'\n')
        .map_or(frame.len(), |p| p + 1);
    while i < frame.len() {
        let nl = i + frame[i..].iter().position(|&b| b == b'\n').unwrap_or(0);
        let len: usize = std::str::from_utf8(&frame[i + 1..nl - 1])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        words.push(frame[nl + 1..nl + 1 + len].to_vec());
        i = nl + 1 + len + 2;
    }
    words
}

fn time_word(w: &[u8], t0: i64) -> String {
    let text = String::from_utf8_lossy(w).into_owned();
    let (head, tail) = match text.split_once('-') {
        Some((h, t)) if !h.is_empty() => (h.to_string(), Some(t.to_string())),
        _ => (text.clone(), None),
    };
    if head.len() == 13 && head.bytes().all(|b| b.is_ascii_digit()) {
        let v: i64 = head.parse().unwrap_or(0);
        let d = v - t0;
        if d.abs() < 86_400_000 {
            let rounded = (d as f64 / 1000.0).round() as i64 * 1000;
            return match tail {
                Some(t) => format!("T{rounded:+}-{t}"),
                None => format!("T{rounded:+}"),
            };
        }
    }
    text
}

/// One step of a case: `CMD args...` sent by client 0, which reads the reply; `N> CMD ...`
/// sent by client N without reading; `N<` reads client N's reply; `~MS` sleeps.
fn run_step(clients: &mut Vec<Raw>, port: u16, step: &str) {
    if let Some(ms) = step.strip_prefix('~') {
        std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        return;
    }
    let (who, rest, read) = match step.split_once("> ") {
        Some((n, rest)) if n.len() == 1 => (n.parse::<usize>().unwrap_or(0), rest, false),
        _ => match step.strip_suffix('<') {
            Some(n) => (n.parse::<usize>().unwrap_or(0), "", true),
            None => (0, step, true),
        },
    };
    while clients.len() <= who {
        clients.push(Raw::connect(port));
    }
    if !rest.is_empty() {
        let words: Vec<Vec<u8>> = rest
            .split(' ')
            .map(|w| {
                if w == "\"\"" {
                    Vec::new()
                } else {
                    // `\s` and `\n` in a word stand for a space and a newline (library code).
                    w.replace("\\s", " ").replace("\\n", "\n").into_bytes()
                }
            })
            .collect();
        let args: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
        clients[who].send_cmd(&args);
        if !read {
            return;
        }
    }
    clients[who].read_reply();
}

/// The spec's cases (name, steps); each uses keys of its own.
fn cases() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        // §3 strings and TTLs
        // Scripts: their effects, wrapped in MULTI/EXEC when more than one (Redis 7.0).
        (
            "eval_effects",
            vec![
                "EVAL redis.call('set',KEYS[1],'v');redis.call('incr','ev:n');redis.call('expire',KEYS[1],100) 1 ev:k",
                "EVAL redis.call('set',KEYS[1],'v') 1 ev:one",
                "EVAL return(redis.call('get','ev:k')) 0",
                "EVAL redis.call('del','ev:nothing') 0",
                "EVAL redis.call('set',KEYS[1],'v','EX','100') 1 ev:ex",
                "EVAL redis.call('set','ev:e','1');redis.call('nosuch') 0",
                "EVAL redis.set_repl(redis.REPL_NONE);redis.call('set','ev:nr','1');redis.set_repl(redis.REPL_ALL);redis.call('set','ev:r','1') 0",
                "EVAL redis.call('select',3);redis.call('set','ev:db3','1') 0",
                "SCRIPT LOAD redis.call('incr','ev:sha')",
                "EVALSHA 1e09e389ceabbc80ee707ad8c78329f3d2698146 0",
                "SCRIPT FLUSH",
            ],
        ),
        (
            "function_load_fcall",
            vec![
                "FUNCTION LOAD #!lua\\sname=plib\\nredis.register_function('pset',function(keys,args)\\sredis.call('set',keys[1],args[1])\\sreturn\\sredis.call('incr','fn:n')\\send)\\nredis.register_function('pget',function(keys)\\sreturn\\sredis.call('get',keys[1])\\send)",
                "FCALL pset 1 fn:a v",
                "FCALL pget 1 fn:a",
                "FCALL_RO pget 1 fn:a",
                "FUNCTION LOAD #!lua\\sname=plib\\nredis.register_function('pset',function()\\send)",
                "FUNCTION DELETE plib",
                "FUNCTION DELETE plib",
                "FUNCTION FLUSH",
            ],
        ),
        (
            "eval_in_multi",
            vec![
                "MULTI",
                "EVAL redis.call('incr','ev:m') 0",
                "SET ev:m2 x",
                "EVAL redis.call('incr','ev:m3');redis.call('incr','ev:m4') 0",
                "EXEC",
            ],
        ),
        ("set_plain", vec!["SET s:a v", "set s:lc v"]),
        (
            "set_ex",
            vec![
                "SET s:ex v EX 100",
                "SET s:px v PX 100000",
                "set s:lex v ex 100",
            ],
        ),
        (
            "set_exat",
            vec![
                "SET s:exat v EXAT 4102444800",
                "SET s:pxat v PXAT 4102444800000",
            ],
        ),
        (
            "set_keepttl",
            vec![
                "SET s:kt v EX 100",
                "SET s:kt v2 KEEPTTL",
                "SET s:kt v3 KEEPTTL GET",
            ],
        ),
        (
            "set_get",
            vec!["SET s:g old", "SET s:g new GET", "SET s:g newer GET EX 100"],
        ),
        (
            "set_nx_xx",
            vec![
                "SET s:nx y NX",
                "SET s:nx y NX",
                "SET s:xx y XX",
                "SET s:nx3 y NX EX 50",
            ],
        ),
        ("set_past_pxat", vec!["SET s:pp v PXAT 1000", "~300"]),
        ("set_error", vec!["SET s:e v EX 0"]),
        (
            "setex_psetex",
            vec!["SETEX s:setex 100 v", "PSETEX s:psetex 100000 v"],
        ),
        ("setnx", vec!["SETNX s:setnx v", "SETNX s:setnx v"]),
        (
            "getset_getdel",
            vec!["GETSET s:gs b", "GETDEL s:gs", "GETDEL s:gs"],
        ),
        (
            "getex",
            vec![
                "SET s:gx v",
                "GETEX s:gx EX 100",
                "GETEX s:gx PERSIST",
                "GETEX s:gx PERSIST",
                "GETEX s:gx",
                "GETEX s:missing EX 10",
                "GETEX s:gx PXAT 1",
            ],
        ),
        (
            "counters",
            vec!["INCR s:n", "INCRBY s:n 5", "DECR s:n", "DECRBY s:n 2"],
        ),
        (
            "incrbyfloat",
            vec![
                "SET s:f 10.5",
                "INCRBYFLOAT s:f 0.1",
                "SET s:f2 1 EX 100",
                "INCRBYFLOAT s:f2 2.5e0",
            ],
        ),
        (
            "append_setrange",
            vec![
                "APPEND s:ap ab",
                "SETRANGE s:ap 1 Z",
                "APPEND s:ap2 \"\"",
                "SETRANGE s:sr 0 \"\"",
            ],
        ),
        ("setbit", vec!["SETBIT s:sb 3 1", "SETBIT s:sb 3 1"]),
        (
            "mset",
            vec![
                "MSET m:a 1 m:b 2 m:c 3",
                "MSETNX m:d 1 m:e 2",
                "MSETNX m:a 1 m:f 2",
            ],
        ),
        // Expire family
        (
            "expire",
            vec![
                "SET e:1 v",
                "EXPIRE e:1 100",
                "PEXPIRE e:1 200000",
                "EXPIREAT e:1 4102444800",
                "PEXPIREAT e:1 4102444800000",
                "SET e:5 v",
                "EXPIRE e:5 100 NX",
                "EXPIRE e:5 200 NX",
                "EXPIRE e:5 200 XX",
                "EXPIRE e:5 500 GT",
                "EXPIRE e:5 50 GT",
                "EXPIRE e:5 50 LT",
                "EXPIRE missing 100",
            ],
        ),
        (
            "expire_past",
            vec![
                "SET e:p1 v",
                "EXPIRE e:p1 -1",
                "SET e:p2 v",
                "EXPIREAT e:p2 1",
                "SET e:p3 v",
                "PEXPIREAT e:p3 1000",
                "SET e:p4 v",
                "EXPIRE e:p4 0",
            ],
        ),
        (
            "persist",
            vec!["SET e:pe v EX 100", "PERSIST e:pe", "PERSIST e:pe"],
        ),
        // §4 keyspace
        (
            "del",
            vec![
                "SET d:a 1",
                "DEL d:a d:missing",
                "DEL d:missing",
                "SET d:big 1",
                "DEL d:big d:big",
                "SET d:b 1",
                "UNLINK d:b d:missing",
            ],
        ),
        (
            "copy",
            vec![
                "SET cp:a 1",
                "COPY cp:a cp:b",
                "COPY cp:a cp:b",
                "COPY cp:a cp:c DB 1",
                "COPY cp:a cp:b REPLACE",
            ],
        ),
        (
            "rename",
            vec![
                "SET rn:a 1",
                "RENAME rn:a rn:b",
                "RENAME rn:b rn:b",
                "SET rn:c 1",
                "RENAMENX rn:c rn:b",
            ],
        ),
        (
            "move_swapdb",
            vec!["SET mv:a 1", "MOVE mv:a 1", "SWAPDB 0 1", "SWAPDB 0 1"],
        ),
        (
            "touch_reads",
            vec![
                "SET t:a 1",
                "TOUCH t:a",
                "TTL t:a",
                "GET t:a",
                "EXISTS t:a",
                "TYPE t:a",
                "KEYS t:*",
            ],
        ),
        // §5 lists and blocking
        (
            "pops",
            vec![
                "RPUSH l:p a b c d",
                "LPOP l:p 2",
                "RPOP l:p 1",
                "RPUSH l:p3 a b",
                "LPOP l:p3 5",
                "RPUSH l:p4 a",
                "LPOP l:p4",
                "LPOP l:p4",
                "RPUSH l:p5 a",
                "LPOP l:p5 0",
            ],
        ),
        ("blpop_ready", vec!["RPUSH l:bi x", "BLPOP l:bi 0"]),
        (
            "blpop_woken",
            vec!["1> BLPOP l:b1 0", "~100", "RPUSH l:b1 x y", "1<"],
        ),
        (
            "brpop_woken",
            vec!["1> BRPOP l:b2 0", "~100", "RPUSH l:b2 x y", "1<"],
        ),
        (
            "two_waiters",
            vec![
                "1> BLPOP l:tw 0",
                "2> BLPOP l:tw 0",
                "~100",
                "RPUSH l:tw x y",
                "1<",
                "2<",
            ],
        ),
        (
            "blpop_after_multi",
            vec![
                "1> BLPOP l:bmx 0",
                "~100",
                "MULTI",
                "RPUSH l:bmx x",
                "SET k:bmx 1",
                "EXEC",
                "1<",
            ],
        ),
        ("blpop_timeout", vec!["BLPOP l:none 0.1"]),
        (
            "blmove_woken",
            vec![
                "1> BLMOVE l:bm1 l:bm2 LEFT RIGHT 0",
                "~100",
                "RPUSH l:bm1 x",
                "1<",
            ],
        ),
        (
            "blmove_ready",
            vec!["RPUSH l:bm3 x", "blmove l:bm3 l:bm4 LeFt rIgHt 0"],
        ),
        (
            "brpoplpush_woken",
            vec!["1> BRPOPLPUSH l:bq1 l:bq2 0", "~100", "RPUSH l:bq1 x", "1<"],
        ),
        (
            "blmpop",
            vec![
                "1> BLMPOP 0 1 l:bmp LEFT COUNT 2",
                "~100",
                "RPUSH l:bmp a b c",
                "1<",
                "RPUSH l:bmp2 a b c",
                "BLMPOP 0 1 l:bmp2 RIGHT COUNT 2",
                "RPUSH l:mp a b c",
                "LMPOP 2 l:mpmissing l:mp LEFT COUNT 5",
            ],
        ),
        (
            "bzpop",
            vec![
                "1> BZPOPMIN z:b 0",
                "~100",
                "ZADD z:b 1 a 2 b",
                "1<",
                "ZADD z:b2 1 a",
                "BZPOPMAX z:b2 0",
                "1> BZMPOP 0 1 z:bm MIN COUNT 2",
                "~100",
                "ZADD z:bm 1 a 2 b 3 c",
                "1<",
                "ZADD z:p 1 a 2 b 3 c",
                "ZPOPMIN z:p 2",
            ],
        ),
        (
            "lmove",
            vec![
                "RPUSH l:mv1 a b",
                "LMOVE l:mv1 l:mv2 LEFT RIGHT",
                "RPOPLPUSH l:mv1 l:mv2",
                "LMOVE l:missing l:mv2 LEFT LEFT",
            ],
        ),
        (
            "list_edits",
            vec![
                "RPUSH l:o a b c",
                "LINSERT l:o BEFORE b x",
                "LREM l:o 0 zz",
                "LTRIM l:o 0 -1",
                "LSET l:o 0 q",
                "LPUSHX l:missing a",
                "LTRIM l:o 1 -1",
            ],
        ),
        (
            "list_pushes",
            vec![
                "RPUSH lq:push a b c",
                "LPUSH lq:push x",
                "lpush lq:push y z",
                "RPUSHX lq:push w",
                "LPUSHX lq:nopush a",
                "RPUSHX lq:nopush a",
                "SET lq:str v",
                "LPUSH lq:str a",
                "RPUSHX lq:str a",
            ],
        ),
        (
            "list_pops_more",
            vec![
                "RPUSH lq:pop a b c d",
                "rpop lq:pop",
                "LPOP lq:pop 0",
                "LPOP lq:pop -1",
                "LPOP lq:pop 1 2",
                "RPOP lq:str",
                "RPOP lq:pop 10",
                "LPOP lq:pop",
                "LPOP lq:pop 3",
            ],
        ),
        (
            // The count propagated is what was popped; keys on shards 1 (lq:mp0, lq:mp3)
            // and 2 (lq:mp1).
            "lmpop_more",
            vec![
                "RPUSH lq:mp0 a b c",
                "LMPOP 2 lq:mp1 lq:mp0 RIGHT",
                "lmpop 1 lq:mp0 left count 10",
                "LMPOP 1 lq:mp0 LEFT",
                "LMPOP 1 lq:str LEFT",
                "LMPOP 0 lq:mp0 LEFT",
                "RPUSH lq:mp1 x y",
                "LMPOP 3 lq:mp3 lq:mp1 lq:mp0 LEFT COUNT 1",
            ],
        ),
        (
            "ltrim_lrem",
            vec![
                "RPUSH lq:t a b c d e",
                "LTRIM lq:t 0 -1",
                "LTRIM lq:t 0 100",
                "LTRIM lq:t 1 -2",
                "ltrim lq:t 5 10",
                "LTRIM lq:t 0 1",
                "LTRIM lq:str 0 1",
                "RPUSH lq:r a b a c a",
                "LREM lq:r -2 a",
                "LREM lq:r 0 zz",
                "lrem lq:r 0 a",
                "LREM lq:r 1 b",
                "LREM lq:r 1 c",
                "LREM lq:r 1 c",
            ],
        ),
        (
            "linsert_lset",
            vec![
                "RPUSH lq:i a b",
                "LINSERT lq:i AFTER zz x",
                "LINSERT lq:inone BEFORE a x",
                "LINSERT lq:i MIDDLE a x",
                "linsert lq:i after a x",
                "LSET lq:i 10 q",
                "LSET lq:inone 0 q",
                "lset lq:i -1 q",
                "LSET lq:i 0 a",
            ],
        ),
        (
            // Rotations in place, WRONGTYPE destinations, missing sources.
            "lmove_same_key",
            vec![
                "RPUSH lq:rot a b c",
                "LMOVE lq:rot lq:rot LEFT RIGHT",
                "RPOPLPUSH lq:rot lq:rot",
                "lmove lq:rot lq:rot right left",
                "LMOVE lq:rot lq:str LEFT LEFT",
                "RPOPLPUSH lq:rot lq:str",
                "RPOPLPUSH lq:rotnone lq:rot",
                "LMOVE lq:rot lq:rot UP LEFT",
                "RPUSH lq:one x",
                "LMOVE lq:one lq:one LEFT LEFT",
            ],
        ),
        (
            // Source on shard 1, destination on shard 2 and back.
            "lmove_across_shards",
            vec![
                "RPUSH lq:mv2 a b c",
                "LMOVE lq:mv2 lq:mv0 RIGHT LEFT",
                "rpoplpush lq:mv2 lq:mv0",
                "LMOVE lq:mv0 lq:mv2 LEFT RIGHT",
                "LMOVE lq:mv2 lq:mv0 LEFT LEFT",
                "LMOVE lq:mv2 lq:mv0 LEFT LEFT",
                "LMOVE lq:mv2 lq:mv0 LEFT LEFT",
                "SET lq:mv6 v",
                "LMOVE lq:mv0 lq:mv6 LEFT LEFT",
            ],
        ),
        (
            // A blocked BLMOVE whose destination lives on another shard (lq:bm1 on shard 1,
            // lq:bm0 on shard 2); then BRPOPLPUSH the same way (lq:bq1 -> lq:bq3 on 0).
            "blmove_across_shards_woken",
            vec![
                "1> BLMOVE lq:bm1 lq:bm0 RIGHT LEFT 0",
                "~100",
                "RPUSH lq:bm1 x y",
                "1<",
                "1> BRPOPLPUSH lq:bq1 lq:bq3 0",
                "~100",
                "LPUSH lq:bq1 z",
                "1<",
            ],
        ),
        (
            "blmove_across_shards_ready",
            vec![
                "RPUSH lq:bm3 a b",
                "BLMOVE lq:bm3 lq:bm2 RIGHT left 0",
                "brpoplpush lq:bm3 lq:bm2 0",
                "BLMOVE lq:bm3 lq:bm2 LEFT LEFT 0.01",
                "RPUSH lq:bm8 a",
                "blmove lq:bm8 lq:bm8 left RIGHT 0",
            ],
        ),
        (
            // Blocked BLMOVE woken while its destination holds another type: the client
            // gets the error, nothing moves.
            "blmove_woken_wrongtype",
            vec![
                "SET lq:bw2 v",
                "1> BLMOVE lq:bw0 lq:bw2 LEFT LEFT 0",
                "~100",
                "RPUSH lq:bw0 a",
                "1<",
                "LPOP lq:bw0",
            ],
        ),
        (
            "blocking_wrongtype_and_keys",
            vec![
                "SET lq:bs v",
                "BLPOP lq:bs 0",
                "BRPOP lq:bsnone lq:bs 0",
                "BLMPOP 0 1 lq:bs LEFT",
                "BLMOVE lq:bs lq:bsd LEFT LEFT 0",
                "RPUSH lq:bwt a",
                "BLMOVE lq:bwt lq:bs LEFT LEFT 0",
                "BRPOPLPUSH lq:bwt lq:bs 0",
                "RPUSH lq:k2 x y",
                "BLPOP lq:k1 lq:k2 0",
                "brpop lq:k1 lq:k2 0",
                "BLPOP lq:k2 -1",
                "BLMPOP 0.01 1 lq:k2 LEFT",
            ],
        ),
        (
            // Inside MULTI blocking commands never block: served or answered nil at once.
            "blocking_in_multi",
            vec![
                "MULTI",
                "BLPOP lq:mnone 0",
                "BLMOVE lq:mnone lq:mdst LEFT LEFT 0",
                "BRPOPLPUSH lq:mnone lq:mdst 0",
                "BLMPOP 0 1 lq:mnone LEFT",
                "RPUSH lq:mu a b c d e",
                "BLPOP lq:mu 0",
                "brpop lq:mu 0",
                "BLMOVE lq:mu lq:mdst Left RIGHT 0",
                "BRPOPLPUSH lq:mu lq:mdst 0",
                "BLMPOP 0 1 lq:mu RIGHT COUNT 5",
                "EXEC",
                "MULTI",
                "BLPOP lq:mnone 0",
                "EXEC",
            ],
        ),
        (
            "blmpop_woken_more",
            vec![
                "1> BLMPOP 0 2 lq:w1 lq:w2 RIGHT COUNT 5",
                "~100",
                "RPUSH lq:w2 a b",
                "1<",
                "1> blmpop 0 1 lq:w3 left",
                "~100",
                "RPUSH lq:w3 a b",
                "1<",
            ],
        ),
        (
            // A waiter woken by what another command pushed: LMOVE's destination, and a
            // chain of two blocked clients (BLMOVE feeding BLPOP).
            "blocked_chain",
            vec![
                "1> BLPOP lq:dst 0",
                "~100",
                "RPUSH lq:src a",
                "LMOVE lq:src lq:dst LEFT LEFT",
                "1<",
                "1> BLMOVE lq:c1 lq:c2 LEFT LEFT 0",
                "2> BLPOP lq:c2 0",
                "~100",
                "RPUSH lq:c1 x",
                "1<",
                "2<",
            ],
        ),
        (
            // The same across shards: BLMOVE from lq:bm5 (shard 1) to lq:bm4 (shard 2),
            // where a BLPOP waits.
            "blocked_chain_across_shards",
            vec![
                "1> BLMOVE lq:bm5 lq:bm4 LEFT RIGHT 0",
                "2> BLPOP lq:bm4 0",
                "~100",
                "RPUSH lq:bm5 x",
                "1<",
                "2<",
            ],
        ),
        (
            // Pushed and popped in one transaction: nothing left for the waiter.
            "blpop_not_served",
            vec![
                "1> BLPOP lq:ns 0.3",
                "~100",
                "MULTI",
                "RPUSH lq:ns a",
                "LPOP lq:ns",
                "EXEC",
                "1<",
            ],
        ),
        (
            "list_multi",
            vec![
                "MULTI",
                "RPUSH lq:lm a b c",
                "LTRIM lq:lm 0 -1",
                "LREM lq:lm 0 zz",
                "LMPOP 1 lq:lm LEFT COUNT 2",
                "LSET lq:lm 0 q",
                "EXEC",
            ],
        ),
        // §6 sets, sorted sets, hashes, HLL, bitfields
        (
            "spop",
            vec![
                "SADD s:p a",
                "SPOP s:p",
                "SADD s:p3 a b c",
                "SPOP s:p3 5",
                "SPOP s:p3",
                "SPOP s:p 0",
            ],
        ),
        (
            "set_writes",
            vec![
                "SADD s:m1 a b",
                "SADD s:m1 a",
                "SREM s:m1 zz",
                "SMOVE s:m1 s:m2 a",
                "SADD si:a x y",
                "SADD si:b y",
                "SINTERSTORE si:c si:a si:b",
                "SUNIONSTORE si:d si:a si:b",
                "SDIFFSTORE si:e si:a si:b",
                "SRANDMEMBER si:a 2",
                "SINTERCARD 2 si:a si:b",
            ],
        ),
        (
            "sadd_srem",
            vec![
                "SADD st:a a b c",
                "SADD st:a a d",
                "SADD st:a a",
                "sadd st:a e",
                "SREM st:a a zz",
                "SREM st:a zz",
                "SREM st:missing a",
                "srem st:a b",
                "SREM st:a c d e zz",
                "SADD st:i 1 2 3",
                "SREM st:i 2 4",
                "SMEMBERS st:i",
                "SISMEMBER st:i 1",
                "SMISMEMBER st:i 1 2",
                "SCARD st:i",
                "SSCAN st:i 0",
                "SRANDMEMBER st:i",
                "SRANDMEMBER st:i -5",
                "SINTERCARD 1 st:i LIMIT 1",
                "SINTER st:i st:missing",
                "SUNION st:i st:missing",
                "SDIFF st:i st:missing",
            ],
        ),
        (
            "spop_forms",
            vec![
                "SADD sp:one a",
                "SPOP sp:one",
                "SADD sp:int 5",
                "spop sp:int",
                "SADD sp:c a b c",
                "SPOP sp:c 3",
                "SADD sp:d 1 2",
                "spop sp:d 9",
                "SADD sp:e a",
                "SPOP sp:e 1",
                "SPOP sp:missing",
                "SPOP sp:missing 2",
                "SADD sp:z a b",
                "SPOP sp:z 0",
                "SPOP sp:z -1",
                "SPOP sp:z x",
                "SPOP sp:z 1 2",
            ],
        ),
        (
            // The members popped are random: `masked` hides SREM's member (see `mask`).
            "spop_random_masked",
            vec![
                "SADD sr:a a b c d e f",
                "SPOP sr:a 2",
                "SPOP sr:a",
                "SADD sr:b 1 2 3 4 5 6",
                "SPOP sr:b 5",
                "SADD sr:c a b c d e f g h i j k l m n o p q r s t",
                "SPOP sr:c 15",
                "MULTI",
                "SADD sr:d a b c d e f",
                "SPOP sr:d 2",
                "SPOP sr:d",
                "EXEC",
            ],
        ),
        (
            // sm:a, sm:b and sm:c live on different shards.
            "smove_forms",
            vec![
                "SADD sm:a x y w",
                "SADD sm:b y",
                "SMOVE sm:a sm:b x",
                "SMOVE sm:a sm:b y",
                "SMOVE sm:a sm:b zz",
                "SMOVE sm:missing sm:b x",
                "SMOVE sm:b sm:b x",
                "SMOVE sm:b sm:b zz",
                "smove sm:a sm:c w",
                "SET sm:str v",
                "SMOVE sm:str sm:b x",
                "SMOVE sm:b sm:str x",
                "SMOVE sm:missing sm:str x",
            ],
        ),
        (
            // ss:a (shard 0), ss:b (2), ss:j (1): the algebra across shards.
            "set_store_forms",
            vec![
                "SADD ss:a 1 2 3",
                "SADD ss:b 3 4",
                "SADD ss:j 3 9",
                "SINTERSTORE ss:i ss:a ss:b ss:j",
                "SINTERSTORE ss:i ss:a ss:missing",
                "SINTERSTORE ss:i ss:a ss:missing",
                "SINTERSTORE ss:i ss:a ss:j ss:b",
                "SINTERSTORE ss:i ss:a ss:j 4",
                "SINTERSTORE ss:i ss:a ss:j 4",
                "SUNIONSTORE ss:u ss:a ss:b ss:j",
                "SUNIONSTORE ss:u ss:m1 ss:m2",
                "SUNIONSTORE ss:u ss:m1 ss:m2",
                "SDIFFSTORE ss:d ss:a ss:b",
                "SDIFFSTORE ss:d ss:a ss:a",
                "SDIFFSTORE ss:d ss:a ss:a",
                "SDIFFSTORE ss:d ss:missing ss:a",
                "sinterstore ss:a ss:a ss:j",
                "SET ss:k v",
                "SUNIONSTORE ss:k ss:j",
                "SET ss:str v",
                "SINTERSTORE ss:e ss:j ss:str",
                "SUNIONSTORE ss:e ss:str ss:j",
                "SDIFFSTORE ss:e ss:j ss:str",
                "SINTERSTORE ss:e ss:missing ss:str",
            ],
        ),
        (
            // A destination whose time has passed but is still stored: Redis's `dbDelete`
            // removes it without an expiry check and counts it; `setKey` expires it first.
            "set_store_expired_dest",
            vec![
                "DEBUG SET-ACTIVE-EXPIRE 0",
                "SADD se:d x",
                "PEXPIRE se:d 10",
                "SADD se:e x",
                "PEXPIRE se:e 10",
                "SADD se:src a",
                "~50",
                "SINTERSTORE se:d se:m1 se:src",
                "SUNIONSTORE se:e se:src",
                "DEBUG SET-ACTIVE-EXPIRE 1",
            ],
        ),
        (
            "set_multi",
            vec![
                "MULTI",
                "SADD sq:a a b c",
                "SREM sq:a zz",
                "SMOVE sq:a sq:b a",
                "SPOP sq:a 5",
                "SINTERSTORE sq:c sq:b sq:b",
                "SRANDMEMBER sq:b",
                "EXEC",
                "MULTI",
                "SADD sq:b a",
                "SPOP sq:b 0",
                "EXEC",
            ],
        ),
        (
            // WATCH decides whether EXEC runs: only a counted change touches a watched key.
            "set_watch",
            vec![
                "SADD sw:a x",
                "WATCH sw:a",
                "1> SADD sw:a x",
                "1<",
                "MULTI",
                "SET sw:r1 1",
                "EXEC",
                "SADD sw:dst y",
                "SADD sw:src y z",
                "WATCH sw:dst",
                "1> SMOVE sw:src sw:dst y",
                "1<",
                "MULTI",
                "SET sw:r2 1",
                "EXEC",
                "WATCH sw:src",
                "1> SPOP sw:src 0",
                "1<",
                "1> SRANDMEMBER sw:src",
                "1<",
                "MULTI",
                "SET sw:r3 1",
                "EXEC",
                "WATCH sw:dst",
                "1> SMOVE sw:src sw:dst z",
                "1<",
                "MULTI",
                "SET sw:r4 1",
                "EXEC",
            ],
        ),
        (
            "zset_writes",
            vec![
                "ZADD za:a 1 m",
                "ZADD za:a 1 m",
                "ZADD za:a INCR 1.5 m",
                "ZINCRBY za:a 2 m",
                "ZADD za:a XX 3 new",
                "ZADD za:a GT CH 5 m",
                "ZREM za:a zz",
                "ZADD zu:b 1 x",
                "ZUNIONSTORE zu:c 2 za:a zu:b",
                "ZRANGESTORE zu:d za:a 0 -1",
                "ZREMRANGEBYSCORE za:a 100 200",
                "ZREMRANGEBYRANK za:a 0 0",
            ],
        ),
        (
            "zadd_flags",
            vec![
                "ZADD zq:a 1 a 2 b",
                "zadd zq:a 1 a",
                "ZADD zq:a NX 5 a",
                "ZADD zq:a NX 5 c",
                "ZADD zq:a XX 6 a",
                "ZADD zq:a XX 5 zz",
                "ZADD zq:a GT 1 a",
                "ZADD zq:a LT 1 a",
                "ZADD zq:a GT CH 1 a 9 b",
                "ZADD zq:a CH 1 a 9 b",
                "ZADD zq:a INCR 0 a",
                "ZINCRBY zq:a 0 a",
                "ZADD zq:a INCR 1 a",
                "ZADD zq:a NX INCR 1 a",
                "zincrby zq:a -1.5 new",
                "ZADD zq:a abc a",
                "ZADD zq:a NX XX 1 a",
                "ZADD zq:a 1",
                "SET zq:s v",
                "ZADD zq:s 1 a",
                "ZINCRBY zq:s 1 a",
                "ZADD zq:new XX 1 a",
                "ZADD zq:inf +inf m",
                "ZINCRBY zq:inf -inf m",
                "ZADD zq:inf 1 m 1 m",
            ],
        ),
        (
            "zrem_ranges",
            vec![
                "ZADD zq:r 1 a 2 b 3 c 4 d 5 e 6 f",
                "ZREM zq:r a zz",
                "ZREM zq:r zz",
                "zrem zq:r zz b",
                "ZREMRANGEBYRANK zq:r 10 20",
                "ZREMRANGEBYRANK zq:r 0 0",
                "ZREMRANGEBYSCORE zq:r (4 4",
                "zremrangebyscore zq:r 4 (5",
                "ZREMRANGEBYSCORE zq:r x 1",
                "ZADD zq:l 0 a 0 b 0 c",
                "ZREMRANGEBYLEX zq:l [a [b",
                "ZREMRANGEBYLEX zq:l [x [z",
                "ZREMRANGEBYLEX zq:l - +",
                "ZREM zq:missing a",
                "ZREMRANGEBYSCORE zq:missing 0 1",
                "ZREMRANGEBYRANK zq:s 0 1",
                "ZREM zq:r e f",
            ],
        ),
        (
            "zpop_more",
            vec![
                "ZADD zq:p 1 a 2 b 3 c",
                "ZPOPMAX zq:p",
                "zpopmin zq:p 0",
                "ZPOPMIN zq:p -1",
                "ZPOPMIN zq:p 1 2",
                "ZPOPMIN zq:s",
                "ZPOPMIN zq:p 10",
                "ZPOPMIN zq:p",
            ],
        ),
        (
            // ZMPOP propagates as ZPOPMIN/ZPOPMAX with the count popped; zq:st0 is on
            // shard 1, zq:st3 on shard 2.
            "zmpop",
            vec![
                "ZADD zq:st0 1 a 2 b 3 c",
                "ZMPOP 2 zq:st3 zq:st0 MAX",
                "zmpop 1 zq:st0 min count 10",
                "ZMPOP 1 zq:st0 MIN",
                "ZMPOP 1 zq:s MIN",
                "ZMPOP 1 zq:st0 SIDEWAYS",
                "ZADD zq:st3 1 x",
                "ZMPOP 2 zq:st0 zq:st3 MIN COUNT 3",
            ],
        ),
        (
            "bzpop_more",
            vec![
                "ZADD zq:bz 1 a 2 b",
                "BZPOPMIN zq:bznone zq:bz 0",
                "bzmpop 0 1 zq:bz max count 5",
                "BZPOPMAX zq:bz 0.01",
                "BZPOPMIN zq:s 0",
                "BZMPOP 0 2 zq:bznone zq:s MIN",
                "1> BZPOPMAX zq:bw 0",
                "~100",
                "ZADD zq:bw 1 a 2 b",
                "1<",
                "1> BZMPOP 0 1 zq:bw2 MAX COUNT 10",
                "~100",
                "ZADD zq:bw2 1 a 2 b 3 c",
                "1<",
                "1> BZMPOP 0 1 zq:bw3 MIN",
                // Client 1 must be blocked before client 2 arrives (FIFO by arrival).
                "~50",
                "2> BZPOPMIN zq:bw3 0",
                "~100",
                "ZADD zq:bw3 1 a 2 b 3 c",
                "1<",
                "2<",
            ],
        ),
        (
            "bzpop_in_multi",
            vec![
                "MULTI",
                "BZPOPMIN zq:mnone 0",
                "BZMPOP 0 1 zq:mnone MIN",
                "ZADD zq:mu 1 a 2 b 3 c",
                "BZPOPMAX zq:mu 0",
                "BZMPOP 0 1 zq:mu MIN COUNT 1",
                "EXEC",
            ],
        ),
        (
            // Destinations and sources on different shards: zq:st1 (0), zq:st0 (1),
            // zq:st3 (2), zq:st4 (1), zq:st7 (2).
            "zstore_across_shards",
            vec![
                "ZADD zq:st1 1 a 2 b",
                "ZADD zq:st4 3 b 4 c",
                "ZUNIONSTORE zq:st7 2 zq:st1 zq:st4",
                "zinterstore zq:st5 2 zq:st1 zq:st4 WEIGHTS 1 2 AGGREGATE MAX",
                "ZDIFFSTORE zq:st8 2 zq:st1 zq:st4",
                "ZINTERSTORE zq:st13 2 zq:st1 zq:stnone",
                "ZINTERSTORE zq:st7 2 zq:st1 zq:stnone",
                "ZUNIONSTORE zq:st7 1 zq:stnone",
                "ZUNIONSTORE zq:st7 1 zq:s",
                "ZUNIONSTORE zq:st7 0 zq:st1",
                "ZDIFFSTORE zq:st5 1 zq:st1",
                "ZUNIONSTORE zq:st1 2 zq:st1 zq:st4",
            ],
        ),
        (
            // zq:rs11 (0), zq:rs0 (1), zq:rs15 (2).
            "zrangestore_more",
            vec![
                "ZADD zq:rs0 1 a 2 b 3 c",
                "ZRANGESTORE zq:rs11 zq:rs0 0 1",
                "ZRANGESTORE zq:rs11 zq:rs0 10 20",
                "ZRANGESTORE zq:rs11 zq:rs0 10 20",
                "ZRANGESTORE zq:rs15 zq:rsnone 0 -1",
                "zrangestore zq:rs15 zq:rs0 (1 +inf BYSCORE LIMIT 0 1",
                "ZRANGESTORE zq:rs15 zq:rs0 [b [a BYLEX REV",
                "ZRANGESTORE zq:rs15 zq:rs0 0 -1 WITHSCORES",
                "ZRANGESTORE zq:rs15 zq:s 0 -1",
                "ZRANGESTORE zq:rs0 zq:rs0 0 0",
            ],
        ),
        (
            "zset_multi",
            vec![
                "MULTI",
                "ZADD zq:mm 1 a 2 b",
                "ZADD zq:mm 1 a",
                "ZINCRBY zq:mm 2 a",
                "ZREM zq:mm zz",
                "ZMPOP 1 zq:mm MIN",
                "ZREMRANGEBYSCORE zq:mm 100 200",
                "EXEC",
            ],
        ),
        (
            "hash_writes",
            vec![
                "HSET h:a f v",
                "HSET h:a f v",
                "HSETNX h:a f v",
                "HSETNX h:a g v",
                "HINCRBY h:a n 3",
                "HSET h:f x 1",
                "HINCRBYFLOAT h:f x 0.25",
                "HDEL h:a zz",
                "HDEL h:a f",
                "HMSET h:m a 1 b 2",
            ],
        ),
        (
            "hash_forms",
            vec![
                "HSET hs:a f v g w",
                "HSET hs:a f v",
                "hset hs:a f v2",
                "HMSET hs:a f v",
                "hmset hs:a f v g w",
                "HSET hs:a f",
                "HSETNX hs:a f x",
                "HSETNX hs:new f x",
                "hsetnx hs:new g x",
                "HDEL hs:a zz",
                "HDEL hs:missing f",
                "HDEL hs:a f zz",
                "hdel hs:a g",
                "HINCRBY hs:n c 5",
                "HINCRBY hs:n c 0",
                "hincrby hs:n c -7",
                "HSET hs:n s abc",
                "HINCRBY hs:n s 1",
                "HINCRBY hs:n c -9223372036854775807",
                "HINCRBY hs:n c x",
                "HRANDFIELD hs:n",
                "HRANDFIELD hs:n 2 WITHVALUES",
                "HRANDFIELD hs:n -3",
                "HGETALL hs:n",
                "HSCAN hs:n 0",
                "HEXISTS hs:n c",
                "HSTRLEN hs:n c",
            ],
        ),
        (
            "hincrbyfloat_forms",
            vec![
                "HINCRBYFLOAT hs:fl x 1.5",
                "HINCRBYFLOAT hs:fl x 2.0e1",
                "hincrbyfloat hs:fl x -21.5",
                "HINCRBYFLOAT hs:fl x 0",
                "HINCRBYFLOAT hs:fl z 0.1",
                "HINCRBYFLOAT hs:fl z 0.2",
                "HINCRBYFLOAT hs:fl i 3",
                "HINCRBYFLOAT hs:fl x abc",
                "HINCRBYFLOAT hs:fl x inf",
                "HSET hs:fl s abc",
                "HINCRBYFLOAT hs:fl s 1",
                "HSET hs:fl n 10",
                "HINCRBYFLOAT hs:fl n 5",
            ],
        ),
        (
            "hash_wrongtype",
            vec![
                "SET hw:s v",
                "HSET hw:s f v",
                "HMSET hw:s f v",
                "HSETNX hw:s f v",
                "HDEL hw:s f",
                "HINCRBY hw:s f 1",
                "HINCRBYFLOAT hw:s f 1",
                "HRANDFIELD hw:s",
            ],
        ),
        (
            "hash_multi",
            vec![
                "MULTI",
                "HSET hq:a f 1",
                "HINCRBYFLOAT hq:a f 1.5",
                "HDEL hq:a zz",
                "HSETNX hq:a f 2",
                "HINCRBY hq:a g 1",
                "EXEC",
                "MULTI",
                "HSETNX hq:a f 3",
                "HRANDFIELD hq:a",
                "EXEC",
            ],
        ),
        (
            "hll",
            vec![
                "PFADD hll:a x y",
                "PFADD hll:a x",
                "PFADD hll:c x",
                "PFCOUNT hll:c",
                "PFCOUNT hll:c",
                "PFADD hll:f z",
                "PFMERGE hll:g hll:f",
                "PFCOUNT hll:a hll:f",
            ],
        ),
        (
            // hl:a (shard 2), hl:b (1), hl:m (1), hl:m2 (0), hl:c (0).
            "hll_forms",
            vec![
                "PFADD hl:a",
                "PFADD hl:a",
                "PFADD hl:a a b c",
                "pfadd hl:a a",
                "PFCOUNT hl:a",
                "PFCOUNT hl:a",
                "PFCOUNT hl:missing",
                "pfadd hl:a d",
                "pfcount hl:a",
                "PFADD hl:b x",
                "PFCOUNT hl:a hl:b",
                "PFCOUNT hl:b hl:missing",
                "PFMERGE hl:m hl:a hl:b",
                "PFMERGE hl:m hl:a",
                "PFCOUNT hl:m",
                "PFMERGE hl:m2",
                "pfmerge hl:m2",
                "PFMERGE hl:c hl:m hl:missing hl:b",
                "SET hl:s notanhll",
                "PFADD hl:s a",
                "PFCOUNT hl:s",
                "PFCOUNT hl:a hl:s",
                "PFMERGE hl:x hl:a hl:s",
                "PFMERGE hl:s hl:a",
                "SADD hl:set a",
                "PFADD hl:set a",
                "PFCOUNT hl:set",
                "PFMERGE hl:set hl:a",
            ],
        ),
        (
            "pfdebug",
            vec![
                "PFADD hd:a x",
                "PFDEBUG ENCODING hd:a",
                "PFDEBUG DECODE hd:a",
                "PFDEBUG TODENSE hd:a",
                "PFDEBUG TODENSE hd:a",
                "PFDEBUG DECODE hd:a",
                "PFADD hd:b y",
                "pfdebug getreg hd:b",
                "PFDEBUG GETREG hd:b",
                "PFDEBUG FOO hd:b",
                "PFDEBUG TODENSE hd:missing",
                "PFMERGE hd:c hd:a",
                "PFDEBUG TODENSE hd:c",
            ],
        ),
        (
            "hll_multi_watch",
            vec![
                "MULTI",
                "PFADD hq:x a",
                "PFCOUNT hq:x",
                "PFCOUNT hq:x",
                "PFADD hq:x a",
                "EXEC",
                "PFADD hq:y a",
                "WATCH hq:y",
                "1> PFCOUNT hq:y",
                "1<",
                "MULTI",
                "SET hq:r1 1",
                "EXEC",
                "PFADD hq:z a",
                "WATCH hq:z",
                "1> PFDEBUG TODENSE hq:z",
                "1<",
                "MULTI",
                "SET hq:r2 1",
                "EXEC",
            ],
        ),
        (
            "bitfield",
            vec![
                "BITFIELD bf:k INCRBY u8 0 1",
                "BITFIELD bf:k GET u8 0",
                "SET bo:a abc",
                "BITOP NOT bo:b bo:a",
            ],
        ),
        (
            "setbit_forms",
            vec![
                "SETBIT bs:a 7 1",
                "SETBIT bs:a 7 1",
                "setbit bs:a 7 0",
                "SETBIT bs:a 0 0",
                "SETBIT bs:a 100 0",
                "SETBIT bs:b 0 0",
                "SETBIT bs:a 1 2",
                "SETBIT bs:a -1 1",
                "SET bs:i 12",
                "SETBIT bs:i 0 0",
                "SETBIT bs:i 2 1",
                "SETBIT bs:i 0 1",
                "HSET bs:h f v",
                "SETBIT bs:h 0 1",
                "GETBIT bs:a 7",
                "BITCOUNT bs:a",
                "BITPOS bs:a 1",
            ],
        ),
        (
            "bitfield_forms",
            vec![
                "BITFIELD bf:a SET u8 0 5",
                "BITFIELD bf:a SET u8 0 5",
                "BITFIELD bf:a INCRBY u8 0 0",
                "BITFIELD bf:a GET u8 0 SET u8 0 5",
                "bitfield bf:a SET u8 8 0",
                "BITFIELD bf:a OVERFLOW FAIL INCRBY u8 0 255",
                "BITFIELD bf:n OVERFLOW FAIL INCRBY u2 0 7",
                "BITFIELD bf:n OVERFLOW FAIL INCRBY u2 0 7",
                "BITFIELD bf:a INCRBY i8 0 1 INCRBY i8 0 -1",
                "BITFIELD bf:a OVERFLOW FAIL INCRBY u8 0 255 SET u8 0 6",
                "BITFIELD bf:a SET i8 0 300",
                "BITFIELD bf:a SET i8 0 300",
                "BITFIELD bf:a OVERFLOW SAT INCRBY i8 0 100 INCRBY i8 0 100",
                "BITFIELD bf:a",
                "BITFIELD bf:a GET u8 0 GET i4 4",
                "BITFIELD_RO bf:a GET u8 0",
                "BITFIELD bf:missing GET u8 0",
                "BITFIELD bf:a SET u8 0",
                "BITFIELD bf:a SET u64 0 1",
                "SADD bf:set a",
                "BITFIELD bf:set SET u8 0 1",
            ],
        ),
        (
            // bt:a (shard 2), bt:b (0), bt:g (1), bt:e (1).
            "bitop_forms",
            vec![
                "SET bt:a abc",
                "SET bt:b xy",
                "BITOP AND bt:d bt:a bt:b",
                "BITOP OR bt:d bt:a bt:b bt:g",
                "BITOP XOR bt:d bt:a bt:missing",
                "bitop not bt:d bt:a",
                "BITOP AND bt:d bt:m1 bt:m2",
                "BITOP AND bt:d bt:m1 bt:m2",
                "BITOP NOT bt:e bt:a bt:b",
                "BITOP FOO bt:e bt:a",
                "SADD bt:set a",
                "BITOP OR bt:e bt:a bt:set",
                "BITOP OR bt:a bt:a bt:b",
                "BITOP OR bt:set bt:a",
                "SET bt:empty \"\"",
                "BITOP OR bt:e bt:empty",
                "SET bt:e x",
                "BITOP OR bt:e bt:empty",
            ],
        ),
        (
            "bitop_expired_dest",
            vec![
                "DEBUG SET-ACTIVE-EXPIRE 0",
                "SET be:d x PX 10",
                "SET be:e x PX 10",
                "SET be:src a",
                "~50",
                "BITOP OR be:d be:m1",
                "BITOP OR be:e be:src",
                "DEBUG SET-ACTIVE-EXPIRE 1",
            ],
        ),
        (
            "bits_multi_watch",
            vec![
                "MULTI",
                "SETBIT bq:a 1 1",
                "SETBIT bq:a 1 1",
                "BITFIELD bq:a GET u8 0",
                "BITOP NOT bq:b bq:a",
                "EXEC",
                "WATCH bq:a",
                "1> SETBIT bq:a 1 1",
                "1<",
                "1> BITFIELD bq:a SET u8 0 64",
                "1<",
                "MULTI",
                "SET bq:r1 1",
                "EXEC",
            ],
        ),
        // §7 streams
        (
            "xadd",
            vec![
                "XADD x:1 * f v",
                "XADD x:2b 5-* f v",
                "XADD x:2 5-1 f v",
                "XADD x:missing NOMKSTREAM * f v",
                "XADD x:3 MAXLEN 2 4-1 f v",
            ],
        ),
        (
            "xtrim",
            vec![
                "XADD x:5 1-1 f v",
                "XADD x:5 2-1 f v",
                "XADD x:5 3-1 f v",
                "XTRIM x:5 MAXLEN 2",
                "XTRIM x:5 MAXLEN 10",
                "XTRIM x:5 MINID 3",
            ],
        ),
        (
            "xgroup",
            vec![
                "XADD x:8 1-1 f v",
                "XGROUP CREATE x:8 g $",
                "XGROUP CREATE x:8 g2 0",
                "XGROUP CREATE x:8b g $ MKSTREAM",
                "XGROUP SETID x:8 g $",
                "XGROUP CREATECONSUMER x:8 g c9",
                "XGROUP DELCONSUMER x:8 g c9",
                "XGROUP DESTROY x:8 g",
                "XDEL x:8 1-1",
                "XSETID x:8 5-5",
            ],
        ),
        (
            "xreadgroup",
            vec![
                "XADD x:9 1-1 f v",
                "XADD x:9 2-1 f v",
                "XGROUP CREATE x:9 g 0",
                "XREADGROUP GROUP g c1 COUNT 10 STREAMS x:9 >",
                "XREADGROUP GROUP g c1 STREAMS x:9 0",
                "XREADGROUP GROUP g c1 STREAMS x:9 >",
                "XACK x:9 g 1-1",
                "XACK x:9 g 1-1",
            ],
        ),
        (
            "xreadgroup_noack",
            vec![
                "XADD x:10 1-1 f v",
                "XGROUP CREATE x:10 g 0",
                "XREADGROUP GROUP g c1 NOACK STREAMS x:10 >",
            ],
        ),
        (
            "xreadgroup_blocked",
            vec![
                "XADD x:12 1-1 f v",
                "XGROUP CREATE x:12 g $",
                "1> XREADGROUP GROUP g c1 BLOCK 0 STREAMS x:12 >",
                "~100",
                "XADD x:12 2-1 f v",
                "1<",
            ],
        ),
        (
            "xclaim",
            vec![
                "XADD x:14 1-1 f v",
                "XGROUP CREATE x:14 g 0",
                "XREADGROUP GROUP g c1 STREAMS x:14 >",
                "XCLAIM x:14 g c2 0 1-1",
                "XCLAIM x:14 g c3 0 1-1 JUSTID",
                "XAUTOCLAIM x:14 g c4 0 0-0",
            ],
        ),
        (
            // Ids filled in, `~` made exact (with the first id left, a deleted one
            // included: the exact trims leave tombstones in the one node).
            "xadd_more",
            vec![
                "XADD xq:new3 MAXLEN ~ 0 * f v",
                "XADD xq:a 1-1 f v",
                "xadd xq:a 2-* f v",
                "XADD xq:a 2-* f v",
                "XADD xq:a 3 f v",
                "XADD xq:a 3 f v",
                "XADD xq:a 0-0 f v",
                "XADD xq:a NOMKSTREAM 4-1 f v",
                "SET xq:s v",
                "XADD xq:s * f v",
                "XADD xq:a 5-1 f",
                "XADD xq:a MAXLEN 1 5-1 f v",
                "XADD xq:a MAXLEN = 1 6-1 f v",
                "XADD xq:a MAXLEN ~ 100 7-1 f v",
                "xadd xq:a minid ~ 0 NOMKSTREAM 8-* f v",
                "XADD xq:a LIMIT 10 9-1 f v",
                "XADD xq:a MAXLEN 2 LIMIT 10 9-1 f v",
                "XADD xq:a MAXLEN ~ 1 LIMIT 0 9-1 f v",
                "XADD xq:a MINID 9-1 MAXLEN 1 10-1 f v",
                "XADD xq:new2 NOMKSTREAM * f v",
            ],
        ),
        (
            // Nodes of 2 entries, so that `~` trims whole nodes.
            "xtrim_approx_nodes",
            vec![
                "CONFIG SET stream-node-max-entries 2",
                "XADD xq:n 1-1 f v",
                "XADD xq:n 2-1 f v",
                "XADD xq:n 3-1 f v",
                "XADD xq:n 4-1 f v",
                "XADD xq:n 5-1 f v",
                "XADD xq:n 6-1 f v",
                "XADD xq:n 7-1 f v",
                "XADD xq:n 8-1 f v",
                "XADD xq:n MAXLEN ~ 3 9-1 f v",
                "XADD xq:n MAXLEN ~ 1 LIMIT 1 10-1 f v",
                "XTRIM xq:n MAXLEN ~ 1 LIMIT 1",
                "xtrim xq:n maxlen ~ 1 limit 2",
                "XADD xq:m 1-1 f v",
                "XADD xq:m 2-1 f v",
                "XADD xq:m 3-1 f v",
                "XADD xq:m 4-1 f v",
                "XADD xq:m 5-1 f v",
                "XADD xq:m 6-1 f v",
                "XDEL xq:m 3-1",
                "XTRIM xq:m MINID ~ 4-1",
                "XTRIM xq:m MINID ~ 4-1",
                "XTRIM xq:m MAXLEN ~ 0",
                "XTRIM xq:m MINID ~ 1-1",
                "XADD xq:m2 1-1 f v",
                "XADD xq:m2 2-1 f v",
                "XADD xq:m2 3-1 f v",
                "XTRIM xq:m2 MINID ~ 9-1",
                "XTRIM xq:m2 MAXLEN 0",
                "XTRIM xq:none MAXLEN 0",
                "XTRIM xq:s MAXLEN 0",
                "XTRIM xq:m2 MAXLEN 0 LIMIT 1",
                "XTRIM xq:m2 LIMIT 1",
                "CONFIG SET stream-node-max-entries 100",
            ],
        ),
        (
            "xdel_xsetid",
            vec![
                "XADD xq:d 1-1 f v",
                "XADD xq:d 2-1 f v",
                "XADD xq:d 3-1 f v",
                "XDEL xq:d 9-9",
                "XDEL xq:d 1-1 9-9 2-1",
                "XDEL xq:d bad",
                "XDEL xq:dnone 1-1",
                "XSETID xq:d 1-1",
                "XSETID xq:dnone 1-1",
                "xsetid xq:d 3-1",
                "XSETID xq:d 9-9 ENTRIESADDED 20 MAXDELETEDID 2-1",
                "XSETID xq:d 9-9 ENTRIESADDED 0",
                "XDEL xq:d 3-1",
                "XSETID xq:d 1-1",
            ],
        ),
        (
            "xgroup_more",
            vec![
                "XGROUP CREATE xq:g g 0",
                "XGROUP CREATE xq:g g $ MKSTREAM",
                "XGROUP CREATE xq:g g $",
                "xgroup create xq:g g2 0 ENTRIESREAD 0",
                "XGROUP CREATE xq:g g3 bad",
                "XGROUP CREATECONSUMER xq:g g c1",
                "XGROUP CREATECONSUMER xq:g g c1",
                "XGROUP DELCONSUMER xq:g g nobody",
                "xgroup delconsumer xq:g g c1",
                "XGROUP DESTROY xq:g nog",
                "XGROUP SETID xq:g g 0 ENTRIESREAD 0",
                "XGROUP SETID xq:g nog 0",
                "XGROUP CREATECONSUMER xq:g nog c",
                "XGROUP DESTROY xq:g g2",
                "SET xq:gs v",
                "XGROUP CREATE xq:gs g $ MKSTREAM",
            ],
        ),
        (
            // xq:rg0 on shard 0, xq:rg3 on shard 1.
            "xreadgroup_more",
            vec![
                "XADD xq:rg0 1-1 f v",
                "XADD xq:rg0 2-1 f v",
                "XADD xq:rg3 1-1 f v",
                "XGROUP CREATE xq:rg0 g 0",
                "XGROUP CREATE xq:rg3 g 0",
                "XREADGROUP GROUP g c1 COUNT 1 STREAMS xq:rg0 >",
                "xreadgroup group g c1 streams xq:rg0 xq:rg3 > >",
                "XREADGROUP GROUP g c2 NOACK STREAMS xq:rg0 0",
                "XREADGROUP GROUP g c2 STREAMS xq:rg0 0",
                "XREADGROUP GROUP g c3 STREAMS xq:rg0 0",
                "XREADGROUP GROUP nog c1 STREAMS xq:rg0 >",
                "XREADGROUP GROUP g c1 STREAMS xq:rg0 $",
                "XREADGROUP GROUP g c1 STREAMS xq:rg3 xq:rgnone > >",
                "XGROUP SETID xq:rg0 g 0",
                "XREADGROUP GROUP g c4 STREAMS xq:rg0 >",
                "XADD xq:rg0 3-1 f v",
                "XADD xq:rg0 4-1 f v",
                "XREADGROUP GROUP g c5 NOACK STREAMS xq:rg0 >",
                "XREADGROUP GROUP g c5 NOACK STREAMS xq:rg0 >",
                "XADD xq:rg0 5-1 f v",
                "XREADGROUP GROUP g c5 NOACK COUNT 5 STREAMS xq:rg0 >",
                "XREAD STREAMS xq:rg0 0",
            ],
        ),
        (
            // Served when woken: NOACK (consumer and last id), across shards (xq:rg4 on
            // shard 0, xq:rg7 on 1), a group destroyed meanwhile, a plain XREAD.
            "xread_blocked_more",
            vec![
                "XADD xq:bn 1-1 f v",
                "XGROUP CREATE xq:bn g $",
                "1> XREADGROUP GROUP g c1 NOACK BLOCK 0 STREAMS xq:bn >",
                "~100",
                "XADD xq:bn 2-1 f v",
                "1<",
                "XGROUP CREATE xq:rg4 g $ MKSTREAM",
                "XGROUP CREATE xq:rg7 g $ MKSTREAM",
                "1> XREADGROUP GROUP g c1 BLOCK 0 STREAMS xq:rg4 xq:rg7 > >",
                "~100",
                "XADD xq:rg7 1-1 f v",
                "1<",
                "XADD xq:bd 1-1 f v",
                "XGROUP CREATE xq:bd g $",
                "1> XREADGROUP GROUP g c1 BLOCK 0 STREAMS xq:bd >",
                "~100",
                "XGROUP DESTROY xq:bd g",
                "1<",
                "1> XREAD BLOCK 0 STREAMS xq:xr $",
                "~100",
                "XADD xq:xr 1-1 f v",
                "1<",
            ],
        ),
        (
            "xreadgroup_in_multi",
            vec![
                "XADD xq:mu 1-1 f v",
                "XGROUP CREATE xq:mu g 0",
                "MULTI",
                "XREADGROUP GROUP g c1 BLOCK 0 STREAMS xq:mu >",
                "XREADGROUP GROUP g c1 BLOCK 0 STREAMS xq:mu >",
                "XADD xq:mu 2-1 f v",
                "XACK xq:mu g 1-1",
                "EXEC",
            ],
        ),
        (
            "xclaim_more",
            vec![
                "XADD xq:c 1 f v",
                "XADD xq:c 2-1 f v",
                "XADD xq:c 3-1 f v",
                "XGROUP CREATE xq:c g 0",
                "XREADGROUP GROUP g c1 STREAMS xq:c >",
                "XCLAIM xq:c g c2 0 1",
                "XCLAIM xq:c g c3 0 2-1 IDLE 10000 RETRYCOUNT 7 JUSTID",
                "XCLAIM xq:c g c2 3600000 2-1",
                "XCLAIM xq:c g c3 0 9-9",
                "XCLAIM xq:c g c3 0 9-9 LASTID 9-9",
                "XCLAIM xq:c g c3 0 9-9 LASTID 1-1",
                "XDEL xq:c 3-1",
                "xclaim xq:c g c4 0 3-1 2-1",
                "XADD xq:c 10-1 f v",
                "XCLAIM xq:c g c5 0 10-1 FORCE",
                "XCLAIM xq:c g c5 0 10-1 TIME 1000",
                "XCLAIM xq:c nog c1 0 1-1",
                "XCLAIM xq:none g c1 0 1-1",
                "XCLAIM xq:c g c1 0 1-1 BOGUS",
                "XCLAIM xq:s g c1 0 1-1",
            ],
        ),
        (
            "xautoclaim_more",
            vec![
                "XADD xq:ac 1-1 f v",
                "XADD xq:ac 2-1 f v",
                "XADD xq:ac 3-1 f v",
                "XGROUP CREATE xq:ac g 0",
                "XREADGROUP GROUP g c1 STREAMS xq:ac >",
                "XAUTOCLAIM xq:ac g c2 3600000 0",
                "XAUTOCLAIM xq:ac g c2 0 0 COUNT 1",
                "XDEL xq:ac 2-1",
                "xautoclaim xq:ac g c3 0 (1-1 JUSTID",
                "XAUTOCLAIM xq:ac g c3 0 9-9",
                "XAUTOCLAIM xq:ac nog c3 0 0",
                "XAUTOCLAIM xq:ac g c3 0 0 COUNT 0",
            ],
        ),
        (
            "xack_more",
            vec![
                "XADD xq:k 1-1 f v",
                "XADD xq:k 2-1 f v",
                "XGROUP CREATE xq:k g 0",
                "XREADGROUP GROUP g c STREAMS xq:k >",
                "XACK xq:k g 1-1 9-9",
                "xack xq:k g 9-9",
                "XACK xq:k nog 2-1",
                "XACK xq:knone g 2-1",
                "XACK xq:k g bad",
                "XACK xq:s g 1-1",
                "XACK xq:k g 2-1 2-1",
            ],
        ),
        (
            "stream_multi",
            vec![
                "MULTI",
                "XADD xq:sm 1-1 f v",
                "XGROUP CREATE xq:sm g 0",
                "XREADGROUP GROUP g c STREAMS xq:sm >",
                "XTRIM xq:sm MAXLEN 5",
                "XTRIM xq:sm MAXLEN 0",
                "EXEC",
            ],
        ),
        // §8 transactions
        ("multi_one", vec!["MULTI", "SET mu:a 1", "EXEC"]),
        (
            "multi_two",
            vec!["MULTI", "SET mu:b 1", "INCR mu:b", "EXEC"],
        ),
        (
            "multi_reads",
            vec![
                "MULTI",
                "GET mu:c",
                "EXEC",
                "SADD mu:s a",
                "MULTI",
                "SADD mu:s a",
                "EXEC",
            ],
        ),
        (
            "multi_rewrites",
            vec!["MULTI", "SET mu:d 1 EX 100", "INCRBYFLOAT mu:d 1.5", "EXEC"],
        ),
        (
            "multi_select",
            vec![
                "MULTI",
                "SET mu:e 1",
                "SELECT 5",
                "SET mu:f 1",
                "EXEC",
                "SELECT 0",
            ],
        ),
        (
            "multi_error",
            vec![
                "SET mu:g s",
                "MULTI",
                "SET mu:h 1",
                "LPUSH mu:g x",
                "SET mu:i 1",
                "EXEC",
            ],
        ),
        (
            "multi_discard",
            vec![
                "MULTI",
                "SET mu:j 1",
                "DISCARD",
                "MULTI",
                "NOSUCH",
                "EXEC",
                "WATCH mu:k",
                "1> SET mu:k 1",
                "1<",
                "MULTI",
                "SET mu:l 1",
                "EXEC",
            ],
        ),
        // §9 lazy expiry (active expiry off)
        (
            "lazy_expiry",
            vec![
                "DEBUG SET-ACTIVE-EXPIRE 0",
                "SET ex:a 1 PX 10",
                "SET ex:b 1 PX 10",
                "SET ex:c 1 PX 10",
                "SET ex:d 1 PX 10",
                "SET ex:e 1 PX 10",
                "SET ex:f 1 PX 10",
                "SET ex:g 1 PX 10",
                "~50",
                "GET ex:a",
                "SET ex:b new",
                "INCR ex:c",
                "DEL ex:d",
                "EXISTS ex:e ex:f",
                "MULTI",
                "GET ex:g",
                "EXEC",
                "DEBUG SET-ACTIVE-EXPIRE 1",
            ],
        ),
        // §10 server
        (
            "flush",
            vec![
                "SET fl:a 1",
                "FLUSHDB",
                "FLUSHALL",
                "SET fl:after 1",
                "SELECT 3",
                "FLUSHALL",
                "SELECT 0",
            ],
        ),
        (
            "select",
            vec![
                "SELECT 2",
                "SET sel:a 1",
                "SELECT 0",
                "SET sel:b 1",
                "SELECT 2",
                "SET sel:c 1",
                "SELECT 0",
                "1> SET sel:d 1",
                "1<",
            ],
        ),
    ]
}

#[test]
fn every_write_propagates_as_stock_redis_does() {
    let stock = StockRedis::start(&[
        "--repl-ping-replica-period",
        "3600",
        "--repl-diskless-sync",
        "no",
        "--enable-debug-command",
        "yes",
    ]);
    let ours = Server::start(3, &["--enable-debug-command", "yes"]);
    let mut tap = Tap::attach(stock.port);
    let mut control = Raw::connect(ours.port);
    assert_eq!(
        control.call(&[b"DEBUG", b"JOURNAL", b"ON"]),
        b"+OK\r\n".to_vec()
    );
    let quiet = Duration::from_millis(150);
    let mut failures = Vec::new();
    let mut checked = 0;
    // PROPAGATION_CASES=a,b runs only the cases whose names contain `a` or `b`.
    let only = std::env::var("PROPAGATION_CASES").ok();
    let picked = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| name.contains(p)))
    };
    for (name, steps) in cases().into_iter().filter(|(n, _)| picked(n)) {
        let t0 = now_ms();
        let started = Instant::now();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for step in &steps {
            run_step(&mut a, stock.port, step);
        }
        let want = mask(name, normalize(&tap.take(quiet), t0));
        let t1 = now_ms();
        for step in &steps {
            run_step(&mut b, ours.port, step);
        }
        // What the active expire cycle does meanwhile is part of the case, as for stock.
        std::thread::sleep(quiet);
        let reply = control.call(&[b"DEBUG", b"JOURNAL", b"READ"]);
        let got = mask(name, normalize(&bulk_payload(&reply), t1));
        checked += 1;
        if got != want {
            failures.push(format!(
                "case {name} ({:?}):\n  stock:\n{}\n  ours:\n{}",
                started.elapsed(),
                indent(&want),
                indent(&got)
            ));
        }
    }
    assert!(checked > 50 || only.is_some());
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// For cases named `*_masked`, whose members are picked at random (SPOP with a count): the
/// member of every `SREM key member` becomes `*`, so that the shape of the stream (how many
/// SREMs, wrapped or not, in which database) is what is compared.
fn mask(name: &str, text: String) -> String {
    if !name.ends_with("_masked") {
        return text;
    }
    text.lines()
        .map(|l| match l.split(' ').collect::<Vec<_>>().as_slice() {
            ["SREM", key, _] => format!("SREM {key} *\n"),
            _ => format!("{l}\n"),
        })
        .collect()
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// The payload of a bulk string reply.
fn bulk_payload(reply: &[u8]) -> Vec<u8> {
    let nl = reply.iter().position(|&b| b == b'\n').unwrap_or(0);
    let len: usize = std::str::from_utf8(&reply[1..nl.saturating_sub(1)])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("DEBUG JOURNAL READ: {}", show(reply)));
    reply[nl + 1..nl + 1 + len].to_vec()
}

/// The merged stream of many shards is a serial order consistent with what clients saw:
/// writes one after another (each sent after the previous reply, over several connections
/// and every shard, single-key and cross-shard MSET) appear in that order, and so does each
/// of several concurrent writers' own sequence.
#[test]
fn the_stream_keeps_the_order_clients_saw() {
    const SHARDS: usize = 4;
    let ours = Server::start(SHARDS, &["--save", "", "--repl-diskless-sync-delay", "0"]);
    let mut tap = Tap::attach(ours.port);
    let keys: Vec<String> = (0..SHARDS)
        .map(|s| common::key_on_shard("order:", s, SHARDS))
        .collect();
    // One causal chain: each write is sent once the previous one was answered, on another
    // connection and (mostly) another shard.
    let mut conns: Vec<Raw> = (0..3).map(|_| ours.raw()).collect();
    for i in 0..600usize {
        let v = i.to_string();
        let c = &mut conns[i % 3];
        let reply = if i % 5 == 4 {
            let (a, b) = (&keys[i % SHARDS], &keys[(i + 1) % SHARDS]);
            c.call(&[
                b"MSET",
                a.as_bytes(),
                v.as_bytes(),
                b.as_bytes(),
                v.as_bytes(),
            ])
        } else {
            c.call(&[b"SET", keys[i % SHARDS].as_bytes(), v.as_bytes()])
        };
        assert_eq!(reply, b"+OK\r\n");
    }
    // Concurrent writers, each with its own counter spread over every shard.
    let writers: Vec<_> = (0..3usize)
        .map(|w| {
            let port = ours.port;
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                for i in 0..400usize {
                    let key = common::key_on_shard(&format!("w{w}:"), i % SHARDS, SHARDS);
                    let v = format!("{w}:{i}");
                    assert_eq!(c.call(&[b"SET", key.as_bytes(), v.as_bytes()]), b"+OK\r\n");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let stream = tap.take(Duration::from_millis(1500));
    let mut chain = Vec::new();
    let mut per_writer: Vec<Vec<usize>> = vec![Vec::new(); 3];
    let mut pos = 0;
    while pos < stream.len() {
        let len = frame_len(&stream[pos..]).expect("whole commands in the stream");
        let words = bulk_words(&stream[pos..pos + len]);
        pos += len;
        let name = words.first().map(|w| w.to_ascii_lowercase());
        if !matches!(name.as_deref(), Some(b"set" | b"mset")) {
            continue;
        }
        for value in words[1..].iter().skip(1).step_by(2) {
            let value = String::from_utf8_lossy(value);
            match value.split_once(':') {
                Some((w, i)) => per_writer[w.parse::<usize>().expect("writer")]
                    .push(i.parse().expect("counter")),
                None => chain.push(value.parse::<usize>().expect("counter")),
            }
        }
    }
    chain.dedup(); // an MSET carries its value twice
    assert_eq!(chain, (0..600).collect::<Vec<_>>());
    for (w, seen) in per_writer.iter().enumerate() {
        assert_eq!(seen, &(0..400).collect::<Vec<_>>(), "writer {w}");
    }
}
