//! TLS (`tls-port`, `tls-replication`, `tls-cluster`) with real processes: redis-cli --tls and
//! the `redis` crate over rustls; client certificates required, optional or not asked for;
//! plain and TLS ports side by side, and TLS alone; garbage on the TLS port; certificate
//! reload on CONFIG SET; start-up errors; replication both ways with a stock TLS redis-server;
//! the cluster bus over TLS.
//!
//! Certificates are made at run time with the `openssl` command (a CA, a server and a client
//! certificate, and a second CA for the reload test), in each test's temp dir.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    die_with_parent, free_port, run_bounded, wait_until, ChildGuard, Server, StockRedis, TempDir,
    BIN,
};

/// A CA with a server and a client certificate it signed, as PEM files.
struct Certs {
    dir: PathBuf,
    tag: String,
}

impl Certs {
    /// Makes `<tag>-ca`, `<tag>-server` and `<tag>-client` (.crt and .key) in `dir`: P-256 keys
    /// (quick to make), the server's valid for 127.0.0.1 and localhost.
    fn make(dir: &Path, tag: &str) -> Certs {
        let c = Certs {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
        };
        let ext = dir.join(format!("{tag}-ext.cnf"));
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             keyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("ext file");
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-sha256",
            "-days",
            "2",
            "-subj",
            &format!("/O=redcell test/CN={tag} CA"),
            "-keyout",
            &c.key("ca"),
            "-out",
            &c.crt("ca"),
        ]);
        for who in ["server", "client"] {
            let csr = dir.join(format!("{tag}-{who}.csr"));
            openssl(&[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-subj",
                &format!("/O=redcell test/CN={tag} {who}"),
                "-keyout",
                &c.key(who),
                "-out",
                csr.to_str().expect("utf-8 path"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                csr.to_str().expect("utf-8 path"),
                "-CA",
                &c.crt("ca"),
                "-CAkey",
                &c.key("ca"),
                "-CAcreateserial",
                "-days",
                "2",
                "-sha256",
                "-extfile",
                ext.to_str().expect("utf-8 path"),
                "-out",
                &c.crt(who),
            ]);
        }
        c
    }

    fn crt(&self, who: &str) -> String {
        self.path(&format!("{}-{who}.crt", self.tag))
    }

    fn key(&self, who: &str) -> String {
        self.path(&format!("{}-{who}.key", self.tag))
    }

    fn path(&self, name: &str) -> String {
        self.dir
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_string()
    }

    /// The server-side directives: certificate, key and CA.
    fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.crt("server"),
            "--tls-key-file".into(),
            self.key("server"),
            "--tls-ca-cert-file".into(),
            self.crt("ca"),
        ]
    }
}

