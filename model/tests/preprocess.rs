//! The image contract on real inputs: shared HAM10000 images, unusual but valid encodings of
//! them generated at runtime, and broken files that must fail cleanly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use dermo_model::preprocess::{
    apply_mask, decode_bytes, decode_file, decode_mask_file, normalize_into, prepare,
    preprocess_file, preprocess_image, resize_square, shades_of_gray, to_tensor, PreprocessConfig,
    PreprocessError, MEAN, STD,
};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage};

// ---------------------------------------------------------------------------------------------
// Largest single allocation made by the current thread, so a test can prove that a hostile
// header was refused before its pixel buffer was allocated.

struct TrackingAllocator;

thread_local! {
    static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn note_allocation(size: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = LARGEST_ALLOCATION.try_with(|largest| largest.set(largest.get().max(size)));
}

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

/// Runs `f` and returns its result with the largest allocation it made on this thread.
fn largest_allocation_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOCATION.with(|largest| largest.set(0));
    let result = f();
    (result, LARGEST_ALLOCATION.with(Cell::get))
}

// ---------------------------------------------------------------------------------------------
// Shared data.

fn ham10000() -> PathBuf {
    std::env::var_os("DERMO_HAM10000")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/ham10000"))
}

/// Every `step`-th HAM10000 image, in name order: a fixed, spread-out subset.
fn shared_images(step: usize) -> Vec<PathBuf> {
    let dir = ham10000().join("images");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    assert!(
        paths.len() > 1000,
        "expected the HAM10000 images in {}",
        dir.display()
    );
    paths.into_iter().step_by(step).collect()
}

const SAMPLE_ID: &str = "ISIC_0024306";

fn sample_path() -> PathBuf {
    ham10000().join("images").join(format!("{SAMPLE_ID}.jpg"))
}

fn sample_mask_path() -> PathBuf {
    ham10000()
        .join("masks")
        .join(format!("{SAMPLE_ID}_segmentation.png"))
}

fn sample() -> RgbImage {
    decode_file(&sample_path()).expect("the shared sample image decodes")
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).expect("encode");
    bytes.into_inner()
}

fn max_abs_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn channel_means(img: &RgbImage) -> [f64; 3] {
    let mut sums = [0f64; 3];
    for p in img.pixels() {
        for (sum, v) in sums.iter_mut().zip(p.0) {
            *sum += f64::from(v);
        }
    }
    let n = f64::from(img.width() * img.height());
    sums.map(|s| s / n)
}

// ---------------------------------------------------------------------------------------------
// Real images end to end.

#[test]
fn shared_images_become_normalized_tensors_at_128_and_256() {
    let lowest = (0.0 - MEAN) / STD;
    let highest = (255.0 - MEAN) / STD;
    let paths = shared_images(25); // ≈ 400 images
    assert!(paths.len() >= 300);
    for size in [128usize, 256] {
        let cfg = PreprocessConfig {
            size: size as u32,
            color_constancy: size == 128,
        };
        for path in &paths {
            let tensor =
                preprocess_file(path, &cfg).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(tensor.shape, [1, 3, size, size], "{}", path.display());
            assert_eq!(tensor.data.len(), 3 * size * size);
            let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
            for &v in &tensor.data {
                assert!(v.is_finite(), "{}: non-finite value", path.display());
                min = min.min(v);
                max = max.max(v);
            }
            assert!(
                min >= lowest && max <= highest,
                "{}: range {min}..{max}",
                path.display()
            );
            assert!(
                max - min > 0.1,
                "{}: nearly constant tensor",
                path.display()
            );
        }
    }
}

#[test]
fn preprocess_file_is_decode_then_prepare_then_normalize() {
    let cfg = PreprocessConfig {
        size: 224,
        color_constancy: true,
    };
    let from_file = preprocess_file(&sample_path(), &cfg).unwrap();
    let prepared = prepare(sample(), &cfg);
    assert_eq!(prepared.dimensions(), (224, 224));
    // `assert!` rather than `assert_eq!`: a failure must not print 150,000 floats.
    assert!(from_file == to_tensor(&prepared));
    assert!(from_file == preprocess_image(sample(), &cfg));
    let without_constancy = PreprocessConfig {
        color_constancy: false,
        ..cfg
    };
    assert!(
        from_file != preprocess_image(sample(), &without_constancy),
        "colour constancy must change the input"
    );
    let with_default = preprocess_image(sample(), &PreprocessConfig::default());
    // The one default (the recipe's and the model file's too): 224 px.
    assert_eq!(with_default.shape, [1, 3, 224, 224]);
}

