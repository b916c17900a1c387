"""python -m services.auth"""

from libs.lean_start import start_lean

start_lean()  # before anything else is imported

from libs.service import run  # noqa: E402

from .app import create_app  # noqa: E402

if __name__ == "__main__":
    run(create_app)