fn openssl(args: &[&str]) {
    let out = run_bounded(Command::new("openssl").args(args), Duration::from_secs(30));
    assert!(
        out.status.success(),
        "openssl {args:?} failed (the README's test command installs openssl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `redis-cli --tls` to `port` trusting `certs`' CA, presenting its client certificate when
/// `client_cert`; stdout and stderr together, trimmed.
fn tls_cli(port: u16, certs: &Certs, client_cert: bool, args: &[&str]) -> String {
    let port = port.to_string();
    let (ca, crt, key) = (certs.crt("ca"), certs.crt("client"), certs.key("client"));
    let mut all = vec!["-h", "127.0.0.1", "-p", &port, "--tls", "--cacert", &ca];
    if client_cert {
        all.extend(["--cert", &crt, "--key", &key]);
    }
    all.extend_from_slice(args);
    let out = common::redis_cli(&all);
    text(&out)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

fn str_args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// redcell with a plain port (the harness's) and a TLS port, and the certificates.
fn start_with_tls(dir: &TempDir, extra: &[&str]) -> (Server, u16, Certs) {
    let certs = Certs::make(&dir.path, "t");
    let tls_port = free_port();
    let tls_port_s = tls_port.to_string();
    let mut args = vec!["--tls-port".to_string(), tls_port_s];
    args.extend(certs.server_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Server::start(2, &str_args(&args));
    (server, tls_port, certs)
}

/// The value of one INFO field over the plain port.
fn info_field(server: &Server, section: &str, field: &str) -> String {
    let out = text(&server.cli(&["INFO", section]));
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn redis_cli_runs_commands_over_tls_beside_the_plain_port() {
    let dir = TempDir::new("tls-cli");
    let (server, tls_port, certs) = start_with_tls(&dir, &[]);
    assert_eq!(tls_cli(tls_port, &certs, true, &["SET", "k", "v1"]), "OK");
    assert_eq!(tls_cli(tls_port, &certs, true, &["GET", "k"]), "v1");
    // The same data on the plain port, at the same time.
    assert_eq!(text(&server.cli(&["GET", "k"])), "v1");
    assert_eq!(text(&server.cli(&["SET", "k", "v2"])), "OK");
    assert_eq!(tls_cli(tls_port, &certs, true, &["GET", "k"]), "v2");
    // Pipelined and multi-shard commands over TLS.
    assert_eq!(
        tls_cli(
            tls_port,
            &certs,
            true,
            &["MSET", "a", "1", "b", "2", "c", "3"]
        ),
        "OK"
    );
    assert_eq!(
        tls_cli(tls_port, &certs, true, &["MGET", "a", "b", "c"]),
        "1\n2\n3"
    );
    // CLIENT LIST shows a TLS client as any other, on the TLS port's address.
    let list = tls_cli(tls_port, &certs, true, &["CLIENT", "LIST"]);
    assert!(
        list.contains(&format!("laddr=127.0.0.1:{tls_port}")) && list.contains("cmd=client|list"),
        "{list}"
    );
    // CONFIG GET shows the TLS directives.
    let got = text(&server.cli(&["CONFIG", "GET", "tls-port"]));
    assert_eq!(got, format!("tls-port\n{tls_port}"));
    let got = text(&server.cli(&["CONFIG", "GET", "tls-auth-clients"]));
    assert_eq!(got, "tls-auth-clients\nyes");
    // A big value crosses several TLS records both ways.
    let big = "x".repeat(300_000);
    let mut plain = server.conn();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut plain)
        .expect("SET big");
    let back = tls_cli(tls_port, &certs, true, &["STRLEN", "big"]);
    assert_eq!(back, "300000");
    // The plain connection and INFO's own, once the redis-cli connections are gone.
    assert!(wait_until(Duration::from_secs(10), || info_field(
        &server,
        "clients",
        "connected_clients"
    ) == "2"));
}

/// A `redis` crate client over TLS (its rustls transport) to `port`.
fn redis_tls_client(port: u16, certs: &Certs, client_cert: bool) -> redis::Client {
    let read = |p: String| std::fs::read(p).expect("cert file");
    let client_tls = client_cert.then(|| redis::ClientTlsConfig {
        client_cert: read(certs.crt("client")),
        client_key: read(certs.key("client")),
    });
    redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{port}/"),
        redis::TlsCertificates {
            client_tls,
            root_cert: Some(read(certs.crt("ca"))),
        },
    )
    .expect("TLS client")
}

#[test]
fn redis_crate_over_rustls() {
    let dir = TempDir::new("tls-crate");
    let (_server, tls_port, certs) = start_with_tls(&dir, &[]);
    let client = redis_tls_client(tls_port, &certs, true);
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("TLS connection");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _: () = redis::cmd("SET")
        .arg("crate")
        .arg("yes")
        .query(&mut con)
        .expect("SET");
    let v: String = redis::cmd("GET").arg("crate").query(&mut con).expect("GET");
    assert_eq!(v, "yes");
    // A pipeline of 1,000 commands in one write.
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("INCR").arg(format!("n{}", i % 10)).ignore();
    }
    pipe.cmd("GET").arg("n3");
    let (n3,): (i64,) = pipe.query(&mut con).expect("pipeline");
    assert_eq!(n3, 100);
    // Without a client certificate the handshake (or the first reply) fails.
    let refused = redis_tls_client(tls_port, &certs, false)
        .get_connection_with_timeout(Duration::from_secs(10))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    assert!(refused.is_err(), "served without a certificate");
}

#[test]
fn client_certificate_required_optional_or_not_asked_for() {
    let dir = TempDir::new("tls-auth");
    let (server, tls_port, certs) = start_with_tls(&dir, &[]);
    // yes (the default): no certificate, no service.
    let without = tls_cli(tls_port, &certs, false, &["PING"]);
    assert!(!without.contains("PONG"), "{without}");
    assert_eq!(tls_cli(tls_port, &certs, true, &["PING"]), "PONG");
    // no: a client without a certificate is served.
    assert_eq!(
        text(&server.cli(&["CONFIG", "SET", "tls-auth-clients", "no"])),
        "OK"
    );
    assert_eq!(tls_cli(tls_port, &certs, false, &["PING"]), "PONG");
    assert_eq!(tls_cli(tls_port, &certs, true, &["PING"]), "PONG");
    // optional: both, but a certificate that is presented must be good.
    assert_eq!(
        text(&server.cli(&["CONFIG", "SET", "tls-auth-clients", "optional"])),
        "OK"
    );
    assert_eq!(tls_cli(tls_port, &certs, false, &["PING"]), "PONG");
    assert_eq!(tls_cli(tls_port, &certs, true, &["PING"]), "PONG");
    let other = Certs::make(&dir.path, "other");
    let foreign = common::redis_cli(&[
        "-h",
        "127.0.0.1",
        "-p",
        &tls_port.to_string(),
        "--tls",
        "--cacert",
        &certs.crt("ca"),
        "--cert",
        &other.crt("client"),
        "--key",
        &other.key("client"),
        "PING",
    ]);
    assert!(!text(&foreign).contains("PONG"), "{}", text(&foreign));
    // Back to yes.
    assert_eq!(
        text(&server.cli(&["CONFIG", "SET", "tls-auth-clients", "yes"])),
        "OK"
    );
    let without = tls_cli(tls_port, &certs, false, &["PING"]);
    assert!(!without.contains("PONG"), "{without}");
    assert_eq!(
        text(&server.cli(&["CONFIG", "SET", "tls-auth-clients", "maybe"])),
        "ERR CONFIG SET failed (possibly related to argument 'tls-auth-clients') - argument(s) must be one of the following: no, yes, optional"
    );
}

#[test]
fn tls_port_alone_with_port_0() {
    let dir = TempDir::new("tls-only");
    let certs = Certs::make(&dir.path, "t");
    let tls_port = free_port();
    let mut args = vec![
        "--port".to_string(),
        "0".into(),
        "--tls-port".into(),
        tls_port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--shards".into(),
        "2".into(),
        "--save".into(),
        "".into(),
    ];
    args.extend(certs.server_args());
    let mut cmd = Command::new(BIN);
    cmd.args(&args)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.file("stderr")).expect("stderr"));
    die_with_parent(&mut cmd);
    let _guard = ChildGuard {
        child: cmd.spawn().expect("start redcell"),
    };
    assert!(
        wait_until(Duration::from_secs(10), || tls_cli(
            tls_port,
            &certs,
            true,
            &["PING"]
        ) == "PONG"),
        "no PONG over TLS: {}",
        std::fs::read_to_string(dir.file("stderr")).unwrap_or_default()
    );
    assert_eq!(
        tls_cli(tls_port, &certs, true, &["SET", "only", "tls"]),
        "OK"
    );
    assert_eq!(tls_cli(tls_port, &certs, true, &["GET", "only"]), "tls");
    // INFO's tcp_port is the TLS port when there is no plain one, as Redis.
    let info = tls_cli(tls_port, &certs, true, &["INFO", "server"]);
    assert!(info.contains(&format!("tcp_port:{tls_port}")), "{info}");
    assert_eq!(
        tls_cli(tls_port, &certs, true, &["CONFIG", "GET", "port"]),
        "port\n0"
    );
}

