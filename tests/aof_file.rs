//! Multi-part AOF directories against stock Redis 7.0: directories stock writes (RDB and RESP
//! bases, before and after BGREWRITEAOF) are read into the commands it logged and replayed
//! into a fresh server to the same keyspace; directories we write (manifest, RDB or RESP
//! base, incr file, odd names) are loaded by stock; truncated and malformed files give
//! stock's verdicts, offsets and texts.

mod common;
mod persist_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{wait_until, Raw, Server, StockRedis, TempDir};
use persist_common::*;
use redcell::aof::manifest::{read_manifest, write_manifest, DEFAULT_APPEND_FILENAME};
use redcell::aof::{
    load_aof, AofError, AofLoadOptions, AofLoadOutcome, AofLoadStatus, AofManifest, AofSink,
    IncrBuffer,
};
use redcell::rdb::dump_payload;
use redcell::rdb::file_reader::{RdbEntry, RdbEvent, RdbLoadError, RdbSink};
use redcell::rdb::file_writer::{AuxFields, Eviction, RdbFileWriter, RdbWriteOptions};
use redcell::types::{StrValue, Value};

const LIBRARY: &str =
    "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)";

/// Everything an AOF directory held, in order.
#[derive(Default)]
struct Collected {
    entries: Vec<RdbEntry>,
    functions: Vec<Vec<u8>>,
    /// (file, argv)
    commands: Vec<(String, Vec<Vec<u8>>)>,
}

impl RdbSink for Collected {
    fn event(&mut self, ev: RdbEvent) -> Result<(), RdbLoadError> {
        match ev {
            RdbEvent::Entry(e) => self.entries.push(e),
            RdbEvent::Function { code } => self.functions.push(code),
            _ => {}
        }
        Ok(())
    }
}

impl AofSink for Collected {
    fn command(&mut self, file: &str, argv: Vec<Vec<u8>>) -> Result<(), AofError> {
        self.commands.push((file.to_string(), argv));
        Ok(())
    }

    /// Our command table, plus the transaction commands redcell does not run yet.
    fn is_command(&mut self, name: &[u8]) -> bool {
        redcell::cmd::table().lookup(name).is_some()
            || [&b"multi"[..], b"exec", b"discard"]
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
    }
}

impl Collected {
    /// The commands as text, for comparing with what was sent.
    fn text(&self) -> Vec<Vec<String>> {
        self.commands
            .iter()
            .map(|(_, a)| {
                a.iter()
                    .map(|x| String::from_utf8_lossy(x).into_owned())
                    .collect()
            })
            .collect()
    }
}

/// Loads `<dir>/<aof_dirname>` as Redis would on start-up.
fn load(
    dir: &Path,
    aof_dirname: &str,
    opts: &AofLoadOptions,
) -> Result<(Collected, AofLoadOutcome), AofError> {
    let aof_dir = dir.join(aof_dirname);
    let m = read_manifest(&aof_dir, &opts.aof_filename)
        .unwrap_or_else(|e| panic!("manifest: {e}"))
        .expect("a manifest");
    let mut c = Collected::default();
    let out = load_aof(&aof_dir, &m, opts, &mut c)?;
    Ok((c, out))
}

/// Replays what was loaded into a fresh stock server and returns its keyspace.
fn replay(c: &Collected) -> BTreeMap<(u64, Vec<u8>), StockKey> {
    let stock = StockRedis::start(&[]);
    let mut r = Raw::connect(stock.port);
    for code in &c.functions {
        call(&mut r, &[b"FUNCTION", b"LOAD", code]);
    }
    for e in &c.entries {
        cmd(&mut r, &["SELECT", &e.db.to_string()]);
        let ttl = e.expire_ms.unwrap_or(0).to_string();
        let payload = dump_payload(&e.value);
        call(
            &mut r,
            &[b"RESTORE", &e.key, ttl.as_bytes(), &payload, b"ABSTTL"],
        );
    }
    cmd(&mut r, &["SELECT", "0"]);
    for (_, argv) in &c.commands {
        let a: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        call(&mut r, &a);
    }
    snapshot(&mut r)
}

