"""libs/lifecycle: one declaration of a status set and its moves, checked at import and at every move."""

from __future__ import annotations

from enum import StrEnum

import pytest

from libs.lifecycle import Lifecycle, TransitionRefused


class Light(StrEnum):
    RED = "red"
    GREEN = "green"
    AMBER = "amber"


LIGHT = Lifecycle[Light](transitions={Light.RED: frozenset({Light.GREEN}), Light.GREEN: frozenset({Light.AMBER}),
                                      Light.AMBER: frozenset({Light.RED})})


def test_allowed_moves_pass_and_others_are_refused_naming_both_ends():
    LIGHT.check(Light.RED, Light.GREEN)
    with pytest.raises(TransitionRefused, match="a light cannot go from red to amber"):
        LIGHT.check(Light.RED, Light.AMBER, what="a light")
    assert LIGHT.allows(Light.GREEN, Light.AMBER) and not LIGHT.allows(Light.GREEN, Light.RED)


def test_the_one_source_of_a_move_is_found_for_filtered_updates():
    assert LIGHT.leaving(Light.AMBER) == Light.GREEN
    with pytest.raises(ValueError):
        Lifecycle[str](transitions={"a": frozenset({"c"}), "b": frozenset({"c"}), "c": frozenset()}).leaving("c")


def test_a_status_without_declared_moves_or_a_move_to_nowhere_fails_at_declaration():
    with pytest.raises(TypeError, match="no transitions declared"):
        Lifecycle[Light](transitions={Light.RED: frozenset({Light.GREEN}), Light.GREEN: frozenset()})
    with pytest.raises(TypeError, match="undeclared statuses"):
        Lifecycle[str](transitions={"open": frozenset({"closed"})})


def test_final_statuses_map_to_nothing():
    closing = Lifecycle[str](transitions={"open": frozenset({"closed"}), "closed": frozenset()})
    assert closing.final("closed") and not closing.final("open")


def test_every_platform_life_cycle_is_declared_with_it():
    from services.auth.identity.accounts import ACCOUNT
    from services.formfill.formfill_requests import LIFECYCLE as FORMFILL
    from services.notify.statuses import JOB, NOTIFICATION
    from services.signing.signing_requests import LIFECYCLE as SIGNING

    for lifecycle in (ACCOUNT, FORMFILL, SIGNING, NOTIFICATION, JOB):
        assert isinstance(lifecycle, Lifecycle)
    assert ACCOUNT.final("closed") and not ACCOUNT.final("revoked") and FORMFILL.final(FORMFILL.expired)
