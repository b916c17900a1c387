"""What signing refuses, declared once each (libs/errors.py); the service kit renders any of them as problem+json.

The refusals every consented request shares (unknown client or citizen,
unusable link, not found, not answered yet, expired, declined) are in
libs/consented_requests/refusals.py.
"""

from __future__ import annotations

from libs.errors import Forbidden, Gone, NotReady, Unprocessable

# -- who may sign: only an active `plus` identity gets a certificate bound to it -------------


class AssuranceTooLow(Forbidden):
    slug, title = "assurance-too-low", "Assurance too low"


class IdentityNotActive(Forbidden):
    slug, title = "identity-not-active", "Identity not active"


# -- a request's result ------------------------------------------------------------------------


class UnsignablePdf(Forbidden):
    """The upload passed the sandbox's checks, but a signature could not be added to it."""

    slug, title = "unsignable-pdf", "Unsignable pdf"


class CitizenWasUnknown(Forbidden):
    """The citizen approved before signing had learnt of their identity."""

    slug, title = "citizen-unknown", "Citizen unknown"


class DecisionMismatch(Forbidden):
    """The citizen's device-signed decision does not cover exactly the hash signing was about to sign (evidence.py):
    the stored request or document changed after the prompt was shown. Refused before the HSM is asked."""

    slug, title = "decision-mismatch", "Decision mismatch"


# Why a request was closed unsigned (its stored `error`) -> what fetching its result answers.
CLOSED_BECAUSE = {refusal.slug: refusal for refusal in (AssuranceTooLow, IdentityNotActive, UnsignablePdf, CitizenWasUnknown,
                                                        DecisionMismatch)}


class ResultExpired(Gone):
    slug, title = "gone", "Gone"


# -- untrusted documents, parsed in the sandbox (parsing.py) ---------------------------------
# Extension member `limit` (cpu, memory, wall-clock) when parsing hit one of the sandbox's limits.


class NotSignablePdf(Unprocessable):
    slug, title = "invalid-pdf", "Not a signable PDF"


class AppearanceNotOnPage(Unprocessable):
    """The visible signature's page is not in the PDF, or its box is not inside that page."""

    slug, title = "invalid-appearance", "Signature appearance not on the page"


class NotVerifiable(Unprocessable):
    slug, title = "unverifiable", "Not a verifiable signature"


class ParsersBusy(NotReady):
    slug, title, retry_after = "busy", "Busy", 2
