//! The hot paths allocate nothing once warm: decoding a pipelined batch, serving a GET hit
//! and overwriting a key with a short string through `run_keyed` on a real shard. A counting
//! global allocator measures it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use redcell::cmd::{self, Handler};
use redcell::config::Config;
use redcell::resp::decode::Span;
use redcell::resp::{Args, Decoded, Decoder, Reply};
use redcell::shard::mesh::{build_mesh, Mesh};
use redcell::shard::{Shard, Shared};

/// Counts allocations made by the current thread while counting is on; with tracing on, keeps
/// the backtrace of the first one.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static TRACING: Cell<bool> = const { Cell::new(false) };
    static FIRST: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn note_alloc() {
    if !COUNTING.with(Cell::get) {
        return;
    }
    COUNT.with(|c| c.set(c.get() + 1));
    if TRACING.with(Cell::get) {
        // Capturing allocates: turn counting off meanwhile so this does not recurse.
        COUNTING.with(|c| c.set(false));
        TRACING.with(|t| t.set(false));
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        FIRST.with(|f| *f.borrow_mut() = Some(trace));
        COUNTING.with(|c| c.set(true));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `f` makes on this thread, and the backtrace of the first one if any.
fn count_allocs(f: impl FnOnce()) -> (u64, Option<String>) {
    FIRST.with(|f| *f.borrow_mut() = None);
    COUNT.with(|c| c.set(0));
    TRACING.with(|t| t.set(true));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    TRACING.with(|t| t.set(false));
    (COUNT.with(Cell::get), FIRST.with(|f| f.borrow_mut().take()))
}

fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// 16 pipelined requests, alternating SET and GET.
fn batch() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..8 {
        let key = format!("user:{i}:profile");
        encode(
            &[b"SET", key.as_bytes(), b"some value of moderate size"],
            &mut buf,
        );
        encode(&[b"GET", key.as_bytes()], &mut buf);
    }
    buf
}

/// Decodes every request of `buf`; returns how many and the total argument count.
fn decode_all(dec: &mut Decoder, buf: &[u8]) -> (usize, usize) {
    let (mut at, mut reqs, mut args) = (0, 0, 0);
    while at < buf.len() {
        match dec.decode(&buf[at..], false) {
            Decoded::Request { len, .. } => {
                let a = Args::new(&buf[at..at + len], dec.scratch(), dec.spans());
                args += a.len();
                std::hint::black_box(a.get(1));
                reqs += 1;
                at += len;
            }
            other => panic!("unexpected {other:?} at {at}"),
        }
    }
    (reqs, args)
}

#[test]
fn the_counter_sees_allocations() {
    let (n, first) = count_allocs(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(100));
        std::hint::black_box(format!("{}", 12345));
    });
    assert!(n >= 2, "counted {n}");
    assert!(
        first.is_some(),
        "no backtrace kept for the first allocation"
    );
}

#[test]
fn decoding_a_pipelined_batch_allocates_nothing() {
    let buf = batch();
    let mut dec = Decoder::new(512 << 20);
    assert_eq!(decode_all(&mut dec, &buf), (16, 40));
    let rounds = 10_000;
    let (n, first) = count_allocs(|| {
        for _ in 0..rounds {
            std::hint::black_box(decode_all(&mut dec, &buf));
        }
    });
    println!(
        "decoder: {n} allocations over {rounds} batches of 16 requests ({} per request)",
        n as f64 / (rounds * 16) as f64
    );
    assert_eq!(
        n,
        0,
        "decoding allocated; first allocation at:\n{}",
        first.unwrap_or_default()
    );
}

fn shared(nshards: usize) -> Arc<Shared> {
    Arc::new(Shared {
        upcalls: redcell::cmd::upcalls(),
        ..Shared::new(nshards, Config::default())
    })
}

/// Arguments of a request held in `buf`, with spans covering it.
struct Request {
    buf: Vec<u8>,
    spans: Vec<Span>,
}

impl Request {
    fn new(args: &[&[u8]]) -> Request {
        let mut buf = Vec::new();
        encode(args, &mut buf);
        let mut dec = Decoder::new(512 << 20);
        assert!(matches!(dec.decode(&buf, false), Decoded::Request { .. }));
        let spans = dec.spans().to_vec();
        Request { buf, spans }
    }

    fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &[], &self.spans)
    }
}

