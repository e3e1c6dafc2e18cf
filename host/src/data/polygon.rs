//! Polygons ↔ masks: rasterizing lesion outlines, and tracing a mask's outlines back into
//! polygons.
//!
//! Coordinates are continuous image coordinates: pixel `(i, j)` covers `[i, i+1) × [j, j+1)`,
//! and it belongs to a polygon when its centre `(i + ½, j + ½)` does (even-odd rule, so a
//! self-intersecting outline has holes where it winds twice). Tracing follows the cracks between
//! pixels, so a traced outline rasterizes back to exactly the same pixels.

use image::{GrayImage, Luma};

/// A closed outline; the last point connects back to the first.
pub type Polygon = Vec<[f64; 2]>;

/// Fills the union of `lesion` polygons, minus the union of `holes`, as a 0/255 mask.
pub fn rasterize(lesion: &[Polygon], holes: &[Polygon], width: u32, height: u32) -> GrayImage {
    let mut inside = vec![false; width as usize * height as usize];
    for p in lesion {
        fill_even_odd(p, width, height, |i| inside[i] = true);
    }
    for p in holes {
        fill_even_odd(p, width, height, |i| inside[i] = false);
    }
    GrayImage::from_fn(width, height, |x, y| {
        Luma([if inside[(y * width + x) as usize] {
            255
        } else {
            0
        }])
    })
}

/// Calls `set(y * width + x)` for every pixel whose centre lies inside `polygon` (even-odd).
fn fill_even_odd(polygon: &[[f64; 2]], width: u32, height: u32, mut set: impl FnMut(usize)) {
    if polygon.len() < 3 {
        return;
    }
    let mut crossings = Vec::new();
    for y in 0..height {
        let yc = f64::from(y) + 0.5;
        crossings.clear();
        for (k, a) in polygon.iter().enumerate() {
            let b = polygon[(k + 1) % polygon.len()];
            // Half-open rule: an edge counts when the scanline passes between its end points, so
            // a vertex exactly on the scanline is counted once.
            if (a[1] <= yc) != (b[1] <= yc) {
                crossings.push(a[0] + (yc - a[1]) * (b[0] - a[0]) / (b[1] - a[1]));
            }
        }
        crossings.sort_by(f64::total_cmp);
        for span in crossings.chunks_exact(2) {
            // Pixels whose centre x + ½ lies in [span[0], span[1]).
            let first = (span[0] - 0.5).ceil().max(0.0);
            let end = (span[1] - 0.5).ceil().min(f64::from(width));
            let mut x = first;
            while x < end {
                set(y as usize * width as usize + x as usize);
                x += 1.0;
            }
        }
    }
}

/// One outline traced from a mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Contour {
    /// Corner points (integer coordinates), without repeated collinear points.
    pub points: Polygon,
    /// True for the inner outline of a hole in a region.
    pub hole: bool,
}

const STEPS: [(i64, i64); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)]; // east, south, west, north

