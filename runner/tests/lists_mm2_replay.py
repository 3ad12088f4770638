# -*- coding: utf-8 -*-
"""Mailman 2.1 list deliveries replayed with Python 2.7's own email package: writes
2.1 out-queue entries for message shapes the shipped vectors do not cover and prints,
for each, the SMTP transactions Mailman 2.1.27's SMTPDirect.process (with its
Decorate handler) makes for it, as JSON lines.

Usage: python2.7 lists_mm2_replay.py LISTS_DIR SITE_JSON OUT_DIR > expected.jsonl
       python2.7 lists_mm2_replay.py LISTS_DIR SITE_JSON --replay ENTRY...
(the second form replays existing entries, to check this replay against vectors made
by real Mailman 2.1)

The delivery code below follows Mailman 2.1.27's Handlers/Decorate.py and
Handlers/SMTPDirect.py (written for this test from their documented behaviour); the
MIME work (MIMEText, set_payload, set_param, the generator and its boundaries) is
Python 2.7's email package itself, with Mailman's Message/Generator stand-ins.
"""

import base64
import copy
import cPickle
import email
import email.generator
import email.message
import json
import os
import random
import re
import sys
import types
import urllib
from cStringIO import StringIO
from email.Charset import Charset
from email.Header import Header
from email.MIMEText import MIMEText
from email.Utils import formataddr

# ---- the stand-in Mailman package (as in runner/message/tests/py2_differential.py) --

mailman_pkg = types.ModuleType('Mailman')
message_mod = types.ModuleType('Mailman.Message')
sys.modules['Mailman'] = mailman_pkg
sys.modules['Mailman.Message'] = message_mod
mailman_pkg.Message = message_mod


class Generator(email.generator.Generator):
    def __init__(self, outfp, mangle_from_=True, maxheaderlen=78, children_maxheaderlen=0):
        email.generator.Generator.__init__(self, outfp, mangle_from_=mangle_from_, maxheaderlen=maxheaderlen)
        self.__children = children_maxheaderlen

    def clone(self, fp):
        return self.__class__(fp, self._mangle_from_, self.__children, self.__children)


class Message(email.message.Message):
    def __init__(self):
        self.__version__ = (4, 0, 3)
        email.message.Message.__init__(self)

    def as_string(self, unixfrom=False, mangle_from_=True):
        fp = StringIO()
        Generator(fp, mangle_from_=mangle_from_).flatten(self, unixfrom=unixfrom)
        return fp.getvalue()

Message.__module__ = 'Mailman.Message'
message_mod.Message = Message

# ---- the list and the site --------------------------------------------------------


class MailList(object):
    def __init__(self, name, config, site):
        self.__dict__.update(config)
        self._name = name
        self._site = site

    def internal_name(self):
        return self._name

    def GetBouncesEmail(self):
        return '%s-bounces@%s' % (self._name, self.host_name)

    def _cp(self, member):
        lc = member.lower()
        for d in (self.members, self.digest_members):
            if lc in d:
                v = d[lc]
                return v if isinstance(v, str) else lc
        return None

    def isMember(self, member):
        return self._cp(member) is not None

    def getMemberCPAddress(self, member):
        cp = self._cp(member)
        if cp is None:
            raise KeyError(member)
        return cp

    def getMemberPassword(self, member):
        p = self.passwords.get(member.lower())
        if p is None:
            raise KeyError(member)
        return p

    def getMemberLanguage(self, member):
        lang = self.language.get(member.lower(), self.preferred_language)
        langs = list(self.available_languages)
        if self._site['DEFAULT_SERVER_LANGUAGE'] not in langs:
            langs.append(self._site['DEFAULT_SERVER_LANGUAGE'])
        if lang in [l for l in langs if l in self._site['LC_CHARSETS']]:
            return lang
        return self.preferred_language

    def getMemberName(self, member):
        self.getMemberCPAddress(member)
        return self.usernames.get(member.lower())

    def GetOptionsURL(self, member):
        return '%soptions%s/%s/%s' % (self.web_page_url, self._site['CGIEXT'], self._name,
                                      urllib.quote(member.lower()))


