//! ACL users against the real server: every ACL subcommand and rule compared with stock
//! redis-server 7.0 reply for reply, the key permissions of every keyed command compared
//! through ACL DRYRUN, and the behaviour around them (AUTH, NOPERM at the gate and at EXEC,
//! channels, the ACL log, killed connections, aclfile, `user` lines, requirepass, redis-cli).

mod common;

use std::time::Duration;

use common::{parse, show, Node, Raw, Server, StockRedis};

/// A reply, parsed, with what legitimately differs between two servers made equal: ACL LOG
/// ages and client lines, and the order of the single-command rules in a user description
/// (Redis lists them in its command dictionary's order, which is seeded at random).
fn normalized(reply: &[u8]) -> Node {
    let mut pos = 0;
    let mut node = parse(reply, &mut pos);
    assert_eq!(pos, reply.len(), "one reply: {}", show(reply));
    normalize(&mut node);
    node
}

fn normalize(node: &mut Node) {
    match node {
        Node::Agg(_, Some(items)) => {
            let mut i = 0;
            while i < items.len() {
                let volatile = matches!(&items[i], Node::Bulk(_, Some(k))
                    if k == b"age-seconds" || k == b"client-info");
                if volatile && i + 1 < items.len() {
                    items[i + 1] = Node::Line(b'+', b"(varies)".to_vec());
                    i += 2;
                    continue;
                }
                normalize(&mut items[i]);
                i += 1;
            }
        }
        Node::Bulk(_, Some(text)) if text.windows(4).any(|w| w == b"@all") => {
            let mut words: Vec<&[u8]> = text.split(|&c| c == b' ').collect();
            words.sort();
            *text = words.join(&b' ');
        }
        _ => {}
    }
}

fn words(line: &str) -> Vec<&[u8]> {
    line.split(' ').map(str::as_bytes).collect()
}

/// Sends each command to both servers and compares the (normalized) replies.
fn same_replies(ours: &mut Raw, stock: &mut Raw, script: &[&str]) {
    for line in script {
        let args = words(line);
        let (a, b) = (ours.call(&args), stock.call(&args));
        assert_eq!(
            normalized(&a),
            normalized(&b),
            "`{line}`: redcell {} vs stock {}",
            show(&a),
            show(&b)
        );
    }
}

fn pair() -> (Server, StockRedis) {
    (Server::start(2, &[]), StockRedis::start(&[]))
}

