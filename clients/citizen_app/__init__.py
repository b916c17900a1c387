"""The reference citizen app: what a phone does, as a library and a CLI.

`python -m clients.citizen_app --profile FILE <command>`; see `__main__.py`.
"""

from .app import AppError, CitizenApp
from .profile import Profile

__all__ = ["AppError", "CitizenApp", "Profile"]