fn keyed(name: &[u8]) -> (usize, cmd::KeyedFn) {
    let idx = cmd::table().lookup(name).expect("command exists");
    match cmd::table().specs[idx].handler {
        Handler::Keyed(f) => (idx, f),
        _ => panic!("not a keyed command"),
    }
}

/// A small glommio executor for the tests that run inside one.
fn executor() -> glommio::LocalExecutor {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 * 1024)
        .ring_depth(64)
        .make()
        .expect("glommio executor (needs io_uring)")
}

#[test]
fn serving_a_get_hit_allocates_nothing() {
    let ex = executor();
    ex.run(async {
        let ends = build_mesh(1).expect("an eventfd").pop().unwrap();
        let (mesh, _inbox) = Mesh::new(ends);
        let shard = Rc::new(Shard::new(0, 1, false, shared(1), mesh));
        let now = redcell::util::time::now_ms();
        let mut out = Reply::new(false);
        let (set_idx, set) = keyed(b"set");
        let (get_idx, get) = keyed(b"get");
        // Two encodings of string values: embedded text and an integer.
        for (key, value) in [
            (&b"user:1000"[..], &b"hello world"[..]),
            (b"counter", b"12345"),
        ] {
            let req = Request::new(&[b"SET", key, value]);
            redcell::server::conn::run_here(
                &shard,
                0,
                set_idx,
                set,
                &req.args(),
                &mut out,
                now,
                None,
                Default::default(),
            );
            assert_eq!(out.buf, b"+OK\r\n");
            out.buf.clear();
        }
        let gets = [
            (
                Request::new(&[b"GET", b"user:1000"]),
                &b"$11\r\nhello world\r\n"[..],
            ),
            (Request::new(&[b"GET", b"counter"]), b"$5\r\n12345\r\n"),
        ];
        // Warm-up, checking the replies.
        for (req, reply) in &gets {
            for _ in 0..100 {
                redcell::server::conn::run_here(
                    &shard,
                    0,
                    get_idx,
                    get,
                    &req.args(),
                    &mut out,
                    now,
                    None,
                    Default::default(),
                );
                assert_eq!(out.buf, *reply);
                out.buf.clear();
            }
        }
        for (req, reply) in &gets {
            let args = req.args();
            let calls = 10_000;
            let (n, first) = count_allocs(|| {
                for _ in 0..calls {
                    redcell::server::conn::run_here(
                        &shard,
                        0,
                        get_idx,
                        get,
                        &args,
                        &mut out,
                        now,
                        None,
                        Default::default(),
                    );
                    out.buf.clear();
                }
            });
            println!(
                "GET hit ({}): {n} allocations over {calls} calls",
                String::from_utf8_lossy(args.get(1))
            );
            assert_eq!(
                n,
                0,
                "serving GET allocated; first allocation at:\n{}",
                first.unwrap_or_default()
            );
            redcell::server::conn::run_here(
                &shard,
                0,
                get_idx,
                get,
                &args,
                &mut out,
                now,
                None,
                Default::default(),
            );
            assert_eq!(out.buf, *reply);
            out.buf.clear();
        }
        // Overwriting a key with a short string: the value lives in the key's entry, so
        // a warm SET allocates nothing either (the journal's buffer is warm by now).
        let set_req = Request::new(&[b"SET", b"user:1000", b"hello world"]);
        let set_args = set_req.args();
        let run_set = |out: &mut Reply| {
            redcell::server::conn::run_here(
                &shard,
                0,
                set_idx,
                set,
                &set_args,
                out,
                now,
                None,
                Default::default(),
            );
            assert_eq!(out.buf, b"+OK\r\n");
            out.buf.clear();
        };
        for _ in 0..1000 {
            run_set(&mut out);
        }
        let calls = 10_000;
        let (n, first) = count_allocs(|| {
            for _ in 0..calls {
                run_set(&mut out);
            }
        });
        println!("SET overwrite: {n} allocations over {calls} calls");
        assert_eq!(
            n,
            0,
            "overwriting with SET allocated; first allocation at:\n{}",
            first.unwrap_or_default()
        );
        let hits = shard
            .data
            .borrow()
            .as_ref()
            .map_or(0, |d| d.db_ref(0).stats.hits);
        assert!(hits >= 20_000, "keyspace hits {hits}");
    });
}

