"""Python 2.7's own single-byte codecs over their whole domain, for
py2_codecs_differential.rs.

Usage: python2.7 py2_codecs_differential.py MODULE...   (encodings module names)

Per module, a line `= MODULE`, then `D <byte> <code point>` for each of the 256 single
bytes (`-` where strict decoding raises), `I <code points>` for all 256 bytes decoded
at once with errors='ignore' (comma-separated), `E <code point> <bytes>` for every
BMP code point (surrogates included) that strict encoding accepts, and `A <alias>` for
each `encodings.aliases` name of the module. All numbers in hex.
"""

import sys
from encodings.aliases import aliases


def main():
    out = []
    every = bytearray(range(256))
    for module in sys.argv[1:]:
        out.append('= %s' % module)
        for b in range(256):
            try:
                text = bytearray([b]).decode(module)
            except UnicodeError:
                out.append('D %02x -' % b)
                continue
            if len(text) != 1:
                raise SystemExit('%s: byte %02x decodes to %d characters' % (module, b, len(text)))
            out.append('D %02x %04x' % (b, ord(text)))
        out.append('I ' + ','.join('%x' % ord(c) for c in every.decode(module, 'ignore')))
        for cp in range(0x10000):
            try:
                encoded = unichr(cp).encode(module)
            except UnicodeError:
                continue
            out.append('E %04x %s' % (cp, encoded.encode('hex')))
        for alias in sorted(a for a, m in aliases.items() if m == module):
            out.append('A %s' % alias)
    sys.stdout.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