#[test]
fn config_round_trips_through_json() {
    let cfg = PreprocessConfig {
        size: 192,
        color_constancy: true,
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(
        serde_json::from_str::<PreprocessConfig>(&json).unwrap(),
        cfg
    );
}

// ---------------------------------------------------------------------------------------------
// Unusual but valid inputs, generated from a real image.

/// An APP1 segment holding a little-endian TIFF IFD with a single Orientation entry.
fn exif_orientation_segment(orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    segment.extend_from_slice(&payload);
    segment
}

#[test]
fn exif_orientation_6_rotates_a_real_jpeg_clockwise() {
    let original = sample();
    let mut jpeg = Vec::new();
    original
        .write_with_encoder(JpegEncoder::new_with_quality(&mut jpeg, 95))
        .unwrap();
    let mut rotated_jpeg = jpeg[..2].to_vec(); // SOI
    rotated_jpeg.extend_from_slice(&exif_orientation_segment(6));
    rotated_jpeg.extend_from_slice(&jpeg[2..]);

    let plain = decode_bytes(&jpeg, "plain.jpg").unwrap();
    let rotated = decode_bytes(&rotated_jpeg, "rotated.jpg").unwrap();
    let (w, h) = original.dimensions();
    assert_eq!(plain.dimensions(), (w, h));
    assert_eq!(
        rotated.dimensions(),
        (h, w),
        "orientation 6 swaps width and height"
    );
    assert_eq!(rotated, image::imageops::rotate90(&plain));
    // Against the pixels before re-encoding: only JPEG loss, and not the other rotation.
    let expected = image::imageops::rotate90(&original);
    assert!(max_abs_diff(&rotated, &expected) < 40);
    let mean_error = rotated
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / rotated.as_raw().len() as f64;
    assert!(mean_error < 2.0, "mean error {mean_error}");
    assert_ne!(rotated, image::imageops::rotate270(&plain));
}

#[test]
fn grey_images_become_rgb_with_equal_channels() {
    let grey = DynamicImage::ImageRgb8(sample()).into_luma8();
    for format in [ImageFormat::Png, ImageFormat::Jpeg] {
        let bytes = encode(&DynamicImage::ImageLuma8(grey.clone()), format);
        let rgb = decode_bytes(&bytes, "grey").unwrap();
        assert_eq!(rgb.dimensions(), grey.dimensions());
        for (p, g) in rgb.pixels().zip(grey.pixels()) {
            assert_eq!(p.0[0], p.0[1]);
            assert_eq!(p.0[1], p.0[2]);
            if format == ImageFormat::Png {
                assert_eq!(p.0[0], g.0[0]);
            }
        }
    }
}

#[test]
fn sixteen_bit_png_scales_to_the_same_eight_bit_pixels() {
    let original = sample();
    let wide: image::ImageBuffer<Rgb<u16>, Vec<u16>> =
        image::ImageBuffer::from_fn(original.width(), original.height(), |x, y| {
            Rgb(original.get_pixel(x, y).0.map(|v| u16::from(v) * 257))
        });
    let bytes = encode(&DynamicImage::ImageRgb16(wide), ImageFormat::Png);
    assert_eq!(decode_bytes(&bytes, "16-bit.png").unwrap(), original);
}

#[test]
fn rgba_alpha_is_dropped_not_composited() {
    let original = sample();
    let rgba = RgbaImage::from_fn(original.width(), original.height(), |x, y| {
        let [r, g, b] = original.get_pixel(x, y).0;
        Rgba([r, g, b, (x * 255 / original.width()) as u8])
    });
    let bytes = encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
    assert_eq!(decode_bytes(&bytes, "rgba.png").unwrap(), original);
}

#[test]
fn palette_png_decodes_to_its_palette_colours() {
    let original = sample();
    // 3-3-2 bit colour cube: 256 entries, each the centre of its cell.
    let palette: Vec<[u8; 3]> = (0..=255u8)
        .map(|i| {
            [
                (i >> 5) * 32 + 16,
                ((i >> 2) & 7) * 32 + 16,
                (i & 3) * 64 + 32,
            ]
        })
        .collect();
    let index = |p: &Rgb<u8>| (p.0[0] >> 5) << 5 | (p.0[1] >> 5) << 2 | p.0[2] >> 6;
    let (w, h) = original.dimensions();
    let mut scanlines = Vec::new();
    for y in 0..h {
        scanlines.push(0); // filter: none
        scanlines.extend((0..w).map(|x| index(original.get_pixel(x, y))));
    }
    let png = png_file(w, h, 8, 3, &[(*b"PLTE", palette.concat())], &scanlines);

    let decoded = decode_bytes(&png, "palette.png").unwrap();
    let expected = RgbImage::from_fn(w, h, |x, y| {
        Rgb(palette[usize::from(index(original.get_pixel(x, y)))])
    });
    assert_eq!(decoded, expected);
}

#[test]
fn bmp_tiff_and_lossless_webp_decode_to_the_same_pixels() {
    let original = sample();
    for format in [
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::WebP,
        ImageFormat::Png,
    ] {
        let bytes = encode(&DynamicImage::ImageRgb8(original.clone()), format);
        let decoded = decode_bytes(&bytes, &format!("{format:?}"))
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(decoded, original, "{format:?}");
    }
}

#[test]
fn format_comes_from_content_not_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let misnamed = dir.path().join("really-a-png.jpg");
    let bytes = encode(&DynamicImage::ImageRgb8(sample()), ImageFormat::Png);
    std::fs::write(&misnamed, bytes).unwrap();
    assert_eq!(decode_file(&misnamed).unwrap(), sample());
}

