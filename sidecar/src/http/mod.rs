//! The HTTP side: the server (`server`), the pure conversions to and from worker
//! payloads, uploads, and static files.
pub mod body;
pub mod static_files;
