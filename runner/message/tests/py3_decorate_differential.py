"""Mailman 3's own decoration (mailman.handlers.decorate.process) on many message
shapes, list charsets and header/footer texts, for py3_decorate_differential.rs.

Usage: python py3_decorate_differential.py OUTDIR   (Python with mailman 3.3.10)

Per case: <name>.pck (the message pickle then an empty metadata pickle, as a queue
entry), <name>.json (header, footer, list charset) and <name>.out (the DATA
smtplib.send_message sends for the decorated message) or <name>.err (what Python
raised).  Template lookup and expansion are bypassed (the texts are given already
expanded); everything after them is Mailman's code.
"""

import email
import json
import os
import pickle
import smtplib
import sys

import mailman.handlers.decorate as decorate
from mailman.email.message import Message


class Capture(smtplib.SMTP):
    def ehlo_or_helo_if_needed(self):
        pass

    def has_extn(self, opt):
        return False

    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        self.captured = msg
        return {}


def deliver(msg):
    smtp = Capture()
    smtp.send_message(msg, 'list-bounces@example.com', ['member@example.net'])
    data = smtp.captured
    return data if data.endswith(b'\r\n') else data + b'\r\n'


HEAD = b'From: A <a@example.com>\nTo: list@example.com\nSubject: s\nMessage-ID: <m@example.com>\n'
LONG = b'x' * 70 + b' \xe9\xe9 ' + b'y' * 20 + b'  \n'
MESSAGES = {
    'no_mime': HEAD + b'\nplain body\nFrom here\n',
    'no_final_newline': HEAD + b'\nno newline at end',
    'ascii_7bit': HEAD + b'MIME-Version: 1.0\nContent-Type: text/plain; charset="us-ascii"\nContent-Transfer-Encoding: 7bit\n\nbody\n',
    'ascii_upper': HEAD + b'Content-Type: text/plain; charset="US-ASCII"\n\nbody\n',
    'utf8_unquoted': HEAD + b'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9fe\n',
    'utf8_base64': HEAD + b'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: base64\n\nR3LDvMOfZSBhdXMgS8O2bG4K\n',
    'latin1_qp_flowed': HEAD + b'Content-Type: text/plain; charset=iso-8859-1; format=flowed; delsp=yes\nContent-Transfer-Encoding: quoted-printable\n\nCaf=E9 cr=E8me =\nsoft\n',
    'latin1_8bit_long': HEAD + b'Content-Type: text/plain; charset="iso-8859-1"\nContent-Transfer-Encoding: 8bit\n\n' + LONG + b'\tend\t\n',
    'ascii_label_8bit': HEAD + b'Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n',
    'utf8_invalid': HEAD + b'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\ncaf\xe9\n',
    'format_fixed_name': HEAD + b'Content-Type: text/plain; format=fixed; name="a b.txt"\nContent-Disposition: inline\n\nbody\r\nwith CRLF\r\n',
    'empty_charset': HEAD + b'Content-Type: text/plain; charset=""\n\nbody\n',
    'html': HEAD + b'MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit\nContent-Description: page\n\n<p>x</p>\n',
    'alternative': HEAD + b'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="B"\n\n--B\nContent-Type: text/plain\n\na\n--B\nContent-Type: text/html\n\n<b>a</b>\n--B--\n',
    'mixed_preamble': HEAD + b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="M"\n\npre\n--M\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\xc3\xa9t\xc3\xa9\n--M\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--M--\nepi\n',
    'signed': HEAD + b'MIME-Version: 1.0\nContent-Type: multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256; boundary="S"\n\n--S\nContent-Type: text/plain\n\nsigned\n--S\nContent-Type: application/pgp-signature\n\nSIG\n--S--\n',
    'rfc822': HEAD + b'MIME-Version: 1.0\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n',
    'qp_long_lines': HEAD + b'Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n' + b'=E9' * 40 + b'=\n' + b'a ' * 50 + b'\nend =20\n',
    'unknown_charset': HEAD + b'Content-Type: text/plain; charset=x-unknown\nContent-Transfer-Encoding: 7bit\n\nbody\n',
    'cp1252_quotes': HEAD + b'Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit\n\n\x93q\x94\n',
    # 0x81 is undefined in Python's cp1252: decoding fails and the message is wrapped.
    'cp1252_undefined': HEAD + b'Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit\n\na\x81b\n',
    'koi8r_8bit': HEAD + b'Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: 8bit\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n',
    'koi8u_box': HEAD + b'Content-Type: text/plain; charset="KOI8-U"\n\n\xae\xbe \xa4\xa6\n',
    'cp1251_base64': HEAD + b'Content-Type: text/plain; charset=cp1251\nContent-Transfer-Encoding: base64\n\n7/Do4uXyCg==\n',
    'latin2_qp': HEAD + b'Content-Type: text/plain; charset=latin2\nContent-Transfer-Encoding: quoted-printable\n\n=A9koda =BE=E1k\n',
    'latin9_euro': HEAD + b'Content-Type: text/plain; charset=iso-8859-15\nContent-Transfer-Encoding: 8bit\n\n5 \xa4\n',
    'iso8859_9_c1': HEAD + b'Content-Type: text/plain; charset=iso-8859-9\nContent-Transfer-Encoding: 8bit\n\n\x80 \xdd\n',
    'gb18030_8bit': HEAD + b'Content-Type: text/plain; charset=GB18030\nContent-Transfer-Encoding: 8bit\n\n\xc4\xe3\xba\xc3 \x81\x35\xf4\x37\n',
    'cp949_8bit': HEAD + b'Content-Type: text/plain; charset=cp949\nContent-Transfer-Encoding: 8bit\n\n\xbe\xc8\xb3\xe7\n',
    # A charset Python knows but whose codec is not carried: refusing (shunt) is expected.
    'unsupported_ks_c_5601': HEAD + b'Content-Type: text/plain; charset="ks_c_5601-1987"\nContent-Transfer-Encoding: base64\n\nvsiz5wo=\n',
    'unsupported_euckr': HEAD + b'Content-Type: text/plain; charset=euc-kr\nContent-Transfer-Encoding: 8bit\n\n\xbe\xc8\xb3\xe7\n',
    'unsupported_iso2022jp': HEAD + b'Content-Type: text/plain; charset=iso-2022-jp\nContent-Transfer-Encoding: 7bit\n\n\x1b$B$3$s\x1b(B\n',
    'plain_disposition': HEAD + b'Content-Type: text/plain; charset=utf-8\nContent-Disposition: attachment; filename="x.txt"\nContent-Transfer-Encoding: quoted-printable\n\nline=3D1=\n\n',
}
DECORATIONS = {
    'footer': ('', '_______\nList footer\n'),
    'header': ('Header line', ''),
    'both_nonascii': ('Gr\u00fc\u00dfe \u2014 head\n', '-- \nFu\u00df \u00e9t\u00e9\n'),
    'both_no_newlines': ('head', 'foot'),
    'cyrillic_footer': ('', '-- \n\u0421\u043f\u0438\u0441\u043e\u043a \u0491\n'),
    'cjk_header': ('\u4f60\u597d \uc548\ub155 \u1e3f', ''),
}
CHARSETS = ['us-ascii', 'utf-8', 'iso-8859-1', 'iso-8859-2', 'windows-1251', 'koi8-r', 'koi8-u', 'cp1252', 'gb18030', 'cp949']