// ---------------------------------------------------------------------------------------------
// Bad inputs: typed errors that name the file, no panic, no huge allocation.

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The error of a decode that must fail; on success reports only the size, not every pixel.
fn expect_error<T>(
    result: Result<image::ImageBuffer<T, Vec<u8>>, PreprocessError>,
) -> PreprocessError
where
    T: image::Pixel<Subpixel = u8>,
{
    match result {
        Ok(img) => panic!(
            "decoded a {}×{} image from bad input",
            img.width(),
            img.height()
        ),
        Err(error) => error,
    }
}

fn assert_names_file(error: &PreprocessError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "error does not name {}: {message}",
        path.display()
    );
}

#[test]
fn truncated_jpeg_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(sample_path()).unwrap();
    let path = write_temp(&dir, "truncated.jpg", &bytes[..bytes.len() / 2]);
    let error = expect_error(decode_file(&path));
    assert!(matches!(error, PreprocessError::Decode { .. }), "{error:?}");
    assert_names_file(&error, &path);
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[test]
fn jpeg_cut_inside_its_headers_is_a_decode_error() {
    let bytes = std::fs::read(sample_path()).unwrap();
    let error = expect_error(decode_bytes(&bytes[..300], "camera frame 7"));
    assert!(matches!(error, PreprocessError::Decode { .. }), "{error:?}");
    assert!(error.to_string().starts_with("camera frame 7:"), "{error}");
}

#[test]
fn empty_file_is_an_empty_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "empty.jpg", b"");
    let error = expect_error(decode_file(&path));
    assert!(matches!(error, PreprocessError::Empty { .. }), "{error:?}");
    assert_names_file(&error, &path);
}

#[test]
fn text_named_jpg_is_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "notes.jpg", b"patient notes, not an image\n");
    let error = expect_error(decode_file(&path));
    assert!(
        matches!(error, PreprocessError::UnknownFormat { .. }),
        "{error:?}"
    );
    assert_names_file(&error, &path);
}

