"""Read a Maildir synced by mbsync the way a mail client threads it.

Usage: maildir_threads.py MAILDIR

Parses every message of the Sent and Delil folders with Python's email
package and prints, as JSON, each Sent message's Message-ID and subject and
each Delil item's subject, In-Reply-To and References.
"""
import email
import email.policy
import json
import mailbox
import os
import sys

root = sys.argv[1]
out = {"sent": [], "delil": []}
for folder, key in (("Sent", "sent"), ("Delil", "delil")):
    md = mailbox.Maildir(os.path.join(root, folder), factory=None, create=False)
    for k in md.keys():
        with md.get_file(k) as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        out[key].append({
            "message_id": str(msg.get("Message-ID", "")),
            "subject": str(msg.get("Subject", "")),
            "in_reply_to": str(msg.get("In-Reply-To", "")),
            "references": str(msg.get("References", "")),
        })
print(json.dumps(out, ensure_ascii=False))
