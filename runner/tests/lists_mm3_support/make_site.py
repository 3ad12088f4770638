"""A fresh Mailman 3 site made with the real `mailman` package, for new list vectors.

    python make_site.py build WORKDIR REST_PORT SMTP_PORT
    python make_site.py serve WORKDIR

`build` creates the site (a domain with a base URL, three lists: custom header and
footer set as file:// template URIs; full personalization in German; built-in
French templates), users and members (non-ASCII and quoted display names, an
address without a user, mixed-case original addresses, other languages), enqueues
messages of several MIME shapes into `out` with Mailman's Switchboard (one asking
for VERP, one with a duplicate-copy flag), copies the queue files to
WORKDIR/snapshot, then delivers them with Mailman's own OutgoingRunner to the SMTP
server on SMTP_PORT.  `serve` runs that site's REST API in the foreground.
"""

import email
import os
import shutil
import sys
import textwrap


def write_config(work, rest_port, smtp_port):
    cfg = os.path.join(work, 'mailman.cfg')
    with open(cfg, 'w') as fp:
        fp.write(textwrap.dedent(f"""\
            [mailman]
            layout: testsite
            site_owner: owner@example.org

            [paths.testsite]
            var_dir: {os.path.join(work, 'var')}

            [mta]
            smtp_host: 127.0.0.1
            smtp_port: {smtp_port}
            incoming: mailman.testing.mta.FakeMTA

            [webservice]
            hostname: 127.0.0.1
            port: {rest_port}
            workers: 1
            admin_user: restadmin
            admin_pass: restpass
            """))
    return cfg


MESSAGES = {
    'plain': b"""\
From: Anne Person <anne@example.com>
To: {list}
Subject: [{tag}] plain
Message-ID: <plain.{tag}@example.com>
Date: Thu, 01 Feb 2024 00:00:00 +0000

A plain message without MIME headers.
From the start of a line, too.
""",
    'utf8': """\
From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>
To: {list}
Subject: [{tag}] utf-8
Message-ID: <utf8.{tag}@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Grüße aus Köln, ça va?
""".encode('utf-8'),
    'latin1': b"""\
From: Anne Person <anne@example.com>
To: {list}
Subject: [{tag}] latin-1
Message-ID: <latin1.{tag}@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1; format=flowed
Content-Transfer-Encoding: quoted-printable

Caf=E9 cr=E8me, tr=E8s bien. This line is long enough to be flowed by the =
sender's mail program.
""",
    'alternative': b"""\
From: Anne Person <anne@example.com>
To: {list}
Subject: [{tag}] alternative
Message-ID: <alt.{tag}@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="ALT"

--ALT
Content-Type: text/plain; charset=us-ascii

Plain part.
--ALT
Content-Type: text/html; charset=us-ascii

<p>HTML part.</p>
--ALT--
""",
    'mixed': b"""\
From: Anne Person <anne@example.com>
To: {list}
Subject: [{tag}] mixed
Message-ID: <mixed.{tag}@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="MIX"

Preamble text.
--MIX
Content-Type: text/plain; charset=us-ascii

Body part.
--MIX
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="data.bin"

AAECAwQFBgcICQ==
--MIX--
""",
    'html': b"""\
From: Anne Person <anne@example.com>
To: {list}
Subject: [{tag}] html
Message-ID: <html.{tag}@example.com>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 7bit

<p>Only HTML.</p>
""",
}