class SafeDict(dict):
    def __getitem__(self, key):
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            return '%(' + key + ')s'

# ---- Decorate ---------------------------------------------------------------------


dre = re.compile(r'(\${2})|\$([_a-z]\w*)|\${([_a-z]\w*)}', re.IGNORECASE)


def to_percent(s):
    s = s.replace('%', '%%').replace('$$', '$')
    parts = dre.split(s)
    for i in range(1, len(parts), 4):
        if parts[i] is not None:
            parts[i] = '$'
        elif parts[i + 1] is not None:
            parts[i + 1] = '%(' + parts[i + 1] + ')s'
        else:
            parts[i + 2] = '%(' + parts[i + 2] + ')s'
    return ''.join(filter(None, parts))


def decorate_template(mlist, site, template, extradict):
    if len(re.sub(r'\s', '', template)) == 0:
        return ''
    d = SafeDict({'real_name': mlist.real_name, 'list_name': mlist.internal_name(),
                  '_internal_name': mlist.internal_name(), 'host_name': mlist.host_name,
                  'web_page_url': mlist.web_page_url, 'description': mlist.description,
                  'info': mlist.info, 'cgiext': site['CGIEXT']})
    d.update(extradict)
    if getattr(mlist, 'use_dollar_strings', 0):
        template = to_percent(template)
    try:
        text = re.sub(r'(?m)(?<!^--) +(?=\n)', '', re.sub(r'\r\n', r'\n', template % d))
    except (ValueError, TypeError):
        text = template
    if not text.endswith('\n'):
        text += '\n'
    return text


def decorate(mlist, site, msg, msgdata):
    if msgdata.get('isdigest') or msgdata.get('nodecorate'):
        return
    d = {}
    if msgdata.get('personalize'):
        member = msgdata['recips'][0].lower()
        d['user_address'] = member
        try:
            d['user_delivered_to'] = mlist.getMemberCPAddress(member)
            d['user_password'] = mlist.getMemberPassword(member)
            d['user_language'] = mlist.getMemberLanguage(member)
            username = mlist.getMemberName(member) or None
            try:
                username = username.encode(site['LC_CHARSETS'][d['user_language']])
            except (AttributeError, UnicodeError):
                username = member
            d['user_name'] = username
            d['user_optionsurl'] = mlist.GetOptionsURL(member)
        except KeyError:
            pass
    d.update(msgdata.get('decoration-data', {}))
    header = decorate_template(mlist, site, mlist.msg_header, d)
    footer = decorate_template(mlist, site, mlist.msg_footer, d)
    if not header and not footer:
        return
    mcset = msg.get_content_charset() or 'us-ascii'
    lcset = site['LC_CHARSETS'][mlist.preferred_language]
    wrap = True
    if not msg.is_multipart() and msg.get_content_type() == 'text/plain':
        uheader = unicode(header, lcset, 'ignore')
        ufooter = unicode(footer, lcset, 'ignore')
        try:
            oldpayload = unicode(msg.get_payload(decode=True), mcset)
            frontsep = endsep = u''
            if header and not header.endswith('\n'):
                frontsep = u'\n'
            if footer and not oldpayload.endswith('\n'):
                endsep = u'\n'
            payload = uheader + frontsep + oldpayload + endsep + ufooter
            try:
                payload = payload.encode(lcset)
                newcset = lcset
            except UnicodeError:
                if lcset != mcset:
                    payload = payload.encode(mcset)
                    newcset = mcset
            format = msg.get_param('format')
            delsp = msg.get_param('delsp')
            del msg['content-transfer-encoding']
            del msg['content-type']
            msg.set_payload(payload, newcset)
            if format:
                msg.set_param('Format', format)
            if delsp:
                msg.set_param('DelSp', delsp)
            wrap = False
        except (LookupError, UnicodeError):
            pass
    elif msg.get_content_type() == 'multipart/mixed':
        payload = msg.get_payload()
        if not isinstance(payload, list):
            payload = [payload]
        if footer:
            mimeftr = MIMEText(footer, 'plain', lcset)
            mimeftr['Content-Disposition'] = 'inline'
            payload.append(mimeftr)
        if header:
            mimehdr = MIMEText(header, 'plain', lcset)
            mimehdr['Content-Disposition'] = 'inline'
            payload.insert(0, mimehdr)
        msg.set_payload(payload)
        wrap = False
    if not wrap:
        return
    inner = Message()
    copied = False
    for h, v in msg.items():
        if h.lower().startswith('content-'):
            inner[h] = v
            copied = True
    inner.set_payload(msg.get_payload())
    inner.set_unixfrom(msg.get_unixfrom())
    inner.preamble = msg.preamble
    inner.epilogue = msg.epilogue
    inner.set_default_type(msg.get_default_type())
    if not copied:
        inner['Content-Type'] = inner.get_content_type()
    if msg['mime-version'] is None:
        msg['MIME-Version'] = '1.0'
    payload = [inner]
    if header:
        mimehdr = MIMEText(header, 'plain', lcset)
        mimehdr['Content-Disposition'] = 'inline'
        payload.insert(0, mimehdr)
    if footer:
        mimeftr = MIMEText(footer, 'plain', lcset)
        mimeftr['Content-Disposition'] = 'inline'
        payload.append(mimeftr)
    msg.set_payload(payload)
    del msg['content-type']
    del msg['content-transfer-encoding']
    del msg['content-disposition']
    msg['Content-Type'] = 'multipart/mixed'

