//! A replica's link to its master, run on the control executor as Redis 7.0's replica runs
//! it (`replication.c`; bytes in `../shared/spec/replication.md`):
//!
//! 1. Handshake: `PING`; then in one write `AUTH [masteruser] masterauth` (when set),
//!    `REPLCONF listening-port`, `REPLCONF ip-address` (when announced), `REPLCONF capa eof
//!    capa psync2`; then `PSYNC <replid> <offset+1>` with a cached master, else `PSYNC ? -1`.
//! 2. `+FULLRESYNC <replid> <offset>`: the RDB (`$<len>` or `$EOF:<mark>` framing) goes to a
//!    temp file while the old data is still served; the whole file is then read once to
//!    check it (a corrupt or truncated transfer leaves the old data in place), and only then
//!    are the shards emptied and loaded (`-LOADING` meanwhile, as Redis with
//!    `repl-diskless-load disabled`).
//! 3. `+CONTINUE [<replid>]`: the stream resumes where the cached master stopped. Any
//!    other error (a master older than PSYNC): `SYNC`, then a full sync at offset -1 whose
//!    master gets no ACKs, as Redis's fallback.
//! 4. The stream: each command runs through the master client (`Upcalls::master_client`:
//!    the command layer's `call()`, routed to the owner shards, MULTI/EXEC atomic, no
//!    replies, nothing expired meanwhile); the applied offset advances by each command's
//!    bytes once applied (a MULTI block counts at its EXEC, as Redis's `reploff`);
//!    `REPLCONF ACK <offset>` goes out every second and on `REPLCONF GETACK`.
//!
//! Any failure drops the link with a log line and retries a second later; the position
//! reached is kept as the cached master for a partial resync.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::{LinkState, MasterClient, Repl, Transfer, NO_REPLID};
use crate::persist::load;
use crate::resp::args::encode_command;
use crate::resp::{Args, Decoded, Decoder};
use crate::shard::DiskGate;
use crate::tls::MaybeTls;
use crate::util::time::now_ms;

const READ_CHUNK: usize = 64 * 1024;

/// How often the replica acknowledges its offset (Redis's replication cron).
const ACK_PERIOD: Duration = Duration::from_secs(1);

/// Why a link ended.
struct LinkError {
    text: String,
    /// The cached master cannot be trusted any more (protocol corruption): the next
    /// attempt is a full sync.
    discard_cached: bool,
}

impl From<String> for LinkError {
    fn from(text: String) -> LinkError {
        LinkError {
            text,
            discard_cached: false,
        }
    }
}

type LinkResult<T> = Result<T, LinkError>;

/// Keeps the link to the master of `generation` up until the master changes.
pub(super) async fn run(repl: Rc<Repl>, generation: u64) {
    loop {
        let addr = {
            let st = repl.state.borrow();
            if st.generation != generation {
                return;
            }
            match &st.master {
                Some(m) => m.clone(),
                None => return,
            }
        };
        repl.set_link(LinkState::Connecting).await;
        eprintln!("Connecting to MASTER {}:{}", addr.host, addr.port);
        let result = session(&repl, generation, &addr.host, addr.port).await;
        let current = repl.state.borrow().generation == generation;
        if !current {
            return;
        }
        if let Err(e) = result {
            eprintln!("{}", e.text);
            let mut st = repl.state.borrow_mut();
            if e.discard_cached {
                st.master_client = None;
                st.cached_master = None;
            }
        }
        {
            // Redis's `replicationCacheMaster`: the position reached is kept for PSYNC.
            let mut st = repl.state.borrow_mut();
            st.link_fd = None;
            st.transfer = None;
            if let Some(client) = st.master_client.take() {
                st.cached_master = Some(client);
            }
        }
        repl.set_link(LinkState::Connect).await;
        // The replication cron retries once a second.
        glommio::timer::sleep(Duration::from_secs(1)).await;
    }
}

