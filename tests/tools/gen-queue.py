"""Fill a queue directory with realistic Mailman 3 `out` entries, written by Mailman 3's
own Switchboard.enqueue (the `mailman` package from PyPI), reproducibly.

    eval "$(tests/tools/python-env.sh)"
    "$MQ_PY3" tests/tools/gen-queue.py --dir /tmp/q/out --count 100000 [--seed 1]
        [--recipients 5] [--unique-recipients]

Each entry is a list post as Mailman's LMTP runner and pipeline leave it: the message
parsed from bytes into mailman.email.message.Message (varied sizes, some MIME with an
attachment, some 8-bit), metadata with listid, recipients (a set, chunked by TLD at
delivery), sender, original_size. The clock Switchboard reads is a seeded counter, so
the same arguments give the same file names and bytes. `--unique-recipients` gives every
entry its own recipient addresses (`u<N>-<k>@...`), so a test can tell on the wire
which entry was delivered.

fsync is skipped while generating (the directory is a test fixture, not live mail):
with it, 100,000 entries take minutes instead of seconds.
"""
import argparse
import email
import os
import random
import time

from mailman.core.switchboard import Switchboard
from mailman.email.message import Message

DOMAINS = ["example.com", "example.net", "example.org", "example.edu", "example.de", "example.fr"]
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua quis nostrud exercitation").split()


def body_text(rng, lines):
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(lines))


def raw_message(rng, n):
    sender = "poster%d@%s" % (rng.randint(1, 500), rng.choice(DOMAINS))
    kind = rng.random()
    headers = [
        "From: Poster %d <%s>" % (n % 97, sender),
        "To: test@example.com",
        "Subject: [Test] message %d about %s" % (n, " ".join(rng.choice(WORDS) for _ in range(4))),
        "Date: Mon, 01 Jan 2024 %02d:%02d:%02d +0000" % (n // 3600 % 24, n // 60 % 60, n % 60),
        "Message-ID: <gen-%d-%d@example.com>" % (n, rng.randint(0, 10**9)),
        "List-Id: <test.example.com>",
        "Precedence: list",
    ]
    if kind < 0.6:
        headers.append("Content-Type: text/plain; charset=us-ascii")
        body = body_text(rng, rng.randint(5, 60))
    elif kind < 0.8:
        headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                    "Content-Transfer-Encoding: 8bit"]
        body = body_text(rng, rng.randint(5, 40)) + "\nGr\u00fc\u00dfe, \u00e9t\u00e9 \u2014 caf\u00e9"
    else:
        b = "=====b%d" % n
        attachment = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/") for _ in range(76 * rng.randint(10, 120)))
        headers += ["MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="%s"' % b]
        body = "\n".join([
            "This is a multi-part message in MIME format.", "--" + b,
            "Content-Type: text/plain; charset=us-ascii", "", body_text(rng, rng.randint(3, 20)), "--" + b,
            "Content-Type: application/octet-stream; name=\"data.bin\"",
            "Content-Transfer-Encoding: base64", "Content-Disposition: attachment; filename=\"data.bin\"", "",
            "\n".join(attachment[i:i + 76] for i in range(0, len(attachment), 76)), "--" + b + "--", ""])
    return ("\n".join(headers) + "\n\n" + body + "\n").encode("utf-8"), sender


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="queue directory to fill (created if missing)")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--recipients", type=int, default=5, help="recipients per entry")
    ap.add_argument("--unique-recipients", action="store_true")
    ap.add_argument("--start-time", type=float, default=1704067200.0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    clock = [args.start_time]

    def fake_time():
        clock[0] += 0.001 + rng.random() / 1000
        return clock[0]

    time.time = fake_time          # Switchboard.enqueue names files after time.time()
    os.fsync = lambda fd: None     # see the module docstring
    switchboard = Switchboard("out", args.dir)
    for n in range(args.count):
        raw, sender = raw_message(rng, n)
        msg = email.message_from_bytes(raw, Message)
        msg.original_size = len(raw)
        if args.unique_recipients:
            recipients = {"u%d-%d@%s" % (n, k, DOMAINS[k % len(DOMAINS)]) for k in range(args.recipients)}
        else:
            recipients = {"member%d@%s" % (rng.randint(1, 100000), rng.choice(DOMAINS)) for _ in range(args.recipients)}
        switchboard.enqueue(msg, {
            "listid": "test.example.com",
            "recipients": recipients,
            "original_sender": sender,
            "original_size": len(raw),
            "to_list": True,
        })
    print(args.count)


if __name__ == "__main__":
    main()
