//! The contract between the MailQueue operator and the mailqueue-runner pods it starts: both
//! binaries link this crate, and neither links the other.
//!
//! - [`crd`]: the `MailQueue` resource the operator reconciles.
//! - [`slice`]: how a slice is named and labelled, and the heartbeat a runner writes on its
//!   Lease.
//! - [`lease`]: holding a `coordination.k8s.io` Lease (a runner's slice, the operator's
//!   leadership).
//! - [`duration`]: the one duration grammar of the CRD fields and of both command lines.
//! - [`telemetry`]: span export over OTLP, set up the same way by both binaries.

pub mod crd;
pub mod duration;
pub mod lease;
pub mod slice;
pub mod telemetry;