/// The socket to the master with its read buffer: bytes `[start, end)` are unread.
struct Link {
    stream: MaybeTls<TcpStream>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout: Duration,
    generation: u64,
}

impl Link {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes into the buffer (waiting at most `repl-timeout`). Ok(0) never: a
    /// closed connection is an error.
    async fn fill(&mut self) -> LinkResult<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK / 2 {
            let len = (self.buf.len() * 2).max(self.end + READ_CHUNK);
            self.buf.resize(len, 0);
        }
        match self.stream.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err("Connection with master lost.".to_string().into()),
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err("Timeout connecting to the MASTER...".to_string().into())
            }
            Err(e) => Err(format!("Connection with master lost: {e}").into()),
        }
    }

    /// One line (up to `\n`, without `\r\n`), as Redis's `connSyncReadLine`.
    async fn read_line(&mut self) -> LinkResult<String> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', self.pending()) {
                let line = &self.buf[self.start..self.start + i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let text = String::from_utf8_lossy(line).into_owned();
                self.start += i + 1;
                return Ok(text);
            }
            if self.end - self.start > crate::resp::decode::INLINE_MAX {
                return Err("Bad protocol from MASTER: line too long".to_string().into());
            }
            self.fill().await?;
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> LinkResult<()> {
        let sent = match self.stream.write_all(bytes).await {
            Ok(()) => self.stream.flush().await,
            Err(e) => Err(e),
        };
        sent.map_err(|e| format!("Error writing to MASTER: {e}").into())
    }
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_command(args.iter().copied(), args.len(), &mut out);
    out
}

fn ack(offset: i64) -> Vec<u8> {
    command(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()])
}

