//! Redis's intset blob (SET_INTSET payloads): u32 width (2, 4 or 8), u32 count, then the
//! members as signed little-endian integers in strictly ascending order.

use super::RdbError;

/// Encodes ascending, distinct integers at the narrowest width that holds them all.
pub fn encode(sorted: &[i64]) -> Vec<u8> {
    encode_with_width(sorted, 2)
}

/// Encodes ascending, distinct integers at least `min_width` bytes wide (an intset keeps
/// its width after the members that needed it are gone).
pub fn encode_with_width(sorted: &[i64], min_width: usize) -> Vec<u8> {
    let width = sorted
        .iter()
        .map(|&v| {
            if i16::try_from(v).is_ok() {
                2
            } else if i32::try_from(v).is_ok() {
                4
            } else {
                8
            }
        })
        .fold(min_width, usize::max);
    let mut out = Vec::with_capacity(8 + sorted.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for &v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// Validates an intset blob as `intsetValidateIntegrity` does in deep mode (known width,
/// exact size, at least one member, strictly ascending) and returns its members.
pub fn decode(blob: &[u8]) -> Result<Vec<i64>, RdbError> {
    decode_with_width(blob).map(|(_, v)| v)
}

/// `decode`, also returning the blob's width.
pub fn decode_with_width(blob: &[u8]) -> Result<(usize, Vec<i64>), RdbError> {
    let bad = RdbError::BadFormat;
    if blob.len() < 8 {
        return Err(bad);
    }
    let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    let count = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || count == 0 || count.checked_mul(width) != Some(blob.len() - 8)
    {
        return Err(bad);
    }
    let mut out = Vec::with_capacity(count);
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes([chunk[0], chunk[1]]) as i64,
            4 => i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as i64,
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(chunk);
                i64::from_le_bytes(a)
            }
        };
        if out.last().is_some_and(|&last| last >= v) {
            return Err(bad);
        }
        out.push(v);
    }
    Ok((width, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_redis_and_round_trips() {
        assert_eq!(
            encode(&[1, 2, 3]),
            [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]
        );
        for set in [
            vec![-5, 0, 7],
            vec![i16::MIN as i64, 40_000],
            vec![1, i64::MAX],
            vec![i64::MIN],
        ] {
            assert_eq!(decode(&encode(&set)).unwrap(), set);
        }
        assert_eq!(encode(&[1, 40_000])[0], 4);
        assert_eq!(encode(&[-1, 1 << 40])[0], 8);
        let wide = encode_with_width(&[1, 2], 4);
        assert_eq!(wide, [4, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(decode_with_width(&wide).unwrap(), (4, vec![1, 2]));
    }

    #[test]
    fn rejects_bad_blobs() {
        let good = encode(&[1, 2, 3]);
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err());
        }
        let mut b = good.clone();
        b[0] = 3; // unknown width
        assert!(decode(&b).is_err());
        let mut b = good.clone();
        b[4] = 4; // count says more than there is
        assert!(decode(&b).is_err());
        let mut b = good.clone();
        b[10] = 1; // 1, 1, 3: not strictly ascending
        assert!(decode(&b).is_err());
        assert!(decode(&[2, 0, 0, 0, 0, 0, 0, 0]).is_err()); // empty
        let mut b = good.clone();
        b.push(0);
        assert!(decode(&b).is_err()); // trailing byte
    }
}
