"""Requests a relying party makes and a citizen consents to on the phone: formfill's releases, signing's signatures.

Both services run the same life cycle, written once here (flow.py):

1. ask — the relying party asks; with a logged-in citizen's token the prompt
   goes out at once (`approval.requested`, its free text sealed to auth);
   with a client-credentials token the answer carries an app link instead;
2. claim — the citizen's app opens that link: the request becomes theirs and
   the prompt goes out;
3. decide — `approval.decided` arrives; the service verifies the device's
   signature over the digest of exactly the prompt it built (auth's word
   alone does nothing) and then does its own work (release, sign) or closes;
4. status — the relying party reads its own request (others' are not found);
5. result — the relying party takes the result (formfill: once; signing:
   until it expires).

A request's statuses are each service's enum with its allowed moves
(lifecycle.py); `expired` is never stored, it is what a pending request is
once its time has run out.
"""

from .flow import Claimed, ConsentedRequests, Decided
from .lifecycle import RequestLifecycle, TransitionRefused
from .refusals import CitizenUnknown, Declined, LinkUnusable, NotAnswered, RequestExpired, RequestNotFound, UnknownClient

__all__ = [
    "CitizenUnknown",
    "Claimed",
    "ConsentedRequests",
    "Decided",
    "Declined",
    "RequestLifecycle",
    "LinkUnusable",
    "NotAnswered",
    "RequestExpired",
    "RequestNotFound",
    "TransitionRefused",
    "UnknownClient",
]
