//! Cluster commands (Redis 7.0's cluster.c commands): CLUSTER and its subcommands, ASKING,
//! READONLY, READWRITE. State-changing subcommands run on the control core, which owns the
//! cluster state; COUNTKEYSINSLOT and GETKEYSINSLOT run on the shard owning the slot.

use crate::cluster::bus::{node_flag, NodeName};
use crate::cluster::member::Member;
use crate::cluster::slotmap::EndpointType;
use crate::cluster::state::{parse_slot, Node};
use crate::cmd::call::{each_shard_data, on_shard_data};
use crate::cmd::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::shard::client::Conn;
use crate::slot::{key_slot, SLOTS};
use crate::util::num::parse_i64_strict;

const fn admin(name: &'static str, arity: i32, f: crate::cmd::AsyncFn) -> CommandSpec {
    CommandSpec::new(name, arity, ADMIN | STALE, Handler::Async(f)).doc("cluster", "3.0.0", "")
}

const fn info(name: &'static str, arity: i32, f: crate::cmd::AsyncFn) -> CommandSpec {
    CommandSpec::new(name, arity, STALE, Handler::Async(f)).doc("cluster", "3.0.0", "")
}

static CLUSTER_SUBS: &[CommandSpec] = &[
    admin("addslots", -3, addslots).doc(
        "cluster",
        "3.0.0",
        "Assign new hash slots to receiving node",
    ),
    admin("addslotsrange", -4, addslotsrange).doc(
        "cluster",
        "7.0.0",
        "Assign new hash slots to receiving node",
    ),
    admin("bumpepoch", 2, bumpepoch).doc("cluster", "3.0.0", "Advance the cluster config epoch"),
    admin("count-failure-reports", 3, count_failure_reports).doc(
        "cluster",
        "3.0.0",
        "Return the number of failure reports active for a given node",
    ),
    info("countkeysinslot", 3, countkeysinslot).doc(
        "cluster",
        "3.0.0",
        "Return the number of local keys in the specified hash slot",
    ),
    admin("delslots", -3, delslots).doc(
        "cluster",
        "3.0.0",
        "Set hash slots as unbound in receiving node",
    ),
    admin("delslotsrange", -4, delslotsrange).doc(
        "cluster",
        "7.0.0",
        "Set hash slots as unbound in receiving node",
    ),
    CommandSpec::new("failover", -2, ADMIN | STALE, Handler::Async(failover)).doc(
        "cluster",
        "3.0.0",
        "Forces a replica to perform a manual failover of its master.",
    ),
    admin("flushslots", 2, flushslots).doc(
        "cluster",
        "3.0.0",
        "Delete a node's own slots information",
    ),
    admin("forget", 3, forget).doc("cluster", "3.0.0", "Remove a node from the nodes table"),
    info("getkeysinslot", 4, getkeysinslot).doc(
        "cluster",
        "3.0.0",
        "Return local key names in the specified hash slot",
    ),
    CommandSpec::new("help", 2, LOADING | STALE, Handler::Async(help)).doc(
        "cluster",
        "5.0.0",
        "Show helpful text about the different subcommands",
    ),
    info("info", 2, cluster_info).doc(
        "cluster",
        "3.0.0",
        "Provides info about Redis Cluster node state",
    ),
    info("keyslot", 3, keyslot).doc(
        "cluster",
        "3.0.0",
        "Returns the hash slot of the specified key",
    ),
    info("links", 2, links).doc(
        "cluster",
        "7.0.0",
        "Returns a list of all TCP links to and from peer nodes in cluster",
    ),
    admin("meet", -4, meet).doc(
        "cluster",
        "3.0.0",
        "Force a node cluster to handshake with another node",
    ),
    info("myid", 2, myid).doc("cluster", "3.0.0", "Return the node id"),
    info("myshardid", 2, myshardid).doc("cluster", "7.2.0", "Return the node shard id"),
    info("nodes", 2, nodes).doc("cluster", "3.0.0", "Get Cluster config for the node"),
    admin("replicas", 3, replicas).doc(
        "cluster",
        "5.0.0",
        "List replica nodes of the specified master node",
    ),
    CommandSpec::new(
        "replicate",
        3,
        ADMIN | NOSCRIPT | STALE,
        Handler::Async(replicate),
    )
    .doc(
        "cluster",
        "3.0.0",
        "Reconfigure a node as a replica of the specified master node",
    ),
    CommandSpec::new("reset", -2, ADMIN | NOSCRIPT | STALE, Handler::Async(reset)).doc(
        "cluster",
        "3.0.0",
        "Reset a Redis Cluster node",
    ),
    admin("saveconfig", 2, saveconfig).doc(
        "cluster",
        "3.0.0",
        "Forces the node to save cluster state on disk",
    ),
    admin("set-config-epoch", 3, set_config_epoch).doc(
        "cluster",
        "3.0.0",
        "Set the configuration epoch in a new node",
    ),
    admin("setslot", -4, setslot).doc("cluster", "3.0.0", "Bind a hash slot to a specific node"),
    info("shards", 2, shards).doc(
        "cluster",
        "7.0.0",
        "Get array of cluster slots to node mappings",
    ),
    admin("slaves", 3, replicas).doc(
        "cluster",
        "3.0.0",
        "List replica nodes of the specified master node",
    ),
    info("slots", 2, slots).doc(
        "cluster",
        "3.0.0",
        "Get array of Cluster slot to node mappings",
    ),
];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("cluster", -2, 0, Handler::Container)
        .doc("cluster", "3.0.0", "A container for cluster commands")
        .subs(CLUSTER_SUBS),
    CommandSpec::new("asking", 1, FAST, Handler::Sync(asking))
        .acl(&["@connection"])
        .doc(
            "cluster",
            "3.0.0",
            "Sent by cluster clients after an -ASK redirect",
        ),
    CommandSpec::new(
        "readonly",
        1,
        LOADING | STALE | FAST,
        Handler::Sync(readonly),
    )
    .acl(&["@connection"])
    .doc(
        "cluster",
        "3.0.0",
        "Enables read queries for a connection to a cluster replica node",
    ),
    CommandSpec::new(
        "readwrite",
        1,
        LOADING | STALE | FAST,
        Handler::Sync(readwrite),
    )
    .acl(&["@connection"])
    .doc(
        "cluster",
        "3.0.0",
        "Disables read queries for a connection to a cluster replica node",
    ),
];

