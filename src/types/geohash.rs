//! Redis's geohash: a (longitude, latitude) pair as a 52-bit interleaved integer, stored as a
//! sorted set score, and the box searches the GEO commands run over those scores. The
//! arithmetic follows Redis 7.0's `geohash.c` / `geohash_helper.c` operation for operation
//! (same ranges, same float expressions, the same libm calls), so positions, distances and
//! search results come out bit for bit as stock's.

/// Bits per coordinate of a stored score (26 + 26 = 52, exact in a double).
pub const STEP_MAX: u8 = 26;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// Web Mercator's limits: the poles cannot be indexed.
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;

const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

#[inline]
fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

#[inline]
fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// A cell: `step` bits per coordinate, latitude bits in the even positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    /// Redis's "zero" hash marks a neighbour excluded from a search.
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The cell's bits aligned to 52, the lowest score inside it.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - self.step as u32 * 2)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Range {
    min: f64,
    max: f64,
}

const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// A cell's extent.
#[derive(Clone, Copy, Debug, Default)]
struct Area {
    lon: Range,
    lat: Range,
}

fn interleave(lat: u32, lon: u32) -> u64 {
    // Spreads the 32 bits of `v` to the even positions of a u64.
    fn spread(v: u32) -> u64 {
        let mut x = v as u64;
        x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
        x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
        x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        x = (x | (x << 2)) & 0x3333_3333_3333_3333;
        (x | (x << 1)) & 0x5555_5555_5555_5555
    }
    spread(lat) | (spread(lon) << 1)
}

/// (latitude bits, longitude bits) of an interleaved hash.
fn deinterleave(bits: u64) -> (u32, u32) {
    fn squeeze(v: u64) -> u32 {
        let mut x = v & 0x5555_5555_5555_5555;
        x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
        x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
        x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
        x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
        x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
        x as u32
    }
    (squeeze(bits), squeeze(bits >> 1))
}

fn encode_in(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let mut lat_offset = (lat - lat_r.min) / (lat_r.max - lat_r.min);
    let mut lon_offset = (lon - lon_r.min) / (lon_r.max - lon_r.min);
    lat_offset *= (1u64 << step) as f64;
    lon_offset *= (1u64 << step) as f64;
    Some(HashBits {
        bits: interleave(lat_offset as u32, lon_offset as u32),
        step,
    })
}

/// The cell of `step` bits per coordinate holding (lon, lat); `None` outside the limits.
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    encode_in(LONG_RANGE, LAT_RANGE, lon, lat, step)
}

/// The score GEOADD stores for (lon, lat), which must be within the limits.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(lon, lat, STEP_MAX).map(|h| h.align52())
}

fn decode_area(h: HashBits) -> Option<Area> {
    if h.is_zero() {
        return None;
    }
    let (ilat, ilon) = deinterleave(h.bits);
    let cells = (1u64 << h.step) as f64;
    let lat_scale = LAT_RANGE.max - LAT_RANGE.min;
    let lon_scale = LONG_RANGE.max - LONG_RANGE.min;
    // As C computes `ilato + 1` in 32-bit unsigned arithmetic.
    let (ilat1, ilon1) = (ilat.wrapping_add(1), ilon.wrapping_add(1));
    Some(Area {
        lat: Range {
            min: LAT_RANGE.min + (ilat as f64 * 1.0 / cells) * lat_scale,
            max: LAT_RANGE.min + (ilat1 as f64 * 1.0 / cells) * lat_scale,
        },
        lon: Range {
            min: LONG_RANGE.min + (ilon as f64 * 1.0 / cells) * lon_scale,
            max: LONG_RANGE.min + (ilon1 as f64 * 1.0 / cells) * lon_scale,
        },
    })
}

/// C's `(uint64_t)d` as x86-64 compilers emit it (cvttsd2si, with the 2^63 adjustment):
/// scores that are not geohashes (negative, huge, infinite) decode to what stock decodes.
fn c_double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    fn cvtt(x: f64) -> i64 {
        if x.is_nan() || !(-TWO63..TWO63).contains(&x) {
            i64::MIN
        } else {
            x as i64
        }
    }
    if d < TWO63 {
        cvtt(d) as u64
    } else {
        (cvtt(d - TWO63) as u64) ^ (1 << 63)
    }
}

/// The (longitude, latitude) a sorted set score stands for: the centre of its cell, clamped
/// to the limits.
pub fn decode_score(score: f64) -> [f64; 2] {
    let h = HashBits {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    };
    let a = decode_area(h).unwrap_or_default();
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [lon, lat]
}

/// GEOHASH's 11-character standard geohash of a score (re-encoded over latitude -90..90).
pub fn standard_geohash(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score);
    let bits = encode_in(
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
        lon,
        lat,
        26,
    )
    .map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine great-circle distance in metres.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// A search area: a circle or a box, in the unit `conversion` (metres per unit) says.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// Where and what to search.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    /// Centre (longitude, latitude).
    pub xy: [f64; 2],
    pub shape: Shape,
    pub conversion: f64,
}

