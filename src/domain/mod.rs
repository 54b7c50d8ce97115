//! Value types of the health-data domain: NHS numbers, postcodes, gender
//! codes and the date formats applicants send. Each parses and validates in
//! one place so that an invalid value cannot exist past the parser, and each
//! `Debug`/`Display` is written so that it cannot leak into a log by accident.

pub mod date;
pub mod gender;
pub mod nhs_number;
pub mod postcode;

pub use date::parse_date;
pub use gender::Gender;
pub use nhs_number::{NhsNumber, NhsNumberError};
pub use postcode::{Postcode, PostcodeLevel};