fn disabled() -> Error {
    Error::msg("This instance has cluster support disabled")
}

fn enabled(c: &Conn) -> Result<(), Error> {
    if c.shard.slot_map.borrow().enabled {
        Ok(())
    } else {
        Err(disabled())
    }
}

fn asking(c: &mut Conn, _: &Args) -> CmdResult {
    enabled(c)?;
    c.asking = true;
    c.out.ok();
    Ok(())
}

fn readonly(c: &mut Conn, _: &Args) -> CmdResult {
    enabled(c)?;
    c.readonly = true;
    c.out.ok();
    Ok(())
}

fn readwrite(c: &mut Conn, _: &Args) -> CmdResult {
    enabled(c)?;
    c.readonly = false;
    c.out.ok();
    Ok(())
}

type MemberFn = Box<dyn FnOnce(&Member, &mut Reply) -> CmdResult + Send>;

/// Runs `f` on the control core against the cluster member, then saves and publishes what
/// it changed; its reply is appended to the client's.
async fn on_member(c: &mut Conn, f: MemberFn) -> CmdResult {
    enabled(c)?;
    let resp3 = c.out.resp3;
    let control = c.shard.nshards;
    let reply = c
        .shard
        .call(control, move |_| {
            let member = Member::current();
            let m = member.ok_or_else(disabled)?;
            let mut out = Reply::new(resp3);
            let result = f(&m, &mut out);
            m.after_change();
            result.map(|()| out.buf)
        })
        .await?;
    c.out.buf.extend_from_slice(&reply);
    Ok(())
}

