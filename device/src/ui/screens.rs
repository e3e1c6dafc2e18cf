//! Drawing each screen into any `DrawTarget<Color = Rgb565>`.

use super::layout::Layout;
use super::text::{chars_that_fit, fit, wrap};
use super::{ErrorView, Outcome, PreviewView, ResultView, Screen, DISCLAIMER};
use dermo_model::maps::overlay;
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::{Rgb565, Rgb888};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use image::imageops::{self, FilterType};
use image::RgbImage;

/// How strongly the map covers the capture at its peak; the skin stays visible below it.
const MAP_OPACITY: f32 = 0.55;

fn rgb(r: u8, g: u8, b: u8) -> Rgb565 {
    Rgb565::from(Rgb888::new(r, g, b))
}

struct Palette;
impl Palette {
    fn background() -> Rgb565 {
        rgb(16, 18, 24)
    }
    fn text() -> Rgb565 {
        rgb(235, 235, 235)
    }
    fn muted() -> Rgb565 {
        rgb(150, 155, 165)
    }
    fn refer() -> Rgb565 {
        rgb(200, 16, 32)
    }
    fn no_refer() -> Rgb565 {
        rgb(0, 128, 72)
    }
    fn retake() -> Rgb565 {
        rgb(240, 160, 0)
    }
    fn malignant_bar() -> Rgb565 {
        rgb(230, 70, 60)
    }
    fn benign_bar() -> Rgb565 {
        rgb(70, 150, 230)
    }
}

/// What a render produced, for tests: the box of every text drawn.
#[derive(Debug, Default)]
pub struct RenderReport {
    pub text_boxes: Vec<Rectangle>,
}

/// Wraps the target and records the text it draws.
struct Painter<'d, D> {
    target: &'d mut D,
    report: RenderReport,
}

impl<D: DrawTarget<Color = Rgb565>> Painter<'_, D> {
    fn fill(&mut self, r: Rectangle, c: Rgb565) -> Result<(), D::Error> {
        r.into_styled(PrimitiveStyle::with_fill(c))
            .draw(self.target)
    }

    /// Draws `s` cut to fit `max_width` pixels, top-left at `at`.
    fn text(
        &mut self,
        s: &str,
        at: Point,
        font: &'static MonoFont<'static>,
        color: Rgb565,
        max_width: u32,
    ) -> Result<(), D::Error> {
        let s = fit(s, chars_that_fit(font, max_width));
        if s.is_empty() {
            return Ok(());
        }
        let t = Text::with_baseline(&s, at, MonoTextStyle::new(font, color), Baseline::Top);
        self.report.text_boxes.push(t.bounding_box());
        t.draw(self.target)?;
        Ok(())
    }

    /// Draws `img` scaled to fit inside `area`, centred, aspect kept.
    fn image(&mut self, img: &RgbImage, area: Rectangle) -> Result<(), D::Error> {
        let (iw, ih) = img.dimensions();
        if iw == 0 || ih == 0 || area.size.width == 0 || area.size.height == 0 {
            return Ok(());
        }
        let scale = (area.size.width as f32 / iw as f32).min(area.size.height as f32 / ih as f32);
        let w = ((iw as f32 * scale) as u32).clamp(1, area.size.width);
        let h = ((ih as f32 * scale) as u32).clamp(1, area.size.height);
        let scaled = imageops::resize(img, w, h, FilterType::Triangle);
        let at = area.top_left
            + Point::new(
                (area.size.width - w) as i32 / 2,
                (area.size.height - h) as i32 / 2,
            );
        self.target.fill_contiguous(
            &Rectangle::new(at, Size::new(w, h)),
            scaled.pixels().map(|p| rgb(p[0], p[1], p[2])),
        )
    }
}