#[test]
fn garbage_and_plain_text_on_the_tls_port_hurt_no_one() {
    let dir = TempDir::new("tls-garbage");
    let (server, tls_port, certs) = start_with_tls(&dir, &[]);
    // A long-lived TLS client, served before, during and after.
    let client = redis_tls_client(tls_port, &certs, true);
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("TLS connection");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let addr = format!("127.0.0.1:{tls_port}");
    let mut silent = Vec::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut served = 0;
    for round in 0..20 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let bytes: Vec<u8> = match round % 4 {
            0 => b"*1\r\n$4\r\nPING\r\n".to_vec(),
            1 => b"PING\r\n".to_vec(),
            // A TLS record header claiming a huge handshake, then nothing.
            2 => vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb],
            _ => (0..4096)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect(),
        };
        let _ = s.write_all(&bytes);
        if round % 4 == 2 {
            silent.push(s); // keeps waiting for the rest of the record
            continue;
        }
        // Whatever comes back (an alert, nothing), the connection ends and no RESP reply
        // is ever sent in clear text.
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            !got.starts_with(b"+PONG"),
            "plain-text reply on the TLS port"
        );
        served += 1;
        let n: i64 = redis::cmd("INCR")
            .arg("alive")
            .query(&mut con)
            .expect("INCR");
        assert_eq!(n, served);
    }
    // Silent half-handshakes hold no one up either.
    assert_eq!(tls_cli(tls_port, &certs, true, &["PING"]), "PONG");
    assert_eq!(text(&server.cli(&["PING"])), "PONG");
    drop(silent);
    let n: i64 = redis::cmd("INCR")
        .arg("alive")
        .query(&mut con)
        .expect("INCR");
    assert_eq!(n, served + 1);
}