fn owned(a: &Args, from: usize) -> Vec<Vec<u8>> {
    a.rest(from).map(<[u8]>::to_vec).collect()
}

fn slot_arg(arg: &[u8]) -> Result<u16, Error> {
    parse_slot(arg).ok_or_else(|| Error::msg("Invalid or out of range slot"))
}

/// A node id argument naming a known node; otherwise `<unknown> <id>` (Redis words it
/// "Unknown node" or, in SETSLOT MIGRATING/IMPORTING, "I don't know about node").
fn known_node(m: &Member, arg: &[u8], unknown: &str) -> Result<NodeName, Error> {
    NodeName::from_bytes(arg)
        .filter(|n| m.state.borrow().nodes.contains_key(n))
        .ok_or_else(|| Error::msg(format!("{unknown} {}", String::from_utf8_lossy(arg))))
}

fn node_arg(m: &Member, arg: &[u8]) -> Result<NodeName, Error> {
    known_node(m, arg, "Unknown node")
}

/// The slots of ADDSLOTS/DELSLOTS (`ranges` false) or their RANGE forms.
fn slot_list(args: &[Vec<u8>], ranges: bool, name: &'static str) -> Result<Vec<u16>, Error> {
    if !ranges {
        return args.iter().map(|a| slot_arg(a)).collect();
    }
    if !args.len().is_multiple_of(2) {
        return Err(Error::WrongArity(name.into()));
    }
    let mut slots = Vec::new();
    for pair in args.chunks(2) {
        let (a, b) = (slot_arg(&pair[0])?, slot_arg(&pair[1])?);
        if a > b {
            return Err(Error::msg(format!(
                "start slot number {a} is greater than end slot number {b}"
            )));
        }
        slots.extend(a..=b);
    }
    Ok(slots)
}

fn addslots<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    change_slots(c, owned(&a, 2), false, true, "cluster|addslots")
}

fn addslotsrange<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    change_slots(c, owned(&a, 2), true, true, "cluster|addslotsrange")
}

fn delslots<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    change_slots(c, owned(&a, 2), false, false, "cluster|delslots")
}

fn delslotsrange<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    change_slots(c, owned(&a, 2), true, false, "cluster|delslotsrange")
}

fn change_slots<'a>(
    c: &'a mut Conn,
    args: Vec<Vec<u8>>,
    ranges: bool,
    add: bool,
    name: &'static str,
) -> BoxFuture<'a> {
    Box::pin(async move {
        let slots = slot_list(&args, ranges, name)?;
        on_member(
            c,
            Box::new(move |m, out| {
                let mut st = m.state.borrow_mut();
                let r = if add {
                    st.add_slots(&slots)
                } else {
                    st.del_slots(&slots)
                };
                r.map_err(Error::msg)?;
                m.mark_changed();
                out.ok();
                Ok(())
            }),
        )
        .await
    })
}

fn flushslots<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        enabled(c)?;
        let keys: usize = each_shard_data(c, |d| d.len()).await.iter().sum();
        if keys != 0 {
            return Err(Error::msg(
                "DB must be empty to perform CLUSTER FLUSHSLOTS.",
            ));
        }
        on_member(
            c,
            Box::new(|m, out| {
                let mut st = m.state.borrow_mut();
                let me = st.myself;
                let mine: Vec<u16> = (0..SLOTS as u16)
                    .filter(|&s| st.slots[s as usize] == Some(me))
                    .collect();
                let _ = st.del_slots(&mine);
                m.mark_changed();
                out.ok();
                Ok(())
            }),
        )
        .await
    })
}

fn bumpepoch<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            let mut st = m.state.borrow_mut();
            let bumped = st.bump_epoch_without_consensus();
            if bumped {
                m.mark_changed();
            }
            let word = if bumped { "BUMPED" } else { "STILL" };
            out.simple(&format!("{word} {}", st.me().config_epoch));
            Ok(())
        }),
    ))
}

