"""python -m clients.relying_party [--seed FILE] [--url URL]: serve the demo site (default http://127.0.0.1:8010)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from aiohttp import web

from libs.devstack.config import dev_dir_from_env

from .config import DEFAULT_PORT, SiteConfig
from .site import create_site


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m clients.relying_party", description=__doc__)
    dev_dir = dev_dir_from_env()
    parser.add_argument("--seed", type=Path, default=dev_dir / "seed.json", help="the seed file `make seed` wrote")
    parser.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="where the site is reached (loopback)")
    args = parser.parse_args()
    config = SiteConfig.from_seed(args.seed, args.url)
    print(f"Harbour Power demo site on {config.site_url} (client {config.client_id} at {config.issuer})", flush=True)
    web.run_app(create_site(config), host="127.0.0.1", port=config.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
