"""The approval pattern shared by all four functions: prompt model, canonical digest, device-signed decisions."""

from .decision import (
    DECISION_TYP,
    DecisionClaims,
    DecisionRejected,
    decision_device_id,
    sign_decision,
    verify_decision,
)
from .prompt import ApprovalRequest, Requester, canonical_json

__all__ = [
    "DECISION_TYP",
    "ApprovalRequest",
    "DecisionClaims",
    "DecisionRejected",
    "Requester",
    "canonical_json",
    "decision_device_id",
    "sign_decision",
    "verify_decision",
]