#[test]
fn recognised_but_unsupported_format_is_unsupported() {
    // A GIF header: `image` knows the signature, dermo builds it without a GIF decoder.
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    let error = expect_error(decode_bytes(gif, "upload.gif"));
    assert!(
        matches!(error, PreprocessError::Unsupported { .. }),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("upload.gif:"), "{error}");
}

#[test]
fn missing_file_is_an_io_error() {
    let path = Path::new("/nonexistent/dermo/lesion.jpg");
    let error = expect_error(decode_file(path));
    assert!(matches!(error, PreprocessError::Io { .. }), "{error:?}");
    assert_names_file(&error, path);
}

#[test]
fn png_claiming_40000_by_40000_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    // A valid header and one tiny row of data: the file is a few dozen bytes.
    let png = png_file(40_000, 40_000, 8, 2, &[], &[0, 1, 2, 3]);
    let path = write_temp(&dir, "bomb.png", &png);
    let (result, largest) = largest_allocation_during(|| decode_file(&path));
    let error = expect_error(result);
    assert!(
        matches!(error, PreprocessError::TooLarge { .. }),
        "{error:?}"
    );
    assert_names_file(&error, &path);
    assert!(
        largest < 16 << 20,
        "allocated {largest} bytes for a refused image"
    );
}

#[test]
fn png_within_side_limit_but_over_memory_limit_is_refused() {
    // 16000 × 16000 RGB = 768 MB: each side is allowed, the pixel buffer is not.
    let png = png_file(16_000, 16_000, 8, 2, &[], &[0, 1, 2, 3]);
    let (result, largest) = largest_allocation_during(|| decode_bytes(&png, "big.png"));
    let error = expect_error(result);
    assert!(
        matches!(error, PreprocessError::TooLarge { .. }),
        "{error:?}"
    );
    assert!(
        largest < 16 << 20,
        "allocated {largest} bytes for a refused image"
    );
}

// Minimal PNG writer: chunks with CRC-32 and an uncompressed ("stored") zlib stream, so a test
// can state any header it likes.

fn png_file(
    width: u32,
    height: u32,
    bit_depth: u8,
    colour_type: u8,
    extra_chunks: &[([u8; 4], Vec<u8>)],
    scanlines: &[u8],
) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, colour_type, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut png, b"IHDR", &ihdr);
    for (kind, data) in extra_chunks {
        png_chunk(&mut png, kind, data);
    }
    png_chunk(&mut png, b"IDAT", &zlib_stored(scanlines));
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32fast::hash(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// Pixel operations.

#[test]
fn shades_of_gray_moves_a_tinted_image_toward_grey() {
    let original = sample();
    let tint = [1.0f32, 0.8, 0.55];
    let mut tinted = original.clone();
    for p in tinted.pixels_mut() {
        for (v, t) in p.0.iter_mut().zip(tint) {
            *v = (f32::from(*v) * t).round() as u8;
        }
    }
    let spread = |img: &RgbImage| {
        let m = channel_means(img);
        let mean = m.iter().sum::<f64>() / 3.0;
        m.iter().map(|c| (c - mean).abs()).fold(0.0, f64::max) / mean
    };
    let mut corrected = tinted.clone();
    shades_of_gray(&mut corrected, 6.0);
    let (before, after) = (spread(&tinted), spread(&corrected));
    assert!(
        after < 0.5 * before,
        "channel spread {before:.3} → {after:.3}"
    );
    // Constancy fixes colour, not brightness: the tinted and untinted images end up with nearly
    // the same chromaticity (channel means over their sum).
    let chromaticity = |img: &RgbImage| {
        let m = channel_means(img);
        let total: f64 = m.iter().sum();
        m.map(|c| c / total)
    };
    let mut corrected_original = original.clone();
    shades_of_gray(&mut corrected_original, 6.0);
    let gap = chromaticity(&corrected)
        .iter()
        .zip(chromaticity(&corrected_original))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let tint_gap = chromaticity(&tinted)
        .iter()
        .zip(chromaticity(&original))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        gap < 0.2 * tint_gap,
        "chromaticity gap {tint_gap:.3} → {gap:.3}"
    );
}

