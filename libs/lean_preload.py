"""Imported first by a process that runs no entry point of ours (signing's sandbox forkserver, which imports only its
preloaded modules): the lean start of libs/lean_start.py, done at import.

Without it the forkserver and every parsing worker forked from it loaded structlog's optional extras (`rich`,
`pygments`, `greenlet`: ~4 MB each process; docs/operations.md, idle RSS).
"""

from libs.lean_start import start_lean

start_lean()