fn count_failure_reports<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    let id = a.get(2).to_vec();
    Box::pin(on_member(
        c,
        Box::new(move |m, out| {
            let node = node_arg(m, &id)?;
            out.int(m.failure_reports(&node).unwrap_or(0) as i64);
            Ok(())
        }),
    ))
}

fn countkeysinslot<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        enabled(c)?;
        let slot = parse_i64_strict(a.get(2)).ok_or(Error::NotInteger)?;
        if !(0..SLOTS as i64).contains(&slot) {
            return Err(Error::msg("Invalid slot"));
        }
        let slot = slot as u16;
        let owner = c.shard.owner_of(slot);
        let n = on_shard_data(c, owner, move |_, d, _| d.db(0).count_in_slot(slot)).await;
        c.out.int(n as i64);
        Ok(())
    })
}

fn getkeysinslot<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        enabled(c)?;
        let slot = parse_i64_strict(a.get(2)).ok_or(Error::NotInteger)?;
        let count = parse_i64_strict(a.get(3)).ok_or(Error::NotInteger)?;
        if !(0..SLOTS as i64).contains(&slot) || count < 0 {
            return Err(Error::msg("Invalid slot or number of keys"));
        }
        let slot = slot as u16;
        let owner = c.shard.owner_of(slot);
        let keys: Vec<Vec<u8>> = on_shard_data(c, owner, move |_, d, _| {
            d.db(0).slot_table(slot).map_or_else(Vec::new, |t| {
                t.iter()
                    .take(count as usize)
                    .map(|(k, _)| k.to_vec())
                    .collect()
            })
        })
        .await;
        c.out.array(keys.len());
        for k in keys {
            c.out.bulk(&k);
        }
        Ok(())
    })
}

fn forget<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    let id = a.get(2).to_vec();
    Box::pin(on_member(
        c,
        Box::new(move |m, out| {
            let node = node_arg(m, &id)?;
            let (myself, my_master) = {
                let st = m.state.borrow();
                (st.myself, st.me().master)
            };
            if node == myself {
                return Err(Error::msg("I tried hard but I can't forget myself..."));
            }
            if my_master == Some(node) {
                return Err(Error::msg("Can't forget my master!"));
            }
            m.forget(&node);
            out.ok();
            Ok(())
        }),
    ))
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER], on a replica.
fn failover<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    let option = (a.len() == 3).then(|| a.get(2).to_ascii_lowercase());
    let too_many = a.len() > 3;
    let typed = a.get(1).to_vec();
    Box::pin(async move {
        enabled(c)?;
        if too_many {
            return Err(Error::msg(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
                String::from_utf8_lossy(&typed)
            )));
        }
        let (force, takeover) = match option.as_deref() {
            None => (false, false),
            Some(b"force") => (true, false),
            Some(b"takeover") => (true, true),
            Some(_) => return Err(Error::Syntax),
        };
        on_member(
            c,
            Box::new(move |m, out| {
                m.manual_failover(force, takeover).map_err(Error::msg)?;
                out.ok();
                Ok(())
            }),
        )
        .await
    })
}

/// CLUSTER REPLICATE <node-id>: this node becomes a replica of that master (Redis's
/// `clusterSetMaster`); its replication follows the master from the cluster cron on.
fn replicate<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    let id = a.get(2).to_vec();
    Box::pin(async move {
        enabled(c)?;
        // Redis looks at database 0 only.
        let db0_keys: usize = each_shard_data(c, |d| d.db_ref(0).len()).await.iter().sum();
        on_member(
            c,
            Box::new(move |m, out| {
                let node = node_arg(m, &id)?;
                m.replicate(node, db0_keys == 0).map_err(Error::msg)?;
                out.ok();
                Ok(())
            }),
        )
        .await
    })
}