#[test]
fn acl_commands_and_rule_errors_match_stock() {
    let (server, stock) = pair();
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    same_replies(
        &mut a,
        &mut b,
        &[
            "ACL WHOAMI",
            "ACL USERS",
            "ACL LIST",
            "ACL GETUSER default",
            "ACL GETUSER nobody",
            "ACL CAT",
            "ACL CAT nosuchcat",
            "ACL CAT read extra",
            "ACL SETUSER alice",
            "ACL GETUSER alice",
            "ACL SETUSER alice on >p1 >p2 ~app:* %R~ro:* %W~wo:* %RW~both:* &news:* +@read +set -get",
            "ACL GETUSER alice",
            "ACL SETUSER alice <p2 resetkeys ~k allchannels",
            "ACL LIST",
            "ACL SETUSER alice #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
            "ACL SETUSER alice !5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
            "ACL GETUSER alice",
            "ACL SETUSER alice nopass",
            "ACL GETUSER alice",
            "ACL SETUSER alice resetpass allkeys resetchannels &a &b",
            "ACL GETUSER alice",
            "ACL SETUSER alice reset",
            "ACL GETUSER alice",
            "ACL SETUSER bob on nopass +@all -@dangerous ~*",
            "ACL SETUSER bob allcommands -config +config|get",
            "ACL GETUSER bob",
            "ACL SETUSER bob nocommands +select|0 +client|id",
            "ACL GETUSER bob",
            "ACL SETUSER bob -@all +@hash +@string -hset",
            "ACL GETUSER bob",
            "ACL SETUSER carol on nopass (~a* +get) (%R~b* +@read &ch)",
            "ACL GETUSER carol",
            "ACL LIST",
            "ACL SETUSER carol clearselectors",
            "ACL GETUSER carol",
            "ACL SETUSER carol ( ~x +get )",
            "ACL GETUSER carol",
            "ACL SETUSER carol skip-sanitize-payload",
            "ACL GETUSER carol",
            "ACL SETUSER carol sanitize-payload off",
            "ACL GETUSER carol",
            "ACL USERS",
            // Refused rules: the whole command changes nothing.
            "ACL SETUSER alice on +nosuchcommand",
            "ACL SETUSER alice +@nosuchcat",
            "ACL SETUSER alice -@nosuchcat",
            "ACL SETUSER alice ~* ~more",
            "ACL SETUSER alice allkeys ~more",
            "ACL SETUSER alice &* &more",
            "ACL SETUSER alice <notset",
            "ACL SETUSER alice #abc",
            "ACL SETUSER alice #5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8",
            "ACL SETUSER alice !abc",
            "ACL SETUSER alice +config|get|x",
            "ACL SETUSER alice +get|",
            "ACL SETUSER alice +config|nosuch",
            "ACL SETUSER alice -config|nosuch",
            "ACL SETUSER alice %X~a",
            "ACL SETUSER alice %~a",
            "ACL SETUSER alice bogus",
            "ACL SETUSER alice (~a +get",
            "ACL SETUSER alice (~a +nosuch)",
            "ACL SETUSER alice (on)",
            "ACL SETUSER alice -select|0",
            "ACL GETUSER alice",
            "ACL DELUSER default",
            "ACL DELUSER nobody",
            "ACL DELUSER alice bob nobody",
            "ACL USERS",
            "ACL GENPASS 0",
            "ACL GENPASS 4097",
            "ACL GENPASS x",
            "ACL LOG x",
            "ACL LOG -1",
            "ACL LOG 1 2",
            "ACL LOAD",
            "ACL SAVE",
            "ACL NOSUCH",
            "ACL",
            "ACL WHOAMI extra",
            "ACL DRYRUN nobody get k",
            "ACL DRYRUN default nosuch",
            "ACL DRYRUN default get",
            "ACL DRYRUN default get k",
            "ACL DRYRUN default config nosuch",
            "AUTH nobody x",
            "AUTH x",
            "AUTH a b c",
            "HELLO 2 AUTH nobody x",
            "CONFIG GET acllog-max-len",
            "CONFIG GET acl-pubsub-default",
            "CONFIG GET aclfile",
            "CONFIG SET acllog-max-len 2",
            "ACL LOG",
            "CONFIG SET acl-pubsub-default allchannels",
            "ACL SETUSER newbie",
            "ACL GETUSER newbie",
            "ACL SETUSER newbie reset",
            "ACL GETUSER newbie",
            "CONFIG SET acl-pubsub-default resetchannels",
            "ACL SETUSER newbie reset",
            "ACL GETUSER newbie",
            "CONFIG SET aclfile /tmp/x",
        ],
    );
    // RESP3: GETUSER and LOG are maps, flags a set.
    let (mut a3, mut b3) = common::pair(&server, &stock, true);
    same_replies(
        &mut a3,
        &mut b3,
        &[
            "ACL SETUSER dave on >x ~d:* %R~r:* &c +@read (~s +set)",
            "ACL GETUSER dave",
            "ACL GETUSER nobody",
            "AUTH dave wrong",
            "ACL LOG",
            "ACL LIST",
            "ACL USERS",
            "ACL DRYRUN dave get r:1",
            "ACL DRYRUN dave set r:1 v",
        ],
    );
    // GENPASS: hex of the asked number of bits, rounded up to whole characters.
    for (bits, chars) in [("", 64), ("1", 1), ("5", 2), ("256", 64), ("4096", 1024)] {
        let mut args = words("ACL GENPASS");
        if !bits.is_empty() {
            args.push(bits.as_bytes());
        }
        let reply = a.call(&args);
        let mut pos = 0;
        let Node::Bulk(_, Some(pass)) = parse(&reply, &mut pos) else {
            panic!("GENPASS {bits}: {}", show(&reply))
        };
        assert_eq!(pass.len(), chars, "GENPASS {bits}");
        assert!(pass.iter().all(u8::is_ascii_hexdigit));
    }
    // ACL CAT <category>: redcell lists the commands it has, each in stock's list too.
    let cat_of = |raw: &mut Raw, c: &str| -> Vec<Node> {
        let reply = raw.call(&words(&format!("ACL CAT {c}")));
        match parse(&reply, &mut 0) {
            Node::Agg(_, Some(v)) => v,
            other => panic!("ACL CAT {c}: {other:?}"),
        }
    };
    for category in [
        "read",
        "write",
        "keyspace",
        "dangerous",
        "pubsub",
        "connection",
    ] {
        let (ours, theirs) = (cat_of(&mut a, category), cat_of(&mut b, category));
        assert!(!ours.is_empty(), "{category}");
        for name in &ours {
            if theirs.contains(name) {
                continue;
            }
            // Only a command stock 7.0 lacks (CLIENT SETINFO is 7.2's) may be missing there.
            let Node::Bulk(_, Some(n)) = name else {
                panic!("{name:?}")
            };
            let info = b.call(&[b"COMMAND", b"INFO", n]);
            assert_eq!(
                info, b"*1\r\n$-1\r\n",
                "ACL CAT {category}: {name:?} not in stock's"
            );
        }
    }
}

