//! Redis's partial quicksort (`pqsort`, a Bentley-McIlroy quicksort that only recurses into
//! partitions overlapping the wanted ranks). SORT with BY and LIMIT and GEO searches with
//! COUNT use it: equal elements end up in its order, not in a stable sort's, so we sort the
//! same way to return the same replies.

use std::cmp::Ordering;

/// Sorts `v` enough that ranks `lo..=hi` hold what a full sort would put there.
pub fn pqsort<T>(v: &mut [T], lo: usize, hi: usize, cmp: &mut impl FnMut(&T, &T) -> Ordering) {
    partial(v, 0, v.len(), lo, hi, cmp);
}

fn med3<T>(
    v: &[T],
    a: usize,
    b: usize,
    c: usize,
    cmp: &mut impl FnMut(&T, &T) -> Ordering,
) -> usize {
    if cmp(&v[a], &v[b]).is_lt() {
        if cmp(&v[b], &v[c]).is_lt() {
            b
        } else if cmp(&v[a], &v[c]).is_lt() {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]).is_gt() {
        b
    } else if cmp(&v[a], &v[c]).is_lt() {
        a
    } else {
        c
    }
}

/// Swaps `n` elements from `a` with `n` from `b`, pairwise in order.
fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Whether the partition `[start, start + len)` holds any of the ranks `lo..=hi`.
fn wanted(start: usize, len: usize, lo: usize, hi: usize) -> bool {
    !(hi < start || lo >= start + len)
}

fn partial<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    lo: usize,
    hi: usize,
    cmp: &mut impl FnMut(&T, &T) -> Ordering,
) {
    loop {
        if n < 7 {
            for m in a + 1..a + n {
                let mut l = m;
                while l > a && cmp(&v[l - 1], &v[l]).is_gt() {
                    v.swap(l, l - 1);
                    l -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let (mut pl, mut pn) = (a, a + n - 1);
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c.is_gt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[a]);
                if c.is_lt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - r, r);
        let left = pb - pa;
        if left > 1 && wanted(a, left, lo, hi) {
            partial(v, a, left, lo, hi, cmp);
        }
        let right = pd - pc;
        if right > 1 {
            a = pn - right;
            n = right;
            if wanted(a, n, lo, hi) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_ranks_are_sorted() {
        let mut seed = 0x1234_5678_u64;
        for round in 0..300 {
            let n = 1 + round % 97;
            let orig: Vec<u32> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 20) as u32
                })
                .collect();
            let mut sorted = orig.clone();
            sorted.sort();
            let lo = round % n;
            let hi = (lo + round % 7).min(n - 1);
            let mut v = orig.clone();
            pqsort(&mut v, lo, hi, &mut |a, b| a.cmp(b));
            assert_eq!(v[lo..=hi], sorted[lo..=hi], "{orig:?} {lo} {hi}");
            let mut full = orig.clone();
            pqsort(&mut full, 0, n - 1, &mut |a, b| a.cmp(b));
            assert_eq!(full, sorted);
        }
    }
}
