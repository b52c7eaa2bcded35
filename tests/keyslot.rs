//! `redcell::slot::key_slot` agrees with stock redis-server's CLUSTER KEYSLOT (hash tags, binary keys).

mod common;

use common::{Rng, StockRedis};

/// A stock redis-server with cluster support on (CLUSTER KEYSLOT needs it).
fn stock_cluster_node() -> StockRedis {
    StockRedis::start(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ])
}

fn stock_slots(con: &mut redis::Connection, keys: &[Vec<u8>]) -> Vec<u16> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("CLUSTER").arg("KEYSLOT").arg(k.as_slice());
        }
        let slots: Vec<u16> = p.query(con).expect("CLUSTER KEYSLOT pipeline");
        out.extend(slots);
    }
    out
}

#[test]
fn fixed_table_matches_stock_redis() {
    let stock = stock_cluster_node();
    let mut con = stock.conn();
    let table: Vec<&[u8]> = vec![
        b"foo",
        b"bar",
        b"123456789",
        b"",
        b"{user1000}.following",
        b"{user1000}.followers",
        b"user1000",
        b"{}",
        b"{",
        b"}",
        b"}{",
        b"{{a}}",
        b"{a",
        b"a{}b",
        b"{a}{b}",
        b"a",
        b"{}{a}",
        b"foo{}{bar}",
        b"foo{{bar}}zap",
        b"foo{bar}{zap}",
        b"\0",
        b"a\0b",
        b"{\0}x",
        b"\xff",
        b"\xff\xfe\x00\x01",
        b"{\xff}\x00",
        b"\x00{\xff\x00}",
    ];
    let keys: Vec<Vec<u8>> = table.iter().map(|k| k.to_vec()).collect();
    let expected = stock_slots(&mut con, &keys);
    for (k, want) in keys.iter().zip(&expected) {
        assert_eq!(redcell::slot::key_slot(k), *want, "key {}", common::show(k));
    }
    assert_eq!(redcell::slot::key_slot(b"foo"), 12182);
    assert_eq!(
        redcell::slot::key_slot(b"{user1000}.following"),
        redcell::slot::key_slot(b"{user1000}.followers")
    );
}

#[test]
fn random_binary_keys_match_stock_redis() {
    let stock = stock_cluster_node();
    let mut con = stock.conn();
    let mut rng = Rng(0x00c0_ffee);
    let keys: Vec<Vec<u8>> = (0..2000)
        .map(|_| {
            let len = rng.below(48) as usize;
            let mut k = rng.bytes(len);
            // Braces are rare in random bytes: plant some so hash tags of every shape appear.
            for _ in 0..rng.below(4) {
                if !k.is_empty() {
                    let at = rng.below(k.len() as u64) as usize;
                    k[at] = if rng.below(2) == 0 { b'{' } else { b'}' };
                }
            }
            k
        })
        .collect();
    let expected = stock_slots(&mut con, &keys);
    let mismatches: Vec<String> = keys
        .iter()
        .zip(&expected)
        .filter(|(k, want)| redcell::slot::key_slot(k) != **want)
        .map(|(k, want)| {
            format!(
                "{} ours {} stock {want}",
                common::show(k),
                redcell::slot::key_slot(k)
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} keys disagree: {:?}",
        mismatches.len(),
        keys.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}
