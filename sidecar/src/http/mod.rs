pub mod client_ip;
pub mod convert;
pub mod form;
pub mod response;
pub mod uploads;
