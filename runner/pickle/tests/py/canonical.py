"""Python's own reading of pickles, as canonical JSON, for comparison with
mailqueue-pickle's reader. Classes are never imported: every class becomes a stub that
records what the pickle did to it (arguments, state, items), except the calls whose
result is plain data (set, frozenset, bytes, _codecs.encode, datetime.datetime,
copyreg._reconstructor), which Python runs as usual. Python 2 `str` reads as bytes.

usage: canonical.py entries FILE...   one JSON line per queue entry: [message, metadata]
       canonical.py pickles            hex pickles on stdin, one JSON line each
A pickle Python cannot read gives {"error": "..."}.
"""
import binascii
import codecs
import copyreg
import datetime
import io
import json
import pickle
import sys

BUILTINS = ('builtins', '__builtin__')
_stubs = {}


def stub_class(module, name):
    key = (module, name)
    if key not in _stubs:
        class Stub(object):
            def __new__(cls, *args):
                obj = object.__new__(cls)
                obj._pk = {'args': list(args), 'state': None, 'list': [], 'dict': []}
                return obj

            def __init__(self, *args):
                pass

            def __setstate__(self, state):
                old = self._pk['state']
                if isinstance(old, dict) and isinstance(state, dict):
                    merged = dict(old)
                    merged.update(state)
                    state = merged
                self._pk['state'] = state

            def append(self, item):
                self._pk['list'].append(item)

            def extend(self, items):
                self._pk['list'].extend(items)

            def add(self, item):
                self._pk['list'].append(item)

            def __setitem__(self, key, value):
                self._pk['dict'].append((key, value))
        Stub._pk_class = key
        _stubs[key] = Stub
    return _stubs[key]


def reconstructor(cls, base, state):
    if getattr(base, '_pk_class', None) in [(b, 'object') for b in BUILTINS] and state is None:
        return cls.__new__(cls)
    return cls.__new__(cls, base, state)


class Reader(pickle._Unpickler):
    def find_class(self, module, name):
        if module in BUILTINS and name in ('set', 'frozenset', 'bytes'):
            return {'set': set, 'frozenset': frozenset, 'bytes': bytes}[name]
        if (module, name) == ('_codecs', 'encode'):
            return codecs.encode
        if (module, name) == ('datetime', 'datetime'):
            return datetime.datetime
        if module in ('copy_reg', 'copyreg') and name == '_reconstructor':
            return reconstructor
        return stub_class(module, name)


def canon(v):
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return {'int': str(v)}
    if isinstance(v, float):
        return {'float': repr(v)}
    if isinstance(v, (bytes, bytearray)):
        return {'bytes': binascii.hexlify(bytes(v)).decode()}
    if isinstance(v, str):
        return {'str': binascii.hexlify(v.encode('utf-8', 'surrogatepass')).decode()}
    if isinstance(v, list):
        return {'list': [canon(x) for x in v]}
    if isinstance(v, tuple):
        return {'tuple': [canon(x) for x in v]}
    if isinstance(v, dict):
        return {'dict': [[canon(k), canon(x)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)):
        kind = 'set' if isinstance(v, set) else 'frozenset'
        return {kind: sorted((canon(x) for x in v), key=lambda j: json.dumps(j, sort_keys=True))}
    if isinstance(v, datetime.datetime):
        return {'datetime': v.isoformat()}
    if isinstance(v, type) and hasattr(v, '_pk_class'):
        return {'global': list(v._pk_class)}
    if hasattr(v, '_pk'):
        pk = v._pk
        return {'object': [list(type(v)._pk_class), [canon(a) for a in pk['args']], canon(pk['state']),
                           [canon(x) for x in pk['list']], [[canon(k), canon(x)] for k, x in pk['dict']]]}
    raise TypeError('no canonical form for %r' % (v,))


def read_all(data):
    f = io.BytesIO(data)
    values = []
    while f.tell() < len(data):
        values.append(canon(Reader(f, encoding='bytes').load()))
    return values


def main():
    if sys.argv[1] == 'entries':
        for path in sys.argv[2:]:
            with open(path, 'rb') as f:
                print(json.dumps(read_all(f.read())))
    else:
        for line in sys.stdin:
            try:
                print(json.dumps(read_all(binascii.unhexlify(line.strip()))))
            except Exception as e:
                print(json.dumps({'error': repr(e)}))


if __name__ == '__main__':
    main()