/// One connection to the master: handshake, sync, then the stream until the link fails.
async fn session(repl: &Rc<Repl>, generation: u64, host: &str, port: u16) -> LinkResult<()> {
    let (timeout, auth, user, announce_ip, announce_port, tls) = {
        let c = repl.shard.shared.config();
        (
            Duration::from_secs(c.get_i64("repl-timeout").max(1) as u64),
            c.get("masterauth").to_string(),
            c.get("masteruser").to_string(),
            c.get("replica-announce-ip").to_string(),
            c.get_i64("replica-announce-port"),
            c.get_bool("tls-replication"),
        )
    };
    let target = format!("{host}:{port}");
    let source = repl
        .shard
        .shared
        .config()
        .get("bind-source-addr")
        .to_string();
    let stream = crate::util::listen::connect(&target, &source, timeout)
        .await
        .map_err(|e| format!("Unable to connect to MASTER: {e}"))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    {
        let mut st = repl.state.borrow_mut();
        if st.generation != generation {
            return Err("the master changed while connecting".to_string().into());
        }
        st.link_fd = Some(stream.as_raw_fd());
    }
    eprintln!("MASTER <-> REPLICA sync started");
    repl.set_link(LinkState::Handshake).await;
    let stream = if tls {
        crate::tls::client_handshake(stream, host, timeout)
            .await
            .map_err(|e| format!("Unable to connect to MASTER: TLS handshake failed: {e}"))?
    } else {
        MaybeTls::Plain(stream)
    };
    let mut link = Link {
        stream,
        buf: vec![0; READ_CHUNK],
        start: 0,
        end: 0,
        timeout,
        generation,
    };
    link.send(&command(&[b"PING"])).await?;
    let pong = link.read_line().await?;
    let accepted = pong.starts_with('+')
        || pong.starts_with("-NOAUTH")
        || pong.starts_with("-NOPERM")
        || pong.starts_with("-ERR operation not permitted");
    if !accepted {
        return Err(format!("Error reply to PING from master: '{pong}'").into());
    }
    eprintln!("Master replied to PING, replication can continue...");
    // As Redis: the TLS port when replication is over TLS.
    let shared = &repl.shard.shared;
    let listening_port = if announce_port > 0 {
        announce_port
    } else if tls && shared.tls_port != 0 {
        shared.tls_port as i64
    } else {
        shared.tcp_port as i64
    };
    let mut hello = Vec::new();
    if !auth.is_empty() {
        if user.is_empty() {
            hello.extend(command(&[b"AUTH", auth.as_bytes()]));
        } else {
            hello.extend(command(&[b"AUTH", user.as_bytes(), auth.as_bytes()]));
        }
    }
    hello.extend(command(&[
        b"REPLCONF",
        b"listening-port",
        listening_port.to_string().as_bytes(),
    ]));
    if !announce_ip.is_empty() {
        hello.extend(command(&[
            b"REPLCONF",
            b"ip-address",
            announce_ip.as_bytes(),
        ]));
    }
    hello.extend(command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]));
    link.send(&hello).await?;
    if !auth.is_empty() {
        let reply = link.read_line().await?;
        if reply.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {reply}").into());
        }
    }
    let reply = link.read_line().await?;
    if reply.starts_with('-') {
        eprintln!("(Non critical) Master does not understand REPLCONF listening-port: {reply}");
    }
    if !announce_ip.is_empty() {
        let reply = link.read_line().await?;
        if reply.starts_with('-') {
            eprintln!("(Non critical) Master does not understand REPLCONF ip-address: {reply}");
        }
    }
    let reply = link.read_line().await?;
    if reply.starts_with('-') {
        eprintln!("(Non critical) Master does not understand REPLCONF capa: {reply}");
    }

    // PSYNC: from the cached master when there is one; a master handing its role over with
    // FAILOVER asks the target to take it first.
    let cached = repl.state.borrow().cached_master.clone();
    let (replid, offset) = match &cached {
        Some(c) => {
            let offset = (c.reploff + 1).to_string();
            eprintln!(
                "Trying a partial resynchronization (request {}:{offset}).",
                c.replid
            );
            (c.replid.clone(), offset)
        }
        None => {
            eprintln!("Partial resynchronization not possible (no cached master)");
            ("?".to_string(), "-1".to_string())
        }
    };
    let mut psync: Vec<&[u8]> = vec![b"PSYNC", replid.as_bytes(), offset.as_bytes()];
    let failing_over = super::failover::psync_asks_failover(repl);
    if failing_over {
        psync.push(b"FAILOVER");
    }
    if let Err(e) = link.send(&command(&psync)).await {
        if failing_over {
            super::failover::abort(repl, "Write error to failover target").await;
        }
        return Err(e);
    }
    let reply = loop {
        // Empty lines are keep-alives while the master prepares the sync.
        let line = link.read_line().await?;
        if !line.is_empty() {
            break line;
        }
    };
    if failing_over {
        let accepted = reply.starts_with("+CONTINUE") || reply.starts_with("+FULLRESYNC");
        super::failover::psync_answered(repl, accepted).await;
    }
    // The master's id changed under a partial resync: the sub-replicas must learn it.
    let mut id_changed = false;
    let client = if let Some(rest) = reply.strip_prefix("+FULLRESYNC") {
        let mut words = rest.split_whitespace();
        let (Some(replid), Some(offset)) = (words.next(), words.next()) else {
            return Err(format!("Bad reply to PSYNC from master: '{reply}'").into());
        };
        let Ok(offset) = offset.parse::<i64>() else {
            return Err(format!("Bad reply to PSYNC from master: '{reply}'").into());
        };
        // Redis blanks an id of the wrong length rather than trusting it.
        let replid = if replid.len() == 40 {
            replid.to_string()
        } else {
            NO_REPLID.to_string()
        };
        eprintln!("Full resync from master: {replid}:{offset}");
        if cached.is_some() {
            eprintln!("Discarding previously cached master state.");
            repl.state.borrow_mut().cached_master = None;
        }
        full_sync(repl, &mut link, replid, offset).await?
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let Some(mut client) = cached else {
            return Err(format!("Unexpected reply to PSYNC from master: '{reply}'").into());
        };
        eprintln!("Successful partial resynchronization with master.");
        let new_id = rest.trim();
        if new_id.len() == 40 && new_id != client.replid {
            // The master's history continues under a new id (it was promoted): ours
            // becomes the secondary one, valid up to here.
            let mut st = repl.state.borrow_mut();
            st.replid2 = client.replid.clone();
            st.second_replid_offset = st.master_repl_offset + 1;
            st.replid = new_id.to_string();
            client.replid = new_id.to_string();
            id_changed = true;
            eprintln!("Master replication ID changed to {new_id}");
        }
        eprintln!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
        client.read_reploff = client.reploff;
        client.last_io = Instant::now();
        repl.state.borrow_mut().cached_master = None;
        client
    } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
        return Err(format!(
            "Master is currently unable to PSYNC but should be in the future: {reply}"
        )
        .into());
    } else {
        // A master that does not know PSYNC (before 2.8) or cannot serve it: the old
        // protocol, SYNC, then a full sync at no offset (Redis's PSYNC_NOT_SUPPORTED).
        if reply.starts_with("-ERR") {
            eprintln!("Master does not support PSYNC or is in error state (reply: {reply})");
        } else {
            eprintln!("Unexpected reply to PSYNC from master: {reply}");
        }
        eprintln!("Retrying with SYNC...");
        link.send(b"SYNC\r\n").await?;
        repl.state.borrow_mut().cached_master = None;
        let mut client = full_sync(repl, &mut link, super::master::random_replid(), -1).await?;
        client.pre_psync = true;
        client
    };
    let mut client = client;
    // Bytes already read past the sync reply belong to the stream.
    client.read_reploff = client.reploff + (link.end - link.start) as i64;
    {
        let mut st = repl.state.borrow_mut();
        if st.generation != generation {
            return Err("the master changed during the sync".to_string().into());
        }
        st.master_repl_offset = client.reploff;
        if let Some(m) = super::master::Master::current() {
            m.relay_from(client.reploff, id_changed);
        }
        st.master_client = Some(client);
        st.transfer = None;
    }
    repl.set_link(LinkState::Connected).await;
    apply_stream(repl, &mut link).await
}