/// Whether `got` is `want`, where `#` in `want` stands for a Unix time in ms near now.
fn matches(got: &[Vec<String>], want: &[&[&str]]) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            g.len() == w.len()
                && g.iter().zip(w.iter()).all(|(a, b)| {
                    if *b == "#" {
                        a.parse::<i64>()
                            .is_ok_and(|t| (now - 60_000..now + 10_000_000).contains(&t))
                    } else {
                        a == b
                    }
                })
        })
}

/// The keyspace stock loads from a copy of the AOF directory in `dir` (with `extra`
/// settings), the oracle for what the files mean.
fn stock_view(dir: &Path, extra: &[&str]) -> BTreeMap<(u64, Vec<u8>), StockKey> {
    let copy = TempDir::new("aof-view");
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            let to = copy.path.join(entry.file_name());
            std::fs::create_dir_all(&to).expect("mkdir");
            for f in std::fs::read_dir(entry.path()).expect("read aof dir") {
                let f = f.expect("file");
                std::fs::copy(f.path(), to.join(f.file_name())).expect("copy");
            }
        }
    }
    let copy_s = copy.path.to_str().expect("utf-8 dir");
    let mut args = vec!["--dir", copy_s, "--appendonly", "yes"];
    args.extend_from_slice(extra);
    let stock = StockRedis::start(&args);
    let mut c = Raw::connect(stock.port);
    snapshot(&mut c)
}

/// Waits until stock's rewrite is over and the history files are gone from the manifest.
fn wait_rewrite(c: &mut Raw, aof_dir: &Path) {
    let manifest = aof_dir.join("appendonly.aof.manifest");
    let done = wait_until(Duration::from_secs(20), || {
        let info = cmd(c, &["INFO", "persistence"]);
        let info = String::from_utf8_lossy(&info);
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        info.contains("aof_rewrite_in_progress:0")
            && info.contains("aof_rewrite_scheduled:0")
            && text.contains("seq 2 type b")
            && !text.contains("type h")
    });
    assert!(done, "BGREWRITEAOF did not finish");
}

/// What the first workload logs (stock's propagated forms).
const BEFORE_REWRITE: &[&[&str]] = &[
    &["SELECT", "0"],
    &["SET", "k1", "v1"],
    &["SET", "k2", "v2", "PXAT", "#"],
    &["INCR", "ctr"],
    &["RPUSH", "l", "a", "b", "c"],
    &["PEXPIREAT", "l", "#"],
    &["HSET", "h", "f", "v", "g", "w"],
    &["SADD", "s", "x", "y", "z"],
    &["SREM", "s", "y"],
    &["ZADD", "z", "1", "a", "2", "b"],
    &["ZINCRBY", "z", "5", "a"],
    &["XADD", "x", "1-1", "f", "v"],
    &["XGROUP", "CREATE", "x", "g", "0"],
    &[
        "XCLAIM",
        "x",
        "g",
        "c",
        "0",
        "1-1",
        "TIME",
        "#",
        "RETRYCOUNT",
        "1",
        "FORCE",
        "JUSTID",
        "LASTID",
        "1-1",
    ],
    &["SELECT", "3"],
    &["MULTI"],
    &["SET", "t1", "1"],
    &["INCR", "t1"],
    &["EXEC"],
    &["SELECT", "15"],
    &["SET", "e", "v", "PXAT", "#"],
    &["FUNCTION", "LOAD", LIBRARY],
];

/// Sends the first workload (its commands are `BEFORE_REWRITE` once logged).
fn first_workload(c: &mut Raw) {
    for args in [
        &["SET", "k1", "v1"][..],
        &["SET", "k2", "v2", "EX", "1000"],
        &["INCR", "ctr"],
        &["RPUSH", "l", "a", "b", "c"],
        &["EXPIRE", "l", "5000"],
        &["HSET", "h", "f", "v", "g", "w"],
        &["SADD", "s", "x", "y", "z"],
        &["SREM", "s", "y"],
        &["ZADD", "z", "1", "a", "2", "b"],
        &["ZINCRBY", "z", "5", "a"],
        &["XADD", "x", "1-1", "f", "v"],
        &["XGROUP", "CREATE", "x", "g", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "x",
            ">",
        ],
        &["SELECT", "3"],
        &["MULTI"],
        &["SET", "t1", "1"],
        &["INCR", "t1"],
        &["EXEC"],
        &["SELECT", "15"],
        &["SETEX", "e", "100", "v"],
        &["FUNCTION", "LOAD", LIBRARY],
    ] {
        let reply = cmd(c, args);
        assert!(!reply.starts_with(b"-"));
    }
}

