# -*- coding: utf-8 -*-
"""Makes Mailman 2.1 queue entries with Python 2.7 and computes, with Python 2.7's own
email package, the bytes Mailman 2.1's delivery sends for each (or the error it raises).

Usage: python2.7 py2_differential.py COUNT SEED > cases.jsonl
Each output line: {"name", "entry" (base64 of both pickles), "delivery", "flat"
(base64, or null), "error" (text, or null)}.

`Mailman.Message.Message` and `Mailman.Generator.Generator` are stand-ins with GNU
Mailman 2.1's behaviour (module path, `__version__`, `as_string`, and a generator whose
clones write sub-part headers with maxheaderlen 0), registered in sys.modules so that
cPickle records the same class path Mailman's pickles carry.
"""

import base64
import cPickle
import email
import email.generator
import email.message
import glob
import json
import os
import random
import re
import sys
import types
from cStringIO import StringIO
from email.header import Header

# ---- the stand-in Mailman package -------------------------------------------------

mailman_pkg = types.ModuleType('Mailman')
generator_mod = types.ModuleType('Mailman.Generator')
message_mod = types.ModuleType('Mailman.Message')
sys.modules['Mailman'] = mailman_pkg
sys.modules['Mailman.Generator'] = generator_mod
sys.modules['Mailman.Message'] = message_mod
mailman_pkg.Generator = generator_mod
mailman_pkg.Message = message_mod


class Generator(email.generator.Generator):
    def __init__(self, outfp, mangle_from_=True, maxheaderlen=78,
                 children_maxheaderlen=0):
        email.generator.Generator.__init__(self, outfp, mangle_from_=mangle_from_,
                                           maxheaderlen=maxheaderlen)
        self.__children_maxheaderlen = children_maxheaderlen

    def clone(self, fp):
        return self.__class__(fp, self._mangle_from_,
                              self.__children_maxheaderlen,
                              self.__children_maxheaderlen)

Generator.__module__ = 'Mailman.Generator'
generator_mod.Generator = Generator


class Message(email.message.Message):
    def __init__(self):
        self.__version__ = (4, 0, 3)
        email.message.Message.__init__(self)

    def as_string(self, unixfrom=False, mangle_from_=True):
        fp = StringIO()
        g = Generator(fp, mangle_from_=mangle_from_)
        g.flatten(self, unixfrom=unixfrom)
        return fp.getvalue()


class UserNotification(Message):
    def __init__(self, recip, sender, subject=None, text=None, lang=None):
        Message.__init__(self)
        if text is not None:
            self.set_payload(text)
        if subject is None:
            subject = '(no subject)'
        self['Subject'] = Header(subject, 'us-ascii', header_name='Subject')
        self['From'] = sender
        self['To'] = recip
        self.recips = [recip]

Message.__module__ = 'Mailman.Message'
UserNotification.__module__ = 'Mailman.Message'
message_mod.Message = Message
message_mod.UserNotification = UserNotification

# ---- what SMTPDirect and smtplib do ----------------------------------------------

CRLF = '\r\n'


def smtplib_fix(data):
    data = re.sub(r'(?:\r\n|\n|\r(?!\n))', CRLF, data)
    if data[-2:] != CRLF:
        data += CRLF
    return data


# The delivery path keeps Mailman 2.1's call depth: main() stands for bin/qrunner's,
# then Runner.run, _oneloop, _onefile, OutgoingRunner._dispose, SMTPDirect.process and
# bulkdeliver, so that Python's recursion limit strikes where it does in Mailman.

def runner_run(entry):
    """The bytes Mailman 2.1 sends for a queue entry (and those without Errors-To)."""
    return oneloop(entry)


def oneloop(entry):
    # Loaded twice: once as Mailman delivers it, once for the flattening alone (a
    # deepcopy would meet the recursion limit sooner than Mailman does).
    msgs = []
    for _ in range(2):
        f = StringIO(entry)
        msg = cPickle.load(f)
        meta = cPickle.load(f)
        if meta.get('_parsemsg'):
            msg = email.message_from_string(msg, Message)
        msgs.append(msg)
    return onefile(msgs, meta)


def onefile(msgs, meta):
    return dispose(msgs, meta)


def dispose(msgs, meta):
    return process(msgs, meta)