/// Draws `screen` onto `target`, laid out for the target's size.
pub fn render<D>(screen: &Screen, target: &mut D) -> Result<RenderReport, D::Error>
where
    D: DrawTarget<Color = Rgb565>,
{
    let layout = Layout::for_size(target.bounding_box().size);
    let mut p = Painter {
        target,
        report: RenderReport::default(),
    };
    p.target.clear(Palette::background())?;
    match screen {
        Screen::Preview(v) => preview(&mut p, &layout, v)?,
        Screen::Result(v) => result(&mut p, &layout, v)?,
        Screen::Error(v) => error(&mut p, &layout, v)?,
    }
    Ok(p.report)
}

fn preview<D: DrawTarget<Color = Rgb565>>(
    p: &mut Painter<D>,
    l: &Layout,
    v: &PreviewView,
) -> Result<(), D::Error> {
    let (w, h) = (l.size.width, l.size.height);
    let status_h = l.fonts.small.character_size.height + 4;
    let hint_h = l.banner.size.height;
    let area = Rectangle::new(
        Point::new(0, status_h as i32),
        Size::new(w, h.saturating_sub(status_h + hint_h)),
    );
    p.image(v.frame, area)?;
    // The aiming circle marks the centre disc the quality gate looks at (radius ¼ of the short
    // side of the frame as shown).
    let (iw, ih) = v.frame.dimensions();
    let scale =
        (area.size.width as f32 / iw.max(1) as f32).min(area.size.height as f32 / ih.max(1) as f32);
    let diameter = ((iw.min(ih) as f32 * scale) * 0.5) as u32;
    let ok = v.hint.is_none();
    let ring = if ok {
        Palette::no_refer()
    } else {
        Palette::retake()
    };
    Circle::with_center(area.center(), diameter.max(8))
        .into_styled(PrimitiveStyle::with_stroke(
            ring,
            if l.wide { 4 } else { 2 },
        ))
        .draw(p.target)?;
    p.text(
        &v.status,
        Point::new(l.margin, 2),
        l.fonts.small,
        Palette::muted(),
        w - 2 * l.margin as u32,
    )?;
    let band = Rectangle::new(Point::new(0, (h - hint_h) as i32), Size::new(w, hint_h));
    p.fill(band, ring)?;
    let label = v.hint.unwrap_or("Ready - capture");
    p.text(
        label,
        band.top_left + Point::new(l.margin, vpad(band, l.fonts.banner)),
        l.fonts.banner,
        Rgb565::BLACK,
        w - 2 * l.margin as u32,
    )
}

/// Vertical offset that centres one line of `font` in `band`.
fn vpad(band: Rectangle, font: &MonoFont) -> i32 {
    (band.size.height as i32 - font.character_size.height as i32) / 2
}

