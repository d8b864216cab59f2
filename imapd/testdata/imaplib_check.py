"""Drive the KEP IMAP server with Python's imaplib, as a mail client would.

Usage: imaplib_check.py HOST PORT CAFILE RECIPIENT PASSWORD SENDER PASSWORD

As the recipient (LOGIN): list folders, select INBOX, fetch message 1 with RFC822
(a read: the sender gets evidence 60). As the sender (AUTHENTICATE PLAIN): read
every item of the Delil folder. Prints one JSON object with what it saw.
"""
import imaplib
import json
import re
import ssl
import sys

host, port, cafile, rcpt, rcpt_pw, sender, sender_pw = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
out = {}

with imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx) as m:
    m.login(rcpt, rcpt_pw)
    typ, folders = m.list()
    out["folders"] = sorted(re.search(rb'"/" "?([^"]*)"?$', f).group(1).decode() for f in folders)
    typ, data = m.select("INBOX")
    out["inbox_exists"] = int(data[0])
    typ, data = m.fetch("1", "(RFC822)")
    msg = data[0][1]
    out["rfc822_size"] = len(msg)
    out["rfc822_subject"] = [l.decode() for l in msg.split(b"\r\n") if l.startswith(b"Subject:")][0]
    typ, data = m.fetch("1", "(FLAGS RFC822.SIZE)")
    out["flags_after"] = data[0].decode()
    m.logout()

with imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx) as m:
    # AUTHENTICATE PLAIN carries a UTF-8 password (LOGIN in imaplib is ASCII only).
    m.authenticate("PLAIN", lambda _: b"\0" + sender.encode() + b"\0" + sender_pw.encode())
    typ, data = m.select("Delil", readonly=True)
    n = int(data[0])
    out["delil_exists"] = n
    codes = []
    if n:
        typ, data = m.fetch("1:*", "(BODY.PEEK[])")
        for part in data:
            if isinstance(part, tuple):
                mm = re.search(rb"X-KEP-Delil-Kodu: (\d+)", part[1])
                codes.append(int(mm.group(1)) if mm else None)
    out["delil_codes"] = codes
    m.logout()

print(json.dumps(out))
