//! mailqueue-runner: the binary wiring queue format, switchboard, delivery and operations.