#[test]
fn config_set_of_the_certificate_serves_new_connections_with_it() {
    let dir = TempDir::new("tls-reload");
    let (server, tls_port, first) = start_with_tls(&dir, &["--tls-auth-clients", "no"]);
    let second = Certs::make(&dir.path, "second");
    let ping_trusting = |ca: &Certs| {
        text(&common::redis_cli(&[
            "-h",
            "127.0.0.1",
            "-p",
            &tls_port.to_string(),
            "--tls",
            "--cacert",
            &ca.crt("ca"),
            "PING",
        ]))
    };
    assert_eq!(ping_trusting(&first), "PONG");
    assert!(!ping_trusting(&second).contains("PONG"));
    // A connection opened before the reload keeps its session.
    let client = redis_tls_client(tls_port, &first, false);
    let mut old = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("TLS connection");
    old.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let reply = text(&server.cli(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        &second.crt("server"),
        "tls-key-file",
        &second.key("server"),
    ]));
    assert_eq!(reply, "OK");
    assert_eq!(ping_trusting(&second), "PONG");
    assert!(!ping_trusting(&first).contains("PONG"));
    let pong: String = redis::cmd("PING").query(&mut old).expect("old connection");
    assert_eq!(pong, "PONG");
    assert_eq!(
        text(&server.cli(&["CONFIG", "GET", "tls-cert-file"])),
        format!("tls-cert-file\n{}", second.crt("server"))
    );
    // A bad file is refused with Redis's words; values and certificate stay as they were.
    let missing = dir.file("missing.crt");
    let reply = text(&server.cli(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        missing.to_str().expect("utf-8"),
    ]));
    assert_eq!(
        reply,
        "ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs."
    );
    std::fs::write(dir.file("garbage.key"), "not a key\n").expect("write");
    let reply = text(&server.cli(&[
        "CONFIG",
        "SET",
        "tls-key-file",
        dir.file("garbage.key").to_str().expect("utf-8"),
    ]));
    assert!(
        reply.contains("Unable to update TLS configuration"),
        "{reply}"
    );
    assert_eq!(
        text(&server.cli(&["CONFIG", "GET", "tls-cert-file"])),
        format!("tls-cert-file\n{}", second.crt("server"))
    );
    assert_eq!(ping_trusting(&second), "PONG");
    assert!(server.stderr().contains("Failed to load certificate:"));
    // tls-protocols and tls-ciphersuites are checked the same way.
    let reply = text(&server.cli(&["CONFIG", "SET", "tls-protocols", "SSLv3"]));
    assert!(
        reply.contains("Unable to update TLS configuration"),
        "{reply}"
    );
    assert_eq!(
        text(&server.cli(&["CONFIG", "SET", "tls-protocols", "TLSv1.2"])),
        "OK"
    );
    assert_eq!(ping_trusting(&second), "PONG");
    assert_eq!(
        text(&server.cli(&[
            "CONFIG",
            "SET",
            "tls-protocols",
            "TLSv1.3",
            "tls-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256"
        ])),
        "OK"
    );
    assert_eq!(ping_trusting(&second), "PONG");
    let reply = text(&server.cli(&["CONFIG", "SET", "tls-ciphersuites", "TLS_NOPE"]));
    assert!(
        reply.contains("Unable to update TLS configuration"),
        "{reply}"
    );
}

