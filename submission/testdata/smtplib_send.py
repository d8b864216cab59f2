"""Send one message with Python's smtplib, as a script would.

Usage: smtplib_send.py HOST PORT CAFILE USER PASSWORD FROM TO[,TO...] MESSAGE_FILE

STARTTLS, login, then sendmail(FROM, TOs, message): smtplib refuses only if
every RCPT is refused, and otherwise goes on to DATA with the rest. Prints
one JSON object: the refused recipients, or the DATA error, and the reply.
"""
import json
import smtplib
import ssl
import sys

host, port, cafile, user, pw, sender, to, path = sys.argv[1:9]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
out = {}
with open(path, "rb") as f:
    msg = f.read()
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.starttls(context=ctx)
    s.login(user, pw)
    try:
        refused = s.sendmail(sender, to.split(","), msg)
        out["result"] = "accepted"
        out["refused"] = {k: [v[0], v[1].decode()] for k, v in refused.items()}
    except smtplib.SMTPRecipientsRefused as e:
        out["result"] = "all-refused"
        out["refused"] = {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}
    except smtplib.SMTPDataError as e:
        out["result"] = "data-refused"
        out["code"] = e.smtp_code
        out["reply"] = e.smtp_error.decode()
print(json.dumps(out))