/// Receives the master's RDB into a temp file, checks it, then replaces the data with it.
/// Returns the master client positioned at `offset`.
async fn full_sync(
    repl: &Rc<Repl>,
    link: &mut Link,
    replid: String,
    offset: i64,
) -> LinkResult<MasterClient> {
    repl.set_link(LinkState::Transfer).await;
    repl.state.borrow_mut().transfer = Some(Transfer {
        size: -1,
        read: 0,
        last_io: Instant::now(),
    });
    let header = loop {
        let line = link.read_line().await?;
        if !line.is_empty() {
            break line;
        }
        touch_transfer(repl, 0);
    };
    if header.starts_with('-') {
        return Err(format!("MASTER aborted replication with an error: {header}").into());
    }
    if !header.starts_with('$') {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{header}'), are you sure the host and port are right?"
        )
        .into());
    }
    let mark = header
        .strip_prefix("$EOF:")
        .filter(|m| m.len() >= 40)
        .map(|m| m.as_bytes()[..40].to_vec());
    let size = match &mark {
        Some(_) => {
            eprintln!(
                "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk"
            );
            0
        }
        None => match header[1..].parse::<u64>() {
            Ok(n) => {
                eprintln!("MASTER <-> REPLICA sync: receiving {n} bytes from master to disk");
                n
            }
            Err(_) => {
                return Err(format!("Bad protocol from MASTER: bulk length '{header}'").into())
            }
        },
    };
    if let Some(t) = repl.state.borrow_mut().transfer.as_mut() {
        t.size = size as i64;
    }
    let tmp = std::path::PathBuf::from(format!(
        "temp-{}.{}.rdb",
        now_ms() / 1000,
        std::process::id()
    ));
    let received = receive_rdb(repl, link, &tmp, size, mark.as_deref()).await;
    if let Err(e) = received {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let loaded = load_received(repl, link, &tmp).await;
    let _ = std::fs::remove_file(&tmp);
    let aux = loaded?;
    eprintln!("MASTER <-> REPLICA sync: Finished with success");
    {
        let mut st = repl.state.borrow_mut();
        st.replid = replid.clone();
        st.replid2 = NO_REPLID.to_string();
        st.second_replid_offset = -1;
        st.master_repl_offset = offset;
    }
    if mark.is_some() {
        // An EOF-framed transfer is followed by nothing until the first ACK.
        link.send(&ack(offset)).await?;
    }
    Ok(MasterClient {
        replid,
        reploff: offset,
        read_reploff: offset,
        db: aux.stream_db.filter(|&d| d >= 0).unwrap_or(0),
        last_io: Instant::now(),
        pre_psync: false,
    })
}