/// The access every keyed command needs to its keys, walked over the whole command table:
/// ACL DRYRUN for users that may only read, only write, or only name the keys must say the
/// same on both servers.
#[test]
fn key_permissions_of_every_command_match_stock() {
    let (server, stock) = pair();
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    let users = [
        "ACL SETUSER r on nopass +@all %R~*",
        "ACL SETUSER w on nopass +@all %W~*",
        "ACL SETUSER firstr on nopass +@all %R~k1 %W~k2* %W~k3* %W~k4* %W~k5* %W~k6* %W~k7*",
        "ACL SETUSER firstw on nopass +@all %W~k1 %R~k2* %R~k3* %R~k4* %R~k5* %R~k6* %R~k7*",
        "ACL SETUSER none on nopass +@all ~nothing",
    ];
    same_replies(&mut a, &mut b, &users);
    // Commands whose keys move with their arguments: a well-formed call each.
    let movable: &[&str] = &[
        "zunionstore k1 2 k2 k3",
        "zinterstore k1 2 k2 k3",
        "zdiffstore k1 2 k2 k3",
        "zunion 2 k1 k2",
        "zinter 2 k1 k2",
        "zdiff 2 k1 k2",
        "zintercard 2 k1 k2",
        "sintercard 2 k1 k2",
        "lmpop 2 k1 k2 LEFT",
        "blmpop 0 2 k1 k2 LEFT",
        "zmpop 2 k1 k2 MIN",
        "bzmpop 0 2 k1 k2 MIN",
        "xread STREAMS k1 k2 0 0",
        "xreadgroup GROUP g c STREAMS k1 k2 0 0",
        "migrate h 1 k1 0 0",
        "migrate h 1 \"\" 0 0 KEYS k1 k2",
        "set k1 v GET",
        "set k1 v",
        "bitfield k1 GET u8 0",
        "bitfield k1 SET u8 0 1",
        "bitfield k1 GET u8 0 INCRBY u8 0 1",
    ];
    let mut calls: Vec<String> = movable.iter().map(|s| s.to_string()).collect();
    // Every other command with keys: keys at their positions, filler elsewhere.
    let reply = a.call(&words("COMMAND"));
    let Node::Agg(_, Some(commands)) = parse(&reply, &mut 0) else {
        panic!("COMMAND: {}", show(&reply))
    };
    let int = |n: &Node| match n {
        Node::Line(b':', v) => String::from_utf8_lossy(v).parse::<i64>().unwrap(),
        other => panic!("integer expected: {other:?}"),
    };
    let mut walk = vec![];
    for c in &commands {
        let Node::Agg(_, Some(info)) = c else {
            continue;
        };
        walk.push(info.clone());
        if let Node::Agg(_, Some(subs)) = &info[9] {
            for s in subs {
                if let Node::Agg(_, Some(si)) = s {
                    walk.push(si.clone());
                }
            }
        }
    }
    let mut checked = 0;
    for info in walk {
        let Node::Bulk(_, Some(name)) = &info[0] else {
            continue;
        };
        let name = String::from_utf8_lossy(name).to_string();
        let flags = format!("{:?}", info[2]);
        let (arity, first, last, step) =
            (int(&info[1]), int(&info[3]), int(&info[4]), int(&info[5]));
        if first <= 0
            || flags.contains("movablekeys")
            || movable.iter().any(|m| m.starts_with(&format!("{name} ")))
        {
            continue;
        }
        let argc = if arity > 0 {
            arity
        } else {
            (-arity).max(first + 2)
        };
        let argc = argc.max(first + 1) as usize;
        let last = if last < 0 { argc as i64 + last } else { last };
        let mut args: Vec<String> = name.split('|').map(str::to_string).collect();
        let mut keyno = 0;
        while args.len() < argc {
            let i = args.len() as i64;
            if i >= first && i <= last && (i - first) % step == 0 {
                keyno += 1;
                args.push(format!("k{keyno}"));
            } else {
                args.push("0".into());
            }
        }
        calls.push(args.join(" "));
        checked += 1;
    }
    assert!(checked > 120, "only {checked} keyed commands walked");
    for call in &calls {
        for user in ["r", "w", "firstr", "firstw", "none"] {
            let line = format!("ACL DRYRUN {user} {call}");
            let args: Vec<&[u8]> = line
                .split(' ')
                .map(|w| if w == "\"\"" { &b""[..] } else { w.as_bytes() })
                .collect();
            let (x, y) = (a.call(&args), b.call(&args));
            assert_eq!(x, y, "`{line}`: redcell {} vs stock {}", show(&x), show(&y));
        }
    }
    // And for real: a user confined to `app:*` runs every one of them and is refused at the
    // gate, as stock refuses it.
    let (mut ua, mut ub) = (server.raw(), Raw::connect(stock.port));
    same_replies(
        &mut ua,
        &mut ub,
        &["ACL SETUSER app on >pw ~app:* &* +@all", "AUTH app pw"],
    );
    // (Shard channel commands name channels, not keys: `&*` allows them.)
    let shard_channels = ["ssubscribe ", "sunsubscribe ", "spublish "];
    for call in calls
        .iter()
        .filter(|c| !shard_channels.iter().any(|s| c.starts_with(s)))
    {
        let args: Vec<&[u8]> = call
            .split(' ')
            .map(|w| if w == "\"\"" { &b""[..] } else { w.as_bytes() })
            .collect();
        let (x, y) = (ua.call(&args), ub.call(&args));
        assert_eq!(
            x,
            y,
            "`{call}` as app: redcell {} vs stock {}",
            show(&x),
            show(&y)
        );
        assert!(x.starts_with(b"-NOPERM"), "`{call}` as app: {}", show(&x));
    }
    assert_eq!(server.raw().call(&words("DBSIZE")), b":0\r\n");
}

