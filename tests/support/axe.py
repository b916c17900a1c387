"""axe-core (npm, pinned in tests/a11y/package.json; `make test` installs it) run on a page in the tests' Chromium.

The pages under test have strict Content Security Policies (no inline script, no eval): axe is not added as a
<script> element but evaluated through the DevTools protocol (Playwright's `page.evaluate` is CDP
`Runtime.evaluate`, which the page's CSP does not govern), so the page is checked exactly as it is served.
"""

from __future__ import annotations

from functools import cache

from playwright.async_api import Page

from libs.devstack.config import REPO_ROOT

AXE_JS = REPO_ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

# The violations, reduced to what a reader needs to fix them.
RUN_AXE = """async () => {
  const results = await window.axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))
  }));
}"""


@cache
def axe_source() -> str:
    if not AXE_JS.exists():
        raise FileNotFoundError(f"{AXE_JS} is missing: `make tests/a11y/node_modules/.installed` (or `make test`) installs axe-core")
    return AXE_JS.read_text()


async def violations(page: Page, impacts: tuple[str, ...] = BLOCKING) -> list[dict]:
    """axe's violations of the page as it is now, those of the given impacts (serious and critical by default)."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    found = await page.evaluate(RUN_AXE)
    return [v for v in found if v["impact"] in impacts]


def describe(found: list[dict]) -> str:
    return "\n".join(f"  {v['impact']} {v['id']}: {v['help']}\n" + "\n".join(f"    {n['target']}: {n['summary']}" for n in v["nodes"])
                     for v in found)


async def assert_accessible(page: Page, screen: str = "") -> None:
    """No serious or critical axe violation on the page (the failure names each rule and element)."""
    found = await violations(page)
    assert not found, f"axe-core: {len(found)} serious/critical violation(s) on {screen or page.url}:\n{describe(found)}"
