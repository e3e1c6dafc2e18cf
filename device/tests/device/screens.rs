//! Every screen at every supported resolution: drawn from a real shared image, nothing drawn
//! off screen, every text inside the screen and apart from the others, the banner in its colour —
//! and the same pixels through the framebuffer target at 16 and 32 bpp.

use crate::common;

use dermo_device::display::fb_target::{FbTarget, PixelLayout};
use dermo_device::display::png::encode_png;
use dermo_device::ui::{
    render, Canvas, ErrorKind, ErrorView, Outcome, PreviewView, ResultView, Screen,
};
use dermo_model::Class;
use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use image::RgbImage;

const SIZES: [(u32, u32); 3] = [(240, 240), (320, 240), (800, 480)];

fn frame() -> RgbImage {
    dermo_model::preprocess::decode_file(&common::shared_images(1, 1)[0]).unwrap()
}

fn screens(img: &RgbImage) -> Vec<(&'static str, Screen<'_>)> {
    let model = "model 1a2b3c4d int8 2025-11-26".to_string();
    let result = |outcome, warnings: Vec<String>| {
        Screen::Result(ResultView {
            frame: img,
            outcome,
            warnings,
            model: model.clone(),
            map: None,
        })
    };
    vec![
        (
            "preview",
            Screen::Preview(PreviewView {
                frame: img,
                hint: Some("Centre the lesion"),
                status: "camera /dev/video0 (MJPG 640x480) - press the button".into(),
            }),
        ),
        (
            "result-refer",
            result(
                Outcome::Prediction {
                    top3: [(Class::Mel, 0.62), (Class::Nv, 0.30), (Class::Bkl, 0.05)],
                    refer: true,
                    malignant_prob: 0.64,
                },
                vec![],
            ),
        ),
        (
            "result-no-refer",
            result(
                Outcome::Prediction {
                    top3: [(Class::Nv, 0.91), (Class::Bkl, 0.05), (Class::Mel, 0.02)],
                    refer: false,
                    malignant_prob: 0.03,
                },
                vec!["Too bright".into()],
            ),
        ),
        (
            "result-abstain",
            result(
                Outcome::Abstain {
                    reason: "This does not look like a dermoscopy image of a lesion.".into(),
                },
                vec![],
            ),
        ),
        (
            "result-retake",
            result(
                Outcome::Retake {
                    hint: "Hold still".into(),
                },
                vec!["Hold still".into()],
            ),
        ),
        (
            "camera-lost",
            Screen::Error(ErrorView {
                kind: ErrorKind::CameraLost,
                detail: "camera /dev/video0 is disconnected: No such device (os error 19)".into(),
            }),
        ),
        (
            "model-invalid",
            Screen::Error(ErrorView {
                kind: ErrorKind::ModelInvalid,
                detail: "model file /opt/dermo/model/current.onnx refused: signature of /opt/dermo/model/current.onnx does not verify against any of the 1 trusted key(s): the file was modified or signed by another key".into(),
            }),
        ),
        (
            "storage-full",
            Screen::Error(ErrorView {
                kind: ErrorKind::StorageFull,
                detail: "storage full at /var/lib/dermo: 180 MiB free, the floor is 200 MiB".into(),
            }),
        ),
    ]
}

fn count_colour(c: &Canvas, colour: Rgb565) -> usize {
    c.pixels().iter().filter(|&&p| p == colour).count()
}

#[test]
fn every_screen_fits_every_resolution() {
    let img = frame();
    let out_dir = tempfile::tempdir().unwrap();
    // Set DERMO_SCREENS_OUT to keep the PNGs (docs/images holds a few of them).
    let keep = std::env::var_os("DERMO_SCREENS_OUT").map(std::path::PathBuf::from);
    for (w, h) in SIZES {
        let screen_rect = Rectangle::new(Point::zero(), Size::new(w, h));
        for (name, screen) in screens(&img) {
            let mut canvas = Canvas::new(Size::new(w, h));
            let Ok(report) = render(&screen, &mut canvas);
            let what = format!("{name} at {w}x{h}");
            assert_eq!(canvas.drawn_outside(), 0, "{what}: pixels drawn off screen");
            assert!(report.text_boxes.len() >= 2, "{what}: too little text");
            for (i, a) in report.text_boxes.iter().enumerate() {
                assert_eq!(
                    screen_rect.intersection(a),
                    *a,
                    "{what}: text {a:?} leaves the screen"
                );
                for b in &report.text_boxes[i + 1..] {
                    assert!(
                        a.intersection(b).is_zero_sized(),
                        "{what}: texts {a:?} and {b:?} overlap"
                    );
                }
            }
            // Not empty: the background does not cover the screen.
            let bg = canvas
                .pixel(Point::new(w as i32 - 1, h as i32 / 2))
                .unwrap();
            let other = canvas.pixels().iter().filter(|&&p| p != bg).count();
            assert!(other > (w * h / 10) as usize, "{what}: screen nearly empty");
            let png = encode_png(&canvas).unwrap();
            let back = image::load_from_memory(&png).unwrap().to_rgb8();
            assert_eq!(back.dimensions(), (w, h));
            let file = format!("{name}-{w}x{h}.png");
            std::fs::write(out_dir.path().join(&file), &png).unwrap();
            if let Some(dir) = &keep {
                std::fs::create_dir_all(dir).unwrap();
                std::fs::write(dir.join(&file), &png).unwrap();
            }
        }
    }
}

