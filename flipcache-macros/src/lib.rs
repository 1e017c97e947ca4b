//! Procedural macros for flipcache.
