//! The stack (scratch).
