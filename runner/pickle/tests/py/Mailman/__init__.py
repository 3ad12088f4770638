# Stand-in for GNU Mailman 2.1's package: only what unpickling a queue entry needs.
