"""The public API's one OpenAPI 3.1 document, merged from the services' own, and a readable docs page.

Every service serves the document of its operations at `/openapi.json`
(libs/service/openapi.py); that path is not routed publicly. The gateway
fetches them in the background — without delaying its start, retrying until
each has answered — and merges what it has: only the paths the gateway
routes to that service, the gateway's own endpoints, and the statuses the
gateway itself may answer for any proxied request (429, 502, 503, 504).
A request for `/openapi.json` or `/docs` is answered at once with what is
there; if a service's document is still missing, the request also has it
fetched again in the background, at most once every 5 seconds.

- merging.py: the gateway's own operations and the merge (pure);
- documents.py: the services' documents as fetched so far;
- page.py: the HTML reference page;
- install.py: the two routes and the fetching's life cycle.
"""

from .documents import OPENAPI_DOCUMENTS, OpenAPIDocuments
from .install import install_openapi
from .merging import GATEWAY_OPERATIONS, gateway_route_of, merge
from .page import render_docs

__all__ = ["GATEWAY_OPERATIONS", "OPENAPI_DOCUMENTS", "OpenAPIDocuments", "gateway_route_of", "install_openapi", "merge", "render_docs"]
