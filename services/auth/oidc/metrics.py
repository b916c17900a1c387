"""The login funnel, for dashboards: started → approved / denied → tokens issued."""

from prometheus_client import Counter

AUTHORIZATIONS_STARTED = Counter(
    "harbour_oidc_authorizations_started_total",
    "Login journeys started, by flow (browser: QR/app link; ciba).",
    ["flow"],
)
LOGIN_OUTCOMES = Counter(
    "harbour_logins_total",
    "Citizens' answers to login prompts, by flow and outcome (succeeded, denied).",
    ["flow", "outcome"],
)
TOKENS_ISSUED = Counter(
    "harbour_tokens_issued_total",
    "Token responses issued, by grant type.",
    ["grant_type"],
)