def process(msgs, meta):
    msg, copy_of_msg = msgs
    flat = bulkdeliver(copy_of_msg)
    del msg['errors-to']
    msg['Errors-To'] = meta['envsender']
    return bulkdeliver(msg), flat


def bulkdeliver(msg):
    return smtplib_fix(msg.as_string(mangle_from_=False))


def enqueue(msg, plaintext=False, envsender='test-bounces@example.com'):
    """Switchboard.enqueue's two pickles."""
    meta = {'listname': 'test', 'envsender': envsender, 'version': 3,
            'recips': ['alice@example.net'], '_parsemsg': plaintext}
    if plaintext:
        return cPickle.dumps(msg, 0) + cPickle.dumps(meta, 0)
    return cPickle.dumps(msg, 1) + cPickle.dumps(meta, 1)

# ---- cases ----------------------------------------------------------------------

WORDS = ['alpha', 'beta', 'gamma', 'delta', 'x', 'yy', 'a-much-longer-token-here',
         'averyveryveryveryverylongtokenwithoutanybreaksatallsoitcannotbesplit',
         'foo@example.com', '<bar@example.org>', '"Quoted, Name"', '(comment)',
         'k=v;', 'one,two', 'semi;colon', '', ' ', '\t', '=?utf-8?q?enc?=']
SEPS = [' ', ', ', '; ', ',', ';', '  ', '\t', ' ;', '\n\t', '\n ', ',\n ']
NAMES = ['Subject', 'To', 'Cc', 'References', 'X-A', 'Content-Type', 'X-Very-Long-Header-Name-That-Eats-The-Line',
         'Received', 'From', 'Reply-To', 'Errors-To', 'DKIM-Signature', 'X-' + 'N' * 70]

UNICODE_TEXTS = {
    'utf-8': [u'Grüße aus Zürich — Café ✓', u'日本語の件名です。とても長い件名を書いてみます。',
              u'Ελληνικά και ρωσικий текст ' * 3, u'emoji 😀 and more 😀😀😀 text ' * 2],
    'iso-8859-1': [u'Caf\xe9 cr\xe8me br\xfbl\xe9e \xe0 la fran\xe7aise ' * 3, u'na\xefve r\xe9sum\xe9'],
    'iso-2022-jp': [u'日本語の件名です。', u'これは長い日本語の件名で、折り返しが必要になるはずです。もっと長くします。' * 2,
                    u'ASCII and 日本語 mixed テキスト'],
    'koi8-r': [u'Привет, мир! Это тема письма.', u'Очень длинная тема письма на русском языке, чтобы проверить перенос строк ' * 2],
    'us-ascii': [u'plain ascii subject that is long enough to need folding somewhere along the way ok'],
}


def random_value(rng):
    n = rng.randint(0, 30)
    parts = []
    for _ in range(n):
        parts.append(rng.choice(WORDS))
        parts.append(rng.choice(SEPS))
    v = ''.join(parts)
    if rng.random() < 0.1:
        v += '\xe9\xe8 8bit'
    return v


def random_header(rng):
    cs = rng.choice(sorted(UNICODE_TEXTS))
    kwargs = {}
    if rng.random() < 0.5:
        kwargs['header_name'] = rng.choice(NAMES)
    if rng.random() < 0.3:
        kwargs['maxlinelen'] = rng.choice([40, 60, 76, 78, 100])
    if rng.random() < 0.3:
        kwargs['continuation_ws'] = '\t'
    h = Header(**kwargs)
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.3:
            h.append(random_value(rng).replace('\xe9\xe8', ''), 'us-ascii')
        else:
            cs = rng.choice(sorted(UNICODE_TEXTS))
            h.append(rng.choice(UNICODE_TEXTS[cs]).encode(cs), cs)
    return h


def base_message(rng, body='Body line\nFrom here on\n'):
    text = 'From: a@example.com\nTo: b@example.com\nSubject: s\n\n' + body
    return email.message_from_string(text, Message)


def case_headers(rng):
    msg = base_message(rng)
    for _ in range(rng.randint(1, 6)):
        msg[rng.choice(NAMES)] = random_value(rng)
    if rng.random() < 0.5:
        msg['Subject'] = random_header(rng)
    return msg