fn result<D: DrawTarget<Color = Rgb565>>(
    p: &mut Painter<D>,
    l: &Layout,
    v: &ResultView,
) -> Result<(), D::Error> {
    let (color, ink, title) = match &v.outcome {
        Outcome::Prediction { refer: true, .. } => (
            Palette::refer(),
            Rgb565::WHITE,
            "REFER - see a specialist".to_string(),
        ),
        Outcome::Prediction { refer: false, .. } => (
            Palette::no_refer(),
            Rgb565::WHITE,
            "No referral flag".to_string(),
        ),
        Outcome::Abstain { .. } => (
            Palette::retake(),
            Rgb565::BLACK,
            "RETAKE - no answer".to_string(),
        ),
        Outcome::Retake { hint } => (Palette::retake(), Rgb565::BLACK, format!("RETAKE - {hint}")),
    };
    p.fill(l.banner, color)?;
    let inner = l.size.width - 2 * l.margin as u32;
    p.text(
        &title,
        l.banner.top_left + Point::new(l.margin, vpad(l.banner, l.fonts.banner)),
        l.fonts.banner,
        ink,
        inner,
    )?;
    match v.map {
        Some(m) => p.image(&overlay(v.frame, &m.top, m.side, MAP_OPACITY), l.image)?,
        None => p.image(v.frame, l.image)?,
    }

    let body = l.fonts.body;
    let line = body.character_size.height as i32 + 3;
    let x = l.list.top_left.x;
    let mut y = l.list.top_left.y;
    let width = l.list.size.width;
    match &v.outcome {
        Outcome::Prediction {
            top3,
            malignant_prob,
            ..
        } => {
            let bar_h = (body.character_size.height / 2).max(4);
            for (class, prob) in top3 {
                let label = if l.size.width >= 300 {
                    format!("{:>3.0}% {} {}", prob * 100.0, class.code(), class.name())
                } else {
                    format!("{:>3.0}% {}", prob * 100.0, class.code())
                };
                p.text(&label, Point::new(x, y), body, Palette::text(), width)?;
                y += line;
                let bar = ((width as f32) * prob.clamp(0.0, 1.0)) as u32;
                let c = if class.is_malignant() {
                    Palette::malignant_bar()
                } else {
                    Palette::benign_bar()
                };
                p.fill(
                    Rectangle::new(Point::new(x, y), Size::new(width, bar_h)),
                    rgb(40, 44, 54),
                )?;
                p.fill(
                    Rectangle::new(Point::new(x, y), Size::new(bar.max(1), bar_h)),
                    c,
                )?;
                y += bar_h as i32 + line / 2;
            }
            p.text(
                &format!("malignant group {:.0}%", malignant_prob * 100.0),
                Point::new(x, y),
                body,
                Palette::muted(),
                width,
            )?;
        }
        Outcome::Abstain { reason } => {
            p.text("No answer.", Point::new(x, y), body, Palette::text(), width)?;
            y += line;
            let lines = wrap(reason, chars_that_fit(body, width), 3);
            for s in lines {
                p.text(&s, Point::new(x, y), body, Palette::muted(), width)?;
                y += line;
            }
            p.text(
                "Retake the image.",
                Point::new(x, y),
                body,
                Palette::text(),
                width,
            )?;
        }
        Outcome::Retake { hint } => {
            p.text(hint, Point::new(x, y), body, Palette::retake(), width)?;
            y += line;
            p.text(
                "Not classified.",
                Point::new(x, y),
                body,
                Palette::muted(),
                width,
            )?;
        }
    }
    footer(p, l, &v.warnings.join("; "), &v.model)
}

/// Warnings, model line and the disclaimer.
fn footer<D: DrawTarget<Color = Rgb565>>(
    p: &mut Painter<D>,
    l: &Layout,
    warnings: &str,
    model: &str,
) -> Result<(), D::Error> {
    let mut y = l.footer.top_left.y;
    let (x, w) = (l.footer.top_left.x, l.footer.size.width);
    p.text(
        warnings,
        Point::new(x, y),
        l.fonts.small,
        Palette::retake(),
        w,
    )?;
    y += l.footer_line();
    p.text(model, Point::new(x, y), l.fonts.small, Palette::muted(), w)?;
    y += l.footer_line();
    p.text(
        DISCLAIMER,
        Point::new(x, y),
        l.fonts.small,
        Palette::text(),
        w,
    )
}

fn error<D: DrawTarget<Color = Rgb565>>(
    p: &mut Painter<D>,
    l: &Layout,
    v: &ErrorView,
) -> Result<(), D::Error> {
    p.fill(l.banner, Palette::refer())?;
    let inner = l.size.width - 2 * l.margin as u32;
    p.text(
        v.kind.title(),
        l.banner.top_left + Point::new(l.margin, vpad(l.banner, l.fonts.banner)),
        l.fonts.banner,
        Rgb565::WHITE,
        inner,
    )?;
    let body = l.fonts.body;
    let line = body.character_size.height as i32 + 3;
    let per_line = chars_that_fit(body, inner);
    let mut y = l.banner.size.height as i32 + l.margin;
    let room = (l.footer.top_left.y - y) / line;
    let action = wrap(v.kind.action(), per_line, 3);
    let detail_lines = (room - action.len() as i32 - 1).max(1) as usize;
    for s in wrap(&v.detail, per_line, detail_lines) {
        p.text(&s, Point::new(l.margin, y), body, Palette::muted(), inner)?;
        y += line;
    }
    y += line / 2;
    for s in action {
        p.text(&s, Point::new(l.margin, y), body, Palette::text(), inner)?;
        y += line;
    }
    footer(p, l, "", "")
}