#[test]
fn banners_say_refer_and_no_refer_in_their_colours() {
    let img = frame();
    let red = Rgb565::from(Rgb888::new(200, 16, 32));
    let green = Rgb565::from(Rgb888::new(0, 128, 72));
    for (w, h) in SIZES {
        let s = screens(&img);
        let mut refer = Canvas::new(Size::new(w, h));
        let Ok(_) = render(&s[1].1, &mut refer);
        let mut calm = Canvas::new(Size::new(w, h));
        let Ok(_) = render(&s[2].1, &mut calm);
        // The banner is a band across the top.
        assert!(count_colour(&refer, red) > (w * 20) as usize, "{w}x{h}");
        assert_eq!(count_colour(&refer, green), 0, "{w}x{h}");
        assert!(count_colour(&calm, green) > (w * 20) as usize, "{w}x{h}");
        assert_eq!(count_colour(&calm, red), 0, "{w}x{h}");
        assert!(s[1].1.describe().contains("REFER"));
        assert!(s[2].1.describe().contains("no referral flag"));
        assert!(s[1].1.describe().contains("not a diagnosis"));
    }
}

#[test]
fn framebuffer_target_shows_the_canvas_at_16_and_32_bpp() {
    let img = frame();
    let s = screens(&img);
    let (w, h) = (320u32, 240u32);
    let mut canvas = Canvas::new(Size::new(w, h));
    let Ok(_) = render(&s[1].1, &mut canvas);
    for layout in [
        PixelLayout::rgb565(w, h, w * 2 + 64),
        PixelLayout::xrgb8888(w, h, w * 4),
    ] {
        let mut mem = vec![0u8; layout.needed_bytes()];
        let mut fb = FbTarget::new(layout, &mut mem).unwrap();
        let Ok(_) = fb.fill_contiguous(&canvas.bounding_box(), canvas.pixels().iter().copied());
        let bpp = (layout.bits_per_pixel / 8) as usize;
        for (x, y) in [(0, 0), (10, 5), (w - 1, h - 1), (w / 2, h / 2), (37, 201)] {
            let at = y as usize * layout.line_length as usize + x as usize * bpp;
            let mut word = [0u8; 4];
            word[..bpp].copy_from_slice(&mem[at..at + bpp]);
            let word = u32::from_le_bytes(word);
            let c = Rgb888::from(canvas.pixel(Point::new(x as i32, y as i32)).unwrap());
            let expect = if bpp == 2 {
                ((c.r() as u32 >> 3) << 11) | ((c.g() as u32 >> 2) << 5) | (c.b() as u32 >> 3)
            } else {
                ((c.r() as u32) << 16) | ((c.g() as u32) << 8) | c.b() as u32
            };
            assert_eq!(word, expect, "{bpp} bytes/pixel at ({x},{y})");
        }
    }
}

#[test]
fn the_result_screen_blends_the_default_models_map_over_the_capture_only() {
    // The bundled model's own map of a real image, as the device computes it.
    let img = frame();
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/dermo-default.onnx");
    let file = dermo_model::ModelFile::open(&model, &dermo_model::TrustPolicy::unsigned()).unwrap();
    let cfg = file.metadata.input.preprocess;
    let out = dermo_model::Runtime::new(&file)
        .unwrap()
        .run(&dermo_model::preprocess_image(img.clone(), &cfg))
        .unwrap();
    let maps = dermo_model::AttentionMaps::of(&out, 0).expect("the bundled model has class maps");
    let keep = std::env::var_os("DERMO_SCREENS_OUT").map(std::path::PathBuf::from);
    for (w, h) in SIZES {
        let view = |map| {
            Screen::Result(ResultView {
                frame: &img,
                outcome: Outcome::Prediction {
                    top3: [(Class::Nv, 0.91), (Class::Bkl, 0.05), (Class::Mel, 0.02)],
                    refer: false,
                    malignant_prob: 0.03,
                },
                warnings: vec![],
                model: "model 1a2b3c4d int8 2025-11-26".into(),
                map,
            })
        };
        let mut plain = Canvas::new(Size::new(w, h));
        let Ok(_) = render(&view(None), &mut plain);
        let mut mapped = Canvas::new(Size::new(w, h));
        let Ok(report) = render(&view(Some(&maps)), &mut mapped);
        assert_eq!(mapped.drawn_outside(), 0, "{w}x{h}");
        let changed: Vec<usize> = (0..plain.pixels().len())
            .filter(|&i| plain.pixels()[i] != mapped.pixels()[i])
            .collect();
        assert!(
            changed.len() > (w * h / 20) as usize,
            "{w}x{h}: the map changed only {} pixels",
            changed.len()
        );
        // Only the capture changes: every text stays as it was.
        for b in &report.text_boxes {
            for i in &changed {
                let p = Point::new((*i as u32 % w) as i32, (*i as u32 / w) as i32);
                assert!(!b.contains(p), "{w}x{h}: the map drew over text at {p:?}");
            }
        }
        if let Some(dir) = &keep {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(
                dir.join(format!("result-map-{w}x{h}.png")),
                encode_png(&mapped).unwrap(),
            )
            .unwrap();
        }
    }
}
