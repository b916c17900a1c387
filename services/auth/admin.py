"""Operator commands for auth, run next to the service with the same environment.

  python -m services.auth.admin create-client --kind kiosk --name "Kiosk 1" --scope enrol --reason "new kiosk, Central"
  python -m services.auth.admin create-client --kind agency --name "Housing" --scope notify --agency-events --reason "onboarding"
  python -m services.auth.admin set-state ACCOUNT_ID suspended --reason "reported lost"
  python -m services.auth.admin close-account ACCOUNT_ID --reason "deceased, certificate 123" --operator "wong.k"
  python -m services.auth.admin registration-token CLIENT_ID --reason "token lost, ticket 42"
  python -m services.auth.admin subject ACCOUNT_ID CLIENT_ID --reason "support case 17"
  python -m services.auth.admin rotate-keys --reason "quarterly rotation"

Every command is an operator action: it needs `--reason` and the operator's
name (`--operator`, or HARBOUR_OPERATOR in the operator's environment), and
it is audited (`operator:<name>`, the reason) in the transaction of its change.
They write through the same domain code and outbox as the API (the running
service's relay publishes the events) and print JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from libs.backbone.operator import add_operator_arguments, operator_actor, operator_context
from libs.errors import Refused
from libs.events.outbox import OUTBOX_INDEXES
from libs.store import apply_indexes, create_client
from libs.tokens.keystore import KeyStore

from .clients.metadata import ClientMetadata
from .clients.registry import find_client, issue_registration_token, register_client
from .collections import INDEXES
from .context import Auth
from .errors import NoSuchClient
from .identity.accounts import change_state
from .identity.closure import close_by_operator
from .oidc.pairwise import subject_for
from .settings import AuthSettings


async def run(args: argparse.Namespace) -> dict:
    settings = AuthSettings.from_env()
    client = create_client(settings.service.mongo_uri)
    db = client[settings.service.database]
    # The commands' context: auth's database and outbox, events under auth's own source.
    operator = operator_context(Auth.source, settings, client, db)
    actor, reason = operator_actor(args), args.reason
    try:
        await apply_indexes(db, (*INDEXES, *OUTBOX_INDEXES))
        if args.command == "rotate-keys":
            keys = KeyStore(client, db, settings.keyring, max_token_lifetime_s=settings.max_jwt_lifetime_s)
            await keys.ensure()
            return await keys.rotate(audit=lambda s, rotated: operator.audit(
                s, subject="token-signing-keys", action="keys.rotate", actor=actor, reason=reason, **rotated))
        if args.command == "subject":
            registered = await find_client(db, args.client_id)
            if registered is None:
                raise NoSuchClient("no such client")

            async def resolve(s) -> str:
                # Linking an account to a relying party's pseudonym: de-pseudonymising, so audited with who and why.
                sub = await subject_for(operator, s, registered.sector, args.account_id)
                await operator.audit(s, subject=args.account_id, action="subject.resolve", actor=actor, reason=reason,
                                     client_id=args.client_id)
                return sub

            return {"account_id": args.account_id, "client_id": args.client_id, "sub": await operator.transaction(resolve)}
        if args.command == "create-client":
            metadata = ClientMetadata(
                client_name=args.name,
                kind=args.kind,
                scope=" ".join(args.scope),
                redirect_uris=args.redirect_uri,
                post_logout_redirect_uris=args.post_logout_redirect_uri,
                formfill_fields=args.formfill_field,
                token_endpoint_auth_method=args.auth_method,
                jwks=json.loads(Path(args.jwks_file).read_text()) if args.jwks_file else None,
                agency_events=args.agency_events,
            )
            registered = await operator.transaction(lambda s: register_client(operator, s, metadata, registered_by=actor, reason=reason))
            return {**registered.client.public_view(), "client_secret": registered.client_secret,
                    "registration_access_token": registered.registration_access_token}
        if args.command == "registration-token":
            token = await operator.transaction(lambda s: issue_registration_token(operator, s, args.client_id, issued_by=actor,
                                                                                  reason=reason))
            return {"client_id": args.client_id, "registration_access_token": token}
        if args.command == "close-account":
            return await close_by_operator(operator, args.account_id, operator=args.operator.strip(), reason=reason)
        await operator.transaction(lambda s: change_state(operator, s, args.account_id, args.state, reason=reason,
                                                          token_lifetime_s=settings.max_jwt_lifetime_s, actor=actor))
        return {"account_id": args.account_id, "state": args.state}
    finally:
        await client.close()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.auth.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-client")
    create.add_argument("--kind", required=True, choices=["kiosk", "relying_party", "agency"])
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", default=[])
    create.add_argument("--redirect-uri", action="append", default=[])
    create.add_argument("--post-logout-redirect-uri", action="append", default=[])
    create.add_argument("--formfill-field", action="append", default=[])
    create.add_argument("--auth-method", default="client_secret_basic",
                        choices=["client_secret_basic", "client_secret_post", "private_key_jwt"])
    create.add_argument("--jwks-file", help="the client's public JWKS (for private_key_jwt)")
    create.add_argument("--agency-events", action="store_true",
                        help="publish the client's outcomes on its own topic agency.<client_id>.events (docs/events.md)")
    subject = commands.add_parser("subject", help="a citizen's pairwise sub at a client (audited: subject.resolve)")
    subject.add_argument("account_id")
    subject.add_argument("client_id")
    token = commands.add_parser("registration-token", help="a new RFC 7592 registration access token for a client (the old one stops working)")
    token.add_argument("client_id")
    rotate = commands.add_parser("rotate-keys", help="promote the published next signing key, retire the current one")
    close = commands.add_parser("close-account", help="close an account for good: devices and tokens revoked, personal data "
                                                       "shredded in every service (docs/privacy.md)")
    close.add_argument("account_id")
    state = commands.add_parser("set-state")
    state.add_argument("account_id")
    state.add_argument("state", choices=["active", "suspended", "revoked"])
    for command in (create, subject, token, rotate, close, state):
        add_operator_arguments(command)  # --operator and --reason, both required: every command is audited
    return parser


def main() -> int:
    args = parser().parse_args()
    try:
        print(json.dumps(asyncio.run(run(args)), indent=2))
    except (Refused, ValidationError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
