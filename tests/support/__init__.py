"""Helpers shared by the test suite, one module per concern.

- `infrastructure`: the broker and database (`make up`'s, or a private pair).
- `consumer_groups`: in-process services' consumer groups, a prefix of their own, read from now on.
- `polling`: await a condition instead of sleeping (`eventually`).
- `broker`, `database`: unique topics, reading a topic back, sweeping every
  message of the broker or every document of a database.
- `people`: identity data (HKID numbers, selfies) for citizens.
- `citizens`: citizens enrolled and activated with the citizen app library.
- `operator`: auth's operator command and the operator's bearer token.
- `prompts`: approval prompts published as formfill or signing would.
- `calls`: bearer headers and a small JSON POST.
- `oidc`: a relying party registered and logged in through the gateway.
- `formfill`, `signing`, `notify`: a relying party's side of each service.
- `auth_stand_in`: auth played by the test for in-process service tests (its JWKS,
  tokens, events handed to the service's handler, prompts unsealed, a phone's decisions).

Nothing here is a test; pytest collects only `test_*.py`.
"""
