"""A relay whose replies never end, over TLS, for the reply-bound tests: TLS from the first
byte (--tls implicit) or after STARTTLS (--tls starttls), then one reply that never ends:

  greeting        implicit TLS: "220 " and no end of line, ever
  ehlo-line       STARTTLS: the EHLO after the upgrade gets "250 " and no end of line
  mail-line       "250 " and no end of line in reply to MAIL
  mail-multiline  "250-..." lines for ever in reply to MAIL

Prints "ready <port>" once listening, then "closed <bytes>" each time a session ends,
with the bytes of the endless reply written into it (the runner closing its end is
what ends a flood).

    "$MQ_PY3" endless_tls_smtp.py --tls implicit|starttls --endless MODE --cert C --key K
"""
import argparse
import socket
import ssl
import sys
import threading

CHUNK = 65536


def flood(conn, chunk):
    written = 0
    try:
        while True:
            conn.sendall(chunk)
            written += len(chunk)
    except (OSError, ssl.SSLError):
        return written


def lines(conn):
    """The client's command lines (a TLS socket has no makefile that survives the wrap)."""
    pending = b""
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.upper()
        data = conn.recv(4096)
        if not data:
            return
        pending += data


def session(raw, ctx, args):
    conn = raw
    if args.tls == "implicit":
        conn = ctx.wrap_socket(raw, server_side=True)
        if args.endless == "greeting":
            conn.sendall(b"220 ")
            return flood(conn, b"A" * CHUNK)
    conn.sendall(b"220 endless.test ESMTP\r\n")
    commands = lines(conn)
    if args.tls == "starttls":
        for line in commands:
            if line.startswith(b"EHLO"):
                conn.sendall(b"250-endless.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
            elif line.startswith(b"STARTTLS"):
                conn.sendall(b"220 go ahead\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        else:
            return 0
        conn = ctx.wrap_socket(raw, server_side=True)
        commands = lines(conn)
    for line in commands:
        if line.startswith(b"EHLO"):
            if args.endless == "ehlo-line":
                conn.sendall(b"250 ")
                return flood(conn, b"A" * CHUNK)
            conn.sendall(b"250-endless.test\r\n250 8BITMIME\r\n")
        elif line.startswith(b"MAIL"):
            if args.endless == "mail-line":
                conn.sendall(b"250 ")
                return flood(conn, b"A" * CHUNK)
            return flood(conn, b"250-this reply goes on and on\r\n" * (CHUNK // 32))
        elif line.startswith(b"QUIT"):
            conn.sendall(b"221 bye\r\n")
            return 0
        else:
            conn.sendall(b"250 ok\r\n")
    return 0


def serve(raw, ctx, args, lock):
    written = 0
    try:
        written = session(raw, ctx, args)
    except (OSError, ssl.SSLError):
        pass
    finally:
        raw.close()
        with lock:
            print("closed", written, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", choices=["implicit", "starttls"], required=True)
    ap.add_argument("--endless", choices=["greeting", "ehlo-line", "mail-line", "mail-multiline"], required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print("ready", listener.getsockname()[1], flush=True)
    lock = threading.Lock()
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve, args=(raw, ctx, args, lock), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
