//! LOLWUT (Redis 7.0's lolwut.c): this version prints the server version; `VERSION 5` draws
//! Georg Nees's "Schotter" (rows of squares, more displaced and rotated the lower they are)
//! in Braille characters, two by four pixels per character, as Redis 5's did.

use crate::error::CmdResult;
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::types::set::Rng;
use crate::util::num::arg_i64;

pub fn lolwut(c: &mut Conn, a: &Args) -> CmdResult {
    // `VERSION v` picks the art of Redis version v; the rest are that version's arguments.
    let (version, rest) = if a.len() >= 3 && a.is(1, "VERSION") {
        // Redis prints `(unsigned) v` as "v.0.0" and looks at its first characters.
        (format!("{}.0.0", arg_i64(a.get(2))? as u32), 3)
    } else {
        (crate::REDIS_VERSION.to_string(), 1)
    };
    let v = version.as_bytes();
    let text = if v[1] == b'.' && ((v[0] == b'5' && v[2] != b'9') || (v[0] == b'4' && v[2] == b'9'))
    {
        let mut params = [66i64, 8, 12];
        for (p, arg) in params.iter_mut().zip(a.rest(rest)) {
            *p = arg_i64(arg)?;
        }
        let [cols, per_row, per_col] = params;
        let seed = crate::util::time::now_us() as u64;
        let mut art = schotter(
            cols.clamp(1, 1000) as i32,
            per_row.clamp(1, 200) as i32,
            per_col.clamp(1, 200) as i32,
            &mut Rng::new(seed),
        );
        art.extend_from_slice(b"\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
        art.extend_from_slice(crate::REDIS_VERSION.as_bytes());
        art.push(b'\n');
        art
    } else {
        format!("Redis ver. {}\n", crate::REDIS_VERSION).into_bytes()
    };
    c.out.verbatim(&text);
    Ok(())
}

struct Canvas {
    width: i32,
    height: i32,
    pixels: Vec<bool>,
}

impl Canvas {
    fn set(&mut self, x: i32, y: i32) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize] = true;
        }
    }

    fn get(&self, x: i32, y: i32) -> bool {
        (0..self.width).contains(&x)
            && (0..self.height).contains(&y)
            && self.pixels[(x + y * self.width) as usize]
    }

    /// Bresenham's line.
    fn line(&mut self, (mut x1, mut y1): (i32, i32), (x2, y2): (i32, i32)) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square of side `size` centred at (x, y), rotated by `angle`.
    fn square(&mut self, x: i32, y: i32, size: f32, angle: f32) {
        // As C computes it: the angle kept in a float, the trigonometry in double.
        // Redis divides by this truncated constant, in double, into a float.
        #[allow(clippy::approx_constant)]
        const SQRT_2_AS_REDIS: f64 = 1.4142135623;
        let size = ((size as f64 / SQRT_2_AS_REDIS) as f32 as f64).round();
        let mut k = (std::f64::consts::FRAC_PI_4 + angle as f64) as f32;
        let mut corners = [(0, 0); 4];
        for p in &mut corners {
            let k64 = k as f64;
            *p = (
                (k64.sin() * size + x as f64).round() as i32,
                (k64.cos() * size + y as f64).round() as i32,
            );
            k = (k as f64 + std::f64::consts::FRAC_PI_2) as f32;
        }
        for j in 0..4 {
            self.line(corners[j], corners[(j + 1) % 4]);
        }
    }

    /// Braille characters, one per 2x4 pixels, rows separated by newlines.
    fn render(&self) -> Vec<u8> {
        let mut text = Vec::new();
        for y in (0..self.height).step_by(4) {
            for x in (0..self.width).step_by(2) {
                let dots = [
                    (0, 0),
                    (0, 1),
                    (0, 2),
                    (1, 0),
                    (1, 1),
                    (1, 2),
                    (0, 3),
                    (1, 3),
                ];
                let byte = dots
                    .iter()
                    .enumerate()
                    .filter(|(_, (dx, dy))| self.get(x + dx, y + dy))
                    .fold(0u32, |b, (bit, _)| b | 1 << bit);
                let ch = char::from_u32(0x2800 + byte).unwrap_or(' ');
                let mut buf = [0u8; 4];
                text.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            if y != self.height - 1 {
                text.push(b'\n');
            }
        }
        text
    }
}

fn schotter(cols: i32, per_row: i32, per_col: i32, rng: &mut Rng) -> Vec<u8> {
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32) as i32 + padding * 2;
    let mut canvas = Canvas {
        width,
        height,
        pixels: vec![false; (width * height) as usize],
    };
    let mut unit = || (rng.next() >> 40) as f32 / (1u64 << 24) as f32;
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut angle = 0.0;
            if y > 1 {
                let scale = y as f32 / per_col as f32;
                let mut r = [unit() * scale, unit() * scale, unit() * scale];
                for v in &mut r {
                    if unit() < 0.5 {
                        *v = -*v;
                    }
                }
                angle = r[0];
                // C's `int += float`: the sum truncated, not the addend.
                sx = (sx as f32 + r[1] * side / 3.0) as i32;
                sy = (sy as f32 + r[2] * side / 3.0) as i32;
            }
            canvas.square(sx, sy, side, angle);
        }
    }
    canvas.render()
}