# ---- SMTPDirect -------------------------------------------------------------------


def smtplib_fix(data):
    data = re.sub(r'(?:\r\n|\n|\r(?!\n))', '\r\n', data)
    if data[-2:] != '\r\n':
        data += '\r\n'
    return data


def chunkify(recips, chunksize):
    chunkmap = {'com': 1, 'net': 2, 'org': 2, 'edu': 3, 'us': 3, 'ca': 3}
    buckets = {}
    for r in recips:
        tld = None
        i = r.rfind('.')
        if i >= 0:
            tld = r[i + 1:]
        buckets.setdefault(chunkmap.get(tld, 0), []).append(r)
    chunks = []
    for bin in buckets.values():
        for i in range(0, len(bin), chunksize):
            chunks.append(bin[i:i + chunksize])
    return chunks


def bulkdeliver(mlist, msg, envsender, recips, sent):
    del msg['errors-to']
    msg['Errors-To'] = envsender
    if mlist.include_sender_header:
        del msg['sender']
        msg['Sender'] = '"%s" <%s>' % (mlist.real_name, envsender)
    sent.append({'mail_from': envsender, 'rcpt_tos': list(recips),
                 'data_b64': base64.b64encode(smtplib_fix(msg.as_string(mangle_from_=False)))})


def process(mlist, site, msg, msgdata):
    sent = []
    recips = msgdata['recips']
    envsender = msgdata.get('envsender') or mlist.GetBouncesEmail()
    if ('personalize' not in msgdata or msgdata['personalize']) and (msgdata.get('verp') or mlist.personalize):
        msgdata['personalize'] = 1
        for recip in reversed(recips):
            msgdata['recips'] = [recip]
            msgcopy = copy.deepcopy(msg)
            decorate(mlist, site, msgcopy, msgdata)
            sender = envsender
            if msgdata.get('verp'):
                bl, bd = envsender.lower().split('@', 1)
                rl, rd = recip.lower().split('@', 1)
                sender = '%s@%s' % (site['VERP_FORMAT'] % {'bounces': bl, 'mailbox': rl, 'host': rd}, bd)
            if mlist.personalize == 2:
                del msgcopy['to']
                name = None
                if mlist.isMember(recip):
                    name = mlist.getMemberName(recip)
                if name:
                    charset = site['LC_CHARSETS'][mlist.getMemberLanguage(recip)]
                    if charset == 'us-ascii':
                        charset = 'iso-8859-1'
                    charset = Charset(charset)
                    codec = charset.input_codec or 'ascii'
                    if not isinstance(name, unicode):
                        name = unicode(name, codec, 'replace')
                    name = Header(name, charset).encode()
                    msgcopy['To'] = formataddr((name, recip))
                else:
                    msgcopy['To'] = recip
            del msgcopy['x-mailman-copy']
            if recip in msgdata.get('add-dup-header', {}):
                msgcopy['X-Mailman-Copy'] = 'yes'
            bulkdeliver(mlist, msgcopy, sender, [recip], sent)
    else:
        if not msgdata.get('decorated'):
            decorate(mlist, site, msg, msgdata)
        for chunk in reversed(chunkify(recips, site['SMTP_MAX_RCPTS'])):
            bulkdeliver(mlist, copy.deepcopy(msg), envsender, chunk, sent)
    return sent