#[test]
fn reads_stock_aof_dirs_before_and_after_a_rewrite() {
    for preamble in ["yes", "no"] {
        let dir = TempDir::new("aof-stock");
        let dir_s = dir.path.to_str().expect("utf-8 dir");
        let stock = StockRedis::start(&[
            "--dir",
            dir_s,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--aof-use-rdb-preamble",
            preamble,
        ]);
        let mut c = Raw::connect(stock.port);
        first_workload(&mut c);
        let aof_dir = dir.path.join("appendonlydir");

        // Before a rewrite: the empty base made at start-up, then incr 1.
        let opts = AofLoadOptions::default();
        let (got, out) = load(&dir.path, "appendonlydir", &opts).expect("load");
        assert_eq!(out.status, AofLoadStatus::Loaded);
        assert_eq!(out.truncated, None);
        assert!(got.entries.is_empty());
        assert!(
            matches(&got.text(), BEFORE_REWRITE),
            "preamble {preamble}: {:#?}",
            got.text()
        );
        assert!(got
            .commands
            .iter()
            .all(|(f, _)| f == "appendonly.aof.1.incr.aof"));
        let text = std::fs::read(aof_dir.join("appendonly.aof.manifest")).expect("manifest");
        let ext = if preamble == "yes" { "rdb" } else { "aof" };
        assert_eq!(
            String::from_utf8_lossy(&text),
            format!(
                "file appendonly.aof.1.base.{ext} seq 1 type b\n\
                 file appendonly.aof.1.incr.aof seq 1 type i\n"
            )
        );
        assert_eq!(AofManifest::parse(&text).expect("parse").to_bytes(), text);
        assert_same_keyspace_with(
            &replay(&got),
            &stock_view(&dir.path, &[]),
            without_seen_times,
        );

        // After BGREWRITEAOF: base 2 holds the data, incr 2 what came after.
        cmd(&mut c, &["BGREWRITEAOF"]);
        wait_rewrite(&mut c, &aof_dir);
        cmd(&mut c, &["SELECT", "15"]);
        cmd(&mut c, &["SET", "after", &"abc".repeat(10_000)]);
        cmd(&mut c, &["SELECT", "0"]);
        cmd(&mut c, &["DEL", "k1"]);
        let (got, out) = load(&dir.path, "appendonlydir", &opts).expect("load");
        assert_eq!(out.truncated, None);
        let base = format!("appendonly.aof.2.base.{ext}");
        let from_base = got.commands.iter().filter(|(f, _)| *f == base).count();
        let tail: Vec<_> = got.text().split_off(from_base);
        let big = "abc".repeat(10_000);
        let want_tail: &[&[&str]] = &[
            &["SELECT", "15"],
            &["SET", "after", &big],
            &["SELECT", "0"],
            &["DEL", "k1"],
        ];
        assert!(matches(&tail, want_tail), "{tail:#?}");
        if preamble == "yes" {
            // The data came as RDB entries: 10 keys in 3 databases, TTLs with them.
            assert_eq!(from_base, 0);
            assert_eq!(got.entries.len(), 10);
            assert_eq!(got.functions, [LIBRARY.as_bytes()]);
            let e = got.entries.iter().find(|e| e.key == b"e").expect("key e");
            assert_eq!(e.db, 15);
            assert!(e.expire_ms.is_some());
        } else {
            // A RESP base: FUNCTION LOAD before any SELECT, then SELECT per database.
            assert!(got.entries.is_empty());
            let text = got.text();
            assert_eq!(text[0][..2], ["FUNCTION", "LOAD"]);
            assert_eq!(text[1], ["SELECT", "0"]);
            assert!(text.iter().any(|a| a[0] == "PEXPIREAT" && a[1] == "l"));
        }
        assert_same_keyspace_with(
            &replay(&got),
            &stock_view(&dir.path, &[]),
            without_seen_times,
        );
        // And stock's own load kept what was written (streams aside: XCLAIM stamps times).
        let mut want = snapshot(&mut c);
        want.retain(|(_, k), _| k != b"x");
        let mut view = stock_view(&dir.path, &[]);
        view.retain(|(_, k), _| k != b"x");
        assert_same_keyspace(&view, &want);
    }
}

