"""python -m services.auth"""

from libs.service import run

from .app import create_app

if __name__ == "__main__":
    run(create_app)