fn help<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        enabled(c)?;
        const LINES: &[&str] = &[
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ADDSLOTS <slot> [<slot> ...]: assign slots to this node.",
            "ADDSLOTSRANGE <start> <end> [<start> <end> ...]: assign slot ranges to this node.",
            "BUMPEPOCH: give this node a new config epoch if it does not have the greatest.",
            "COUNT-FAILURE-REPORTS <node-id>: failure reports about a node.",
            "COUNTKEYSINSLOT <slot>: number of keys in a slot.",
            "FAILOVER [FORCE|TAKEOVER]: a replica takes its master's place.",
            "DELSLOTS <slot> [<slot> ...]: unassign slots in this node's view.",
            "DELSLOTSRANGE <start> <end> [<start> <end> ...]: unassign slot ranges.",
            "FLUSHSLOTS: unassign every slot of this (empty) node.",
            "FORGET <node-id>: remove a node from the table, and ignore it for a minute.",
            "GETKEYSINSLOT <slot> <count>: up to <count> key names of a slot.",
            "INFO: the cluster's state and counters.",
            "KEYSLOT <key>: the hash slot of a key.",
            "LINKS: the bus links of this node.",
            "MEET <ip> <port> [<bus-port>]: join the node at that address.",
            "MYID: this node's id.",
            "MYSHARDID: the id of this node's shard (its master's node id).",
            "NODES: the cluster configuration as this node sees it.",
            "REPLICAS <node-id>: the replicas of a master.",
            "REPLICATE <node-id>: become a replica of that master.",
            "RESET [HARD|SOFT]: forget every other node and slot.",
            "SAVECONFIG: write nodes.conf now.",
            "SET-CONFIG-EPOCH <epoch>: set the config epoch of a new node.",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>): slot migration states.",
            "SHARDS: the shards of the cluster and their nodes.",
            "SLOTS: slot ranges and the nodes serving them.",
            "HELP: print this help.",
        ];
        c.out.array(LINES.len());
        for l in LINES {
            c.out.simple(l);
        }
        Ok(())
    })
}

fn cluster_info<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            let mut text = m.state.borrow().info_lines();
            let names = crate::cluster::bus::msg_type::name;
            for (dir, counts) in [("sent", m.sent.borrow()), ("received", m.received.borrow())] {
                for (t, n) in counts.iter().enumerate() {
                    if *n > 0 {
                        text.push_str(&format!(
                            "cluster_stats_messages_{}_{dir}:{n}\r\n",
                            names(t as u16)
                        ));
                    }
                }
                text.push_str(&format!(
                    "cluster_stats_messages_{dir}:{}\r\n",
                    counts.iter().sum::<u64>()
                ));
            }
            text.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
            out.verbatim(text.as_bytes());
            Ok(())
        }),
    ))
}

fn keyslot<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        enabled(c)?;
        c.out.int(key_slot(a.get(2)) as i64);
        Ok(())
    })
}

fn links<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            let links = m.links_info();
            out.array(links.len());
            for (dir, node, ctime, queued) in links {
                out.map(6);
                out.bulk(b"direction");
                out.bulk(dir.as_bytes());
                out.bulk(b"node");
                out.bulk(node.to_string().as_bytes());
                out.bulk(b"create-time");
                out.int(ctime);
                out.bulk(b"events");
                out.bulk(b"r");
                out.bulk(b"send-buffer-allocated");
                out.int(queued as i64);
                out.bulk(b"send-buffer-used");
                out.int(queued as i64);
            }
            Ok(())
        }),
    ))
}

fn meet<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if a.len() != 4 && a.len() != 5 {
            return Err(Error::subcommand_syntax(a.get(1), "CLUSTER"));
        }
        let ip = String::from_utf8_lossy(a.get(2)).into_owned();
        let port_arg = String::from_utf8_lossy(a.get(3)).into_owned();
        let port = parse_i64_strict(a.get(3))
            .ok_or_else(|| Error::msg(format!("Invalid TCP base port specified: {port_arg}")))?;
        let cport = match a.len() {
            5 => parse_i64_strict(a.get(4)).ok_or_else(|| {
                Error::msg(format!(
                    "Invalid TCP bus port specified: {}",
                    String::from_utf8_lossy(a.get(4))
                ))
            })?,
            _ => port + 10000,
        };
        on_member(
            c,
            Box::new(move |m, out| {
                let valid = (1..=65535).contains(&port) && (1..=65535).contains(&cport);
                if !valid || !m.start_handshake(&ip, port as u16, cport as u16) {
                    return Err(Error::msg(format!(
                        "Invalid node address specified: {ip}:{port_arg}"
                    )));
                }
                m.mark_changed();
                out.ok();
                Ok(())
            }),
        )
        .await
    })
}