/// Random rule strings: both servers accept or refuse each the same way (same error text),
/// and describe the user the same way after every accepted one.
#[test]
fn random_rules_agree_with_stock() {
    let (server, stock) = pair();
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    let hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
    let pass_hash = format!("#{hash}");
    let drop_hash = format!("!{hash}");
    let vocabulary: Vec<&str> = vec![
        "on",
        "off",
        "ON",
        ">pw",
        ">other",
        "<pw",
        "<nope",
        &pass_hash,
        &drop_hash,
        "#abc",
        "nopass",
        "resetpass",
        "~a*",
        "~b",
        "%R~r*",
        "%W~w*",
        "%RW~rw",
        "%WR~x",
        "%~y",
        "%R",
        "%Rz~z",
        "%RR~q",
        "allkeys",
        "~*",
        "resetkeys",
        "&ch",
        "&n*",
        "&*",
        "allchannels",
        "resetchannels",
        "+get",
        "-get",
        "+GET",
        "+set",
        "-set",
        "+@read",
        "-@read",
        "+@write",
        "+@hash",
        "-@string",
        "+@ALL",
        "-@all",
        "+@nosuch",
        "+nosuch",
        "+client|id",
        "-client|kill",
        "+client|nosuch",
        "+client",
        "-client",
        "+select|0",
        "+select|1",
        "+get|x",
        "+config|get|x",
        "+get|",
        "allcommands",
        "nocommands",
        "reset",
        "(",
        "(~x",
        "+get)",
        "(~y +set)",
        "()",
        "(+@read %R~p*)",
        "clearselectors",
        "bogus",
        "~",
        "&",
        "+",
        "-",
        "skip-sanitize-payload",
        "sanitize-payload",
        "~a b",
    ];
    let mut rng = common::Rng(0x05ee_dac1);
    let mut accepted = 0;
    for round in 0..400 {
        let n = 1 + rng.below(5) as usize;
        let mut args: Vec<&[u8]> = vec![b"ACL", b"SETUSER", b"fz"];
        for _ in 0..n {
            args.push(vocabulary[rng.below(vocabulary.len() as u64) as usize].as_bytes());
        }
        if round % 50 == 0 {
            args.push(b"reset");
        }
        let (x, y) = (a.call(&args), b.call(&args));
        let line: Vec<String> = args
            .iter()
            .map(|w| String::from_utf8_lossy(w).into())
            .collect();
        assert_eq!(
            x,
            y,
            "`{}`: redcell {} vs stock {}",
            line.join(" "),
            show(&x),
            show(&y)
        );
        if x == b"+OK\r\n" {
            accepted += 1;
        }
        let (x, y) = (
            a.call(&words("ACL GETUSER fz")),
            b.call(&words("ACL GETUSER fz")),
        );
        assert_eq!(
            normalized(&x),
            normalized(&y),
            "after `{}`: redcell {} vs stock {}",
            line.join(" "),
            show(&x),
            show(&y)
        );
    }
    assert!(accepted > 40, "only {accepted} of 400 rule sets accepted");
}