def case_nested(rng):
    """A parsed multipart with random structure, headers folded only at the top."""
    counter = [0]

    def part(depth):
        counter[0] += 1
        b = 'b%d=_%d' % (depth, counter[0])
        kind = rng.choice(['text', 'text', 'multi', 'rfc822'] if depth < 3 else ['text'])
        long_hdr = 'X-Long: ' + random_value(rng).replace('\n', ' ') + '\n'
        if kind == 'text':
            return ('Content-Type: text/plain; charset="us-ascii"\n' + long_hdr + '\n' +
                    'line one\nFrom the start\n' * rng.randint(0, 3))
        if kind == 'rfc822':
            return 'Content-Type: message/rfc822\n\n' + 'Subject: inner\n' + long_hdr + '\n' + part(depth + 1)
        subs = [part(depth + 1) for _ in range(rng.randint(0, 3))]
        pre = rng.choice(['', 'preamble text\n', '\n\n'])
        epi = rng.choice(['', 'epilogue\n', '\n', 'trailing'])
        text = 'Content-Type: multipart/%s; boundary="%s"\n%s\n%s' % (
            rng.choice(['mixed', 'alternative', 'digest', 'signed']), b, long_hdr, pre)
        for s in subs:
            text += '--%s\n%s\n' % (b, s)
        return text + '--%s--\n%s' % (b, epi)

    text = 'From: a@example.com\nSubject: nested ' + random_value(rng).replace('\n', ' ') + '\n' + part(0)
    return text


ODD_TEXTS = [
    'Subject: no body',
    'Subject: x\n\nno trailing newline',
    'Subject: crlf\r\nTo: a@b\r\n\r\nbody\r\nline\r\n',
    'Subject: cr only\rTo: a@b\r\rbody\rline\r',
    'From nobody Mon Jan  1 00:00:00 2001\nSubject: unixfrom\n\nbody\n',
    ' continuation first\nSubject: x\n\nbody\n',
    'Subject: a\nFrom b@c\n\nbody\n',
    'Subject: a\nFrom b@c\nTo: d\n\nbody\n',
    'Subject: a\nnot a header line\nTo: x\n\nbody\n',
    'Subject: folded\n  over\n\tlines\nTo: x\n\nbody\n',
    'Content-Type: multipart/mixed; boundary=BB\n\npre\n--BB\n\nfirst\n--BB\nContent-Type: text/html\n\n<p>x</p>\n--BB--\nepi\n',
    'Content-Type: multipart/mixed; boundary=BB\n\nno start boundary at all\n',
    'Content-Type: multipart/mixed; boundary=BB\n\n--BB\n\nnever closed\n',
    'Content-Type: multipart/mixed; boundary=BB\n\n--BB--\nclosed before open\n',
    'Content-Type: multipart/mixed; boundary=BB\n\n--BB\n--BB\n\nempty part before\n--BB--',
    'Content-Type: multipart/mixed; boundary=BB\n\n--BB  \n\nws after boundary\n--BB--  \n\n\nepi\n',
    'Content-Type: multipart/mixed\n\nno boundary param\n--x\n',
    'Content-Type: multipart/mixed; boundary="quoted \\"b\\""\n\n--quoted "b"\n\nq\n--quoted "b"--\n',
    'Content-Type: multipart/mixed; boundary*0=AB; boundary*1=CD\n\n--ABCD\n\nrfc2231\n--ABCD--\n',
    'Content-Type: multipart/mixed; boundary*=us-ascii\'en\'A%42C\n\n--ABC\n\nrfc2231 encoded\n--ABC--\n',
    'Content-Type: multipart/digest; boundary=D\n\n--D\n\nSubject: in digest\n\nbody\n--D\nContent-Type: text/plain\n\nplain\n--D--\n',
    'Content-Type: message/rfc822\n\nSubject: inner\n\ninner body\n',
    'Content-Type: message/rfc822\n\n',
    'Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\nAction: failed\n\n',
    'Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\nArrival-Date: now\n',
    'Content-Type: multipart/report; boundary=R\n\n--R\n\ntext\n--R\nContent-Type: message/delivery-status\n\nA: b\n\nC: d\n--R--\n',
    'Content-Type: multipart/mixed; boundary=O\n\n--O\nContent-Type: multipart/alternative; boundary=I\n\n--I\n\ninner\n--O--\n',
    'Content-Type: text/plain\nContent-Type: multipart/mixed; boundary=X\n\n--X\n\nfirst ctype wins\n',
    'Content-Type: TEXT/PLAIN; charset=us-ascii\n\nupper\n',
    'Content-Type: bogus\n\nbogus type\n',
    'Subject: 8bit \xe9\xe8 header that is long enough to go past seventy eight columns for sure yes\n\nb\n',
    'Subject: ' + 'x' * 100 + '\nTo: ' + ', '.join('user%d@example.com' % i for i in range(20)) + '\n\nlong\n',
    'Subject: embedded\nX-Bad: a\n\tb\n\nbody\n',
    'Content-Type: multipart/mixed; boundary=E\n\n--E\n\npart\n--E--',
    'Content-Type: multipart/mixed; boundary=E\n\n--E\r\n\r\npart\r\n--E--\r\n\r\nepi\r\n',
    'Content-Type: multipart/mixed; boundary=""\n\n--\n\nempty boundary\n----\n',
]


