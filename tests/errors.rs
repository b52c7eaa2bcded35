//! Error replies, byte-exact: unknown commands, arity, SELECT, authentication.

mod common;

use common::Server;

#[test]
fn command_errors() {
    let server = Server::start(2, &[]);
    let mut raw = server.raw();
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"FOO a b\r\n",
            b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n",
        ),
        (
            b"*1\r\n$3\r\nfoo\r\n",
            b"-ERR unknown command 'foo', with args beginning with: \r\n",
        ),
        (
            b"*1\r\n$3\r\nGET\r\n",
            b"-ERR wrong number of arguments for 'get' command\r\n",
        ),
        (
            b"*4\r\n$3\r\nget\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
            b"-ERR wrong number of arguments for 'get' command\r\n",
        ),
        (
            b"SET k\r\n",
            b"-ERR wrong number of arguments for 'set' command\r\n",
        ),
        (
            b"MSET a 1 b\r\n",
            b"-ERR wrong number of arguments for 'mset' command\r\n",
        ),
        (
            b"PING a b\r\n",
            b"-ERR wrong number of arguments for 'ping' command\r\n",
        ),
        (b"SELECT 16\r\n", b"-ERR DB index is out of range\r\n"),
        (b"SELECT -1\r\n", b"-ERR DB index is out of range\r\n"),
        (b"SELECT 15\r\n", b"+OK\r\n"),
        (b"SELECT 0\r\n", b"+OK\r\n"),
        (b"SET k v XX NX\r\n", b"-ERR syntax error\r\n"),
        (b"SET n abc\r\n", b"+OK\r\n"),
        (
            b"INCR n\r\n",
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (
            b"AUTH x\r\n",
            b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
        ),
    ];
    for (input, reply) in cases {
        raw.send(input);
        raw.expect(reply);
    }
    // Errors never close the connection.
    raw.send(b"PING\r\n");
    raw.expect(b"+PONG\r\n");
}

#[test]
fn requirepass() {
    let n = 2;
    let server = Server::start(n, &["--requirepass", "secret"]);
    let noauth = b"-NOAUTH Authentication required.\r\n";
    let wrongpass = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    let mut raw = server.raw();
    for s in 0..n {
        let k = common::key_on_shard("a:", s, n);
        raw.send_cmd(&[b"GET", k.as_bytes()]);
        raw.expect(noauth);
    }
    raw.send(b"PING\r\n");
    raw.expect(noauth);
    raw.send(b"AUTH wrong\r\n");
    raw.expect(wrongpass);
    raw.send(b"AUTH default wrong\r\n");
    raw.expect(wrongpass);
    raw.send(b"AUTH nobody secret\r\n");
    raw.expect(wrongpass);
    raw.send(b"GET k\r\n");
    raw.expect(noauth);
    raw.send(b"AUTH secret\r\n");
    raw.expect(b"+OK\r\n");
    for s in 0..n {
        let k = common::key_on_shard("a:", s, n);
        raw.send_cmd(&[b"SET", k.as_bytes(), b"v"]);
        raw.expect(b"+OK\r\n");
        raw.send_cmd(&[b"GET", k.as_bytes()]);
        raw.expect(b"$1\r\nv\r\n");
    }
    // AUTH with the default user's name works too.
    let mut raw = server.raw();
    raw.send(b"AUTH default secret\r\nPING\r\n");
    raw.expect(b"+OK\r\n+PONG\r\n");
    // The redis crate authenticates from the URL.
    let client =
        redis::Client::open(format!("redis://:secret@127.0.0.1:{}/", server.port)).unwrap();
    let mut con = client
        .get_connection_with_timeout(common::IO_TIMEOUT)
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg(common::key_on_shard("a:", 0, n))
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "v");
}

#[test]
fn unauthenticated_limits() {
    let server = Server::start(1, &["--requirepass", "secret"]);
    let mut raw = server.raw();
    raw.send(b"*11\r\n");
    raw.expect(b"-ERR Protocol error: unauthenticated multibulk length\r\n");
    raw.expect_closed();
    let mut raw = server.raw();
    raw.send(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n");
    raw.expect(b"-ERR Protocol error: unauthenticated bulk length\r\n");
    raw.expect_closed();
    // Ten arguments are allowed before authenticating (and get NOAUTH).
    let mut raw = server.raw();
    let args: Vec<&[u8]> = std::iter::once(&b"MGET"[..])
        .chain(std::iter::repeat_n(&b"k"[..], 9))
        .collect();
    raw.send_cmd(&args);
    raw.expect(b"-NOAUTH Authentication required.\r\n");
    // Once authenticated, the limits no longer apply.
    raw.send(b"AUTH secret\r\n");
    raw.expect(b"+OK\r\n");
    let args: Vec<&[u8]> = std::iter::once(&b"MGET"[..])
        .chain(std::iter::repeat_n(&b"k"[..], 20))
        .collect();
    raw.send_cmd(&args);
    let reply = raw.read_reply();
    assert!(reply.starts_with(b"*20\r\n"), "{}", common::show(&reply));
}

#[test]
fn hello_auth() {
    let server = Server::start(1, &["--requirepass", "secret"]);
    let mut raw = server.raw();
    raw.send(b"HELLO 3\r\n");
    let reply = raw.read_reply();
    assert!(
        reply.starts_with(b"-NOAUTH HELLO must be called with the client already authenticated"),
        "{}",
        common::show(&reply)
    );
    raw.send(b"HELLO 3 AUTH default wrong\r\n");
    raw.expect(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    raw.send(b"HELLO 3 AUTH default secret\r\n");
    let reply = raw.read_reply();
    assert!(reply.starts_with(b"%7\r\n"), "{}", common::show(&reply));
    raw.send(b"GET k\r\n");
    raw.expect(b"_\r\n");
}