/// Starts redcell with `args` expecting it to fail; its stderr.
fn failed_start(dir: &TempDir, args: &[String]) -> String {
    let out = run_bounded(
        Command::new(BIN).args(args).current_dir(&dir.path),
        Duration::from_secs(10),
    );
    assert!(!out.status.success(), "started: {}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn start_up_errors_are_redis_words() {
    let dir = TempDir::new("tls-startup");
    let certs = Certs::make(&dir.path, "t");
    let port = free_port().to_string();
    let tls_port = free_port().to_string();
    let base = |extra: &[String]| {
        let mut v: Vec<String> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &tls_port,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend_from_slice(extra);
        v
    };
    let err = failed_start(&dir, &base(&[]));
    assert!(
        err.contains("No tls-cert-file configured!")
            && err.contains("Failed to configure TLS. Check logs for more info."),
        "{err}"
    );
    let err = failed_start(
        &dir,
        &base(&["--tls-cert-file".into(), certs.crt("server")]),
    );
    assert!(err.contains("No tls-key-file configured!"), "{err}");
    let err = failed_start(
        &dir,
        &base(&[
            "--tls-cert-file".into(),
            certs.crt("server"),
            "--tls-key-file".into(),
            certs.key("server"),
        ]),
    );
    assert!(
        err.contains("Either tls-ca-cert-file or tls-ca-cert-dir must be specified"),
        "{err}"
    );
    // An encrypted key: refused, saying why and what to do.
    let enc = dir.file("enc.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        &certs.key("server"),
        "-out",
        enc.to_str().expect("utf-8"),
        "-passout",
        "pass:secret",
    ]);
    let mut args = base(&[]);
    args.extend(certs.server_args());
    args.extend([
        "--tls-key-file".into(),
        enc.to_str().expect("utf-8").to_string(),
        "--tls-key-file-pass".into(),
        "secret".into(),
    ]);
    let err = failed_start(&dir, &args);
    assert!(
        err.contains("Failed to load private key:")
            && err.contains("tls-key-file-pass is not supported"),
        "{err}"
    );
    let err = failed_start(
        &dir,
        &[
            "--port".into(),
            "0".into(),
            "--bind".into(),
            "127.0.0.1".into(),
        ],
    );
    assert!(
        err.contains("Configured to not listen anywhere, exiting."),
        "{err}"
    );
}

/// A stock redis-server with TLS on `tls_port` and its plain port, with `certs`.
fn stock_tls(certs: &Certs, tls_port: u16, extra: &[&str]) -> StockRedis {
    let mut args = vec!["--tls-port".to_string(), tls_port.to_string()];
    args.extend(certs.server_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    StockRedis::start(&str_args(&args))
}

fn stock_info(stock: &StockRedis, field: &str) -> String {
    let out = text(&common::redis_cli(&[
        "-h",
        "127.0.0.1",
        "-p",
        &stock.port.to_string(),
        "INFO",
        "replication",
    ]));
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn stock_replica_of_a_redcell_master_over_tls() {
    let dir = TempDir::new("tls-repl-master");
    let (server, tls_port, certs) = start_with_tls(&dir, &["--repl-diskless-sync-delay", "0"]);
    for i in 0..200 {
        server.cli(&["SET", &format!("before{i}"), &i.to_string()]);
    }
    let tls_port_s = tls_port.to_string();
    let replica = stock_tls(
        &certs,
        free_port(),
        &[
            "--tls-replication",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &tls_port_s,
        ],
    );
    assert!(
        wait_until(Duration::from_secs(30), || stock_info(
            &replica,
            "master_link_status"
        ) == "up"),
        "the stock replica did not sync over TLS: {}",
        std::fs::read_to_string(replica.dir().join("log")).unwrap_or_default()
    );
    // Live writes stream over the TLS link.
    for i in 0..200 {
        assert_eq!(
            tls_cli(tls_port, &certs, true, &["SET", &format!("after{i}"), "x"]),
            "OK"
        );
    }
    let mut con = replica.conn();
    assert!(wait_until(Duration::from_secs(20), || {
        redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap_or(0) == 400
    }));
    let v: String = redis::cmd("GET")
        .arg("before7")
        .query(&mut con)
        .expect("GET");
    assert_eq!(v, "7");
    assert_eq!(info_field(&server, "replication", "connected_slaves"), "1");
}

#[test]
fn redcell_replica_of_a_stock_tls_master() {
    let dir = TempDir::new("tls-repl-replica");
    let certs = Certs::make(&dir.path, "t");
    let master_tls = free_port();
    let master = stock_tls(&certs, master_tls, &[]);
    let mut mcon = master.conn();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut mcon)
            .expect("SET");
    }
    let master_tls_s = master_tls.to_string();
    let mut args = certs.server_args();
    args.extend(
        [
            "--tls-replication",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &master_tls_s,
        ]
        .map(String::from),
    );
    // A replica needs no TLS port of its own to replicate over TLS.
    let replica = Server::start(2, &str_args(&args));
    assert!(
        wait_until(Duration::from_secs(30), || info_field(
            &replica,
            "replication",
            "master_link_status"
        ) == "up"),
        "no link: {}",
        replica.stderr()
    );
    for i in 300..400 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut mcon)
            .expect("SET");
    }
    let mut rcon = replica.conn();
    assert!(
        wait_until(Duration::from_secs(20), || {
            redis::cmd("DBSIZE").query::<i64>(&mut rcon).unwrap_or(0) == 400
        }),
        "{}",
        replica.stderr()
    );
    let v: String = redis::cmd("GET").arg("k399").query(&mut rcon).expect("GET");
    assert_eq!(v, "399");
    // The stock master sees our replica on its link.
    assert_eq!(stock_info(&master, "connected_slaves"), "1");
}

