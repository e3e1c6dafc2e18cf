//! dermo-device: the dermatoscope program.
