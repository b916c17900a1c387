"""The API reference as one self-contained HTML page: escaped, no script, styles under a nonce."""

from __future__ import annotations

from functools import cache
from typing import Any

from .merging import SCHEMA_REF

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} API reference</title>
<style nonce="{{ nonce }}">
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; color: #1b1b1b; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
section.op { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .9rem; margin: .8rem 0; }
.method { display: inline-block; min-width: 4.5rem; font-weight: 700; font-family: ui-monospace, monospace; }
.path { font-family: ui-monospace, monospace; font-weight: 600; }
table { border-collapse: collapse; margin-top: .4rem; }
td, th { text-align: left; padding: .15rem .8rem .15rem 0; vertical-align: top; font-size: .92rem; }
code { font-family: ui-monospace, monospace; }
.muted { color: #555; }
</style>
</head>
<body>
<h1>{{ title }} API reference</h1>
<p>{{ description }}</p>
<p class="muted">Base URL <code>{{ server }}</code>. Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI {{ version }}).
{% if missing %}Not yet available: {{ missing | join(", ") }}.{% endif %}</p>
{% for tag, operations in groups %}
<h2 id="{{ tag }}">{{ tag }}</h2>
{% for op in operations %}
<section class="op" id="{{ op.id }}">
<div><span class="method">{{ op.method }}</span> <span class="path">{{ op.path }}</span></div>
<div>{{ op.summary }}</div>
{% if op.description %}<div class="muted">{{ op.description }}</div>{% endif %}
<table>
<tr><th>Authentication</th><td>{{ op.security }}</td></tr>
{% if op.parameters %}<tr><th>Parameters</th><td>{% for p in op.parameters %}<code>{{ p }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endif %}
{% if op.request %}<tr><th>Request body</th><td>{{ op.request }}</td></tr>{% endif %}
<tr><th>Responses</th><td><table>
{% for status, description, schema in op.responses %}<tr><td><code>{{ status }}</code></td><td>{{ schema }}</td><td class="muted">{{ description }}</td></tr>
{% endfor %}</table></td></tr>
</table>
</section>
{% endfor %}
{% endfor %}
</body>
</html>
"""


@cache
def _template():
    """The page's template, compiled (and Jinja loaded) on the first request for the page, not at start."""
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=True).from_string(_PAGE)


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    if ref.startswith(SCHEMA_REF):
        return ref[len(SCHEMA_REF):]
    if schema.get("type") == "object" and "properties" in schema:
        return "{" + ", ".join(schema["properties"]) + "}"
    return str(schema.get("type", "any"))


def _content_summary(content: dict[str, Any] | None) -> str:
    if not content:
        return "no body"
    return "; ".join(f"{_schema_name(media.get('schema', {}))} ({media_type})" for media_type, media in content.items())


def _security_summary(requirements: list[dict[str, list[str]]]) -> str:
    if not requirements:
        return "none (public)"
    alternatives = [" + ".join(r) if r else "anonymous" for r in requirements]
    return " or ".join(alternatives)


def render_docs(doc: dict[str, Any], *, missing: list[str], nonce: str) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            request = operation.get("requestBody", {}).get("content")
            entry = {
                "id": operation.get("operationId", f"{method}-{path}"),
                "method": method.upper(),
                "path": path,
                "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "security": _security_summary(operation.get("security", doc.get("security", []))),
                "parameters": [f"{p['name']} ({p['in']}{', required' if p.get('required') else ''})" for p in operation.get("parameters", [])],
                "request": _content_summary(request) if request else "",
                "responses": [
                    (status, response.get("description", ""), _content_summary(response.get("content")))
                    for status, response in operation.get("responses", {}).items()
                ],
            }
            tag = (operation.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(entry)
    order = [t["name"] for t in doc.get("tags", [])]
    ordered = sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    return _template().render(
        title=doc["info"]["title"],
        description=doc["info"].get("description", ""),
        version=doc["openapi"],
        server=(doc.get("servers") or [{"url": ""}])[0]["url"],
        groups=ordered,
        missing=missing,
        nonce=nonce,
    )