def build(work, rest_port, smtp_port):
    cfg = write_config(work, rest_port, smtp_port)
    from mailman.core.initialize import initialize
    initialize(cfg)
    from mailman.app.lifecycle import create_list
    from mailman.config import config
    from mailman.email.message import Message
    from mailman.interfaces.domain import IDomainManager
    from mailman.interfaces.languages import ILanguageManager
    from mailman.interfaces.mailinglist import Personalization
    from mailman.interfaces.template import ITemplateManager
    from mailman.interfaces.usermanager import IUserManager
    from mailman.runners.outgoing import OutgoingRunner
    from mailman.testing.helpers import make_testable_runner
    from zope.component import getUtility

    languages = getUtility(ILanguageManager)
    users = getUtility(IUserManager)
    templates = getUtility(ITemplateManager)
    getUtility(IDomainManager).add('example.org', 'Test lists', base_url='https://lists.example.org')
    tdir = os.path.join(work, 'templates')
    os.makedirs(tdir)

    def template(name, text):
        path = os.path.join(tdir, name)
        with open(path, 'w', encoding='utf-8') as fp:
            fp.write(text)
        return 'file://' + path

    news = create_list('news@example.org')
    news.display_name = 'News'
    news.description = 'Nouvelles & news'
    news.info = 'All the news.'
    templates.set('list:member:regular:header', news.list_id, template(
        'news-header.txt', '[$display_name] $description ($list_id)\n'))
    templates.set('list:member:regular:footer', news.list_id, template(
        'news-footer.txt',
        '-- \n$display_name <$listname>: $mailinglist_url\n'
        'Member: $member / $user_name_or_email ($user_language)\n'
        'Owner $owner_email, site $site_email, $$1, $unknown\n'))

    people = create_list('people@example.org')
    people.display_name = 'Leute'
    people.preferred_language = languages['de']
    people.personalize = Personalization.full
    templates.set('list:member:regular:header', people.list_id, template(
        'people-header.txt', 'Hallo $user_name_or_email,'))
    templates.set('list:member:regular:footer', people.list_id, template(
        'people-footer.txt',
        '-- \n$display_name -- $user_delivered_to ($user_language)\nAbmelden: ${short_listname}-leave@${domain}\n'))

    plain = create_list('plain@example.org')
    plain.display_name = 'Plain'
    plain.preferred_language = languages['fr']

    def user(email, name, lang=None):
        u = users.create_user(email, name)
        if lang:
            u.preferences.preferred_language = languages[lang]
        return list(u.addresses)[0]

    alice = user('alice@example.net', 'Alice Liddell')
    bob = user('Bob.Smith@Example.COM', 'Smith, Bob')
    dave = user('dave@example.edu', 'Dave \u00d8deg\u00e5rd', 'de')
    carol = users.create_address('carol@example.com')
    erin = users.create_address('erin@example.de', 'Erin')
    everyone = [alice, bob, dave, carol, erin]
    for mlist in (news, people, plain):
        for a in everyone:
            mlist.subscribe(a)
    config.db.commit()

    out = config.switchboards['out']
    emails = [a.email for a in everyone]

    def enqueue(mlist, kind, **extra):
        tag = mlist.list_name + '-' + kind + ('-' + '-'.join(sorted(extra)) if extra else '')
        raw = MESSAGES[kind].replace(b'{list}', mlist.posting_address.encode()).replace(b'{tag}', tag.encode())
        msg = email.message_from_bytes(raw, Message)
        out.enqueue(msg, listid=mlist.list_id, recipients=list(emails), to_list=True,
                    original_sender='anne@example.com', **extra)

    for kind in ('plain', 'utf8', 'alternative', 'mixed'):
        enqueue(news, kind)
    enqueue(news, 'plain', verp=True)
    for kind in ('latin1', 'mixed', 'utf8'):
        enqueue(people, kind)
    enqueue(people, 'plain', **{'add-dup-header': {'dave@example.edu'}})
    for kind in ('plain', 'html', 'utf8'):
        enqueue(plain, kind)

    snapshot = os.path.join(work, 'snapshot')
    shutil.copytree(out.queue_directory, snapshot)
    runner = make_testable_runner(OutgoingRunner, 'out')
    runner.run()
    left = os.listdir(out.queue_directory)
    if left:
        raise SystemExit(f'Mailman left entries in out: {left}')
    print(len(os.listdir(snapshot)))


def serve(work):
    sys.argv = ['runner', '-C', os.path.join(work, 'mailman.cfg'), '-r', 'rest']
    from mailman.bin.runner import main
    main()


if __name__ == '__main__':
    if sys.argv[1] == 'build':
        build(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        serve(sys.argv[2])
