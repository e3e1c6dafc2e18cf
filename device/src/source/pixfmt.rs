//! Camera pixel formats → RGB: packed YUYV 4:2:2 and Motion-JPEG.
//!
//! Kept apart from the V4L2 code so that it builds and is tested on machines without a camera.

use image::RgbImage;
use std::borrow::Cow;

/// A camera buffer that does not hold the frame its format promises.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PixelFormatError {
    #[error(
        "YUYV frame {width}x{height} (stride {stride}) needs {needed} bytes, buffer has {got}"
    )]
    ShortYuyv {
        width: u32,
        height: u32,
        stride: usize,
        needed: usize,
        got: usize,
    },
    #[error("YUYV frame width {0} is odd; 4:2:2 pairs need an even width")]
    OddWidth(u32),
    #[error("MJPG buffer is not a JPEG (no SOI marker)")]
    NotJpeg,
}

/// Converts packed YUYV (Y0 U Y1 V, BT.601 limited range — what UVC cameras send) to RGB.
/// `stride` is the driver's bytes per line (`bytesperline`), which may exceed `2 * width`.
pub fn yuyv_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<RgbImage, PixelFormatError> {
    if width % 2 == 1 {
        return Err(PixelFormatError::OddWidth(width));
    }
    let row_bytes = width as usize * 2;
    let stride = stride.max(row_bytes);
    let needed = if height == 0 {
        0
    } else {
        stride * (height as usize - 1) + row_bytes
    };
    if data.len() < needed {
        return Err(PixelFormatError::ShortYuyv {
            width,
            height,
            stride,
            needed,
            got: data.len(),
        });
    }
    let mut out = RgbImage::new(width, height);
    let buf: &mut [u8] = &mut out;
    for y in 0..height as usize {
        let src = &data[y * stride..y * stride + row_bytes];
        let dst = &mut buf[y * width as usize * 3..(y + 1) * width as usize * 3];
        for (quad, px) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (u, v) = (quad[1], quad[3]);
            px[..3].copy_from_slice(&ycbcr_to_rgb(quad[0], u, v));
            px[3..].copy_from_slice(&ycbcr_to_rgb(quad[2], u, v));
        }
    }
    Ok(out)
}

/// BT.601 limited-range YCbCr → RGB in fixed point (the integer form used by libyuv and ffmpeg).
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = (y as i32 - 16) * 298;
    let d = cb as i32 - 128;
    let e = cr as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

const SOI: u8 = 0xD8;
const DHT: u8 = 0xC4;
const SOS: u8 = 0xDA;

/// Returns the JPEG with the standard Huffman tables inserted before the scan when it has none.
///
/// Many UVC cameras send MJPG frames without a DHT segment (the AVI "MJPG" convention: the
/// tables of JPEG Annex K.3 are implied), which a strict decoder rejects. Frames that carry
/// their own tables are returned unchanged and uncopied.
pub fn mjpeg_with_huffman_tables(jpeg: &[u8]) -> Result<Cow<'_, [u8]>, PixelFormatError> {
    if jpeg.len() < 4 || jpeg[0] != 0xFF || jpeg[1] != SOI {
        return Err(PixelFormatError::NotJpeg);
    }
    match scan_header_segments(jpeg) {
        HeaderScan { has_dht: true, .. } => Ok(Cow::Borrowed(jpeg)),
        HeaderScan {
            sos_offset: Some(at),
            ..
        } => {
            let mut out = Vec::with_capacity(jpeg.len() + STANDARD_DHT_LEN);
            out.extend_from_slice(&jpeg[..at]);
            push_standard_dht(&mut out);
            out.extend_from_slice(&jpeg[at..]);
            Ok(Cow::Owned(out))
        }
        // No scan found: nothing sensible to insert before; let the decoder report it.
        HeaderScan {
            sos_offset: None, ..
        } => Ok(Cow::Borrowed(jpeg)),
    }
}

struct HeaderScan {
    has_dht: bool,
    sos_offset: Option<usize>,
}