/// Keys for the directories we write: a few types, TTLs, two databases.
fn sample_keys() -> Vec<(u64, Vec<u8>, Value, Option<i64>)> {
    let lim = redcell::rdb::Limits::default();
    let mut h = redcell::types::Hash::new();
    h.set(b"f", b"v", lim.hash);
    let mut l = redcell::types::List::new();
    for e in ["a", "b", "c"] {
        l.push(redcell::types::list::End::Tail, e.as_bytes(), lim.list_fill);
    }
    vec![
        (
            0,
            b"s".to_vec(),
            Value::Str(StrValue::from_bytes(b"v")),
            None,
        ),
        (
            0,
            b"n".to_vec(),
            Value::Str(StrValue::from_bytes(b"10")),
            None,
        ),
        (
            0,
            b"ttl".to_vec(),
            Value::Str(StrValue::from_bytes(b"x")),
            Some(1_893_456_000_000),
        ),
        (2, b"h".to_vec(), Value::Hash(h), None),
        (2, b"l".to_vec(), Value::List(l), Some(1_893_456_000_000)),
    ]
}

/// An RDB base made by our writer, with `aof-base` set.
fn our_rdb_base(path: &Path) {
    let f = std::fs::File::create(path).expect("create base");
    let mut w = RdbFileWriter::new(f, RdbWriteOptions::default()).expect("header");
    let mut aux = AuxFields::new(1_800_000_000, 1 << 20);
    aux.aof_base = true;
    w.write_aux_fields(&aux).expect("aux");
    for db in [0u64, 2] {
        let keys: Vec<_> = sample_keys().into_iter().filter(|k| k.0 == db).collect();
        let expires = keys.iter().filter(|k| k.3.is_some()).count() as u64;
        w.write_db_header(db, keys.len() as u64, expires)
            .expect("db");
        for (_, k, v, ttl) in keys {
            w.write_entry(&k, &v, ttl, Eviction::None).expect("entry");
        }
    }
    w.finish().expect("finish");
}

/// The same keys as commands (a RESP base).
fn our_resp_base() -> Vec<u8> {
    let mut b = IncrBuffer::new();
    b.append(0, &[b"SET", b"s", b"v"]);
    b.append(0, &[b"SET", b"n", b"10"]);
    b.append(0, &[b"SET", b"ttl", b"x"]);
    b.append(0, &[b"PEXPIREAT", b"ttl", b"1893456000000"]);
    b.append(2, &[b"HMSET", b"h", b"f", b"v"]);
    b.append(2, &[b"RPUSH", b"l", b"a", b"b", b"c"]);
    b.append(2, &[b"PEXPIREAT", b"l", b"1893456000000"]);
    b.take()
}

/// Commands after the base, in three databases, with a transaction.
fn our_incr() -> Vec<u8> {
    let mut b = IncrBuffer::new();
    b.annotate_time(1_796_304_837);
    b.append(0, &[b"INCR", b"n"]);
    b.append(5, &[b"SET", b"in5", b"yes"]);
    b.append(2, &[b"MULTI"]);
    b.append(2, &[b"RPUSH", b"l", b"d"]);
    b.append(2, &[b"HSET", b"h", b"g", b"w"]);
    b.append(2, &[b"EXEC"]);
    b.annotate_time(1_796_304_838);
    b.append(0, &[b"DEL", b"s"]);
    b.take()
}

/// Writes a whole AOF directory: manifest, base (RDB or RESP), one incr file.
fn write_dir(dir: &Path, aof_dirname: &str, aof_filename: &str, rdb_base: bool) -> PathBuf {
    let aof_dir = dir.join(aof_dirname);
    std::fs::create_dir_all(&aof_dir).expect("mkdir");
    let mut m = AofManifest::default();
    let base = m.new_base_file(aof_filename, rdb_base);
    let incr = m.new_incr_file(aof_filename);
    let base_path = aof_dir.join(String::from_utf8(base).expect("utf-8 name"));
    if rdb_base {
        our_rdb_base(&base_path);
    } else {
        std::fs::write(&base_path, our_resp_base()).expect("write base");
    }
    let incr_path = aof_dir.join(String::from_utf8(incr).expect("utf-8 name"));
    std::fs::write(&incr_path, our_incr()).expect("write incr");
    write_manifest(&aof_dir, aof_filename, &m).expect("manifest");
    aof_dir
}

