"""Python's own codecs over their whole domain, for py3_codecs_differential.rs.

Usage: python py3_codecs_differential.py MODULE...   (encodings module names)

Per module, a line `= MODULE`, then `D <byte> <code point>` for each of the 256 single
bytes (`-` where strict decoding raises), then `E <code point> <bytes>` for every BMP
code point outside the surrogates that strict encoding accepts (the others raise).
All numbers in hex.
"""

import sys


def main():
    out = []
    for module in sys.argv[1:]:
        out.append(f'= {module}')
        for b in range(256):
            try:
                text = bytes([b]).decode(module)
            except UnicodeError:
                out.append(f'D {b:02x} -')
                continue
            if len(text) != 1:
                raise SystemExit(f'{module}: byte {b:02x} decodes to {len(text)} characters')
            out.append(f'D {b:02x} {ord(text):04x}')
        for cp in range(0x10000):
            if 0xD800 <= cp < 0xE000:
                continue
            try:
                encoded = chr(cp).encode(module)
            except UnicodeError:
                continue
            out.append(f'E {cp:04x} {encoded.hex()}')
    sys.stdout.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