def adversarial(rng):
    """Edge cases of Header folding and of what Python 2's generator refuses."""
    msg = base_message(rng)
    pick = rng.randint(0, 11)
    if pick == 0:
        # Chunks appended with errors='replace' keep their invalid octets.
        cs = rng.choice(['utf-8', 'windows-1252', 'us-ascii'])
        raw = rng.choice(['caf\xe9 \xe2\x82 x', '\xe0\x80\xaf \xf0\x90\x80a', 'ok \x81\x8d\x90 ok',
                          '\xf5\x80\x80\x80 text ' * 6])
        msg['Subject'] = Header(raw, cs, errors='replace', header_name='Subject')
    elif pick == 1:
        # Widths too small for even one character: Python recurses until it fails.
        cs = rng.choice(['iso-2022-jp', 'utf-8', 'koi8-r', 'iso-8859-1'])
        text = rng.choice(UNICODE_TEXTS[cs])
        msg['Subject'] = Header(text.encode(cs), cs, maxlinelen=rng.choice([1, 5, 10, 15, 20, 25, 30]),
                                header_name=rng.choice([None, 'Subject', 'X-' + 'Y' * 40]))
    elif pick == 2:
        msg['X-' + 'N' * rng.randint(70, 120)] = random_value(rng)
    elif pick == 3:
        # An injected header: refused when folded at the top, written as is below.
        msg['X-Inject'] = 'a\nBcc: evil@example.com'
    elif pick == 4:
        msg['X-Blank'] = rng.choice(['', '   ', '\n\n', ' \t ', '\n x'])
    elif pick == 5:
        msg['X-Unicode'] = rng.choice([u'ascii only unicode value', u'caf\xe9 unicode ' * 8, u'\u65e5\u672c'])
    elif pick == 6:
        msg.set_payload(rng.choice([u'unicode ascii body\n', u'caf\xe9 body\n']))
    elif pick == 7:
        h = Header('start ', 'us-ascii', continuation_ws='\t')
        for cs in ['koi8-r', 'us-ascii', 'iso-2022-jp', 'utf-8', 'iso-8859-1']:
            h.append(rng.choice(UNICODE_TEXTS[cs]).encode(cs), cs)
            h.append(rng.choice([' ', ', ', '']) + random_value(rng).replace('\xe9\xe8', ''), 'us-ascii')
        msg['Subject'] = h
    elif pick == 8:
        msg['Subject'] = Header('\xe9\xe8 raw eight bit ' * 8, '8bit')
    elif pick == 9:
        # An ISO-2022-JP chunk written with the 1978 set and JIS Roman.
        msg['Subject'] = Header('\x1b$@0!0"\x1b(J\\~ab\x1b(B tail ' * rng.randint(1, 8), 'iso-2022-jp')
    elif pick == 10:
        # Japanese lists' charset: converted to ISO-2022-JP on output.
        cs = rng.choice(['euc-jp', 'shift_jis'])
        text = rng.choice(UNICODE_TEXTS['iso-2022-jp'])
        if rng.random() < 0.3:
            text += u'\uff71\uff72 half-width'
        msg['Subject'] = Header(text.encode(cs), cs, errors='replace', header_name='Subject')
    else:
        msg['Subject'] = Header('x' * rng.randint(60, 200), 'us-ascii',
                                maxlinelen=rng.choice([None, 10, 40]), header_name='Subject')
    return msg


FRAGMENTS = ['\n', '\r\n', '\r', '--', '--BB', '--BB--', 'From ', ' ', '\t', ':', ';', '"',
             'Content-Type: multipart/mixed; boundary=BB\n', 'Content-Type: message/rfc822\n',
             'Content-Type: message/delivery-status\n', 'Content-Type: multipart/digest; boundary=BB\n',
             'X-H: v\n', '\xe9', '=?utf-8?q?x?=', '\n\n']


