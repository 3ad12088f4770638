"""Loads queue entries rewritten by mailqueue-pickle the way Mailman does, and checks
them against the originals.

usage: check_rewrite.py (mailman2|mailman3) ORIGINAL REWRITTEN [ORIGINAL REWRITTEN ...]
       check_rewrite.py values < lines of "PROTOCOL ORIGINAL_HEX OURS_HEX"

For each pair: both pickles of REWRITTEN load (message, then metadata, then nothing
left); the message is of the same class as in ORIGINAL and its pickle bytes are
identical; the metadata equals ORIGINAL's with `_bak_count` raised by one, with the same
Python type at every level. For mailman3 the metadata bytes must also equal what this
Python's own pickle writes for those values (as Mailman 3's recovery writes them),
given equal objects that are not the same object (a value tree has no identity, so a
string the original pickle shared through its memo is written twice), and writing set
members in the order the rewritten file has them (a set has no order of its own).
Prints one line per failure and exits 1 if there was any.
"""
import sys

try:
    import cPickle as pickle  # Mailman 2.1 uses cPickle
except ImportError:
    import pickle


def load(path):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'rb') as f:
        msg = pickle.load(f)
        pos = f.tell()
        meta = pickle.load(f)
        rest = f.read()
    return data, msg, pos, meta, rest


def same(a, b, where):
    if type(a) is not type(b):
        return '%s: type %s != %s' % (where, type(a).__name__, type(b).__name__)
    if isinstance(a, dict):
        if sorted(a.keys()) != sorted(b.keys()):
            return '%s: keys %r != %r' % (where, sorted(a.keys()), sorted(b.keys()))
        for k in a:
            err = same(a[k], b[k], '%s[%r]' % (where, k))
            if err:
                return err
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return '%s: length %d != %d' % (where, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            err = same(x, y, '%s[%d]' % (where, i))
            if err:
                return err
        return None
    if isinstance(a, float) and a != a and b != b:
        return None
    if a != b:
        return '%s: %r != %r' % (where, a, b)
    return None


def unshare(v):
    """A copy of `v` in which no two containers or strings are the same object, except
    the ones CPython itself caches (empty and one-character strings)."""
    if isinstance(v, dict):
        return dict((unshare(k), unshare(x)) for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return type(v)(unshare(x) for x in v)
    if isinstance(v, (type(b''), type(u''))) and len(v) > 1:
        return v[:1] + v[1:]
    return v


def python3_dumps_with_set_order(value, protocol, written):
    """pickle.dumps(value, protocol), except that set members come in the order the
    pickle `written` stores them."""
    import io
    orders = {}

    class RecordingUnpickler(pickle._Unpickler):
        def find_class(self, module, name):
            if module in ('builtins', '__builtin__') and name == 'set':
                def ordered_set(items=()):
                    items = list(items)
                    orders[frozenset(items)] = items
                    return set(items)
                return ordered_set
            return pickle._Unpickler.find_class(self, module, name)

    RecordingUnpickler(io.BytesIO(written)).load()

    class OrderedSetPickler(pickle._Pickler):
        dispatch = pickle._Pickler.dispatch.copy()

        def save_set(self, obj):
            self.save_reduce(set, (orders.get(frozenset(obj), list(obj)),), obj=obj)
        dispatch[set] = save_set

    out = io.BytesIO()
    OrderedSetPickler(out, protocol).dump(value)
    return out.getvalue()


def main(version, paths):
    failures = 0
    for original, rewritten in zip(paths[0::2], paths[1::2]):
        try:
            data0, msg0, pos0, meta0, _ = load(original)
            data1, msg1, pos1, meta1, rest = load(rewritten)
        except Exception as e:
            print('%s: does not load: %r' % (rewritten, e))
            failures += 1
            continue
        meta0['_bak_count'] = meta0.get('_bak_count', 0) + 1
        problems = []
        if rest:
            problems.append('%d bytes after the metadata pickle' % len(rest))
        if type(msg0) is not type(msg1):
            problems.append('message class %r != %r' % (type(msg1), type(msg0)))
        if data0[:pos0] != data1[:pos1]:
            problems.append('message pickle bytes changed')
        err = same(meta0, meta1, 'metadata')
        if err:
            problems.append(err)
        if version == 'mailman3':
            protocol = 0 if meta0.get('_parsemsg') else 1
            expected = python3_dumps_with_set_order(unshare(meta0), protocol, data1[pos1:])
            if expected != data1[pos1:]:
                problems.append('metadata bytes differ from pickle.dumps(protocol=%d):\n  python %r\n  ours   %r'
                                % (protocol, expected, data1[pos1:]))
        for p in problems:
            print('%s: %s' % (rewritten, p))
        failures += bool(problems)
    print('checked %d entries, %d failed' % (len(paths) // 2, failures))
    return 1 if failures else 0


def check_values(lines):
    """Single pickles: ours (written from what we read in the original) loads to a value
    equal to the original's, type for type; on Python 3 also byte for byte."""
    failures = 0
    for n, line in enumerate(lines):
        protocol, original, ours = line.split()
        original, ours = bytearray.fromhex(original), bytearray.fromhex(ours)
        try:
            expected = pickle.loads(bytes(original))
            got = pickle.loads(bytes(ours))
        except Exception as e:
            print('sample %d: does not load: %r' % (n, e))
            failures += 1
            continue
        err = same(expected, got, 'sample %d' % n)
        if not err and sys.version_info[0] == 3:
            want = python3_dumps_with_set_order(unshare(expected), int(protocol), bytes(ours))
            if want != bytes(ours):
                err = 'sample %d: bytes differ:\n  python %r\n  ours   %r' % (n, want, bytes(ours))
        if err:
            print(err)
            failures += 1
    print('checked %d values, %d failed' % (len(lines), failures))
    return 1 if failures else 0


if __name__ == '__main__':
    if sys.argv[1] == 'values':
        sys.exit(check_values([l for l in sys.stdin.read().splitlines() if l.strip()]))
    sys.exit(main(sys.argv[1], sys.argv[2:]))