class Language:
    def __init__(self, charset):
        self.charset = charset


class MailingList:
    def __init__(self, charset):
        self.preferred_language = Language(charset)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    decorate.IListArchiverSet = lambda mlist: type('NoArchivers', (), {'archivers': []})()
    for mname, raw in MESSAGES.items():
        for dname, (header, footer) in DECORATIONS.items():
            for cs in CHARSETS:
                name = f'{mname}.{dname}.{cs}'
                texts = {'list:member:regular:header': header, 'list:member:regular:footer': footer}
                decorate.decorate = lambda n, mlist, extra=None, texts=texts: texts[n]
                msg = email.message_from_bytes(raw, Message)
                with open(os.path.join(out, name + '.pck'), 'wb') as fp:
                    fp.write(pickle.dumps(msg, protocol=5))
                    fp.write(pickle.dumps({}, protocol=5))
                with open(os.path.join(out, name + '.json'), 'w') as fp:
                    json.dump({'header': header, 'footer': footer, 'charset': cs}, fp)
                try:
                    decorate.process(MailingList(cs), msg, {})
                    data = deliver(msg)
                except Exception as e:
                    with open(os.path.join(out, name + '.err'), 'w') as fp:
                        fp.write(f'{type(e).__name__}: {e}')
                    continue
                with open(os.path.join(out, name + '.out'), 'wb') as fp:
                    fp.write(data)


if __name__ == '__main__':
    main()
