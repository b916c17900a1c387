"""Projections of auth's events that every service a relying party calls keeps the same way.

- who a pairwise `sub` is (`identity.subject_assigned`): subjects.py
- the clients: name, kind, sector, whether they get their agency topic, and what else a service needs
  (`client.*`): clients.py

formfill, notify and signing learn both from events, never by asking auth
(docs/architecture.md: no service reads another's collections).
"""

from .clients import CLIENT_CHANGED, CLIENTS, agency_subscribers, record_client, wants_agency_events
from .subjects import SUBJECT_ASSIGNED, SUBJECT_INDEXES, SUBJECTS, account_of_subject, pairwise_subject, record_subject

__all__ = [
    "CLIENTS",
    "CLIENT_CHANGED",
    "SUBJECTS",
    "SUBJECT_ASSIGNED",
    "SUBJECT_INDEXES",
    "account_of_subject",
    "agency_subscribers",
    "pairwise_subject",
    "record_client",
    "record_subject",
    "wants_agency_events",
]
