pub mod convert;
pub mod form;
