"""The routing table: which public paths belong to which service, and who may call them.

Declarative on purpose: one row per (method, path pattern), first match wins.
Policies:
- `public`: no credentials needed at the edge (the service may still demand
  them: the OAuth endpoints authenticate clients themselves, by standard);
- `client`: client credentials must be present (HTTP Basic); the owning
  service verifies them, since only it holds the registry;
- `bearer`: an access token from auth, verified here against auth's JWKS
  (signature, issuer, audience, expiry), carrying every listed scope;
- `device`: a citizen's device token, verified here the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ALL = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Policy:
    kind: str  # public | client | bearer | device
    scopes: tuple[str, ...] = ()


PUBLIC = Policy("public")
CLIENT = Policy("client")
DEVICE = Policy("device", ("device",))


def bearer(*scopes: str) -> Policy:
    return Policy("bearer", scopes)


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    pattern: str  # `{name}` matches one segment, `{tail*}` the rest of the path
    upstream: str
    policy: Policy
    max_body_bytes: int = 1024 * 1024
    # A stream open for minutes (server-sent events): outside the upstream's in-flight limit.
    long_lived: bool = False
    # A route that holds a request asking it to (`?wait=`, a relying party waiting for its citizen's answer): such a
    # request is long-lived too; the service bounds how many it holds (libs/held_requests.py).
    long_poll: bool = False
    # A public document the gateway may answer from its shared cache (cache.py), for as long as the upstream's
    # Cache-Control allows: documents that change only with a release or the configuration (discovery, app links).
    # Not the key sets: a rotation's new key must be visible at once (cache.py's docstring says why).
    cacheable: bool = False
    regex: re.Pattern = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        expression = re.escape(self.pattern).replace(r"\{tail\*\}", r"(?:/.*)?")
        expression = re.sub(r"\\\{[a-z_]+\\\}", r"[^/]+", expression)
        object.__setattr__(self, "regex", re.compile(f"^{expression}$"))

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and bool(self.regex.match(path))


def rule(methods: str, pattern: str, upstream: str, policy: Policy, **options) -> Rule:
    chosen = ALL if methods == "*" else frozenset(methods.split())
    return Rule(chosen | ({"HEAD"} if "GET" in chosen else set()) | {"OPTIONS"}, pattern, upstream, policy, **options)


MB = 1024 * 1024
ROUTES: tuple[Rule, ...] = (
    # auth: discovery and the OAuth/OIDC endpoints (clients authenticate there, per RFC 6749).
    rule("GET", "/.well-known/openid-configuration", "auth", PUBLIC, cacheable=True),
    # https app links under the issuer: what Android and iOS read to hand /app/… to the citizen app; in a browser,
    # /app/… is the citizen's web app (its files, its config.json, /app/authorize opening it), served by auth.
    rule("GET", "/.well-known/assetlinks.json", "auth", PUBLIC, cacheable=True),
    rule("GET", "/.well-known/apple-app-site-association", "auth", PUBLIC, cacheable=True),
    rule("GET", "/app{tail*}", "auth", PUBLIC),
    rule("*", "/oidc{tail*}", "auth", PUBLIC),
    rule("POST", "/v1/clients", "auth", PUBLIC),  # operator token or sandbox: auth decides
    # RFC 7592: the client's registration access token or the operator token (both Bearer, opaque): auth decides.
    rule("GET PUT DELETE", "/v1/clients/{client_id}", "auth", PUBLIC),
    rule("POST", "/v1/enrolments", "auth", PUBLIC, max_body_bytes=4 * MB),  # kiosk Basic, or sandbox self-registration
    # A kiosk proofs an enrolled citizen again: a lost phone replaced, basic upgraded to plus (kiosk Basic only).
    rule("POST", "/v1/enrolments/replacements", "auth", PUBLIC, max_body_bytes=4 * MB),
    rule("POST", "/v1/enrolments/upgrades", "auth", PUBLIC, max_body_bytes=4 * MB),
    rule("POST", "/v1/enrolments/recovery", "auth", PUBLIC, max_body_bytes=4 * MB),  # sandbox only: auth refuses it in production
    rule("POST", "/v1/devices/challenges", "auth", PUBLIC),
    rule("POST", "/v1/devices/token", "auth", PUBLIC),  # the body is a device-signed assertion
    rule("POST", "/v1/devices", "auth", PUBLIC),  # activation: code + proof of possession
    rule("GET", "/v1/devices", "auth", DEVICE),
    rule("DELETE", "/v1/devices/{device_id}", "auth", DEVICE),
    # Adding a device from an existing one (docs/api.md): the new phone starts (proof of possession, like activation)
    # and polls by its private pairing id; a bound phone enters the code with its device token.
    rule("POST", "/v1/devices/pairings", "auth", PUBLIC),
    rule("POST", "/v1/devices/pairings/claim", "auth", DEVICE),
    rule("GET", "/v1/devices/pairings/{pairing_id}", "auth", PUBLIC, long_poll=True),
    rule("PATCH", "/v1/devices/{device_id}", "auth", DEVICE),  # naming a device
    rule("POST", "/v1/account/closure", "auth", DEVICE),  # the closure prompt; the phone's approval closes (docs/api.md)
    # The citizen's personal-data export: each service signs its own part for the citizen's own device (docs/api.md).
    rule("GET", "/v1/account/export", "auth", DEVICE),
    rule("GET", "/v1/formfill/export", "formfill", DEVICE),
    rule("GET", "/v1/notify/export", "notify", DEVICE),
    rule("GET", "/v1/signing/export", "signing", DEVICE),
    rule("GET", "/v1/signing/jwks", "signing", PUBLIC),  # the keys of signing's export part and audit checkpoints
    rule("GET", "/v1/audit/checkpoints/latest", "signing", PUBLIC),  # the audit ledger's latest signed checkpoint (no PII)
    # The data tracker (docs/api.md): the citizen's own activity; a relying party's view of one of its users.
    rule("GET", "/v1/activity", "signing", DEVICE),
    rule("GET", "/v1/activity/subjects/{sub}", "signing", bearer("activity")),
    rule("POST", "/v1/profile/changes", "auth", DEVICE),  # phone / e-mail (one-time code to the new one) or address
    rule("POST", "/v1/profile/changes/{change_id}/confirmation", "auth", DEVICE),
    rule("GET", "/v1/approvals/stream", "auth", DEVICE, long_lived=True),
    rule("*", "/v1/approvals{tail*}", "auth", DEVICE),
    # formfill: relying parties call with a citizen's access token or their own client-credentials token
    # (anonymous journeys), and formfill checks it itself; its release keys (/v1/formfill/jwks) are public.
    rule("GET", "/v1/formfill/requests/{request_id}", "formfill", PUBLIC, long_poll=True),
    rule("GET", "/v1/formfill/requests/{request_id}/result", "formfill", PUBLIC, long_poll=True),
    rule("*", "/v1/formfill{tail*}", "formfill", PUBLIC),
    rule("*", "/v1/consents{tail*}", "formfill", DEVICE),
    # signing: the CA chain, CRL and RFC 3161 TSA are public by nature; so is verification. Requests
    # need a token with `sign` (a citizen's, or the client's own for anonymous journeys); signing
    # checks it again and resolves the citizen. A PDF upload is at most 5 MB (HARBOUR_SIGNING_MAX_PDF_BYTES).
    rule("GET", "/v1/signing/ca", "signing", PUBLIC),
    rule("GET", "/v1/signing/crl", "signing", PUBLIC),
    rule("GET", "/v1/signing/crl/root", "signing", PUBLIC),
    rule("POST", "/v1/signing/tsa", "signing", PUBLIC, max_body_bytes=64 * 1024),
    rule("POST", "/v1/signing/ocsp", "signing", PUBLIC, max_body_bytes=64 * 1024),  # RFC 6960: named in citizen certificates
    rule("GET", "/v1/signing/ocsp{tail*}", "signing", PUBLIC),  # the request base64 in the path (RFC 6960 A.1)
    rule("POST", "/v1/signing/verify", "signing", PUBLIC, max_body_bytes=12 * MB),
    rule("POST", "/v1/signing/requests/{request_id}/claim", "signing", DEVICE),
    rule("POST", "/v1/signing/requests", "signing", bearer("sign"), max_body_bytes=6 * MB),
    rule("GET", "/v1/signing/requests/{request_id}", "signing", bearer("sign"), long_poll=True),
    rule("GET", "/v1/signing/requests/{request_id}/result", "signing", bearer("sign"), long_poll=True),
    # notify: agencies with a client-credentials token carrying `notify`; citizens with their device.
    rule("GET", "/v1/notifications/jwks", "notify", PUBLIC),  # the keys agencies verify status callbacks with
    rule("*", "/v1/notifications{tail*}", "notify", bearer("notify")),
    rule("*", "/v1/templates{tail*}", "notify", bearer("notify")),
    rule("GET", "/v1/inbox/stream", "notify", DEVICE, long_lived=True),
    rule("*", "/v1/inbox{tail*}", "notify", DEVICE),
    rule("*", "/v1/preferences{tail*}", "notify", DEVICE),
)


def _tables(rules: tuple[Rule, ...]) -> dict[str, tuple[re.Pattern, tuple[Rule, ...]]]:
    """Per method, the rules accepting it, in order, and one expression of their patterns as alternatives.

    The regex engine tries the alternatives in order and answers the first that matches the whole path: the first
    matching rule, as reading the table row by row does, in one call instead of one per row (the rules of
    /v1/templates are some sixty rows down).
    """
    tables = {}
    for method in ALL:
        chosen = tuple(r for r in rules if method in r.methods)
        alternatives = "|".join(f"({r.regex.pattern[1:-1]})" for r in chosen)  # each pattern without its ^ and $
        tables[method] = (re.compile(f"^(?:{alternatives})$"), chosen)
    return tables


_TABLES = _tables(ROUTES)


def match(method: str, path: str) -> Rule | None:
    """The first rule of the table for this method and path."""
    table = _TABLES.get(method)
    if table is None:
        return None
    found = table[0].match(path)
    return table[1][found.lastindex - 1] if found else None


def allowed_methods(path: str) -> frozenset[str]:
    """Methods some rule accepts for this path (for 405 and CORS preflights)."""
    return frozenset().union(*(r.methods for r in ROUTES if r.regex.match(path)))
