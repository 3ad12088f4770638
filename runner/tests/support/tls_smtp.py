"""A real SMTP server with TLS and AUTH for the delivery tests: aiosmtpd on loopback,
either STARTTLS (required before AUTH and mail) or TLS from the first byte, accepting
one user/password. Every accepted transaction is appended to --out as a JSON line
(mail_from, rcpts, data in base64). Prints "ready <port>" once listening.

    "$MQ_PY3" tls_smtp.py --mode starttls|tls --cert C --key K --user U --password P --out F [--host IP]
"""
import argparse
import base64
import json
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Capture:
    def __init__(self, out, implicit):
        self.out = out
        self.implicit = implicit

    async def handle_DATA(self, server, session, envelope):
        with open(self.out, "a") as f:
            f.write(json.dumps({
                "mail_from": envelope.mail_from,
                "rcpts": envelope.rcpt_tos,
                "data": base64.b64encode(envelope.original_content or envelope.content).decode(),
                # aiosmtpd sets session.ssl only after STARTTLS; an implicit-TLS
                # listener speaks nothing but TLS.
                "tls": session.ssl is not None or self.implicit,
                "authenticated": bool(session.authenticated),
            }) + "\n")
        return "250 OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["starttls", "tls"], required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--out", required=True)
    # The address runner pods reach the host by, in the operator's end-to-end tests.
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == args.user.encode() \
            and auth_data.password == args.password.encode()
        return AuthResult(success=ok)

    with socket.socket() as probe:
        probe.bind((args.host, 0))
        port = probe.getsockname()[1]
    common = dict(hostname=args.host, port=port, authenticator=authenticator)
    if args.mode == "starttls":
        controller = Controller(Capture(args.out, False), tls_context=ctx, require_starttls=True,
                                auth_require_tls=True, **common)
    else:
        # The listener is TLS-only, but aiosmtpd cannot tell: let it offer AUTH.
        controller = Controller(Capture(args.out, True), ssl_context=ctx, auth_require_tls=False, **common)
    controller.start()
    print("ready", port, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