# ---- the cases --------------------------------------------------------------------

HEAD = ('From: Anne Person <aperson@example.com>\nTo: %(list)s@example.com\n'
        'Subject: [%(real)s] %(subject)s\nMessage-ID: <%(list)s.%(n)d@example.com>\n'
        'Date: Mon, 15 Jan 2024 10:00:00 +0000\nList-Id: <%(list)s.example.com>\n')

SHAPES = [
    ('html', 'MIME-Version: 1.0\nContent-Type: text/html; charset="us-ascii"\n\n<p>Hello</p>\n'),
    ('alternative', 'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="alt"\n\n'
     'preamble text\n--alt\nContent-Type: text/plain\n\nplain\n--alt\nContent-Type: text/html\n\n<b>html</b>\n--alt--\nepilogue\n'),
    ('mixed', 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="mix"\n\n'
     '--mix\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nK\xc3\xb6ln\n'
     '--mix\nContent-Type: application/pdf; name="a.pdf"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--mix--\n'),
    ('signed', 'MIME-Version: 1.0\nContent-Type: multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256; boundary="sig"\n\n'
     '--sig\nContent-Type: text/plain\n\nsigned text\n--sig\nContent-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\nAAAA\n-----END PGP SIGNATURE-----\n--sig--\n'),
    ('unknown-charset', 'MIME-Version: 1.0\nContent-Type: text/plain; charset="x-unknown"\nContent-Transfer-Encoding: 8bit\n\nbytes \xe9\xff here\n'),
    ('ascii-8bit', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\nlatin \xe9 octets\n'),
    ('no-final-newline', 'Content-Type: text/plain\n\nno newline at the end'),
    ('utf8-8bit', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9fe \xe2\x80\x94 ok  \nline two\n'),
    ('sender-present', 'Sender: someone@else.example\nErrors-To: other@else.example\nX-Mailman-Copy: yes\n'
     'Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nCaf=E9 \n'),
    ('iso2022jp', 'MIME-Version: 1.0\nContent-Type: text/plain; charset="iso-2022-jp"\nContent-Transfer-Encoding: 7bit\n\n'
     '\x1b$B2q5D$N$*CN$i$;\x1b(B\nASCII line\n'),
    ('utf8-base64-cyrillic', 'MIME-Version: 1.0\nContent-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: base64\n\n'
     + base64.encodestring('\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 caf\xc3\xa9\n')),
    ('latin1-base64', 'MIME-Version: 1.0\nContent-Type: text/plain; charset="ISO-8859-1"\nContent-Transfer-Encoding: base64\n\n'
     + base64.encodestring('na\xefve r\xe9sum\xe9 \n')),
    ('empty-charset', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=""\n\nplain\n'),
    # Single-byte charsets: Python 2.7 renames those outside email.charset's table to
    # their codec's name (windows-1251 becomes cp1251, latin2 iso8859-2, with base64).
    ('cp1251-8bit', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=windows-1251\nContent-Transfer-Encoding: 8bit\n\n\xcf\xf0\xe8\xe2\xe5\xf2\n'),
    ('koi8r-8bit', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: 8bit\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n'),
    ('koi8u-box', 'MIME-Version: 1.0\nContent-Type: text/plain; charset="KOI8-U"\n\n\xae\xbe \xa4\xa6\n'),
    ('latin2-qp', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=latin2\nContent-Transfer-Encoding: quoted-printable\n\n=A9koda =BE=E1k\n'),
    ('iso8859-2-8bit', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-2\nContent-Transfer-Encoding: 8bit\n\n\xa9koda\n'),
    ('latin1-label', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=latin1\nContent-Transfer-Encoding: 8bit\n\ncaf\xe9\n'),
    ('cp1252-undefined', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit\n\na\x81b \x93q\x94\n'),
    ('mixed-preamble-8bit', 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\nThis is a preamble.\n'
     '--b1\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nCaf\xe9\n--b1--\n'),
    ('no-mime-8bit', '\nraw \xe9\xe8 octets without any MIME header\n'),
    ('rfc822', 'MIME-Version: 1.0\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n'
     'From: x@example.com\nSubject: inner\n\ninner body\n'),
    ('latin1-qp-long', 'MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1; format=flowed\nContent-Transfer-Encoding: quoted-printable\n\n'
     + 'x' * 70 + ' =E9=E9=E9 trailing   \n\ttab line\t\n'),
]


def load_site(site_file):
    site = json.load(open(site_file))
    site = dict((str(k), v) for k, v in site.items())
    site['LC_CHARSETS'] = dict((str(k), str(v)) for k, v in site['LC_CHARSETS'].items())
    site['CGIEXT'] = str(site['CGIEXT'])
    site['VERP_FORMAT'] = str(site['VERP_FORMAT'])
    return site


def replay(lists_dir, site, paths):
    for path in paths:
        f = open(path, 'rb')
        msg = cPickle.load(f)
        meta = cPickle.load(f)
        lname = meta['listname']
        config = cPickle.load(open(os.path.join(lists_dir, lname, 'config.pck')))
        sent = process(MailList(lname, config, site), site, msg, dict(meta))
        print json.dumps({'file': os.path.basename(path), 'expected_transactions': sent})


def main():
    lists_dir, site_file, out_dir = sys.argv[1:4]
    site = load_site(site_file)
    if out_dir == '--replay':
        return replay(lists_dir, site, sys.argv[4:])
    # One more list: custom's settings with $-string templates (use_dollar_strings).
    config = cPickle.load(open(os.path.join(lists_dir, 'custom', 'config.pck')))
    config.update({'real_name': 'Dollar', 'use_dollar_strings': 1, 'personalize': 1,
                   'msg_header': '$real_name: ${description} 100% $$5\n',
                   'msg_footer': '-- \n$user_name <$user_address> $$$$x ${no_such} $1\n'})
    os.mkdir(os.path.join(lists_dir, 'dollar'))
    cPickle.dump(config, open(os.path.join(lists_dir, 'dollar', 'config.pck'), 'wb'), 1)
    names = sorted(os.listdir(lists_dir))
    n = 0
    for lname in names:
        config = cPickle.load(open(os.path.join(lists_dir, lname, 'config.pck')))
        mlist = MailList(lname, config, site)
        # As CalcRecips leaves them: addresses as subscribed, and one who is not a member.
        recips = sorted(mlist.getMemberCPAddress(k) for k in mlist.members) + ['stranger@example.com']
        if lname == 'dollar':
            lname_shapes = SHAPES[:3]
        else:
            lname_shapes = SHAPES
        for shape, body in lname_shapes:
            n += 1
            random.seed('%s:%s' % (lname, shape))
            text = HEAD % {'list': lname, 'real': mlist.real_name, 'subject': shape, 'n': n} + body
            msg = email.message_from_string(text, Message)
            meta = {'listname': lname, 'recips': list(recips), 'tolist': 1, 'version': 3, '_parsemsg': False,
                    'received_time': 1577836800.0 + n}
            if lname == 'verp':
                meta['verp'] = 1
            if shape == 'sender-present':
                meta['add-dup-header'] = {recips[0]: True, recips[-1]: True}
            if shape == 'no-final-newline' and lname == 'test':
                meta['decorated'] = True
            entry = cPickle.dumps(msg, 1) + cPickle.dumps(meta, 1)
            fname = '%r+%040x.pck' % (meta['received_time'], n)
            open(os.path.join(out_dir, fname), 'wb').write(entry)
            sent = process(mlist, site, msg, dict(meta))
            print json.dumps({'file': fname, 'list': lname, 'shape': shape, 'expected_transactions': sent})

main()