#[test]
fn stock_loads_aof_dirs_we_write() {
    // What the directory means, replayed by stock from our reader's view of it.
    let mut want = None;
    for (rdb_base, aof_dirname, aof_filename) in [
        (true, "appendonlydir", DEFAULT_APPEND_FILENAME),
        (false, "appendonlydir", DEFAULT_APPEND_FILENAME),
        // Names needing quotes in the manifest, in a directory of another name.
        (true, "aofs", "my aof.aof"),
    ] {
        let dir = TempDir::new("aof-ours");
        let aof_dir = write_dir(&dir.path, aof_dirname, aof_filename, rdb_base);
        let manifest = std::fs::read_to_string(aof_dir.join(format!("{aof_filename}.manifest")))
            .expect("manifest");
        if aof_filename.contains(' ') {
            assert!(manifest.starts_with("file \"my aof.aof.1.base.rdb\" seq 1 type b\n"));
        }
        let opts = AofLoadOptions {
            aof_filename: aof_filename.into(),
            ..Default::default()
        };
        let (got, out) = load(&dir.path, aof_dirname, &opts).expect("our load");
        assert_eq!((out.status, out.truncated), (AofLoadStatus::Loaded, None));
        let ours = replay(&got);
        let want = want.get_or_insert_with(|| ours.clone());
        assert_same_keyspace(&ours, want);
        assert_eq!(ours.len(), 5);

        let dir_s = dir.path.to_str().expect("utf-8 dir");
        let stock = StockRedis::start(&[
            "--dir",
            dir_s,
            "--appendonly",
            "yes",
            "--appenddirname",
            aof_dirname,
            "--appendfilename",
            aof_filename,
        ]);
        let mut c = Raw::connect(stock.port);
        assert_same_keyspace(&snapshot(&mut c), want);
        // Stock appends to our incr file, and we read what it added.
        cmd(&mut c, &["SELECT", "9"]);
        cmd(&mut c, &["SET", "by-stock", "1"]);
        let (got, out) = load(&dir.path, aof_dirname, &opts).expect("reload");
        assert_eq!(out.truncated, None);
        let text = got.text();
        assert_eq!(
            text[text.len() - 2..],
            [vec!["SELECT", "9"], vec!["SET", "by-stock", "1"]]
        );
    }
}

/// A stock directory with base 1 (RDB, empty) and incr 1 holding `SET a 1` and `SET b 2`;
/// returns the incr file's path.
fn stock_dir(dir: &Path) -> PathBuf {
    let dir_s = dir.to_str().expect("utf-8 dir");
    // `always`: with everysec, stock may postpone its write while a background fsync runs.
    let stock = StockRedis::start(&[
        "--dir",
        dir_s,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let mut c = Raw::connect(stock.port);
    cmd(&mut c, &["SET", "a", "1"]);
    cmd(&mut c, &["SET", "b", "2"]);
    // SIGKILL: the incr file is as written (stock writes it before replying).
    drop(c);
    drop(stock);
    dir.join("appendonlydir/appendonly.aof.1.incr.aof")
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    std::io::Write::write_all(&mut f, bytes).expect("append");
}

/// Starts stock on `dir` (it must start) and returns its log once it serves.
fn stock_log_on(dir: &Path, extra: &[&str]) -> (StockRedis, String) {
    let dir_s = dir.to_str().expect("utf-8 dir");
    let mut args = vec!["--dir", dir_s, "--appendonly", "yes"];
    args.extend_from_slice(extra);
    let stock = StockRedis::start(&args);
    let log = std::fs::read_to_string(stock.dir().join("log")).expect("stock log");
    (stock, log)
}

/// Commands of an AOF that fail when replayed (a value that is no number, a key of the wrong
/// type), as stock treats them: a CRITICAL line for each, in the same words, counted in
/// INFO, and loading goes on; with `propagation-error-behavior panic` the server stops.
#[test]
fn failing_commands_in_an_aof_are_logged_or_fatal_as_in_stock() {
    let stock_side = TempDir::new("aof-errors-stock");
    let incr = stock_dir(&stock_side.path);
    append(&incr, &common::encode(&[b"SET", b"c", b"foo"]));
    append(&incr, &common::encode(&[b"INCR", b"c"]));
    append(&incr, &common::encode(&[b"LPUSH", b"a", b"x"]));
    append(&incr, &common::encode(&[b"SET", b"d", b"4"]));
    let ours_side = TempDir::new("aof-errors-ours");
    let aof_dir = ours_side.path.join("appendonlydir");
    std::fs::create_dir(&aof_dir).expect("mkdir");
    for entry in std::fs::read_dir(stock_side.path.join("appendonlydir")).expect("ls") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), aof_dir.join(entry.file_name())).expect("copy");
    }

    let (stock, stock_log) = stock_log_on(&stock_side.path, &[]);
    let dir_s = ours_side.path.to_str().expect("utf-8 dir");
    let ours = Server::start(2, &["--dir", dir_s, "--appendonly", "yes"]);
    let lines = common::critical_lines(&ours.stderr());
    assert_eq!(lines, common::critical_lines(&stock_log));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with(
        "== CRITICAL == This server is sending an error to its AOF-loading-client: '"
    ));
    assert!(lines[1].ends_with("after processing the command 'lpush'"));
    for port in [stock.port, ours.port] {
        let mut c = Raw::connect(port);
        let info = String::from_utf8_lossy(&cmd(&mut c, &["INFO", "stats"])).into_owned();
        assert!(info.contains("unexpected_error_replies:2\r\n"), "{info}");
        assert_eq!(cmd(&mut c, &["GET", "d"]), b"$1\r\n4\r\n");
    }
    drop(stock);
    drop(ours);

    let panic = [
        "--appendonly",
        "yes",
        "--propagation-error-behavior",
        "panic",
    ];
    let stock_log = stock_refuses(&stock_side.path, &panic);
    let (code, log) = common::redcell_refuses_in(&ours_side, &panic);
    assert_ne!(code, Some(0));
    let words = "This server panicked sending an error to its AOF-loading-client after \
                 processing the command 'incr'";
    assert!(stock_log.contains(words), "{stock_log}");
    assert!(log.contains(words), "{log}");
}

