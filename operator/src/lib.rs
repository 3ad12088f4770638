//! The MailQueue operator.