impl Search {
    /// The distance from the centre when the point of `score` lies inside the shape.
    pub fn within(&self, score: f64) -> Option<([f64; 2], f64)> {
        let xy = decode_score(score);
        let [x1, y1] = self.xy;
        let [x2, y2] = xy;
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(x1, y1, x2, y2);
                (d <= r * self.conversion).then_some((xy, d))
            }
            Shape::Box { width, height } => {
                let (w, h) = (width * self.conversion, height * self.conversion);
                if lat_distance(y2, y1) > h / 2.0 {
                    return None;
                }
                if distance(x2, y2, x1, y2) > w / 2.0 {
                    return None;
                }
                Some((xy, distance(x1, y1, x2, y2)))
            }
        }
    }

    /// [min lon, min lat, max lon, max lat] around the shape.
    fn bounds(&self) -> [f64; 4] {
        let [lon, lat] = self.xy;
        let (height, width) = match self.shape {
            Shape::Radius(r) => (self.conversion * r, self.conversion * r),
            Shape::Box { width, height } => (
                self.conversion * (height / 2.0),
                self.conversion * (width / 2.0),
            ),
        };
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let lon_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
        let lon_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
        let d = if lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [lon - d, lat - lat_delta, lon + d, lat + lat_delta]
    }

    /// The cells to scan, in Redis's order: the centre's cell, then N, S, E, W, NE, NW, SE,
    /// SW, with the ones that cannot hold a match zeroed; duplicates of the previous cell
    /// scanned are skipped (the centre never counts as previous, as in Redis).
    pub fn cells(&self) -> Vec<HashBits> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let [lon, lat] = self.xy;
        let radius_m = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.conversion;
        let mut steps = estimate_steps(radius_m, lat);
        let at = |steps: u8| {
            let hash = encode(lon, lat, steps).unwrap_or_default();
            (
                hash,
                neighbours(hash),
                decode_area(hash).unwrap_or_default(),
            )
        };
        let (mut hash, mut n, mut area) = at(steps);
        let edge = |h: HashBits| decode_area(h).unwrap_or_default();
        let decrease = edge(n[0]).lat.max < max_lat
            || edge(n[1]).lat.min > min_lat
            || edge(n[2]).lon.max < max_lon
            || edge(n[3]).lon.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            (hash, n, area) = at(steps);
        }
        // n: [north, south, east, west, north_east, north_west, south_east, south_west]
        if steps >= 2 {
            let zero = HashBits::default();
            if area.lat.min < min_lat {
                for i in [1, 7, 6] {
                    n[i] = zero;
                }
            }
            if area.lat.max > max_lat {
                for i in [0, 4, 5] {
                    n[i] = zero;
                }
            }
            if area.lon.min < min_lon {
                for i in [3, 7, 5] {
                    n[i] = zero;
                }
            }
            if area.lon.max > max_lon {
                for i in [2, 6, 4] {
                    n[i] = zero;
                }
            }
        }
        let all = [hash, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]];
        let mut out = Vec::with_capacity(9);
        let mut last: Option<usize> = None;
        for (i, h) in all.iter().enumerate() {
            if h.is_zero() {
                continue;
            }
            if let Some(l) = last.filter(|&l| l > 0) {
                if all[l] == *h {
                    continue;
                }
            }
            out.push(*h);
            last = Some(i);
        }
        out
    }
}

/// The step whose cells are about the size of the search radius (`geohashEstimateStepsByRadius`).
fn estimate_steps(mut range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_m < MERCATOR_MAX {
        range_m *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

fn move_x(h: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - h.step as u32 * 2;
    let mut x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    h.bits = x | y;
}

fn move_y(h: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - h.step as u32 * 2;
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> shift;
    h.bits = x | y;
}

/// [north, south, east, west, north_east, north_west, south_east, south_west]
fn neighbours(h: HashBits) -> [HashBits; 8] {
    let moved = |dx: i8, dy: i8| {
        let mut n = h;
        move_x(&mut n, dx);
        move_y(&mut n, dy);
        n
    };
    [
        moved(0, 1),
        moved(0, -1),
        moved(1, 0),
        moved(-1, 0),
        moved(1, 1),
        moved(-1, 1),
        moved(1, -1),
        moved(-1, -1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (a, b) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0xdead_beef, 0x1234_5678),
            (u32::MAX, 7),
        ] {
            assert_eq!(deinterleave(interleave(a, b)), (a, b));
        }
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
    }

    #[test]
    fn redis_documentation_examples() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" 15.087269 37.502669 "Catania"
        let palermo = score_of(13.361389, 38.115556).unwrap();
        let catania = score_of(15.087269, 37.502669).unwrap();
        assert_eq!(palermo, 3479099956230698);
        assert_eq!(catania, 3479447370796909);
        assert_eq!(&standard_geohash(palermo as f64), b"sqc8b49rny0");
        assert_eq!(&standard_geohash(catania as f64), b"sqdtr74hyu0");
        let [p, c] = [decode_score(palermo as f64), decode_score(catania as f64)];
        let d = distance(p[0], p[1], c[0], c[1]);
        assert!((d - 166274.1516).abs() < 0.001, "{d}");
        assert_eq!(score_of(181.0, 0.0), None);
        assert_eq!(score_of(0.0, 85.06), None);
    }

    #[test]
    fn odd_scores_decode_as_x86_casts() {
        assert_eq!(c_double_to_u64(-5.0), (-5i64) as u64);
        assert_eq!(c_double_to_u64(f64::INFINITY), 0);
        assert_eq!(c_double_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(c_double_to_u64(1e19), 10_000_000_000_000_000_000);
    }
}