fn myid<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            out.bulk(m.state.borrow().myself.to_string().as_bytes());
            Ok(())
        }),
    ))
}

/// A shard is a master and its replicas; as a 7.0 node we send no shard-id extension and keep
/// no separate id, so the shard is named by its master's node id, stable across restarts.
fn myshardid<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            let st = m.state.borrow();
            let shard = st.me().master.unwrap_or(st.myself);
            out.bulk(shard.to_string().as_bytes());
            Ok(())
        }),
    ))
}

fn nodes<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            out.verbatim(m.state.borrow().nodes_text().as_bytes());
            Ok(())
        }),
    ))
}

fn replicas<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    let id = a.get(2).to_vec();
    Box::pin(on_member(
        c,
        Box::new(move |m, out| {
            let node = node_arg(m, &id)?;
            let st = m.state.borrow();
            if !st.nodes[&node].is_master() {
                return Err(Error::msg("The specified node is not a master"));
            }
            let lines: Vec<String> = st
                .replicas_of(&node)
                .iter()
                .map(|r| st.node_line(r))
                .collect();
            out.array(lines.len());
            for l in lines {
                out.bulk(l.as_bytes());
            }
            Ok(())
        }),
    ))
}

fn reset<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let hard = match a.len() {
            2 => false,
            3 if a.is(2, "HARD") => true,
            3 if a.is(2, "SOFT") => false,
            _ => return Err(Error::Syntax),
        };
        enabled(c)?;
        let keys: usize = each_shard_data(c, |d| d.len()).await.iter().sum();
        on_member(
            c,
            Box::new(move |m, out| {
                let is_master = m.state.borrow().me().is_master();
                if is_master && keys != 0 {
                    return Err(Error::msg(
                        "CLUSTER RESET can't be called with master nodes containing keys",
                    ));
                }
                m.forget_all_others();
                let mut st = m.state.borrow_mut();
                st.slots.iter_mut().for_each(|s| *s = None);
                st.migrating.clear();
                st.importing.clear();
                let me = st.me_mut();
                me.flags = node_flag::MYSELF | node_flag::MASTER;
                me.master = None;
                if hard {
                    st.current_epoch = 0;
                    st.last_vote_epoch = 0;
                    st.me_mut().config_epoch = 0;
                    let new = m.new_name();
                    let old = st.myself;
                    if let Some(mut n) = st.nodes.remove(&old) {
                        n.name = new;
                        st.nodes.insert(new, n);
                    }
                    st.myself = new;
                }
                m.mark_changed();
                out.ok();
                Ok(())
            }),
        )
        .await
    })
}

fn saveconfig<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            m.save_now()
                .map_err(|e| Error::msg(format!("error saving the cluster node config: {e}")))?;
            out.ok();
            Ok(())
        }),
    ))
}

fn set_config_epoch<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    let arg = a.get(2).to_vec();
    Box::pin(async move {
        let epoch = parse_i64_strict(&arg).ok_or(Error::NotInteger)?;
        on_member(
            c,
            Box::new(move |m, out| {
                if epoch < 0 {
                    return Err(Error::msg(format!("Invalid config epoch specified: {epoch}")));
                }
                let mut st = m.state.borrow_mut();
                if st.nodes.len() > 1 {
                    return Err(Error::msg("The user can assign a config epoch only when the node does not know any other node."));
                }
                if st.me().config_epoch != 0 {
                    return Err(Error::msg("Node config epoch is already non-zero"));
                }
                st.me_mut().config_epoch = epoch as u64;
                if st.current_epoch < epoch as u64 {
                    st.current_epoch = epoch as u64;
                }
                m.mark_changed();
                out.ok();
                Ok(())
            }),
        )
        .await
    })
}

