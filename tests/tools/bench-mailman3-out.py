"""Drain a queue with Mailman 3's own OutgoingRunner, for the delivery benchmark.

    "$MQ_PY3" tests/tools/bench-mailman3-out.py --site DIR --queue-src OUTDIR \
        --smtp-port 2525 [--time-limit 60]

Sets up a throwaway Mailman 3 site in DIR (SQLite, list test@example.com, the MTA at
127.0.0.1:PORT), moves the entries of OUTDIR into its var/queue/out, then runs the real
OutgoingRunner exactly as `mailman start` would (its `_one_iteration` loop: list the
queue, dequeue, deliver with mailman.mta.deliver/BulkDelivery, finish) until the queue
is empty or the time limit passes. Prints one JSON line: entries, seconds.
"""
import argparse
import json
import os
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", required=True)
    ap.add_argument("--queue-src", required=True)
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--time-limit", type=float, default=0, help="stop after this many seconds (0: drain)")
    args = ap.parse_args()

    site = os.path.abspath(args.site)
    os.makedirs(site, exist_ok=True)
    cfg = os.path.join(site, "mailman.cfg")
    with open(cfg, "w") as f:
        f.write(f"""[mailman]
layout: bench
site_owner: postmaster@example.com
[paths.bench]
var_dir: {site}/var
[mta]
smtp_host: 127.0.0.1
smtp_port: {args.smtp_port}
incoming: mailman.testing.mta.FakeMTA
[logging.smtp]
level: warning
""")
    from mailman.core.initialize import initialize
    initialize(cfg)
    from mailman.config import config
    from mailman.interfaces.domain import IDomainManager
    from mailman.interfaces.listmanager import IListManager
    from mailman.app.lifecycle import create_list
    from zope.component import getUtility

    if getUtility(IListManager).get("test@example.com") is None:
        if getUtility(IDomainManager).get("example.com") is None:
            getUtility(IDomainManager).add("example.com")
        create_list("test@example.com")
        config.db.commit()

    from mailman.runners.outgoing import OutgoingRunner

    deadline = [None]

    class TimedOutgoingRunner(OutgoingRunner):
        # Runner checks this after every entry; Mailman's own returns self._stop.
        def _short_circuit(self):
            return deadline[0] is not None and time.monotonic() > deadline[0]

    runner = TimedOutgoingRunner("out")
    out_dir = runner.queue_directory
    os.makedirs(out_dir, exist_ok=True)
    names = [n for n in os.listdir(args.queue_src) if n.endswith(".pck")]
    for n in names:
        os.rename(os.path.join(args.queue_src, n), os.path.join(out_dir, n))

    start = time.monotonic()
    if args.time_limit:
        deadline[0] = start + args.time_limit
    while True:
        # One pass as Runner.run does it: the whole listing, one entry at a time.
        listed = runner._one_iteration()
        left = len([n for n in os.listdir(out_dir) if n.endswith(".pck")])
        if listed == 0 or left == 0 or runner._short_circuit():
            break
    elapsed = time.monotonic() - start
    left = len([n for n in os.listdir(out_dir) if n.endswith(".pck")])
    print(json.dumps({"entries": len(names) - left, "seconds": elapsed, "left": left}))


if __name__ == "__main__":
    main()
