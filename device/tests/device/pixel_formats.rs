//! Camera pixel-format conversion on real images (no camera needed).

use crate::common;

use dermo_device::source::pixfmt::{mjpeg_with_huffman_tables, yuyv_to_rgb};
use image::RgbImage;

fn real_image() -> RgbImage {
    dermo_model::preprocess::decode_file(&common::shared_images(1, 37)[0]).unwrap()
}

/// A baseline JPEG with the standard tables, like a UVC camera's MJPG frame.
fn camera_like_jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(img)
        .unwrap();
    out
}

/// Removes every DHT segment (0xFFC4) before the scan.
fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if jpeg[i + 1] != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out.extend_from_slice(&jpeg[i..]);
    out
}

#[test]
fn mjpg_frame_without_huffman_tables_decodes_after_insertion() {
    let jpeg = camera_like_jpeg(&real_image());
    let reference = dermo_model::preprocess::decode_bytes(&jpeg, "reference").unwrap();
    let stripped = strip_dht(&jpeg);
    assert!(
        stripped.len() < jpeg.len(),
        "the encoder wrote DHT segments"
    );
    assert!(
        dermo_model::preprocess::decode_bytes(&stripped, "stripped").is_err(),
        "a JPEG without Huffman tables must not decode"
    );
    let fixed = mjpeg_with_huffman_tables(&stripped).unwrap();
    let decoded = dermo_model::preprocess::decode_bytes(&fixed, "fixed").unwrap();
    assert_eq!(decoded, reference, "pixels differ after DHT insertion");
    // A frame that has its tables is passed through untouched.
    assert!(matches!(
        mjpeg_with_huffman_tables(&jpeg).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
}

/// RGB → YUYV with the BT.601 limited-range matrix a camera uses.
fn to_yuyv(img: &RgbImage, stride: usize) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let mut out = vec![0u8; stride * h as usize];
    let yuv = |p: &image::Rgb<u8>| {
        let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
        let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
        let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
        let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
        (y, u, v)
    };
    for y in 0..h {
        for x in (0..w).step_by(2) {
            let (y0, u0, v0) = yuv(img.get_pixel(x, y));
            let (y1, u1, v1) = yuv(img.get_pixel(x + 1, y));
            let at = y as usize * stride + x as usize * 2;
            out[at] = y0.round() as u8;
            out[at + 1] = ((u0 + u1) / 2.0).round() as u8;
            out[at + 2] = y1.round() as u8;
            out[at + 3] = ((v0 + v1) / 2.0).round() as u8;
        }
    }
    out
}

#[test]
fn yuyv_frame_of_a_real_image_converts_back_closely() {
    let img = real_image();
    let (w, h) = img.dimensions();
    let stride = w as usize * 2 + 32;
    let rgb = yuyv_to_rgb(&to_yuyv(&img, stride), w, h, stride).unwrap();
    let mut total = 0u64;
    for (a, b) in img.pixels().zip(rgb.pixels()) {
        for c in 0..3 {
            total += (a[c] as i32 - b[c] as i32).unsigned_abs() as u64;
        }
    }
    let mean = total as f64 / (w * h * 3) as f64;
    // Chroma is shared by pixel pairs, so only a small error remains.
    assert!(mean < 4.0, "mean abs error {mean}");
}
