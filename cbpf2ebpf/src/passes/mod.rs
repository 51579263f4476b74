//! The translation pipeline, one pass per module, in the order
//! [`crate::translate`] runs them.

pub mod build;
pub mod guards;
pub mod init;
pub mod layout;
pub mod lower;
pub mod simplify;
pub mod swaps;
pub mod validate;