fn touch_transfer(repl: &Repl, bytes: usize) {
    if let Some(t) = repl.state.borrow_mut().transfer.as_mut() {
        t.read += bytes as u64;
        t.last_io = Instant::now();
    }
}

/// Writes the RDB payload to `tmp`: `size` bytes, or up to the EOF `mark`.
async fn receive_rdb(
    repl: &Rc<Repl>,
    link: &mut Link,
    tmp: &std::path::Path,
    size: u64,
    mark: Option<&[u8]>,
) -> LinkResult<()> {
    let mut file = std::fs::File::create(tmp).map_err(|e| {
        format!("Opening the temp file needed for MASTER <-> REPLICA synchronization: {e}")
    })?;
    let write_err = |e: std::io::Error| -> LinkError {
        format!("Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: {e}").into()
    };
    let timeout_err = || -> LinkError {
        "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.".to_string().into()
    };
    match mark {
        None => {
            let mut left = size;
            while left > 0 {
                if link.start == link.end {
                    match link.fill().await {
                        Ok(_) => {}
                        Err(e) if e.text.starts_with("Timeout") => return Err(timeout_err()),
                        Err(e) => {
                            return Err(
                                format!("I/O error trying to sync with MASTER: {}", e.text).into()
                            )
                        }
                    }
                }
                let n = (link.end - link.start).min(left as usize);
                file.write_all(&link.buf[link.start..link.start + n])
                    .map_err(write_err)?;
                link.start += n;
                left -= n as u64;
                touch_transfer(repl, n);
            }
        }
        Some(mark) => {
            // Everything but the last 40 bytes seen is surely payload; the transfer ends
            // when the bytes received end with the mark.
            let mut tail: Vec<u8> = Vec::with_capacity(2 * READ_CHUNK);
            loop {
                if link.start == link.end {
                    match link.fill().await {
                        Ok(_) => {}
                        Err(e) if e.text.starts_with("Timeout") => return Err(timeout_err()),
                        Err(e) => {
                            return Err(
                                format!("I/O error trying to sync with MASTER: {}", e.text).into()
                            )
                        }
                    }
                }
                let got = link.end - link.start;
                tail.extend_from_slice(&link.buf[link.start..link.end]);
                link.start = link.end;
                touch_transfer(repl, got);
                if tail.ends_with(mark) {
                    file.write_all(&tail[..tail.len() - mark.len()])
                        .map_err(write_err)?;
                    break;
                }
                if tail.len() > mark.len() {
                    let keep = tail.len() - mark.len();
                    file.write_all(&tail[..keep]).map_err(write_err)?;
                    tail.drain(..keep);
                }
            }
        }
    }
    file.sync_all().map_err(write_err)?;
    Ok(())
}

