//! Delivery of the `out` queue over SMTP: what to send for an entry (`plan`, `chunk`,
//! `verp`; `mm3_list` for Mailman 3 lists that decorate or personalize), how to send
//! it (`smtp`), what came of it (`outcome`, `bounces`), and the loop that drains a
//! slice (`engine`).
pub mod bounces;
pub mod chunk;
pub mod engine;
pub mod mm2_list;
pub mod mm3_list;
pub mod outcome;
pub mod plan;
pub mod reply_limit;
pub mod smtp;
pub mod tls;
pub mod verp;
