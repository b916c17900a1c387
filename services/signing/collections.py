"""signing's collections (database `harbour_signing`) and their indexes.

Private keys are never here: only their HSM labels. Documents waiting to be
signed and signed results are encrypted at rest and expire.
"""

from libs.store import index

AUTHORITIES = "authorities"    # root CA, issuing CA, TSA: key label in the HSM + certificate
CERTIFICATES = "certificates"  # citizen certificates: serial, account, key label, status
CRL_STATE = "crl_state"        # the CRL number counter
CITIZENS = "citizens"          # projection of identity.events: account -> assurance, state
CLIENTS = "clients"            # projection of clients.events
SUBJECTS = "subjects"          # projection of identity.subject_assigned: (sub, sector) -> account
REQUESTS = "requests"          # signing requests and their status (document name and purpose encrypted)
DOCUMENTS = "documents"        # encrypted PDFs waiting for the citizen's approval
RESULTS = "results"            # encrypted signatures / signed PDFs waiting to be fetched

INDEXES = (
    index(CERTIFICATES, "account_id", "status"),
    index(CERTIFICATES, "status", "revoked_at"),
    index(SUBJECTS, "sector", "account_id"),
    index(REQUESTS, "client_id", "created_at"),
    index(REQUESTS, "expires_at", name="requests_ttl", expire_after_s=30 * 24 * 3600),
    index(DOCUMENTS, "expires_at", expire_after_s=0),
    index(RESULTS, "expires_at", expire_after_s=0),
)
