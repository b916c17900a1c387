"""The formfill service's own collections and their indexes (database `harbour_formfill`)."""

from libs.store import IndexSpec

# The outbox and processed-event indexes are declared by libs/events itself.
INDEXES: tuple[IndexSpec, ...] = ()