/// Traces the outlines of the lesion (value ≥ 128) regions of `mask` along the pixel edges.
///
/// Every lesion pixel side that faces background becomes a directed edge with the lesion on its
/// right (clockwise on screen); the edges are chained into closed loops, turning right first so
/// that regions touching only at a corner get separate outlines. Outer outlines run clockwise
/// (positive area in image coordinates) and holes counter-clockwise. Rasterizing the outer ones as
/// lesion and the holes as holes gives back the mask exactly (except for islands inside holes).
pub fn trace_contours(mask: &GrayImage) -> Vec<Contour> {
    let (w, h) = (i64::from(mask.width()), i64::from(mask.height()));
    let lesion = |x: i64, y: i64| {
        x >= 0 && y >= 0 && x < w && y < h && mask.get_pixel(x as u32, y as u32).0[0] >= 128
    };
    // Per corner vertex, a bit per outgoing edge direction.
    let stride = (w + 1) as usize;
    let vertex = |x: i64, y: i64| y as usize * stride + x as usize;
    let mut out = vec![0u8; stride * (h + 1) as usize];
    for y in 0..h {
        for x in 0..w {
            if !lesion(x, y) {
                continue;
            }
            if !lesion(x, y - 1) {
                out[vertex(x, y)] |= 1 << 0;
            }
            if !lesion(x + 1, y) {
                out[vertex(x + 1, y)] |= 1 << 1;
            }
            if !lesion(x, y + 1) {
                out[vertex(x + 1, y + 1)] |= 1 << 2;
            }
            if !lesion(x - 1, y) {
                out[vertex(x, y + 1)] |= 1 << 3;
            }
        }
    }
    let mut visited = vec![0u8; out.len()];
    let mut contours = Vec::new();
    for y in 0..=h {
        for x in 0..=w {
            for d in 0..4 {
                let bit = 1u8 << d;
                if out[vertex(x, y)] & bit == 0 || visited[vertex(x, y)] & bit != 0 {
                    continue;
                }
                let mut points = Vec::new();
                let (mut cx, mut cy, mut dir) = (x, y, d);
                loop {
                    visited[vertex(cx, cy)] |= 1 << dir;
                    points.push([cx as f64, cy as f64]);
                    cx += STEPS[dir].0;
                    cy += STEPS[dir].1;
                    let here = out[vertex(cx, cy)];
                    // Right turn, straight on, left turn; every edge has exactly one successor.
                    dir = [(dir + 1) % 4, dir, (dir + 3) % 4]
                        .into_iter()
                        .find(|&n| here & (1 << n) != 0)
                        .expect("a boundary edge always continues");
                    if (cx, cy, dir) == (x, y, d) {
                        break;
                    }
                }
                let points = drop_collinear(points);
                let hole = signed_area(&points) < 0.0;
                contours.push(Contour { points, hole });
            }
        }
    }
    contours
}

/// Twice the signed area; positive for clockwise loops on screen (y pointing down).
pub fn signed_area(points: &[[f64; 2]]) -> f64 {
    (0..points.len())
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % points.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum()
}

fn drop_collinear(points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    let n = points.len();
    (0..n)
        .filter(|&i| {
            let (p, c, q) = (points[(i + n - 1) % n], points[i], points[(i + 1) % n]);
            (c[0] - p[0]) * (q[1] - c[1]) - (c[1] - p[1]) * (q[0] - c[0]) != 0.0
        })
        .map(|i| points[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> GrayImage {
        GrayImage::from_fn(rows[0].len() as u32, rows.len() as u32, |x, y| {
            Luma([if rows[y as usize].as_bytes()[x as usize] == b'#' {
                255
            } else {
                0
            }])
        })
    }

    #[test]
    fn square_rasterizes_pixel_centres() {
        let square = vec![[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]];
        let m = rasterize(&[square], &[], 4, 4);
        assert_eq!(m, mask(&["....", ".##.", ".##.", "...."]));
    }

    #[test]
    fn holes_cut_out_of_the_union() {
        let a = vec![[0.0, 0.0], [3.0, 0.0], [3.0, 3.0], [0.0, 3.0]];
        let b = vec![[2.0, 0.0], [5.0, 0.0], [5.0, 1.0], [2.0, 1.0]];
        let hole = vec![[1.0, 1.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]];
        let m = rasterize(&[a, b], &[hole], 5, 3);
        assert_eq!(m, mask(&["#####", "#.#..", "###.."]));
    }

    #[test]
    fn traced_outlines_rasterize_back_exactly() {
        let m = mask(&[
            "..........",
            ".#####..#.",
            ".#...#.#..",
            ".#.#.#....",
            ".#...#....",
            ".#####....",
            "......####",
        ]);
        let contours = trace_contours(&m);
        let (holes, outer): (Vec<_>, Vec<_>) = contours.into_iter().partition(|c| c.hole);
        assert_eq!(holes.len(), 1);
        // Ring, the island inside it, two pixels touching at a corner, and the bar touching the
        // ring at a corner.
        assert_eq!(outer.len(), 5);
        let outer: Vec<_> = outer.into_iter().map(|c| c.points).collect();
        let holes: Vec<_> = holes.into_iter().map(|c| c.points).collect();
        let back = rasterize(&outer, &holes, m.width(), m.height());
        // The island inside the hole is the one documented loss.
        let mut expected = m.clone();
        expected.put_pixel(3, 3, Luma([0]));
        assert_eq!(back, expected);
        assert_eq!(signed_area(&outer[0]), 2.0 * 25.0);
    }
}