def mutate(rng, text):
    """Random line edits and byte noise on a real message."""
    lines = text.splitlines(True) or ['']
    for _ in range(rng.randint(1, 6)):
        op = rng.randint(0, 4)
        i = rng.randrange(len(lines))
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2:
            lines.insert(i, rng.choice(FRAGMENTS))
        elif op == 3:
            line = lines[i]
            j = rng.randint(0, len(line))
            lines[i] = line[:j] + rng.choice(FRAGMENTS) + line[j:]
        else:
            lines[i] = lines[i].replace('\n', rng.choice(['\r\n', '\r', '', '\n\n']))
    return ''.join(lines)


def corpus_texts():
    here = os.path.dirname(email.__file__)
    for path in sorted(glob.glob(os.path.join(here, 'test', 'data', 'msg_*.txt'))):
        with open(path, 'rb') as f:
            yield os.path.basename(path), f.read()


def cases(count, seed):
    rng = random.Random(seed)
    corpus = list(corpus_texts())
    for name, text in corpus:
        yield 'corpus-text-' + name, text, True
        yield 'corpus-obj-' + name, email.message_from_string(text, Message), False
    for i, text in enumerate(ODD_TEXTS):
        yield 'odd-text-%02d' % i, text, True
        yield 'odd-obj-%02d' % i, email.message_from_string(text, Message), False
    n = UserNotification('bob@example.com', 'test-owner@example.com',
                         'Moderator request: a subject that is quite long and will need folding', 'hello\n')
    yield 'user-notification', n, False
    for depth in (244, 245, 246, 250):
        # Python's recursion limit meets the generator near 246 nested parts.
        text = 'Subject: deep\n'
        for level in range(depth):
            if level % 2:
                text += 'Content-Type: message/rfc822\n\n'
            else:
                text += 'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level)
        text += 'Subject: innermost\n\nbody\n'
        yield 'nesting-%d' % depth, text, True
    for n in (1956, 1958, 1960):
        # Two characters a line: Python's recursion limit falls between 979 and 980 lines.
        msg = base_message(rng)
        msg['Subject'] = Header('\xe9' * n, 'iso-8859-1', maxlinelen=24)
        yield 'recursion-limit-%d' % n, msg, False
    for i in range(count):
        kind = rng.choice(['headers', 'headers', 'nested-text', 'nested-obj', 'adversarial', 'mutated'])
        if kind == 'mutated':
            text = mutate(rng, rng.choice([t for _, t in corpus] + ODD_TEXTS))
            if rng.random() < 0.5:
                yield 'mutated-text-%04d' % i, text, True
            else:
                yield 'mutated-obj-%04d' % i, email.message_from_string(text, Message), False
        elif kind == 'headers':
            yield 'headers-%04d' % i, case_headers(rng), False
        elif kind == 'adversarial':
            yield 'adversarial-%04d' % i, adversarial(rng), False
        else:
            text = case_nested(rng)
            if kind == 'nested-text':
                yield 'nested-text-%04d' % i, text, True
            else:
                msg = email.message_from_string(text, Message)
                if rng.random() < 0.5:
                    msg['Subject'] = random_header(rng)
                # Sub-part headers are written unfolded, but a Header object still
                # encodes itself there.
                parts = list(msg.walk())
                for part in rng.sample(parts, min(len(parts), rng.randint(0, 2))):
                    part['X-Header-Object'] = random_header(rng)
                yield 'nested-obj-%04d' % i, msg, False


def main():
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    out = sys.stdout
    for name, msg, plaintext in cases(count, seed):
        entry = enqueue(msg, plaintext)
        record = {'name': name, 'entry': base64.b64encode(entry),
                  'delivery': None, 'flat': None, 'error': None}
        try:
            delivery, flat = runner_run(entry)
            if runner_run(entry) != (delivery, flat):
                # A multipart without a usable boundary gets a random one.
                raise ValueError('Python writes different bytes each time')
            record['delivery'] = base64.b64encode(delivery)
            record['flat'] = base64.b64encode(flat)
        except Exception as e:
            record['error'] = '%s: %s' % (type(e).__name__, e)
        out.write(json.dumps(record) + '\n')


if __name__ == '__main__':
    main()
