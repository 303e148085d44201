//! Rating data.
