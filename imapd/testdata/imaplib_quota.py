"""Ask the KEP IMAP server for quota with Python's imaplib (RFC 9208).

Usage: imaplib_quota.py HOST PORT CAFILE USER PASSWORD MAILBOX

Prints one JSON object: the capabilities after login and the untagged
QUOTAROOT and QUOTA lines of GETQUOTAROOT MAILBOX.
"""
import imaplib
import json
import ssl
import sys

host, port, cafile, user, pw, mbox = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
out = {}
with imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx) as m:
    m.login(user, pw)
    typ, data = m.capability()
    out["capabilities"] = sorted(data[0].decode().split())
    typ, data = m.getquotaroot(mbox)
    out["status"] = typ
    out["quotaroot"] = [d.decode() for d in data[0]]
    out["quota"] = [d.decode() for d in data[1]]
print(json.dumps(out))
