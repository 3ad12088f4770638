"""Makes Mailman 3 queue entries and the DATA bytes Mailman 3's delivery would send.

Usage: python py3_differential.py OUTDIR [COUNT] [SEED]   (Python with mailman 3.3.10)

For each case it writes OUTDIR/<name>.pck (message pickle then metadata pickle, as
Switchboard.enqueue writes them) and either <name>.out (the bytes smtplib.send_message
hands to the server, with the final CRLF smtplib's data() adds) or <name>.err (the
exception Python raised: the delivery fails in Mailman too).

Messages come from three sources: raw bytes parsed as Mailman's LMTP runner parses them
(8-bit octets become surrogates), messages built in code (non-ASCII str header values,
email.header.Header objects in several charsets, MIME digests whose boundaries Python
invents at random when flattening), and text entries (_parsemsg) parsed on
dequeue with email.message_from_string. Shapes are random but seeded: long and folded
headers, CR/LF/CRLF mixes, "From " lines, nested multiparts with preambles and
epilogues, digests, attached messages, delivery-status reports, broken boundaries, and
a soup of parser-relevant lines (boundaries, From lines, continuations) for the parser.
"""

import email
import os
import pickle
import random
import smtplib
import sys
import copy
from email.header import Header
from email.mime.message import MIMEMessage
from email.mime.text import MIMEText

from mailman.email.message import Message, MultipartDigestMessage

ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
NON_ASCII = ['\u00e9', '\u00fc', '\u00df', '\u65e5\u672c', '\u2014', '\U0001f600', '\u0416']


class Capture(smtplib.SMTP):
    """smtplib.SMTP whose sendmail keeps the bytes instead of talking to a server."""

    def ehlo_or_helo_if_needed(self):
        pass

    def has_extn(self, opt):
        return False

    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        self.captured = msg
        return {}


def deliver(msg):
    smtp = Capture()
    smtp.send_message(msg, 'test-bounces@example.com', ['member@example.net'])
    data = smtp.captured
    if data[-2:] != b'\r\n':
        data += b'\r\n'
    return data


def word(r, eight_bit):
    n = r.choice([1, 2, 3, 5, 8, 13, 21, 40, 77, 80, 120])
    w = ''.join(r.choice(ALNUM + '.-_@<>()"=?/') for _ in range(n))
    if r.random() < 0.15:
        w += r.choice(NON_ASCII if not eight_bit else ['\u00e9', '\u00fc'])
    return w


def header_value(r, eight_bit, nl):
    seps = [' ', ' ', ' ', ', ', '; ', '\t', ' \t ', ',', ';']
    parts = []
    for _ in range(r.choice([0, 1, 2, 3, 5, 8, 15, 25])):
        if parts:
            sep = r.choice(seps)
            if r.random() < 0.1:
                sep = r.choice([nl + '\t', nl + ' ', nl + '    '])
            parts.append(sep)
        parts.append(word(r, eight_bit))
    return ''.join(parts)


HEADER_NAMES = ['Subject', 'To', 'Cc', 'From', 'References', 'X-Long-Header-Name-For-Testing',
                'Content-Description', 'Received', 'Bcc', 'Resent-Bcc', 'Message-ID', 'X-A',
                'bcc', 'Resent-Date']


def raw_headers(r, nl, eight_bit, extra=()):
    lines = list(extra)
    for _ in range(r.randint(0, 6)):
        lines.append('%s: %s' % (r.choice(HEADER_NAMES), header_value(r, eight_bit, nl)))
    return nl.join(lines)


def body_text(r, nl_choices):
    samples = ['From here on', 'from lower case', '>From quoted', 'plain text line', '',
               'x' * 200, '.leading dot', 'caf\u00e9 8bit', 'trailing spaces   ', 'From ',
               ' From indented', '--not-a-boundary']
    out = []
    for _ in range(r.randint(0, 8)):
        out.append(r.choice(samples))
        out.append(r.choice(nl_choices))
    if out and r.random() < 0.2:
        out.pop()
    return ''.join(out)