fn err_line(raw: &mut Raw, line: &str) -> String {
    String::from_utf8_lossy(&raw.call(&words(line)))
        .trim_end()
        .to_string()
}

#[test]
fn permissions_at_the_gate_in_exec_and_for_channels() {
    let (server, stock) = pair();
    for port in [server.port, stock.port] {
        let mut admin = Raw::connect(port);
        assert_eq!(
            err_line(
                &mut admin,
                "ACL SETUSER app on >pw ~app:* &chan:* -@all +get +set +del +multi +exec +publish +subscribe +psubscribe +acl|whoami +config|get +select|0"
            ),
            "+OK"
        );
    }
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    same_replies(
        &mut a,
        &mut b,
        &[
            "ACL LOG RESET",
            "AUTH app wrong",
            "AUTH app pw",
            "ACL WHOAMI",
            "SET app:1 v",
            "GET app:1",
            "GET other",
            "SET other v",
            "DEL app:1 other",
            "INCR app:1",
            "CONFIG GET maxclients",
            "CONFIG SET port 1",
            "SELECT 0",
            "SELECT 1",
            "PUBLISH chan:x m",
            "PUBLISH news m",
            "ACL LIST",
            "MULTI",
            "SET app:2 v",
            "GET other",
            "EXEC",
            "MULTI",
            "SET app:2 v",
            "EXEC",
            "PSUBSCRIBE chan:*",
        ],
    );
    // The log (newest first), as stock's but for times and client lines.
    let (mut la, mut lb) = (server.raw(), Raw::connect(stock.port));
    same_replies(&mut la, &mut lb, &["ACL LOG", "ACL LOG 2"]);
    // Restricting the default user takes effect on its open connections at once (they were
    // skipping the check), and lifting it too.
    same_replies(
        &mut la,
        &mut lb,
        &[
            "ACL SETUSER default -flushall ~* resetkeys ~ok:*",
            "FLUSHALL",
            "GET nope",
            "GET ok:1",
            "ACL SETUSER default +@all allkeys",
            "GET nope",
        ],
    );
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    same_replies(
        &mut a,
        &mut b,
        &["AUTH app pw", "SUBSCRIBE news", "PSUBSCRIBE chan*"],
    );
    // Rules changed between MULTI and EXEC: EXEC refuses the queued command.
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    same_replies(
        &mut a,
        &mut b,
        &["AUTH app pw", "MULTI", "SET app:3 v", "GET app:3"],
    );
    for port in [server.port, stock.port] {
        let mut admin = Raw::connect(port);
        assert_eq!(err_line(&mut admin, "ACL SETUSER app -set"), "+OK");
    }
    same_replies(&mut a, &mut b, &["EXEC", "ACL LOG 1"]);
}