#[test]
fn shades_of_gray_leaves_black_and_neutral_images_alone() {
    let mut black = RgbImage::new(40, 30);
    shades_of_gray(&mut black, 6.0);
    assert!(black.pixels().all(|p| p.0 == [0, 0, 0]));
    let mut grey = RgbImage::from_pixel(40, 30, Rgb([90, 90, 90]));
    shades_of_gray(&mut grey, f32::NAN);
    assert!(grey.pixels().all(|p| p.0 == [90, 90, 90]));
}

#[test]
fn resize_gives_square_output_and_keeps_uniform_images_uniform() {
    let original = sample();
    for size in [64, 128, 256, 300] {
        let resized = resize_square(&original, size);
        assert_eq!(resized.dimensions(), (size, size));
    }
    let uniform = RgbImage::from_pixel(200, 150, Rgb([12, 130, 251]));
    for size in [96, 256] {
        let resized = resize_square(&uniform, size);
        assert!(
            resized.pixels().all(|p| p.0 == [12, 130, 251]),
            "size {size}"
        );
    }
    assert_eq!(resize_square(&RgbImage::new(0, 0), 8).dimensions(), (8, 8));
}

#[test]
fn resize_keeps_the_picture() {
    // Down then up again: a smooth real image survives with small error.
    let original = sample();
    let back = resize_square(&resize_square(&original, 256), 200);
    let sized = image::imageops::resize(&original, 200, 200, image::imageops::FilterType::Triangle);
    let mean_error = back
        .as_raw()
        .iter()
        .zip(sized.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / back.as_raw().len() as f64;
    assert!(mean_error < 3.0, "mean error {mean_error}");
}

#[test]
fn normalize_writes_rgb_planes_with_the_contract_constants() {
    let img = RgbImage::from_fn(3, 2, |x, y| match (x, y) {
        (0, 0) => Rgb([255, 0, 127]),
        _ => Rgb([1, 2, 3]),
    });
    let mut out = vec![f32::NAN; 18];
    normalize_into(&img, &mut out);
    assert_eq!(out[0], (255.0 - 127.0) / 128.0);
    assert_eq!(out[6], -127.0 / 128.0);
    assert_eq!(out[12], 0.0);
    assert_eq!(out[1], (1.0 - MEAN) / STD);
    assert_eq!(out[7], (2.0 - MEAN) / STD);
    assert_eq!(out[13], (3.0 - MEAN) / STD);
    let tensor = to_tensor(&img);
    assert_eq!(tensor.shape, [1, 3, 2, 3]);
    assert_eq!(tensor.data, out);
}

#[test]
fn real_mask_blacks_out_the_skin_and_keeps_the_lesion() {
    let original = sample();
    let mask = decode_mask_file(&sample_mask_path()).unwrap();
    assert_eq!(mask.dimensions(), original.dimensions());
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    let mut masked = original.clone();
    apply_mask(&mut masked, &mask);
    let mut lesion_pixels = 0;
    for ((m, before), after) in mask.pixels().zip(original.pixels()).zip(masked.pixels()) {
        if m.0[0] == 0 {
            assert_eq!(after.0, [0, 0, 0]);
        } else {
            assert_eq!(after, before);
            lesion_pixels += 1;
        }
    }
    assert!(lesion_pixels > 0);

    // A half-size mask is scaled to the image with nearest-neighbour.
    let small = image::imageops::resize(&mask, 100, 75, image::imageops::FilterType::Nearest);
    let mut masked_small = original.clone();
    apply_mask(&mut masked_small, &small);
    let disagreements = masked_small
        .pixels()
        .zip(masked.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        disagreements < (200 * 150) / 20,
        "{disagreements} pixels differ"
    );
}

#[test]
fn all_zero_mask_is_a_bad_mask() {
    let dir = tempfile::tempdir().unwrap();
    let mask = DynamicImage::ImageLuma8(GrayImage::from_pixel(20, 10, Luma([0])));
    let path = write_temp(&dir, "empty_mask.png", &encode(&mask, ImageFormat::Png));
    let error = expect_error(decode_mask_file(&path));
    assert!(
        matches!(error, PreprocessError::BadMask { .. }),
        "{error:?}"
    );
    assert_names_file(&error, &path);
}