fn setslot<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        enabled(c)?;
        let args = owned(&a, 2);
        let slot_text = args[0].clone();
        // Keys of the slot, for NODE's "still hold keys" rule.
        let slot = parse_slot(&slot_text).filter(|_| a.len() > 3 && a.is(3, "NODE"));
        let keys = match slot {
            Some(s) => {
                let owner = c.shard.owner_of(s);
                on_shard_data(c, owner, move |_, d, _| d.db(0).count_in_slot(s)).await
            }
            None => 0,
        };
        on_member(
            c,
            Box::new(move |m, out| setslot_on_member(m, &args, keys, out)),
        )
        .await
    })
}

fn setslot_on_member(m: &Member, args: &[Vec<u8>], keys: usize, out: &mut Reply) -> CmdResult {
    let bad_action =
        || Error::msg("Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP");
    if !m.state.borrow().me().is_master() {
        return Err(Error::msg("Please use SETSLOT only with masters."));
    }
    let slot = slot_arg(&args[0])?;
    let action = args
        .get(1)
        .map(|a| a.to_ascii_uppercase())
        .unwrap_or_default();
    let target = |m: &Member| {
        known_node(
            m,
            args.get(2).ok_or_else(bad_action)?,
            "I don't know about node",
        )
    };
    let is_master =
        |m: &Member, n: &NodeName| m.state.borrow().nodes.get(n).is_some_and(Node::is_master);
    match (action.as_slice(), args.len()) {
        (b"MIGRATING", 3) => {
            let myself = m.state.borrow().myself;
            if m.state.borrow().slots[slot as usize] != Some(myself) {
                return Err(Error::msg(format!("I'm not the owner of hash slot {slot}")));
            }
            let n = target(m)?;
            if !is_master(m, &n) {
                return Err(Error::msg("Target node is not a master"));
            }
            m.state.borrow_mut().migrating.insert(slot, n);
        }
        (b"IMPORTING", 3) => {
            let myself = m.state.borrow().myself;
            if m.state.borrow().slots[slot as usize] == Some(myself) {
                return Err(Error::msg(format!(
                    "I'm already the owner of hash slot {slot}"
                )));
            }
            let n = target(m)?;
            if !is_master(m, &n) {
                return Err(Error::msg("Target node is not a master"));
            }
            m.state.borrow_mut().importing.insert(slot, n);
        }
        (b"STABLE", 2) => {
            let mut st = m.state.borrow_mut();
            st.migrating.remove(&slot);
            st.importing.remove(&slot);
        }
        (b"NODE", 3) => {
            let n = node_arg(m, &args[2])?;
            if !is_master(m, &n) {
                return Err(Error::msg("Target node is not a master"));
            }
            let myself = m.state.borrow().myself;
            let mut st = m.state.borrow_mut();
            if st.slots[slot as usize] == Some(myself) && n != myself && keys > 0 {
                return Err(Error::msg(format!(
                    "Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                )));
            }
            if keys == 0 {
                st.migrating.remove(&slot);
            }
            let was_importing = st.importing.remove(&slot).is_some();
            let was_mine = st.slots[slot as usize] == Some(myself);
            let had_slots = st.slots_of(&n) > 0;
            st.slots[slot as usize] = Some(n);
            st.note_gained_slots(n, had_slots);
            // A master that gave away its last slot becomes a replica of the receiver.
            let allow = m.cfg.borrow().allow_replica_migration;
            if was_mine && n != myself && st.slots_of(&myself) == 0 && allow {
                drop(st);
                m.reconfigure_as_replica_of(n);
                out.ok();
                return Ok(());
            }
            if n == myself && was_importing {
                // The slot is ours now: take a new epoch without consensus so that our claim
                // wins, and tell everyone at once.
                st.bump_epoch_without_consensus();
                drop(st);
                m.mark_changed();
                m.broadcast_pong();
                out.ok();
                return Ok(());
            }
        }
        _ => return Err(bad_action()),
    }
    m.mark_changed();
    out.ok();
    Ok(())
}

fn shards<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            let st = m.state.borrow();
            let ep = m.cfg.borrow().endpoint_type;
            let masters: Vec<&Node> = st.nodes.values().filter(|n| n.is_master()).collect();
            out.array(masters.len());
            for master in masters {
                out.map(2);
                out.bulk(b"slots");
                let runs = st.runs_of(&master.name);
                out.array(runs.len() * 2);
                for (a, b) in runs {
                    out.int(a as i64);
                    out.int(b as i64);
                }
                out.bulk(b"nodes");
                let mut members = vec![master];
                members.extend(st.replicas_of(&master.name));
                out.array(members.len());
                for n in members {
                    shard_node(out, n, ep, m.offset_of(n));
                }
            }
            Ok(())
        }),
    ))
}