/// The ACL check of a user confined to some keys and commands (the gate runs it for every
/// command of such a user) allocates nothing for commands with keys at fixed positions.
#[test]
fn checking_a_confined_users_permissions_allocates_nothing() {
    use redcell::acl::{Denied, User};
    let cat = cmd::permission::catalog();
    let mut user = User::new(cat, b"app", false);
    for rule in [
        "on",
        "nopass",
        "-@all",
        "+@read",
        "+set",
        "%R~cache:*",
        "~app:*",
        "&news",
    ] {
        user.apply(cat, rule.as_bytes(), false).expect("rule");
    }
    let t = cmd::table();
    let cases = [
        (Request::new(&[b"GET", b"app:1"]), Ok(())),
        (Request::new(&[b"SET", b"app:1", b"v", b"GET"]), Ok(())),
        (Request::new(&[b"MGET", b"app:1", b"cache:2"]), Ok(())),
        (
            Request::new(&[b"SET", b"cache:1", b"v"]),
            Err(Denied::Key(1)),
        ),
        (Request::new(&[b"DEL", b"app:1"]), Err(Denied::Command)),
        (
            Request::new(&[b"PUBLISH", b"other", b"m"]),
            Err(Denied::Command),
        ),
    ];
    let idx: Vec<usize> = cases
        .iter()
        .map(|(r, _)| t.lookup(r.args().get(0)).expect("command"))
        .collect();
    for ((req, want), &i) in cases.iter().zip(&idx) {
        assert_eq!(cmd::permission::check(&user, i, &req.args()), *want);
    }
    let (count, first) = count_allocs(|| {
        for _ in 0..10_000 {
            for ((req, _), &i) in cases.iter().zip(&idx) {
                let _ = std::hint::black_box(cmd::permission::check(&user, i, &req.args()));
            }
        }
    });
    assert_eq!(
        count,
        0,
        "the ACL check allocated; first allocation at:\n{}",
        first.unwrap_or_default()
    );
}

/// The epoll socket path (`--io epoll`): reading requests that are already in the socket and
/// writing their replies allocates nothing (a `recv` and glommio's direct `send`; only a
/// socket found empty registers a waker, and only an idle shard arms glommio's poll).
#[test]
fn reading_and_answering_on_the_epoll_path_allocates_nothing() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use redcell::server::readiness::{EpollStream, Readiness};
    use std::io::{Read, Write};

    const REQUESTS: usize = 2000;
    let ex = executor();
    ex.run(async {
        let ends = build_mesh(1).expect("an eventfd").pop().unwrap();
        let (mesh, _inbox) = Mesh::new(ends);
        let shard = Rc::new(Shard::new(0, 1, false, shared(1), mesh));
        let nap = Some(std::time::Duration::from_micros(200));
        let readiness = Readiness::new(nap, None).expect("epoll set");
        glommio::spawn_local(readiness.clone().drive(shard)).detach();
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.write_all(&b"PING\r\n".repeat(REQUESTS)).expect("write");
            let mut replies = vec![0u8; 7 * REQUESTS];
            s.read_exact(&mut replies).expect("replies");
            replies
        });
        let socket = listener.accept().await.expect("accept");
        let Ok(mut stream) = EpollStream::new(socket, readiness) else {
            panic!("the epoll set refused the socket");
        };
        let mut request = [0u8; 6];
        // The first request may find the socket empty (and wait); the rest are all there.
        stream.read_exact(&mut request).await.expect("read");
        stream.write_all(b"+PONG\r\n").await.expect("write");
        // Wait (bounded) until the other requests are all in the socket, so no read waits.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut queued: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) }, 0);
            if queued as usize >= 6 * (REQUESTS - 1) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "requests did not arrive"
            );
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        FIRST.with(|f| *f.borrow_mut() = None);
        COUNT.with(|c| c.set(0));
        TRACING.with(|t| t.set(true));
        COUNTING.with(|c| c.set(true));
        for _ in 1..REQUESTS {
            stream.read_exact(&mut request).await.expect("read");
            assert_eq!(&request, b"PING\r\n");
            stream.write_all(b"+PONG\r\n").await.expect("write");
        }
        COUNTING.with(|c| c.set(false));
        TRACING.with(|t| t.set(false));
        let (count, first) = (COUNT.with(Cell::get), FIRST.with(|f| f.borrow_mut().take()));
        assert_eq!(count, 0, "first allocation:\n{}", first.unwrap_or_default());
        let replies = client.join().expect("client");
        assert_eq!(replies, b"+PONG\r\n".repeat(REQUESTS));
    });
}
