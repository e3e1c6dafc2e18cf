//! Fitting text into a width: the mono fonts have fixed advance, so this is counting characters.

use embedded_graphics::mono_font::MonoFont;

/// Characters of `font` that fit in `width` pixels.
pub fn chars_that_fit(font: &MonoFont, width: u32) -> usize {
    let advance = font.character_size.width + font.character_spacing;
    // The last character needs no trailing spacing.
    ((width + font.character_spacing) / advance.max(1)) as usize
}

/// `text` cut to `max` characters, ending in ".." when cut. Non-ASCII characters (absent from
/// the ASCII fonts) become '?'.
pub fn fit(text: &str, max: usize) -> String {
    let ascii: Vec<char> = text
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect();
    if ascii.len() <= max {
        ascii.into_iter().collect()
    } else if max <= 2 {
        ascii[..max].iter().collect()
    } else {
        let mut s: String = ascii[..max - 2].iter().collect();
        s.push_str("..");
        s
    }
}

/// Word-wraps `text` into at most `max_lines` lines of `width` characters; the last line is cut
/// with ".." when text remains.
pub fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let word = fit(word, width);
        if current.is_empty() {
            current = word;
        } else if current.len() + 1 + word.len() <= width {
            current.push(' ');
            current.push_str(&word);
        } else {
            lines.push(std::mem::take(&mut current));
            current = word;
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            let cut = fit(last, width.saturating_sub(2));
            *last = format!("{}..", cut.trim_end_matches(".."));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::mono_font::ascii::FONT_6X10;

    #[test]
    fn fit_and_wrap_respect_widths() {
        assert_eq!(chars_that_fit(&FONT_6X10, 60), 10);
        assert_eq!(fit("melanocytic nevus", 8), "melano..");
        assert_eq!(fit("décision", 20), "d?cision");
        let lines = wrap("the quick brown fox jumps over the lazy dog", 10, 3);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() <= 10), "{lines:?}");
        assert!(lines[2].ends_with(".."));
        assert_eq!(wrap("short", 10, 2), vec!["short"]);
    }
}
