"""formfill's collections (database `harbour_formfill`) and their indexes.

The vault holds each personal field encrypted on its own; releases waiting
to be read are encrypted too and expire. Nothing here is plaintext PII.
"""

# Also here: CLIENTS and SUBJECTS, the projections of clients.events and identity.subject_assigned kept as every service keeps them.
from libs.projections import CLIENTS, SUBJECT_INDEXES, SUBJECTS  # noqa: F401 (re-exported)
from libs.result_callbacks import INDEXES as RESULT_CALLBACK_INDEXES
from libs.store import index

VAULT = "vault"                # account id -> encrypted fields, assurance, state
REQUESTS = "requests"          # form-fill requests and their status (the purpose encrypted)
RESULTS = "results"            # encrypted releases waiting to be read once
CONSENTS = "consents"          # one record per release: the citizen's receipts (the purpose encrypted)
RELEASE_KEYS = "release_keys"  # formfill's ES256 signing keys (JWKS at /v1/formfill/jwks)
CONSENT_CALLBACKS = "consent_callbacks"  # standing consents' updates waiting for the client's callback (profile_updates.py)

INDEXES = (
    *SUBJECT_INDEXES,
    *RESULT_CALLBACK_INDEXES,  # outcomes waiting for the client's callback URL (libs/result_callbacks.py)
    index(REQUESTS, "client_id", "created_at"),
    index(REQUESTS, "expires_at", name="requests_ttl", expire_after_s=30 * 24 * 3600),
    index(RESULTS, "expires_at", expire_after_s=0),
    index(CONSENTS, "account_id", "granted_at"),
    index(RELEASE_KEYS, "status"),
    index(CONSENT_CALLBACKS, "state", "next_attempt_at"),
    index(CONSENTS, "account_id", "standing", "status"),
)
