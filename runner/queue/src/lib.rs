//! Mailman queue directories: names, slices, entries, and every rename in a queue.
