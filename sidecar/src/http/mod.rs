//! The HTTP side: the server (`server`), the pure conversions to and from worker
//! payloads, uploads, and static files.
pub mod body;
pub mod client_ip;
pub mod convert;
pub mod form;
pub mod headers;
pub mod linger;
pub mod response;
pub mod sendfile;
pub mod server;
pub mod static_files;
pub mod uploads;
