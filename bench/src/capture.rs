//! Section 2: capture overhead (filled in below).