def boundary(r):
    return r.choice(['BOUNDARY', '==XYZ==', 'b1', 'with space', 'abc.def/ghi', '0123456789' * 6,
                     "'quoted'", 'a=b'])


def param(b):
    if ' ' in b or '=' in b or '/' in b or "'" in b:
        return '"%s"' % b
    return b


def raw_entity(r, nl, depth):
    """One MIME entity (headers, blank line, body) as text."""
    nls = [nl] * 8 + ['\n', '\r\n', '\r']
    kind = r.choice(['text', 'text', 'multipart', 'rfc822', 'dsn', 'binary', 'noheaders'])
    if depth >= 3 and kind in ('multipart', 'rfc822'):
        kind = 'text'
    if kind == 'text':
        ct = r.choice(['Content-Type: text/plain', 'Content-Type: text/html; charset=utf-8',
                       'Content-Type: text/plain;\n\tcharset="iso-8859-1"'.replace('\n', nl)])
        return raw_headers(r, nl, True, [ct]) + nl + nl + body_text(r, nls)
    if kind == 'noheaders':
        return nl + body_text(r, nls)
    if kind == 'binary':
        return 'Content-Type: application/octet-stream' + nl + 'Content-Transfer-Encoding: base64' + nl + nl + \
            'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4' + nl
    if kind == 'rfc822':
        return 'Content-Type: message/rfc822' + nl + nl + raw_message(r, nl, depth + 1)
    if kind == 'dsn':
        blocks = []
        for _ in range(r.randint(1, 3)):
            blocks.append(nl.join('%s: %s' % (n, header_value(r, False, nl)) for n in
                                  r.sample(['Reporting-MTA', 'Final-Recipient', 'Action', 'Status'], 2)))
        return 'Content-Type: message/delivery-status' + nl + nl + (nl + nl).join(blocks) + nl
    sub = r.choice(['mixed', 'alternative', 'digest', 'signed', 'related'])
    b = boundary(r)
    ct = 'Content-Type: multipart/%s; boundary=%s' % (sub, param(b))
    if r.random() < 0.05:
        ct = 'Content-Type: multipart/%s' % sub
    out = [raw_headers(r, nl, True, [ct]), nl, nl]
    if r.random() < 0.4:
        out.append(body_text(r, [nl]) + nl)
    start_missing = r.random() < 0.05
    for i in range(r.randint(0, 3)):
        if not (start_missing and i == 0):
            out.append('--' + b + r.choice(['', '', ' ', '\t']) + nl)
        if sub == 'digest' and r.random() < 0.5:
            out.append(nl + raw_message(r, nl, depth + 1))
        else:
            out.append(raw_entity(r, nl, depth + 1))
        out.append(nl)
    if r.random() > 0.05:
        out.append('--' + b + '--')
        if r.random() < 0.8:
            out.append(nl)
        if r.random() < 0.4:
            out.append(body_text(r, [nl]))
    return ''.join(out)


def raw_message(r, nl, depth=0):
    extra = []
    if r.random() < 0.3:
        extra.append('From: Someone <someone@example.org>')
    return raw_headers(r, nl, True, extra) + nl + raw_entity(r, nl, depth)


def coded_message(r):
    """A message built in code, as Mailman builds notices: str and Header values."""
    msg = Message()
    for _ in range(r.randint(1, 5)):
        name = r.choice(HEADER_NAMES)
        if r.random() < 0.5:
            msg[name] = header_value(r, False, '\n')
        else:
            h = Header(header_name=name, continuation_ws=r.choice([' ', '\t']))
            for _ in range(r.randint(1, 3)):
                cs = r.choice(['utf-8', 'iso-8859-1', 'us-ascii'])
                text = header_value(r, False, r.choice([' ', ' ', '\n', '\r\n ']))
                try:
                    h.append(text, cs)
                except UnicodeError:
                    h.append(text, 'utf-8')
            msg[name] = h
    msg['Content-Type'] = 'text/plain; charset="utf-8"'
    msg.set_payload(body_text(r, ['\n', '\r\n']).encode('ascii', 'replace').decode('ascii'))
    return msg


