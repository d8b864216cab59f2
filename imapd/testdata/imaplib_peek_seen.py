"""A Thunderbird-style reader, driven with Python's imaplib.

Usage: imaplib_peek_seen.py HOST PORT CAFILE USER PASSWORD

Connection 1: select INBOX, download message 1 with BODY.PEEK[] (as
Thunderbird, Apple Mail, Outlook and neomutt do), log out.
Connection 2 (a reconnect): STORE 1:2 +FLAGS (\\Seen), as a client does after
showing message 1 and a "mark all as read" over message 2, which was never
downloaded. Prints one JSON object with what it saw.
"""
import imaplib
import json
import ssl
import sys

host, port, cafile, user, pw = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
out = {}

with imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx) as m:
    m.login(user, pw)
    typ, data = m.select("INBOX")
    out["exists"] = int(data[0])
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    out["peek_size"] = len(data[0][1])
    typ, data = m.fetch("1", "(FLAGS)")
    out["flags_after_peek"] = data[0].decode()
    m.logout()

with imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx) as m:
    m.login(user, pw)
    m.select("INBOX")
    typ, data = m.store("1:2", "+FLAGS", "(\\Seen)")
    out["store"] = typ
    out["flags_after_store"] = [d.decode() for d in data]
    m.logout()

print(json.dumps(out))
