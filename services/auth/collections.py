"""auth's collections (database `harbour_auth`) and their indexes.

No collection holds personal data in the clear: accounts keep the card
number only as a keyed hash, and the enrolled profile leaves auth sealed.
"""

from libs.result_callbacks import INDEXES as RESULT_CALLBACK_INDEXES
from libs.store import index

ACCOUNTS = "accounts"
DEVICES = "devices"
DEVICE_NONCES = "device_nonces"
USED_ASSERTIONS = "used_assertions"
DPOP_PROOFS = "dpop_proofs"                # DPoP proofs the token endpoint accepted: jti replay window (RFC 9449 §11.1)
APPROVALS = "approvals"
CLIENTS = "clients"
TOKEN_KEYS = "token_keys"
AUTHORIZATIONS = "authorizations"          # login transactions (authorization requests in progress)
PUSHED_REQUESTS = "pushed_requests"        # PAR, RFC 9126
AUTHORIZATION_CODES = "authorization_codes"
REFRESH_TOKENS = "refresh_tokens"
REVOKED_TOKENS = "revoked_tokens"          # revoked access-token ids until they expire
SESSIONS = "sessions"                      # browser sessions at the issuer (prompt=none, logout)
SUBJECTS = "subjects"                      # pairwise subject -> account
CLIENT_ASSERTIONS = "client_assertions"    # private_key_jwt jti replay cache
CIBA_REQUESTS = "ciba_requests"
DEVICE_PAIRINGS = "device_pairings"        # a new phone waiting to be added from an existing one (devices/pairing.py)
PAIRING_GUESSES = "pairing_guesses"        # wrong pairing codes entered per account, in the current window

PROFILE_CHANGES = "profile_changes"        # phone / e-mail changes waiting for their one-time code (profile/changes.py)
BACKCHANNEL_LOGOUTS = "backchannel_logouts"  # logout tokens waiting for relying parties, with retries (oidc/backchannel.py)

INDEXES = (
    *RESULT_CALLBACK_INDEXES,  # CIBA logins' outcomes waiting for the client's callback URL (libs/result_callbacks.py)
    index(ACCOUNTS, "card_hash", unique=True),
    index(TOKEN_KEYS, "status"),
    index(AUTHORIZATIONS, "expires_at", expire_after_s=3600),
    # Anyone can open a login page: its transaction goes when the login expires (or soon after it is decided).
    index(AUTHORIZATIONS, "purge_at", expire_after_s=0),
    index(PUSHED_REQUESTS, "expires_at", expire_after_s=0),
    index(AUTHORIZATION_CODES, "expires_at", expire_after_s=3600),
    index(REFRESH_TOKENS, "family_id"),
    # An account's closure revokes its refresh tokens (identity/closure.py).
    index(REFRESH_TOKENS, "grant.account_id", name="refresh_tokens_account_id"),
    index(REFRESH_TOKENS, "expires_at", name="refresh_tokens_ttl", expire_after_s=0),
    index(REVOKED_TOKENS, "expires_at", expire_after_s=0),
    index(SESSIONS, "expires_at", expire_after_s=0),
    index(SESSIONS, "cookie_hash"),  # the browser presents its cookie; only its hash is stored
    index(SESSIONS, "account_id"),  # a kiosk's replacement of a lost phone ends the account's sessions
    index(SUBJECTS, "account_id", "sector", unique=True),
    index(CLIENT_ASSERTIONS, "expires_at", expire_after_s=0),
    index(DPOP_PROOFS, "expires_at", expire_after_s=0),
    index(CIBA_REQUESTS, "expires_at", expire_after_s=3600),
    index(DEVICES, "account_id", "created_at"),
    # A passkey's credential id is registered once (WebAuthn §7.1; devices/passkeys.refuse_registered).
    index(DEVICES, "passkey.credential_id", name="devices_passkey_credential_id", unique=True,
          partial_filter={"passkey.credential_id": {"$exists": True}}),
    index(DEVICE_NONCES, "expires_at", expire_after_s=0),
    # A pairing code is found by its keyed hash (unique: a new pairing drawing a live code draws again); a pairing
    # goes a day after it expired (the audit records stay), a window of wrong codes when it ends.
    index(DEVICE_PAIRINGS, "code_hash", unique=True),
    index(DEVICE_PAIRINGS, "purge_at", expire_after_s=0),
    index(PAIRING_GUESSES, "window_ends", expire_after_s=0),
    # Device assertions are single-use until they expire.
    index(USED_ASSERTIONS, "expires_at", expire_after_s=0),
    index(APPROVALS, "account_id", "status", "expires_at"),
    # The housekeeping's pending prompts past their expiry, every 5 s (services/auth/housekeeping.py): without it the
    # local database served that query from the TTL index's range and decoded every prompt ever expired - 1 s a pass
    # with 10,400 stored, 20 % of a core; 1 ms with it.
    index(APPROVALS, "status", "expires_at"),
    # Decided or expired prompts are kept 30 days for the citizen's history, then go.
    index(APPROVALS, "expires_at", name="approvals_ttl", expire_after_s=30 * 24 * 3600),
    # Contact changes (and each account's hourly count): found by account (closure), gone an hour after they were made.
    index(PROFILE_CHANGES, "account_id", "created_at"),
    index(PROFILE_CHANGES, "purge_at", expire_after_s=0),
    # Back-channel logout deliveries: the sender's retry queue (libs/retry_queue.py); gone a day after they were made.
    index(BACKCHANNEL_LOGOUTS, "state", "next_attempt_at"),
    index(BACKCHANNEL_LOGOUTS, "created_at", name="backchannel_logouts_ttl", expire_after_s=24 * 3600),
)
