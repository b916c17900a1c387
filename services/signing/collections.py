"""signing's collections (database `harbour_signing`) and their indexes.

Private keys are never here: only their HSM labels. Documents waiting to be
signed and signed results are encrypted at rest and expire.
"""

# Also here: CLIENTS and SUBJECTS, the projections of clients.events and identity.subject_assigned kept as every service keeps them.
from libs.projections import CLIENTS, SUBJECT_INDEXES, SUBJECTS  # noqa: F401 (re-exported)
from libs.result_callbacks import INDEXES as RESULT_CALLBACK_INDEXES
from libs.store import index

AUTHORITIES = "authorities"    # root CA, issuing CA, TSA: key label in the HSM + certificate
CERTIFICATES = "certificates"  # citizen certificates: serial, account, key label, status
CRL_STATE = "crl_state"        # the CRL number counter
CITIZENS = "citizens"          # projection of identity.events: account -> assurance, state
REQUESTS = "requests"          # signing requests and their status (document name and purpose encrypted)
DOCUMENTS = "documents"        # encrypted PDFs waiting for the citizen's approval
RESULTS = "results"            # encrypted signatures / signed PDFs waiting to be fetched
EVIDENCE = "evidence"          # sole control, by signature id (SHA-256 of the signature value): the prompt (free text encrypted), decision JWS, device key, times
EXPORT_KEYS = "export_keys"    # ES256 keys signing the citizen's export part (JWKS at /v1/signing/jwks)

INDEXES = (
    *SUBJECT_INDEXES,
    *RESULT_CALLBACK_INDEXES,  # outcomes waiting for the client's callback URL (libs/result_callbacks.py)
    index(CERTIFICATES, "account_id", "status"),
    index(CERTIFICATES, "status", "revoked_at"),
    index(REQUESTS, "client_id", "created_at"),
    index(REQUESTS, "expires_at", name="requests_ttl", expire_after_s=30 * 24 * 3600),
    index(DOCUMENTS, "expires_at", expire_after_s=0),
    index(RESULTS, "expires_at", expire_after_s=0),
)
