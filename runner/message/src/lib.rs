//! The email message model Mailman pickles, and its flattening to wire bytes.