#[test]
fn auth_hello_and_killed_connections() {
    let server = Server::start(2, &["--requirepass", "s3cret"]);
    let mut c = server.raw();
    assert_eq!(
        err_line(&mut c, "GET k"),
        "-NOAUTH Authentication required."
    );
    assert_eq!(
        err_line(&mut c, "AUTH wrong"),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(err_line(&mut c, "AUTH s3cret"), "+OK");
    assert_eq!(err_line(&mut c, "ACL SETUSER u1 on >p ~* +@all"), "+OK");
    assert_eq!(err_line(&mut c, "ACL SETUSER u2 off >p ~* +@all"), "+OK");
    // HELLO AUTH.
    let mut h = server.raw();
    let hello = h.call(&words("HELLO 3 AUTH u1 p"));
    assert!(hello.starts_with(b"%7\r\n"), "{}", show(&hello));
    assert_eq!(err_line(&mut h, "ACL WHOAMI"), "$2\r\nu1");
    let mut off = server.raw();
    assert_eq!(
        err_line(&mut off, "AUTH u2 p"),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    // CONFIG SET requirepass: the default user's only password.
    assert_eq!(err_line(&mut c, "CONFIG SET requirepass other"), "+OK");
    let mut d = server.raw();
    assert_eq!(
        err_line(&mut d, "AUTH default s3cret"),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(err_line(&mut d, "AUTH default other"), "+OK");
    // Connections of a user: CLIENT LIST shows it; CLIENT KILL USER; ACL DELUSER closes them
    // on every core.
    let mut many: Vec<Raw> = (0..4).map(|_| server.raw()).collect();
    for m in &mut many {
        assert_eq!(err_line(m, "AUTH u1 p"), "+OK");
    }
    let list = String::from_utf8_lossy(&c.call(&words("CLIENT LIST"))).to_string();
    assert_eq!(list.matches(" user=u1 ").count(), 5, "{list}");
    assert_eq!(
        err_line(&mut c, "CLIENT KILL USER nobody"),
        "-ERR No such user 'nobody'"
    );
    assert_eq!(err_line(&mut c, "CLIENT KILL USER u1"), ":5");
    h.expect_closed();
    for m in &mut many {
        m.expect_closed();
    }
    let mut again: Vec<Raw> = (0..3).map(|_| server.raw()).collect();
    for m in &mut again {
        assert_eq!(err_line(m, "AUTH u1 p"), "+OK");
    }
    assert_eq!(err_line(&mut c, "ACL DELUSER u1 u2"), ":2");
    for m in &mut again {
        m.expect_closed();
    }
    // A user deleting itself gets its reply, then is closed.
    assert_eq!(err_line(&mut c, "ACL SETUSER me on >p ~* +@all"), "+OK");
    let mut me = server.raw();
    assert_eq!(err_line(&mut me, "AUTH me p"), "+OK");
    assert_eq!(err_line(&mut me, "ACL DELUSER me"), ":1");
    me.expect_closed();
    // Revoking a channel closes the user's subscribers to it, not its other connections.
    assert_eq!(
        err_line(&mut c, "ACL SETUSER sub on >p ~* &a &b +@all"),
        "+OK"
    );
    let mut s1 = server.raw();
    let mut s2 = server.raw();
    let mut plain = server.raw();
    for r in [&mut s1, &mut s2, &mut plain] {
        assert_eq!(err_line(r, "AUTH sub p"), "+OK");
    }
    s1.call(&words("SUBSCRIBE a"));
    s2.call(&words("SUBSCRIBE b"));
    assert_eq!(err_line(&mut c, "ACL SETUSER sub resetchannels &b"), "+OK");
    s1.expect_closed();
    assert_eq!(err_line(&mut c, "PUBLISH b hi"), ":1");
    assert!(String::from_utf8_lossy(&s2.read_reply()).contains("hi"));
    assert_eq!(err_line(&mut plain, "PING"), "+PONG");
    // RESET: back to the default user, which needs a password.
    assert_eq!(err_line(&mut plain, "RESET"), "+RESET");
    assert_eq!(
        err_line(&mut plain, "GET k"),
        "-NOAUTH Authentication required."
    );
}

#[test]
fn aclfile_load_save_and_config_users() {
    let dir = common::TempDir::new("aclfile");
    let file = dir.file("users.acl");
    std::fs::write(
        &file,
        "user default on nopass ~* &* +@all\nuser app on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 ~app:* resetchannels -@all +get (~x +set)\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let server = Server::start(2, &["--aclfile", path]);
    let stock = StockRedis::start(&["--aclfile", path]);
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    same_replies(
        &mut a,
        &mut b,
        &[
            "ACL LIST",
            "ACL GETUSER app",
            "AUTH app password",
            "ACL WHOAMI",
            "GET app:1",
        ],
    );
    // SAVE writes what LOAD reads back; a broken file changes nothing.
    let mut c = server.raw();
    assert_eq!(
        err_line(&mut c, "ACL SETUSER extra on >x %R~r:* &c +@read"),
        "+OK"
    );
    assert_eq!(err_line(&mut c, "ACL SAVE"), "+OK");
    let before = c.call(&words("ACL LIST"));
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("user extra on #"), "{saved}");
    assert_eq!(err_line(&mut c, "ACL SETUSER extra off"), "+OK");
    assert_eq!(err_line(&mut c, "ACL LOAD"), "+OK");
    assert_eq!(c.call(&words("ACL LIST")), before);
    // `a` was authenticated as `app`: ACL LOAD closes every non-default user's connection.
    a.expect_closed();
    std::fs::write(&file, "user a on\nuser a off\nfoo bar\nuser b +nosuch\n").unwrap();
    let mut s = Raw::connect(stock.port);
    same_replies(&mut c, &mut s, &["ACL LOAD"]);
    assert_eq!(c.call(&words("ACL LIST")), before);
    std::fs::remove_file(&file).unwrap();
    let (x, y) = (err_line(&mut c, "ACL LOAD"), err_line(&mut s, "ACL LOAD"));
    assert_eq!(x.replace(path, "F"), y.replace(path, "F"));

    // `user` lines in the configuration (given as arguments, which both servers read as
    // configuration lines), overriding `requirepass`.
    let config: &[&str] = &[
        "--requirepass",
        "ignored",
        "--user",
        "default",
        "on",
        "nopass",
        "~*",
        "&*",
        "+@all",
        "--user",
        "ro",
        "on",
        ">pw",
        "%R~*",
        "-@all",
        "+@read",
        "+acl|whoami",
    ];
    let server = Server::start(1, config);
    let stock = StockRedis::start(config);
    let (mut a, mut b) = (server.raw(), Raw::connect(stock.port));
    same_replies(
        &mut a,
        &mut b,
        &[
            "ACL LIST",
            "GET x",
            "AUTH ro pw",
            "GET x",
            "SET x 1",
            "ACL WHOAMI",
        ],
    );
    // Both an aclfile and users in the configuration: refused at start-up, as Redis.
    std::fs::write(&file, "user default on nopass ~* &* +@all\n").unwrap();
    let out = common::run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_redcell-server"))
            .args(["--port", "0", "--aclfile", path])
            .args(config),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("either an ACL file or declare users"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn redis_cli_with_a_user() {
    let server = Server::start(2, &["--requirepass", "pw"]);
    let port = server.port.to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["-p", port.as_str()];
        all.extend_from_slice(args);
        let out = common::redis_cli(&all);
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    };
    assert_eq!(
        cli(&["--pass", "pw", "ACL", "SETUSER", "cli", "on", ">cp", "~c:*", "+@all"]),
        "OK"
    );
    assert_eq!(
        cli(&["--user", "cli", "--pass", "cp", "SET", "c:1", "v"]),
        "OK"
    );
    assert_eq!(
        cli(&["--user", "cli", "--pass", "cp", "ACL", "WHOAMI"]),
        "cli"
    );
    assert_eq!(
        cli(&["--user", "cli", "--pass", "cp", "GET", "other"]),
        "NOPERM this user has no permissions to access one of the keys used as arguments"
    );
    assert!(cli(&["--pass", "pw", "ACL", "LIST"]).contains("user cli on #"));
}

/// Commands a script runs are checked against the caller's user, as stock 7.0 checks them
/// (`scriptVerifyACL`): a command, a key or a channel the user may not use is refused inside
/// the script (an error `redis.pcall` returns), and the ACL log records it with context
/// `lua`.
#[test]
fn scripts_run_with_the_callers_permissions_as_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let users = [
        "ACL SETUSER noset on >pw ~* &* +@all -set",
        "ACL SETUSER somekeys on >pw ~allowed* &* +@all",
        "ACL SETUSER nochannels on >pw ~* resetchannels +@all",
    ];
    let scripts = [
        "return redis.call('set','allowed1','v')",
        "return redis.pcall('set','allowed1','v')",
        "return redis.call('get','allowed1')",
        "return redis.call('get','other')",
        "local r = redis.pcall('get','other') return r",
        "return redis.call('publish','ch','m')",
        "#!lua\nreturn redis.call('set','allowed2','v')",
    ];
    let mut seen: Vec<Vec<String>> = Vec::new();
    for port in [ours.port, stock.port] {
        let mut admin = Raw::connect(port);
        let mut got = Vec::new();
        for line in users {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            assert_eq!(admin.call(&args), b"+OK\r\n", "{line}");
        }
        for user in ["noset", "somekeys", "nochannels"] {
            let mut c = Raw::connect(port);
            assert_eq!(c.call(&[b"AUTH", user.as_bytes(), b"pw"]), b"+OK\r\n");
            for script in scripts {
                let reply = c.call(&[b"EVAL", script.as_bytes(), b"0"]);
                got.push(format!("{user}: {script}: {}", show(&reply)));
            }
        }
        // The newest entry: the last refusal, by `nochannels`, inside a script.
        let log = admin.call(&[b"ACL", b"LOG", b"1"]);
        let Node::Agg(_, Some(entries)) = parse(&log, &mut 0) else {
            panic!("ACL LOG: {}", show(&log));
        };
        let Some(Node::Agg(_, Some(fields))) = entries.first() else {
            panic!("ACL LOG: {}", show(&log));
        };
        for pair in fields.chunks(2) {
            if let [Node::Bulk(_, Some(k)), Node::Bulk(_, Some(v))] = pair {
                if [&b"reason"[..], b"context", b"object", b"username"].contains(&k.as_slice()) {
                    got.push(format!("log {}: {}", show(k), show(v)));
                }
            }
        }
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "redcell, then stock");
    assert!(
        seen[1].contains(&"log \"context\": \"lua\"".to_string()),
        "{:#?}",
        seen[1]
    );
}

/// A script whose keys turn out to live on another shard runs again holding every shard
/// (`cmd::scripting`); a refusal the first run met is logged once, as stock logs it.
#[test]
fn a_refusal_in_a_script_run_again_is_logged_once() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    // Its first command is refused; the twenty keys it then reads span both shards.
    let script = "redis.pcall('set','x','v') for i = 1, 20 do redis.call('get', 'k' .. i) end \
                  return 1";
    let mut counts = Vec::new();
    for port in [ours.port, stock.port] {
        let mut admin = Raw::connect(port);
        let setuser = [
            &b"ACL"[..],
            b"SETUSER",
            b"noset",
            b"on",
            b">pw",
            b"~*",
            b"+@all",
            b"-set",
        ];
        assert_eq!(admin.call(&setuser), b"+OK\r\n");
        let mut c = Raw::connect(port);
        assert_eq!(c.call(&[b"AUTH", b"noset", b"pw"]), b"+OK\r\n");
        assert_eq!(c.call(&[b"EVAL", script.as_bytes(), b"0"]), b":1\r\n");
        let log = admin.call(&[b"ACL", b"LOG"]);
        let Node::Agg(_, Some(entries)) = parse(&log, &mut 0) else {
            panic!("ACL LOG: {}", show(&log));
        };
        assert_eq!(entries.len(), 1, "ACL LOG: {}", show(&log));
        let Node::Agg(_, Some(fields)) = &entries[0] else {
            panic!("ACL LOG: {}", show(&log));
        };
        let count = fields.chunks(2).find_map(|pair| match pair {
            [Node::Bulk(_, Some(k)), Node::Line(b':', n)] if k == b"count" => {
                Some(String::from_utf8_lossy(n).into_owned())
            }
            _ => None,
        });
        counts.push(count);
    }
    let once = Some("1".to_string());
    assert_eq!(counts, [once.clone(), once], "redcell, then stock");
}
