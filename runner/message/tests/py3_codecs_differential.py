"""Python's own codecs over their whole domain, for py3_codecs_differential.rs.

Usage: python py3_codecs_differential.py MODULE[:2|:4]...   (encodings module names)

Per module, a line `= MODULE`, then `D <bytes> <code point>` for each of the 256 single
bytes (`-` where strict decoding raises), then `E <code point> <bytes>` for every BMP
code point outside the surrogates that strict encoding accepts (the others raise).
All numbers in hex.

`:2` (multi-byte codecs) adds a `D` line for every two-byte sequence from a byte
0x80..0xFF that decodes to one character (the others raise), and encodes the code
points beyond the BMP too: as `E` lines, or for four-byte results as runs (below).
`:4` (gb18030) adds the four-byte sequences B1 B2 B3 B4 (B1, B3 in 0x81..0xFE; B2, B4
digits), numbered in that order, as runs `Q <first number> <length> <first code point>`
(consecutive numbers decoding to consecutive code points; `-` for a run that raises),
and the supplementary code points' four-byte results as runs
`S <first code point> <length> <number of the first result>`.
"""

import sys


def quad_number(b):
    return (((b[0] - 0x81) * 10 + b[1] - 0x30) * 126 + b[2] - 0x81) * 10 + b[3] - 0x30


def is_quad(b):
    return (len(b) == 4 and 0x81 <= b[0] <= 0xFE and 0x30 <= b[1] <= 0x39
            and 0x81 <= b[2] <= 0xFE and 0x30 <= b[3] <= 0x39)


def runs(out, tag, keys, value):
    """Runs of consecutive keys whose values are consecutive (or all None)."""
    start = length = first = None
    for key in keys:
        v = value(key)
        if length and (v is None) == (first is None) and (v is None or v == first + length):
            length += 1
            continue
        if length:
            out.append(f'{tag} {start:x} {length:x} {"-" if first is None else f"{first:x}"}')
        start, length, first = key, 1, v
    if length:
        out.append(f'{tag} {start:x} {length:x} {"-" if first is None else f"{first:x}"}')


def decode_one(module, b):
    try:
        text = b.decode(module)
    except UnicodeError:
        return None
    if len(text) != 1:
        raise SystemExit(f'{module}: {b.hex()} decodes to {len(text)} characters')
    return ord(text)


def main():
    out = []
    for arg in sys.argv[1:]:
        module, _, width = arg.partition(':')
        out.append(f'= {module}')
        for b in range(256):
            cp = decode_one(module, bytes([b]))
            out.append(f'D {b:02x} {"-" if cp is None else f"{cp:04x}"}')
        if width:
            for lead in range(0x80, 0x100):
                for trail in range(0x100):
                    cp = decode_one(module, bytes([lead, trail]))
                    if cp is not None:
                        out.append(f'D {lead:02x}{trail:02x} {cp:04x}')
        last = 0x110000 if width else 0x10000
        quads = {}
        for cp in range(last):
            if 0xD800 <= cp < 0xE000:
                continue
            try:
                encoded = chr(cp).encode(module)
            except UnicodeError:
                continue
            if cp >= 0x10000 and is_quad(encoded):
                quads[cp] = quad_number(encoded)
            else:
                out.append(f'E {cp:04x} {encoded.hex()}')
        if width == '4':
            def quad(n):
                b4, n = n % 10, n // 10
                b3, n = n % 126, n // 126
                b2, b1 = n % 10, n // 10
                return decode_one(module, bytes([b1 + 0x81, b2 + 0x30, b3 + 0x81, b4 + 0x30]))
            runs(out, 'Q', range(126 * 10 * 126 * 10), quad)
        if width:
            runs(out, 'S', range(0x10000, 0x110000), quads.get)
    sys.stdout.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
