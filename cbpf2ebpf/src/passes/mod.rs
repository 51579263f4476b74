//! The translation pipeline: the seven passes [`crate::translate`] runs,
//! one module each and numbered in that order (validate, build, simplify,
//! guards, swaps, lower, layout), and [`init`], the analysis lower runs
//! first to find what must be zeroed on entry.

pub mod build;
pub mod guards;
pub mod init;
pub mod layout;
pub mod lower;
pub mod simplify;
pub mod swaps;
pub mod validate;
