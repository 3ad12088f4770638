"""Loads queue entries with the real Python (2.7 for Mailman 2.1, 3 for Mailman 3) and
prints, per file, what was read: where the metadata pickle starts, and the metadata
as JSON (bytes as latin-1 text, sets sorted, datetimes ISO 8601, tuples as lists).

usage: python load_entries.py FILE...
"""
import datetime
import json
import pickle
import sys

try:
    text_type = unicode  # noqa: F821 (Python 2)
except NameError:
    text_type = str


def plain(v):
    if isinstance(v, bytes):
        return v.decode('latin-1')
    if isinstance(v, text_type):
        return v
    if isinstance(v, (set, frozenset)):
        return sorted(plain(x) for x in v)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return dict((plain(k), plain(x)) for k, x in v.items())
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    return v


out = {}
for path in sys.argv[1:]:
    with open(path, 'rb') as fp:
        msg = pickle.load(fp)
        pos = fp.tell()
        data = pickle.load(fp)
        rest = fp.read()
    out[path] = {
        'message_pickle_length': pos,
        'message_type': type(msg).__name__,
        'trailing': len(rest),
        'metadata': plain(data),
        'metadata_types': dict((plain(k), type(v).__name__) for k, v in data.items()),
    }
print(json.dumps(out, sort_keys=True))