fn shard_node(out: &mut Reply, n: &Node, ep: EndpointType, offset: i64) {
    out.map(6 + usize::from(n.port != 0) + usize::from(!n.hostname.is_empty()));
    out.bulk(b"id");
    out.bulk(n.name.to_string().as_bytes());
    if n.port != 0 {
        out.bulk(b"port");
        out.int(n.port as i64);
    }
    out.bulk(b"ip");
    out.bulk(n.ip.as_bytes());
    out.bulk(b"endpoint");
    out.bulk(ep.endpoint(&n.ip, &n.hostname).as_bytes());
    if !n.hostname.is_empty() {
        out.bulk(b"hostname");
        out.bulk(n.hostname.as_bytes());
    }
    out.bulk(b"role");
    out.bulk(if n.is_master() { b"master" } else { b"replica" });
    out.bulk(b"replication-offset");
    out.int(offset);
    out.bulk(b"health");
    out.bulk(if n.has(node_flag::FAIL) {
        b"fail"
    } else if !n.is_master() && offset == 0 {
        b"loading"
    } else {
        b"online"
    });
}

fn slots<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(on_member(
        c,
        Box::new(|m, out| {
            let st = m.state.borrow();
            let ep = m.cfg.borrow().endpoint_type;
            let ranges = st.slot_ranges();
            out.array(ranges.len());
            for (start, end, owner) in ranges {
                // Replicas that finished their first sync (Redis's `isReplicaAvailable`).
                let replicas: Vec<&Node> = st
                    .replicas_of(&owner)
                    .into_iter()
                    .filter(|r| !r.has(node_flag::FAIL) && m.offset_of(r) != 0)
                    .collect();
                out.array(3 + replicas.len());
                out.int(start as i64);
                out.int(end as i64);
                match st.nodes.get(&owner) {
                    Some(n) => slot_node(out, n, ep),
                    None => slot_node(out, &Node::new(owner, node_flag::MASTER), ep),
                }
                for r in replicas {
                    slot_node(out, r, ep);
                }
            }
            Ok(())
        }),
    ))
}

/// One node of a CLUSTER SLOTS range: endpoint, port, id, and the other addresses.
fn slot_node(out: &mut Reply, n: &Node, ep: EndpointType) {
    out.array(4);
    match ep {
        EndpointType::Unknown => out.null(),
        _ => out.bulk(ep.endpoint(&n.ip, &n.hostname).as_bytes()),
    }
    out.int(n.port as i64);
    out.bulk(n.name.to_string().as_bytes());
    let show_ip = ep != EndpointType::Ip;
    let show_host = ep != EndpointType::Hostname && !n.hostname.is_empty();
    out.map(usize::from(show_ip) + usize::from(show_host));
    if show_ip {
        out.bulk(b"ip");
        out.bulk(n.ip.as_bytes());
    }
    if show_host {
        out.bulk(b"hostname");
        out.bulk(n.hostname.as_bytes());
    }
}