/// A cluster node with `tls-cluster yes`: plain client port, TLS port, TLS bus on `cport`.
struct TlsNode {
    port: u16,
    tls_port: u16,
    cport: u16,
    dir: TempDir,
    _guard: ChildGuard,
}

impl TlsNode {
    fn start(certs: &Certs, stock: bool) -> TlsNode {
        let (port, tls_port, cport) = (free_port(), free_port(), free_port());
        let dir = TempDir::new("tls-cluster");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--tls-port",
            &tls_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &cport.to_string(),
            "--cluster-node-timeout",
            "3000",
            "--tls-cluster",
            "yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(certs.server_args());
        let mut cmd = if stock {
            let mut c = Command::new("redis-server");
            c.args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
            c
        } else {
            let mut c = Command::new(BIN);
            c.args(["--shards", "2"]);
            c
        };
        cmd.args(&args)
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.file("log")).expect("log"))
            .stderr(std::fs::File::create(dir.file("err")).expect("err"));
        die_with_parent(&mut cmd);
        let guard = ChildGuard {
            child: cmd.spawn().expect("start node"),
        };
        let node = TlsNode {
            port,
            tls_port,
            cport,
            dir,
            _guard: guard,
        };
        assert!(
            wait_until(Duration::from_secs(10), || node.cmd(&["PING"]) == "PONG"),
            "node did not start: {}",
            node.logs()
        );
        node
    }

    fn cmd(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&common::redis_cli(&all).stdout)
            .trim()
            .to_string()
    }

    fn info(&self, field: &str) -> String {
        self.cmd(&["CLUSTER", "INFO"])
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.file(f)).unwrap_or_default();
        format!("{}{}", read("log"), read("err"))
    }
}

/// A TLS handshake with `port` as a client presenting `certs`' client certificate: whether
/// it completed (proves the bus port speaks TLS).
fn handshakes(port: u16, certs: &Certs) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs.crt("ca")).expect("ca"))
        .expect("add ca");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_file(certs.crt("client")).expect("crt")],
        PrivateKeyDer::from_pem_file(certs.key("client")).expect("key"),
    )
    .expect("client config");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("session");
    let Ok(mut sock) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn.is_handshaking() && Instant::now() < deadline {
        if conn.complete_io(&mut sock).is_err() {
            return false;
        }
    }
    !conn.is_handshaking()
}

