"""Prints pickles of sample values, hex, one a line, in every protocol this Python
writes: the opcode families a Mailman queue entry can hold, written by the real pickler
(Python 2.7 cPickle and pickle, or Python 3 pickle). The reader must read each as
Python reads it (compared through canonical.py)."""
import binascii
import datetime
import sys

PY2 = sys.version_info[0] == 2
if PY2:
    import cPickle
    import pickle
    picklers = [cPickle.dumps, pickle.dumps]
    text = unicode  # noqa: F821
    big = long  # noqa: F821
else:
    import pickle
    picklers = [pickle.dumps, pickle._dumps]
    text = str
    big = int


class OldStyle:  # an old-style class in Python 2
    def __init__(self):
        self.a = 1
        self.items = [u'x', b'y']


class NewStyle(object):
    def __init__(self, n):
        self.n = n


class WithSlots(object):
    __slots__ = ('a', 'b')

    def __init__(self):
        self.a = 1
        self.b = u'two'


class ListSub(list):
    pass


class DictSub(dict):
    pass


class WithArgs(object):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __getnewargs__(self):
        return (self.x, self.y)


shared_list = [1, 2]
shared_obj = NewStyle(u'shared')
ls = ListSub([1, u'two'])
ls.attr = 3
ds = DictSub(a=1)
self_ref_free = [shared_list, shared_list, (shared_list,), {u'k': shared_list}]

values = [
    None, True, False, 0, 1, 255, 256, 65535, 65536, -1, -2 ** 31, 2 ** 31 - 1, 2 ** 31,
    2 ** 63 - 1, -2 ** 63, big(2) ** 64, -big(3) ** 80, big(5),
    0.0, -0.0, 1.5, 1e22, 1e-7, float('inf'), -float('inf'), 1546304647.7135298,
    b'', b'a', b'bytes \x00\x7f\x80\xff\'"\\\n', b'x' * 300,
    u'', u'a', u'caf\xe9 \u20ac \U0001f600 \\ \n \r \x00 \x1a', u'\udc80\udcff surrogates', u'y' * 300,
    (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], [1], list(range(1500)), {}, {u'a': 1, b'b': [2]},
    dict((i, i) for i in range(1200)), set(), set([1, u'a', b'b']), frozenset([1, 2]),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6), datetime.datetime(1999, 12, 31, 23, 59, 59),
    OldStyle(), NewStyle(5), WithSlots(), ls, ds, WithArgs(1, [2]), self_ref_free,
    [shared_obj, shared_obj], {u'nested': [{u'deep': (1, [2, {3: 4}])}]},
]

for dumps in picklers:
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        for v in values:
            try:
                data = dumps(v, protocol)
            except Exception as e:  # e.g. slots without __getstate__ in old protocols
                sys.stderr.write('skipped %r in protocol %d: %r\n' % (type(v), protocol, e))
                continue
            print(binascii.hexlify(data).decode('ascii'))