def digest_message(r, nl):
    """A MIME digest as Mailman's digest runner builds it: no boundary is set until the
    message is flattened, so the generator has to invent one."""
    outer = MultipartDigestMessage('mixed')
    outer['Subject'] = header_value(r, False, ' ') or 'Test Digest'
    masthead = MIMEText(body_text(r, ['\n']).encode('utf-8'), _charset='utf-8')
    masthead['Content-Description'] = header_value(r, False, ' ')
    outer.attach(masthead)
    digest = MultipartDigestMessage('digest')
    for count in range(r.randint(0, 3)):
        inner = email.message_from_bytes(raw_message(r, nl).encode('utf-8'), Message)
        part = MIMEMessage(copy.deepcopy(inner))
        part.get_payload(0)['Message'] = str(count + 1)
        digest.attach(part)
    outer.attach(digest)
    if r.random() < 0.5:
        outer.attach(MIMEText('footer\n'.encode('utf-8'), _charset='utf-8'))
    return outer


SOUP = ['Content-Type: multipart/mixed; boundary=B', '--B', '--B--', '--B \t', '--B--  ',
        'From x', ' continued', '\tcontinued', ':no name', 'X: y', '', '', 'body text',
        'Content-Type: message/rfc822', 'Content-Type: message/delivery-status',
        'Content-Type: multipart/digest; boundary=C', '--C', '--C--', 'From someone here',
        'Subject: caf\u00e9', 'Content-Type: multipart/alternative', '--Bx', 'B--',
        'Content-Type: text/plain', 'Content-Type: multipart/signed; boundary="B"']


def soup_text(r):
    """Lines drawn from parser-relevant fragments: the feedparser's corner cases."""
    out = []
    for _ in range(r.randint(1, 40)):
        out.append(r.choice(SOUP))
        out.append(r.choice(['\n', '\n', '\r\n', '\r']))
    if r.random() < 0.3:
        out.pop()
    return ''.join(out)


def main():
    outdir = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.makedirs(outdir, exist_ok=True)
    r = random.Random(seed)
    for i in range(count):
        source = r.choice(['bytes', 'bytes', 'bytes', 'code', 'text', 'digest', 'soup', 'soupbytes'])
        nl = r.choice(['\n', '\r\n'])
        text_entry = source in ('text', 'soup')
        if source == 'soup':
            msg = soup_text(r)
        elif source == 'soupbytes':
            msg = email.message_from_bytes(soup_text(r).encode('utf-8'), Message)
        elif source == 'code':
            msg = coded_message(r)
        elif source == 'digest':
            msg = digest_message(r, nl)
        else:
            raw = raw_message(r, nl)
            if text_entry:
                # Mailman stores str(msg) for _plaintext entries; keep it surrogate-free.
                msg = raw
            else:
                msg = email.message_from_bytes(raw.encode('utf-8'), Message)
                # Mailman copies fetched values between messages; a value holding 8-bit
                # octets comes back from compat32 as an unknown-8bit Header object.
                for name in ('Subject', 'To', 'X-A'):
                    if name in msg and r.random() < 0.5:
                        msg['X-Copied-' + name] = msg[name]
        name = 'case-%04d-%s' % (i, source)
        if text_entry:
            data = pickle.dumps(msg, 0) + pickle.dumps({'_parsemsg': True}, 0)
        else:
            data = pickle.dumps(msg, 5) + pickle.dumps({}, 5)
        with open(os.path.join(outdir, name + '.pck'), 'wb') as f:
            f.write(data)
        # Deliver what a fresh dequeue sees, as Mailman does.
        loaded = pickle.loads(data)
        if text_entry:
            loaded = email.message_from_string(loaded, Message)
        try:
            out = deliver(loaded)
        except Exception as e:
            with open(os.path.join(outdir, name + '.err'), 'w') as f:
                f.write('%s: %s\n' % (type(e).__name__, e))
        else:
            with open(os.path.join(outdir, name + '.out'), 'wb') as f:
                f.write(out)


if __name__ == '__main__':
    main()
