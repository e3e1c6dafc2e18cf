//! What starts a capture: a GPIO push button, a key on stdin, or nothing (continuous mode).

use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerEvent {
    Capture,
    Quit,
    /// Show or hide the class-activation map on the result screen.
    ToggleMap,
}

pub trait Trigger {
    /// The pending event, if any; never blocks.
    fn poll(&mut self) -> Option<TriggerEvent>;
    fn describe(&self) -> String;
    /// Whether captures happen without a person asking (then nothing dismisses a result).
    fn is_continuous(&self) -> bool {
        false
    }
}

/// Captures every frame, at most one per `interval`.
pub struct Continuous {
    interval: Duration,
    last: Option<Instant>,
}

impl Continuous {
    pub fn new(interval: Duration) -> Continuous {
        Continuous {
            interval,
            last: None,
        }
    }
}

impl Trigger for Continuous {
    fn poll(&mut self) -> Option<TriggerEvent> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.interval => None,
            _ => {
                self.last = Some(now);
                Some(TriggerEvent::Capture)
            }
        }
    }

    fn describe(&self) -> String {
        "continuous".into()
    }

    fn is_continuous(&self) -> bool {
        true
    }
}

/// Events delivered by a background thread (stdin, GPIO).
pub struct ChannelTrigger {
    name: String,
    events: Receiver<TriggerEvent>,
}

impl Trigger for ChannelTrigger {
    fn poll(&mut self) -> Option<TriggerEvent> {
        match self.events.try_recv() {
            Ok(e) => Some(e),
            Err(TryRecvError::Empty) => None,
            // The reader ended (stdin closed): nothing more will come.
            Err(TryRecvError::Disconnected) => Some(TriggerEvent::Quit),
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Enter captures, `m` then Enter toggles the map on a result, `q` then Enter (or end of input)
/// quits.
pub fn stdin() -> ChannelTrigger {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            let ev = match line.trim().to_ascii_lowercase().as_str() {
                "q" => TriggerEvent::Quit,
                "m" => TriggerEvent::ToggleMap,
                _ => TriggerEvent::Capture,
            };
            if tx.send(ev).is_err() || ev == TriggerEvent::Quit {
                return;
            }
        }
        let _ = tx.send(TriggerEvent::Quit);
    });
    ChannelTrigger {
        name: "press Enter".into(),
        events: rx,
    }
}

/// A push button between `pin` of `chip` and ground (internal or external pull-up): each press
/// (falling edge) captures, presses within 250 ms of the last one are contact bounce.
#[cfg(all(target_os = "linux", feature = "gpio"))]
pub fn gpio(chip: &std::path::Path, pin: u32) -> Result<ChannelTrigger, String> {
    use gpio_cdev::{Chip, EventRequestFlags, LineRequestFlags};
    let mut c = Chip::new(chip).map_err(|e| format!("{}: {e}", chip.display()))?;
    let events = c
        .get_line(pin)
        .and_then(|l| {
            l.events(
                LineRequestFlags::INPUT,
                EventRequestFlags::FALLING_EDGE,
                "dermo-scope",
            )
        })
        .map_err(|e| format!("{} line {pin}: {e}", chip.display()))?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut last: Option<Instant> = None;
        for ev in events {
            if ev.is_err() {
                break;
            }
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(250)) {
                continue;
            }
            last = Some(now);
            if tx.send(TriggerEvent::Capture).is_err() {
                return;
            }
        }
    });
    Ok(ChannelTrigger {
        name: "press the button".into(),
        events: rx,
    })
}

/// What starts a capture, from `--trigger` or `[controls] trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerSpec {
    /// Continuous for file and synthetic sources, stdin for a camera.
    Auto,
    /// The capture button on a GPIO line.
    Gpio,
    /// Enter on standard input (`q` quits, `m` toggles the map).
    Stdin,
    /// Every frame.
    Continuous,
}

impl std::str::FromStr for TriggerSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TriggerSpec::Auto),
            "gpio" => Ok(TriggerSpec::Gpio),
            "stdin" => Ok(TriggerSpec::Stdin),
            "continuous" => Ok(TriggerSpec::Continuous),
            _ => Err(format!(
                "unknown trigger {s:?}; use gpio, stdin, continuous or auto"
            )),
        }
    }
}

/// Where the trigger's settings come from (`[controls]`).
#[derive(Debug, Clone)]
pub struct TriggerSettings {
    /// Least time between two continuous captures.
    pub interval: Duration,
    pub gpio_chip: std::path::PathBuf,
    pub button_pin: u32,
}

/// Opens the trigger `spec` names; `auto` is continuous unless the source is a camera.
pub fn open(
    spec: TriggerSpec,
    camera: bool,
    settings: &TriggerSettings,
) -> Result<Box<dyn Trigger>, String> {
    Ok(match spec {
        TriggerSpec::Continuous => Box::new(Continuous::new(settings.interval)),
        TriggerSpec::Auto if !camera => Box::new(Continuous::new(settings.interval)),
        TriggerSpec::Stdin | TriggerSpec::Auto => Box::new(stdin()),
        #[cfg(all(target_os = "linux", feature = "gpio"))]
        TriggerSpec::Gpio => Box::new(
            gpio(&settings.gpio_chip, settings.button_pin)
                .map_err(|e| format!("opening the capture button: {e}"))?,
        ),
        #[cfg(not(all(target_os = "linux", feature = "gpio")))]
        TriggerSpec::Gpio => {
            return Err("this build has no GPIO support (the gpio feature is off)".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_paces_captures() {
        let mut t = Continuous::new(Duration::from_millis(50));
        assert_eq!(t.poll(), Some(TriggerEvent::Capture));
        assert_eq!(t.poll(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.poll(), Some(TriggerEvent::Capture));
        let mut every = Continuous::new(Duration::ZERO);
        assert_eq!(every.poll(), Some(TriggerEvent::Capture));
        assert_eq!(every.poll(), Some(TriggerEvent::Capture));
    }
}