fn cluster_over_tls(with_stock: bool) {
    let dir = TempDir::new("tls-cluster-certs");
    let certs = Certs::make(&dir.path, "t");
    let nodes = [
        TlsNode::start(&certs, false),
        TlsNode::start(&certs, false),
        TlsNode::start(&certs, with_stock),
    ];
    for n in &nodes[1..] {
        let reply = nodes[0].cmd(&[
            "CLUSTER",
            "MEET",
            "127.0.0.1",
            &n.tls_port.to_string(),
            &n.cport.to_string(),
        ]);
        assert_eq!(reply, "OK");
    }
    let ranges = [("0", "5460"), ("5461", "10922"), ("10923", "16383")];
    for (n, (a, b)) in nodes.iter().zip(ranges) {
        assert_eq!(n.cmd(&["CLUSTER", "ADDSLOTSRANGE", a, b]), "OK");
    }
    for n in &nodes {
        assert!(
            wait_until(Duration::from_secs(30), || n.info("cluster_state") == "ok"
                && n.info("cluster_known_nodes") == "3"),
            "cluster not ok on {}: {}\n{}",
            n.port,
            n.cmd(&["CLUSTER", "NODES"]),
            n.logs()
        );
    }
    // Under tls-cluster a node is known by its TLS port, its bus on TLS.
    let listing = nodes[0].cmd(&["CLUSTER", "NODES"]);
    for n in &nodes {
        assert!(
            listing.contains(&format!("127.0.0.1:{}@{}", n.tls_port, n.cport)),
            "{listing}"
        );
        assert!(
            handshakes(n.cport, &certs),
            "bus port {} is not TLS",
            n.cport
        );
    }
    // A stock node shows its plain-TCP clients our plain ports (the bus header's pport).
    // It learns them from our next headers, so it may take a ping or two.
    if with_stock {
        let shows_plain_ports = || {
            let listing = nodes[2].cmd(&["CLUSTER", "NODES"]);
            nodes[..2]
                .iter()
                .all(|n| listing.contains(&format!("127.0.0.1:{}@{}", n.port, n.cport)))
        };
        assert!(
            wait_until(Duration::from_secs(10), shows_plain_ports),
            "{}",
            nodes[2].cmd(&["CLUSTER", "NODES"])
        );
    }
    // Redirections name TLS ports; a TLS client follows them (redis-cli -c --tls).
    for i in 0..30 {
        let key = format!("key{i}");
        let out = common::redis_cli(&[
            "-c",
            "-h",
            "127.0.0.1",
            "-p",
            &nodes[0].tls_port.to_string(),
            "--tls",
            "--cacert",
            &certs.crt("ca"),
            "--cert",
            &certs.crt("client"),
            "--key",
            &certs.key("client"),
            "SET",
            &key,
            "v",
        ]);
        assert_eq!(text(&out), "OK");
    }
    // The keys landed on their owners.
    let total: i64 = nodes
        .iter()
        .map(|n| n.cmd(&["DBSIZE"]).parse::<i64>().unwrap_or(0))
        .sum();
    assert_eq!(total, 30);
}

#[test]
fn cluster_bus_over_tls_between_redcell_nodes() {
    cluster_over_tls(false);
}

#[test]
fn cluster_bus_over_tls_with_a_stock_node() {
    cluster_over_tls(true);
}

#[test]
fn ca_directory_and_maxclients_over_tls() {
    let dir = TempDir::new("tls-cadir");
    let (server, tls_port, certs) = start_with_tls(&dir, &[]);
    // Trust from a directory instead of a file: the client certificate is still checked.
    let ca_dir = dir.file("cas");
    std::fs::create_dir(&ca_dir).expect("mkdir");
    std::fs::copy(certs.crt("ca"), ca_dir.join("ca.pem")).expect("copy");
    std::fs::write(ca_dir.join("README"), "not a certificate\n").expect("write");
    let reply = text(&server.cli(&[
        "CONFIG",
        "SET",
        "tls-ca-cert-file",
        "",
        "tls-ca-cert-dir",
        ca_dir.to_str().expect("utf-8"),
    ]));
    assert_eq!(reply, "OK");
    assert_eq!(tls_cli(tls_port, &certs, true, &["PING"]), "PONG");
    assert!(!tls_cli(tls_port, &certs, false, &["PING"]).contains("PONG"));
    // Over maxclients a TLS client is told so in TLS, as a plain one in clear.
    let mut held = server.conn();
    let _: String = redis::cmd("PING").query(&mut held).expect("PING");
    assert_eq!(
        text(&server.cli(&["CONFIG", "SET", "maxclients", "1"])),
        "OK"
    );
    let refused = tls_cli(tls_port, &certs, true, &["PING"]);
    assert!(
        refused.contains("max number of clients reached"),
        "{refused}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg("100")
        .query(&mut held)
        .expect("CONFIG SET");
    assert_eq!(tls_cli(tls_port, &certs, true, &["PING"]), "PONG");
}
