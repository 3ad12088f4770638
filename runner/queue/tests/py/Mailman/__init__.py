# Stand-in package so Python 2.7 can unpickle Mailman 2.1 queue entries in tests.