#[test]
fn truncated_tails_as_stock_treats_them() {
    let name = "appendonly.aof.1.incr.aof";
    for (what, tail, reverted) in [
        (
            "cut command",
            &b"*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$1"[..],
            false,
        ),
        (
            "open MULTI",
            b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$1\r\n3\r\n",
            true,
        ),
    ] {
        let dir = TempDir::new("aof-trunc");
        let incr = stock_dir(&dir.path);
        let good_len = std::fs::metadata(&incr).expect("stat").len();
        append(&incr, tail);

        // aof-load-truncated no: both refuse, in the same words.
        let strict = AofLoadOptions {
            load_truncated: false,
            ..Default::default()
        };
        let e = load(&dir.path, "appendonlydir", &strict)
            .err()
            .expect("refused");
        assert!(matches!(e, AofError::UnexpectedEof { .. }));
        let log = stock_refuses(
            &dir.path,
            &["--appendonly", "yes", "--aof-load-truncated", "no"],
        );
        assert!(log.contains(&e.to_string()), "{what}: `{e}` not in\n{log}");

        // aof-load-truncated yes: both accept and cut the file at the same offset.
        let (got, out) = load(&dir.path, "appendonlydir", &AofLoadOptions::default()).expect(what);
        let t = out.truncated.expect("truncated");
        assert_eq!((t.offset, t.reverted_multi), (good_len, reverted), "{what}");
        assert_eq!(t.file.name, name.as_bytes());
        assert_eq!(got.commands.len(), 3, "{what}: SELECT, SET a, SET b");
        let (stock, log) = stock_log_on(&dir.path, &[]);
        assert!(
            log.contains(&format!(
                "Truncating the AOF {name} at offset {good_len} !!!"
            )),
            "{what}:\n{log}"
        );
        assert_eq!(
            log.contains(&format!(
                "Revert incomplete MULTI/EXEC transaction in AOF file {name}"
            )),
            reverted
        );
        drop(stock);
        assert_eq!(std::fs::metadata(&incr).expect("stat").len(), good_len);
    }
}

