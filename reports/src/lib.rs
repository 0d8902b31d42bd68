//! Renderers: pure functions from results to text. The terminal table is here; more formats follow the same shape.

pub mod compare;
mod table;

pub use table::{cell_status_text, fmt_metric, terminal_table};
