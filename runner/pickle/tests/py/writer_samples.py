"""Prints plain-data values as this Python pickles them in protocols 0 and 1, one
"PROTOCOL HEX" a line: what mailqueue-pickle's writer must write back equally (Python 2
cPickle for Mailman 2.1, Python 3 pickle for Mailman 3)."""
import binascii
import datetime
import sys

if sys.version_info[0] == 2:
    import cPickle as pickle
    big = long  # noqa: F821
else:
    import pickle
    big = int

values = [
    None, True, False, 0, 255, 256, 65535, 65536, -1, 2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1, 2 ** 62,
    big(2) ** 64, -big(2) ** 70,
    0.0, -0.0, 1.5, 1e22, 1e-7, 1546304647.7135298, float('inf'), -float('inf'),
    b'', b'a', b'x\x00\xff\'"\\\n\r\t\x7f', b'q' * 300, u'', u'a', u'\xe9',
    u'caf\xe9 \u20ac \U0001f600 \\ \n \r \x00 \x1a', u'\udc80 surrogate', u'z' * 300,
    (), (1,), (1, u'a', b'b'), [], [1, 2], list(range(2500)), {}, {u'k': [1, {b'n': None}]},
    dict((u'k%d' % i, i) for i in range(1500)), set(), set([1, 2, 3]), frozenset([u'a']),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6), datetime.datetime(2024, 1, 2),
    {u'recipients': set([u'a@example.com', u'b@example.org']), u'received_time': datetime.datetime(2024, 1, 1, 1, 1, 1, 1),
     u'_parsemsg': False, u'version': 3, u'x': (b'\x00\xffraw', [b'', b'a', b'a'])},
]

for protocol in (0, 1):
    for v in values:
        print('%d %s' % (protocol, binascii.hexlify(pickle.dumps(v, protocol)).decode('ascii')))