#[test]
fn a_truncated_file_that_is_not_the_last_is_fatal() {
    let dir = TempDir::new("aof-notlast");
    let incr = stock_dir(&dir.path);
    append(&incr, b"*2\r\n$3\r\nGET");
    let aof_dir = dir.path.join("appendonlydir");
    std::fs::write(
        aof_dir.join("appendonly.aof.2.incr.aof"),
        b"*1\r\n$4\r\nPING\r\n",
    )
    .expect("w");
    let mut m = read_manifest(&aof_dir, DEFAULT_APPEND_FILENAME)
        .expect("read")
        .expect("manifest");
    m.new_incr_file(DEFAULT_APPEND_FILENAME);
    write_manifest(&aof_dir, DEFAULT_APPEND_FILENAME, &m).expect("write");
    let e = load(&dir.path, "appendonlydir", &AofLoadOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(e, AofError::TruncatedNotLast { .. }), "{e:?}");
    let log = stock_refuses(&dir.path, &["--appendonly", "yes"]);
    assert!(log.contains(&e.to_string()), "`{e}` not in\n{log}");
}

#[test]
fn bad_files_and_manifests_fail_in_stock_words() {
    type Damage = fn(&Path, &Path);
    let cases: &[(&str, Damage)] = &[
        ("corrupt byte", |incr, _| {
            // The second command's "*3" becomes "!3", with a good command after it.
            let mut b = std::fs::read(incr).expect("read");
            let at = b
                .windows(9)
                .rposition(|w| w == b"*3\r\n$3\r\nS")
                .expect("SET");
            b[at] = b'!';
            b.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$1\r\n3\r\n");
            std::fs::write(incr, b).expect("write");
        }),
        ("unknown command", |incr, _| {
            append(incr, b"*1\r\n$9\r\nNOSUCHCMD\r\n");
        }),
        ("missing file", |_, aof_dir| {
            let p = aof_dir.join("appendonly.aof.manifest");
            append(&p, b"file appendonly.aof.9.incr.aof seq 9 type i\n");
        }),
    ];
    for (what, damage) in cases {
        let dir = TempDir::new("aof-bad");
        let incr = stock_dir(&dir.path);
        damage(&incr, &dir.path.join("appendonlydir"));
        let e = load(&dir.path, "appendonlydir", &AofLoadOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        let log = stock_refuses(&dir.path, &["--appendonly", "yes"]);
        assert!(log.contains(&e.to_string()), "{what}: `{e}` not in\n{log}");
    }

    // Manifests stock refuses: our reason is its last line, our line number and text too.
    for manifest in [
        &b""[..],
        b"file appendonly.aof.1.base.rdb seq 1 type b\n\n",
        b"file appendonly.aof.1.base.rdb seq 1\n",
        b"file ../x seq 1 type b\n",
        b"file appendonly.aof.1.base.rdb seq 1 type x\n",
        b"file a seq 1 type b\nfile b seq 2 type b\n",
        b"file a seq 2 type i\nfile b seq 1 type i\n",
        b"file appendonly.aof.1.base.rdb seq 1 type b",
    ] {
        let dir = TempDir::new("aof-manifest");
        stock_dir(&dir.path);
        let aof_dir = dir.path.join("appendonlydir");
        std::fs::write(aof_dir.join("appendonly.aof.manifest"), manifest).expect("write");
        let e = AofManifest::parse(manifest).expect_err("refused");
        let log = stock_refuses(&dir.path, &["--appendonly", "yes"]);
        assert!(log.contains(e.reason), "`{}` not in\n{log}", e.reason);
        if let Some((n, line)) = &e.line {
            assert!(log.contains(&format!("Reading the manifest file, at line {n}")));
            assert!(log.contains(&format!(">>> '{line}'")), "{log}");
        }
    }
}

#[test]
fn a_cut_command_after_an_rdb_base_is_cut_at_the_base_end_not_at_zero() {
    // A deliberate difference: stock 7.0.15 starts `valid_up_to` at 0 and never moves it past
    // the RDB part, so it truncates the whole base away ("at offset 0") and the keys it just
    // loaded are gone at the next start. We report the end of the RDB part.
    let dir = TempDir::new("aof-rdbtail");
    let aof_dir = dir.path.join("appendonlydir");
    std::fs::create_dir_all(&aof_dir).expect("mkdir");
    let mut m = AofManifest::default();
    let base = String::from_utf8(m.new_base_file(DEFAULT_APPEND_FILENAME, true)).expect("name");
    let base_path = aof_dir.join(&base);
    our_rdb_base(&base_path);
    let rdb_len = std::fs::metadata(&base_path).expect("stat").len();
    append(&base_path, b"*3\r\n$3\r\nSET\r\n$1\r\nz");
    write_manifest(&aof_dir, DEFAULT_APPEND_FILENAME, &m).expect("manifest");

    let (got, out) = load(&dir.path, "appendonlydir", &AofLoadOptions::default()).expect("load");
    assert_eq!(got.entries.len(), sample_keys().len());
    let t = out.truncated.expect("truncated");
    assert_eq!(
        (t.file.name, t.offset),
        (base.clone().into_bytes(), rdb_len)
    );

    let (stock, log) = stock_log_on(&dir.path, &[]);
    assert!(
        log.contains(&format!("Truncating the AOF {base} at offset 0 !!!")),
        "{log}"
    );
    drop(stock);
    assert_eq!(std::fs::metadata(&base_path).expect("stat").len(), 0);
}

/// `aof-disable-auto-gc yes`: a rewrite keeps the files it replaced, listed as history, as
/// stock keeps them; the server still loads only base and incr after a restart; set back
/// to `no`, it deletes them at once.
#[test]
fn history_files_stay_with_auto_gc_disabled_as_in_stock() {
    // `always`: what was acknowledged is in the file when the server is killed below.
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-disable-auto-gc",
        "yes",
    ];
    let rewrite = |c: &mut Raw, aof_dir: &Path| {
        cmd(c, &["SET", "a", "1"]);
        cmd(c, &["BGREWRITEAOF"]);
        let manifest = aof_dir.join("appendonly.aof.manifest");
        let done = wait_until(Duration::from_secs(20), || {
            let info = String::from_utf8_lossy(&cmd(c, &["INFO", "persistence"])).into_owned();
            info.contains("aof_rewrite_in_progress:0")
                && std::fs::read_to_string(&manifest)
                    .unwrap_or_default()
                    .contains("seq 2 type b")
        });
        assert!(done, "BGREWRITEAOF did not finish");
        cmd(c, &["SET", "b", "2"]);
        std::fs::read_to_string(&manifest).expect("manifest")
    };
    let stock_dir = TempDir::new("aof-gc-stock");
    let stock = {
        let mut a = vec!["--dir", stock_dir.path.to_str().expect("utf-8")];
        a.extend_from_slice(&args);
        StockRedis::start(&a)
    };
    let stock_manifest = rewrite(
        &mut Raw::connect(stock.port),
        &stock_dir.path.join("appendonlydir"),
    );
    let ours_dir = TempDir::new("aof-gc-ours");
    let ours_args = {
        let mut a = vec!["--dir", ours_dir.path.to_str().expect("utf-8")];
        a.extend_from_slice(&args);
        a
    };
    let ours = common::Server::start(1, &ours_args);
    let aof_dir = ours_dir.path.join("appendonlydir");
    let ours_manifest = rewrite(&mut ours.raw(), &aof_dir);
    assert!(stock_manifest.contains("type h"), "{stock_manifest}");
    assert_eq!(ours_manifest, stock_manifest);
    for line in ours_manifest.lines() {
        let file = line.split(' ').nth(1).expect("file name");
        assert!(aof_dir.join(file).exists(), "{file} is listed but gone");
    }
    drop(ours); // SIGKILL
    let again = common::Server::start(1, &ours_args);
    let mut c = again.raw();
    assert_eq!(
        cmd(&mut c, &["MGET", "a", "b"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    );

    // Turned off, the option lets the history go at once (stock's `updateAofAutoGCEnabled`).
    let history: Vec<String> = ours_manifest
        .lines()
        .filter(|l| l.ends_with("type h"))
        .map(|l| l.split(' ').nth(1).expect("file name").to_string())
        .collect();
    let gc_off = ["CONFIG", "SET", "aof-disable-auto-gc", "no"];
    cmd(&mut Raw::connect(stock.port), &gc_off);
    cmd(&mut c, &gc_off);
    let stock_manifest =
        std::fs::read_to_string(stock_dir.path.join("appendonlydir/appendonly.aof.manifest"))
            .expect("stock manifest");
    assert!(!stock_manifest.contains("type h"), "{stock_manifest}");
    let manifest = aof_dir.join("appendonly.aof.manifest");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&manifest).unwrap_or_default() == stock_manifest
    }));
    for file in history {
        assert!(!aof_dir.join(&file).exists(), "{file} is still there");
    }
    assert!(again.stderr().contains("Removing the history file"));
}
