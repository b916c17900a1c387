"""python -m services.formfill"""

from libs.lean_start import leave_out_optional_extras

leave_out_optional_extras()  # before anything else is imported

from libs.service import run  # noqa: E402

from .app import create_app  # noqa: E402

if __name__ == "__main__":
    run(create_app)
