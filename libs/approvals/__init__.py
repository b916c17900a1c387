"""The approval pattern shared by all four functions: prompt model, canonical digest, device-signed decisions."""

from .confidential import PromptUnreadable, clear_part, decrypt_prompt, encrypt_prompt, opened_in_app, seal_prompt, unseal_prompt
from .decision import (
    DECISION_TYP,
    DecisionClaims,
    DecisionRejected,
    decision_device_id,
    decision_time,
    sign_decision,
    verify_decision,
    verify_recorded_decision,
)
from .prompt import ApprovalRequest, Requester, canonical_json

__all__ = [
    "DECISION_TYP",
    "ApprovalRequest",
    "PromptUnreadable",
    "DecisionClaims",
    "DecisionRejected",
    "Requester",
    "canonical_json",
    "clear_part",
    "decrypt_prompt",
    "encrypt_prompt",
    "opened_in_app",
    "seal_prompt",
    "unseal_prompt",
    "decision_device_id",
    "decision_time",
    "sign_decision",
    "verify_decision",
    "verify_recorded_decision",
]