/// Checks the received file, then empties the shards and loads it (`-LOADING` meanwhile),
/// sending a newline to the master once a second so it does not time us out. A file that
/// does not read whole leaves the old data untouched.
async fn load_received(
    repl: &Rc<Repl>,
    link: &mut Link,
    tmp: &std::path::Path,
) -> LinkResult<load::ReplAux> {
    let shard = repl.shard.clone();
    let generation = link.generation;
    let work = async {
        load::check_rdb(&shard.shared, tmp).await.map_err(|e| {
            format!("MASTER <-> REPLICA sync: the RDB received from the MASTER cannot be loaded, keeping the old data: {e}")
        })?;
        if repl.state.borrow().generation != generation {
            return Err("the master changed during the sync".to_string());
        }
        if let Some(m) = super::master::Master::current() {
            m.attach_to_new_master();
        }
        set_loading(&shard, true).await;
        eprintln!("MASTER <-> REPLICA sync: Flushing old data");
        load::flush_all(&shard).await;
        eprintln!("MASTER <-> REPLICA sync: Loading DB in memory");
        let loaded = load::load_rdb(&shard, tmp, repl.upcalls.replay, false, false).await;
        set_loading(&shard, false).await;
        match loaded {
            Ok(l) => {
                // As Redis, the master's data becomes this node's dump file.
                let dbfilename = shard.shared.config().get("dbfilename").to_string();
                if let Err(e) = std::fs::rename(tmp, &dbfilename) {
                    eprintln!("Failed trying to rename the temp DB into {dbfilename} in MASTER <-> REPLICA synchronization: {e}");
                }
                let remove = {
                    let c = shard.shared.config();
                    c.get_bool("rdb-del-sync-files")
                        && c.get("save").is_empty()
                        && !c.get_bool("appendonly")
                };
                if remove {
                    eprintln!("Removing the RDB file obtained from the master. This replica has persistence disabled");
                    let _ = std::fs::remove_file(&dbfilename);
                }
                // The AOF's files hold the old data: rewrite them from the new (Redis's
                // `restartAOFAfterSYNC`).
                if shard.shared.config().get_bool("appendonly") {
                    if let Err(e) = crate::persist::bgrewriteaof(&shard).await {
                        eprintln!("MASTER <-> REPLICA sync: could not rewrite the AOF after the sync: {}", e.render());
                    }
                }
                Ok(l.repl)
            }
            Err(e) => Err(format!(
                "Failed trying to load the MASTER synchronization DB from disk, check server logs. ({e})"
            )),
        }
    };
    let keepalive = async {
        loop {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            let _ = link.send(b"\n").await;
        }
    };
    futures_lite::future::or(work, keepalive)
        .await
        .map_err(LinkError::from)
}

