//! The service proxy (work in progress).
