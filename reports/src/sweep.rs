//! The sweep report of `faultline sim explore`.