/// Walks the marker segments between SOI and the first SOS.
fn scan_header_segments(jpeg: &[u8]) -> HeaderScan {
    let mut i = 2;
    let mut has_dht = false;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xFF {
            break;
        }
        let marker = jpeg[i + 1];
        if marker == 0xFF {
            // Fill byte before a marker.
            i += 1;
            continue;
        }
        if marker == SOS {
            return HeaderScan {
                has_dht,
                sos_offset: Some(i),
            };
        }
        has_dht |= marker == DHT;
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        i += 2 + len;
    }
    HeaderScan {
        has_dht,
        sos_offset: None,
    }
}

/// One Huffman table of JPEG Annex K.3: class/id byte, 16 code-length counts, symbols.
struct HuffmanSpec {
    class_id: u8,
    counts: [u8; 16],
    symbols: &'static [u8],
}

const STANDARD_TABLES: [HuffmanSpec; 4] = [
    // Table K.3: luminance DC.
    HuffmanSpec {
        class_id: 0x00,
        counts: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        symbols: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    },
    // Table K.5: luminance AC.
    HuffmanSpec {
        class_id: 0x10,
        counts: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D],
        symbols: &[
            0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51,
            0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1,
            0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18,
            0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
            0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57,
            0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75,
            0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92,
            0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
            0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
            0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8,
            0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2,
            0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
        ],
    },
    // Table K.4: chrominance DC.
    HuffmanSpec {
        class_id: 0x01,
        counts: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        symbols: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    },
    // Table K.6: chrominance AC.
    HuffmanSpec {
        class_id: 0x11,
        counts: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
        symbols: &[
            0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07,
            0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09,
            0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25,
            0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38,
            0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56,
            0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74,
            0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
            0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
            0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA,
            0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6,
            0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2,
            0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
        ],
    },
];

/// Marker (2) + length (2) + per table: class/id (1) + counts (16) + symbols (12+162+12+162).
const STANDARD_DHT_LEN: usize = 4 + 4 * 17 + 12 + 162 + 12 + 162;

fn push_standard_dht(out: &mut Vec<u8>) {
    let payload_len = (STANDARD_DHT_LEN - 2) as u16;
    out.extend_from_slice(&[0xFF, DHT]);
    out.extend_from_slice(&payload_len.to_be_bytes());
    for t in &STANDARD_TABLES {
        debug_assert_eq!(
            t.counts.iter().map(|&c| c as usize).sum::<usize>(),
            t.symbols.len()
        );
        out.push(t.class_id);
        out.extend_from_slice(&t.counts);
        out.extend_from_slice(t.symbols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_grey_and_primaries() {
        // Two pixels per quad: white/black with neutral chroma, then a saturated red pair.
        let data = [235, 128, 16, 128, 81, 90, 81, 240];
        let img = yuyv_to_rgb(&data, 4, 1, 8).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        let red = img.get_pixel(2, 0).0;
        assert!(red[0] > 245 && red[1] < 10 && red[2] < 10, "{red:?}");
    }

    #[test]
    fn yuyv_honours_stride_and_rejects_short_buffers() {
        // Two rows of 2 pixels with 4 padding bytes per line.
        let data = [16, 128, 16, 128, 9, 9, 9, 9, 235, 128, 235, 128];
        let img = yuyv_to_rgb(&data, 2, 2, 8).unwrap();
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(0, 1).0, [255, 255, 255]);
        assert!(matches!(
            yuyv_to_rgb(&data[..10], 2, 2, 8),
            Err(PixelFormatError::ShortYuyv { needed: 12, .. })
        ));
        assert_eq!(
            yuyv_to_rgb(&data, 3, 1, 8),
            Err(PixelFormatError::OddWidth(3))
        );
    }

    #[test]
    fn standard_dht_segment_is_well_formed() {
        let mut seg = Vec::new();
        push_standard_dht(&mut seg);
        assert_eq!(seg.len(), STANDARD_DHT_LEN);
        assert_eq!(u16::from_be_bytes([seg[2], seg[3]]) as usize, seg.len() - 2);
    }

    #[test]
    fn non_jpeg_is_refused() {
        assert_eq!(
            mjpeg_with_huffman_tables(b"not a jpeg").unwrap_err(),
            PixelFormatError::NotJpeg
        );
    }
}