/// Puts every shard in (or out of) the loading state: `-LOADING` for commands without the
/// `loading` flag, `loading:1` in INFO.
async fn set_loading(shard: &Rc<crate::shard::Shard>, on: bool) {
    if on {
        let p = &shard.shared.load_progress;
        p.start_unix
            .store(now_ms() / 1000, std::sync::atomic::Ordering::Relaxed);
        p.loading.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    shard
        .call_all(move |s| {
            let gate = s.disk_gate.get();
            s.disk_gate.set(DiskGate {
                loading: on,
                ..gate
            });
        })
        .await;
    if !on {
        shard
            .shared
            .load_progress
            .loading
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Applies the master's stream until the link fails.
async fn apply_stream(repl: &Rc<Repl>, link: &mut Link) -> LinkResult<()> {
    let shard = repl.shard.clone();
    let mut client = (repl.upcalls.master_client)(shard.clone());
    let db = repl
        .state
        .borrow()
        .master_client
        .as_ref()
        .map_or(0, |c| c.db);
    if db != 0 {
        // The master client starts in the stream's database (the RDB's `repl-stream-db`,
        // or where the cached master was).
        let select = command(&[b"SELECT", db.to_string().as_bytes()]);
        crate::db::expiry::set_applying(true);
        client.run(&select).await;
        crate::db::expiry::set_applying(false);
    }
    let mut dec = Decoder::new(i64::MAX);
    let mut next_ack = Instant::now() + ACK_PERIOD;
    let mut last_io = Instant::now();
    // Whole commands decoded and not yet applied. Only a prefix ending outside a MULTI
    // block is applied (`ready` bytes, whose stream database is `ready_db`): a block is
    // applied whole or not at all, and the offset never stands inside one (Redis's
    // `reploff` does not move while the master client is in MULTI).
    let mut pending = Pending {
        bytes: Vec::new(),
        ready: 0,
        db,
        ready_db: db,
        writes: false,
    };
    let mut in_multi = false;
    loop {
        // Decode whatever is buffered.
        loop {
            if link.start == link.end {
                break;
            }
            let buf = &link.buf[link.start..link.end];
            match dec.decode(buf, false) {
                Decoded::Incomplete { .. } => break,
                Decoded::Nothing { len } => {
                    pending.push(&buf[..len], in_multi, true);
                    link.start += len;
                }
                Decoded::Error(e) => {
                    return Err(LinkError {
                        text: format!(
                            "Protocol error from MASTER ({}), closing the connection and discarding the cached master.",
                            e.text()
                        ),
                        discard_cached: true,
                    });
                }
                Decoded::Request { len, inline } => {
                    if inline {
                        return Err(LinkError {
                            text: "WARNING: Receiving inline protocol from master, master stream corruption? Closing the master connection and discarding the cached master.".into(),
                            discard_cached: true,
                        });
                    }
                    let args = Args::new(buf, dec.scratch(), dec.spans());
                    let name = args.get(0);
                    if name.eq_ignore_ascii_case(b"replconf") {
                        let getack = args.len() >= 2 && args.get(1).eq_ignore_ascii_case(b"getack");
                        apply(repl, &mut client, &mut pending, link.generation).await;
                        if getack {
                            let offset = repl
                                .state
                                .borrow()
                                .master_client
                                .as_ref()
                                .map_or(0, |c| c.reploff);
                            link.send(&ack(offset)).await?;
                        }
                        // GETACK's own bytes count once it is processed.
                        advance(repl, &link.buf[link.start..link.start + len]);
                        link.start += len;
                        continue;
                    }
                    if name.eq_ignore_ascii_case(b"multi") {
                        in_multi = true;
                    } else if name.eq_ignore_ascii_case(b"exec")
                        || name.eq_ignore_ascii_case(b"discard")
                    {
                        in_multi = false;
                    } else if name.eq_ignore_ascii_case(b"select") && args.len() == 2 {
                        if let Some(n) = crate::util::num::parse_i64_strict(args.get(1)) {
                            pending.db = n;
                        }
                    }
                    pending.push(&buf[..len], in_multi, name.eq_ignore_ascii_case(b"ping"));
                    link.start += len;
                }
            }
        }
        apply(repl, &mut client, &mut pending, link.generation).await;

        // Wait for more, acknowledging once a second.
        let now = Instant::now();
        if now >= next_ack {
            let to_ack = repl
                .state
                .borrow()
                .master_client
                .as_ref()
                .filter(|c| !c.pre_psync)
                .map(|c| c.reploff);
            if let Some(offset) = to_ack {
                link.send(&ack(offset)).await?;
            }
            next_ack = now + ACK_PERIOD;
        }
        if now.duration_since(last_io) > link.timeout {
            return Err("MASTER timeout: no data nor PING received..."
                .to_string()
                .into());
        }
        if repl.state.borrow().generation != link.generation {
            return Err("the master changed".to_string().into());
        }
        let wait = next_ack.saturating_duration_since(now);
        let read = futures_lite::future::or(async { Some(link.fill().await) }, async {
            glommio::timer::sleep(wait).await;
            None
        })
        .await;
        match read {
            None => {}
            Some(Err(e)) if e.text.starts_with("Timeout") => {}
            Some(Err(e)) => return Err(e),
            Some(Ok(n)) => {
                last_io = Instant::now();
                let mut st = repl.state.borrow_mut();
                if let Some(c) = st.master_client.as_mut() {
                    c.read_reploff += n as i64;
                    c.last_io = last_io;
                }
            }
        }
    }
}

/// Decoded commands waiting to be applied (see `apply_stream`).
struct Pending {
    bytes: Vec<u8>,
    /// How many of `bytes` end outside a MULTI block.
    ready: usize,
    /// The stream's database after all of `bytes`, and after the `ready` ones.
    db: i64,
    ready_db: i64,
    /// Something other than PING is among `bytes` (Redis checks disk errors for those).
    writes: bool,
}

impl Pending {
    fn push(&mut self, command: &[u8], in_multi: bool, ping: bool) {
        self.writes |= !ping;
        self.bytes.extend_from_slice(command);
        if !in_multi {
            self.ready = self.bytes.len();
            self.ready_db = self.db;
        }
    }
}

/// Runs the ready commands through the master client (as one step over the shards they
/// need) and counts their bytes into the offset.
async fn apply(
    repl: &Rc<Repl>,
    client: &mut Box<dyn crate::persist::load::Replayer>,
    pending: &mut Pending,
    generation: u64,
) {
    let ready = pending.ready;
    if ready == 0 {
        return;
    }
    repl.begin_apply().await;
    if repl.state.borrow().generation != generation {
        // REPLICAOF changed the master while this chunk waited: it is not ours to apply.
        repl.end_apply();
        return;
    }
    if pending.writes {
        check_disk_errors(repl);
    }
    crate::db::expiry::set_applying(true);
    client.run(&pending.bytes[..ready]).await;
    crate::db::expiry::set_applying(false);
    {
        let mut st = repl.state.borrow_mut();
        if let Some(c) = st.master_client.as_mut() {
            c.reploff += ready as i64;
            c.db = pending.ready_db;
        }
        st.master_repl_offset += ready as i64;
    }
    // Sub-replicas get the stream as applied, byte for byte, so their offsets are ours.
    if let Some(m) = super::master::Master::current() {
        m.relay(&pending.bytes[..ready]);
    }
    repl.end_apply();
    pending.bytes.drain(..ready);
    pending.ready = 0;
    pending.writes = !pending.bytes.is_empty();
}

/// A replica that cannot persist (a failed save under `stop-writes-on-bgsave-error`, a failed
/// AOF write) is about to apply its master's writes: as Redis's `processCommand`, it stops
/// here (a crash, so it is noticed and restarted rather than running on without its
/// durability) unless `replica-ignore-disk-write-errors yes`, which logs it every 10 s.
fn check_disk_errors(repl: &Repl) {
    let gate = repl.shard.disk_gate.get();
    if !gate.save_failed && gate.aof_errno == 0 {
        return;
    }
    if !repl
        .shard
        .shared
        .config()
        .get_bool("replica-ignore-disk-write-errors")
    {
        eprintln!("Guru Meditation: Replica was unable to write command to disk.");
        std::process::abort();
    }
    thread_local! {
        static LAST_LOG: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }
    LAST_LOG.with(|last| {
        if last
            .get()
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            last.set(Some(Instant::now()));
            eprintln!("Replica is applying a command even though it is unable to write to disk.");
        }
    });
}

/// Counts `bytes` processed outside the client (REPLCONF) into the offset, and relays them.
fn advance(repl: &Repl, bytes: &[u8]) {
    {
        let mut st = repl.state.borrow_mut();
        if let Some(c) = st.master_client.as_mut() {
            c.reploff += bytes.len() as i64;
        }
        st.master_repl_offset += bytes.len() as i64;
    }
    if let Some(m) = super::master::Master::current() {
        m.relay(bytes);
    }
}
