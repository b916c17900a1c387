"""Run the local SMTP server (aiosmtpd) in the foreground until SIGTERM: where notify's e-mails arrive locally.

`python -m libs.devstack.smtp_server --port P --maildir D`. Each message it
accepts is written whole to the Maildir `D` (`new/`, one file per message;
`mailbox.Maildir(D)` reads them), which is what a developer and the tests
read. Two reserved domains answer as real servers do when something is wrong,
so notify's receipts can be tried end to end: a recipient at
`refused.invalid` is refused for good (550), one at `deferred.invalid` is
asked to try again later (451). It binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import signal
import sys
from email import message_from_bytes
from email.policy import SMTP as SMTP_POLICY

from aiosmtpd.smtp import SMTP

REFUSED_DOMAIN = "refused.invalid"
DEFERRED_DOMAIN = "deferred.invalid"


class MaildirHandler:
    def __init__(self, maildir: str) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain == REFUSED_DOMAIN:
            return "550 5.1.1 mailbox unavailable"
        if domain == DEFERRED_DOMAIN:
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content, policy=SMTP_POLICY)
        message["X-Envelope-From"] = envelope.mail_from
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        key = self.maildir.add(message.as_bytes())  # written to tmp/, then moved to new/: a reader never sees half a message
        return f"250 2.0.0 queued as {key}"


async def serve(host: str, port: int, maildir: str) -> None:
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="harbour-id.local", ident="Harbour ID dev SMTP"), host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"smtp server listening on {host}:{port}, writing to {maildir}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    print("smtp server stopped", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.maildir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
