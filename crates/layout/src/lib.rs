//! The layout of a machine: what must exist before its files can be restored.
//!
//! [`model`] is the versioned file format (documented in
//! `docs/layout-format.md`); [`capture`] reads it off the running system with
//! the standard tools, degrading with a [`model::Note`] for everything it
//! cannot read; [`diff`] tells what changed; [`show`] draws the stack as a tree.

pub mod capture;
pub mod diff;
pub mod model;
pub mod safety;
pub mod show;

pub use capture::{capture, try_capture, CaptureError, CaptureOptions};
pub use diff::{diff, Change};
pub use model::{Layout, LayoutError, FORMAT_VERSION};
