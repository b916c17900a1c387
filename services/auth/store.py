"""auth's collections (database `harbour_auth`) and their indexes.

No collection holds personal data in the clear: accounts keep the card
number only as a keyed hash, and the enrolled profile leaves auth sealed.
"""

from libs.store import index

ACCOUNTS = "accounts"
DEVICES = "devices"
DEVICE_NONCES = "device_nonces"
USED_ASSERTIONS = "used_assertions"
APPROVALS = "approvals"
CLIENTS = "clients"
SIGNING_KEYS = "signing_keys"

INDEXES = (
    index(ACCOUNTS, "card_hash", unique=True),
    index(DEVICES, "account_id", "created_at"),
    index(DEVICE_NONCES, "expires_at", expire_after_s=0),
    # Device assertions are single-use until they expire.
    index(USED_ASSERTIONS, "expires_at", expire_after_s=0),
    index(APPROVALS, "account_id", "status", "expires_at"),
    # Decided or expired prompts are kept 30 days for the citizen's history, then go.
    index(APPROVALS, "expires_at", name="approvals_ttl", expire_after_s=30 * 24 * 3600),
)
