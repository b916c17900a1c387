"""The in-process fixture itself: every back-end service starts under TestClient on the test infrastructure."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["auth", "formfill", "notify", "notify-dispatcher", "signing"])
async def test_each_service_starts_in_process_with_a_database_of_its_own(start_service, service_settings, name):
    client = await start_service(name)
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["checks"]["mongodb"] == "ok"
    assert service_settings(name).service.database.startswith(f"test_{name.split('-')[0]}_")
