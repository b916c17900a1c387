"""The file side of backups (libs/devstack/backup.py), on real files and a real second process.

A token's object file is copied under SoftHSM2's own locking protocol: while
another process holds the exclusive fcntl lock SoftHSM2 writes under, the copy
waits, and it gets the whole new content once the lock is released — never a
half-written object. A backup whose file was altered, or restored with other
keys than its data was written with, is refused before anything is touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from libs.devstack import backup

from ..support.polling import eventually

pytestmark = pytest.mark.integration

HOLD_EXCLUSIVE = """
import fcntl, sys
handle = open(sys.argv[1], "r+b")
fcntl.lockf(handle, fcntl.LOCK_EX)           # what SoftHSM2's File::lock() takes to write an object
handle.truncate(0); handle.write(b"half");   handle.flush()
print("locked", flush=True)
sys.stdin.readline()                           # the test says when the rest is written
handle.write(b" and the rest"); handle.flush()
fcntl.lockf(handle, fcntl.LOCK_UN)
"""


def waiting_for_a_lock_on(path: Path) -> bool:
    """Whether /proc/locks shows a process blocked on a POSIX lock of `path` (a `->` line for its inode)."""
    inode = path.stat().st_ino
    return any(line.split()[1] == "->" and line.split()[6].endswith(f":{inode}")
               for line in Path("/proc/locks").read_text().splitlines() if len(line.split()) > 6)


async def test_an_object_file_is_copied_only_between_softhsm2s_writes(tmp_path):
    source = tmp_path / "key.object"
    source.write_bytes(b"the previous object")
    writer = subprocess.Popen([sys.executable, "-c", HOLD_EXCLUSIVE, str(source)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        copy = threading.Thread(target=backup._copy_locked, args=(source, tmp_path / "copy.object"))
        copy.start()
        await eventually(lambda: waiting_for_a_lock_on(source), timeout_s=10)  # the copy waits for the writer
        assert not (tmp_path / "copy.object").exists()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        copy.join(timeout=10)
        assert not copy.is_alive()
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    assert (tmp_path / "copy.object").read_bytes() == b"half and the rest"
    assert (tmp_path / "copy.object").stat().st_mode & 0o777 == 0o600


def test_an_object_being_created_is_left_out_and_lock_files_are_recreated_empty(tmp_path):
    (tmp_path / "new.object").write_bytes(b"")
    (tmp_path / "key.lock").write_bytes(b"")
    backup._copy_locked(tmp_path / "new.object", tmp_path / "copied-new.object")
    backup._copy_locked(tmp_path / "key.lock", tmp_path / "copied.lock")
    assert not (tmp_path / "copied-new.object").exists()
    assert (tmp_path / "copied.lock").read_bytes() == b""


def a_backup(folder: Path, secrets: dict) -> Path:
    """A minimal backup folder: one collection file, the keys inside, a manifest over both."""
    (folder / "mongo" / "harbour_auth").mkdir(parents=True)
    (folder / "mongo" / "harbour_auth" / "accounts.bson").write_bytes(b"")
    (folder / "secrets.json").write_text(json.dumps(secrets))
    manifest = {"format": backup.FORMAT, "created_at": "2026-12-01T00:00:00+00:00", "databases": {}, "hsm": None,
                "secrets": {"in_backup": True, "file": "secrets.json", "fingerprint": backup._fingerprint(secrets)},
                "files": {str(p.relative_to(folder)): backup._sha256(p) for p in backup._files(folder)}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_backup_with_an_altered_file_is_refused(tmp_path):
    folder = a_backup(tmp_path, {"HARBOUR_AUTH_KEK": "k1"})
    manifest = backup.read_manifest(folder)
    assert set(manifest["files"]) == {"mongo/harbour_auth/accounts.bson", "secrets.json"}
    (folder / "mongo" / "harbour_auth" / "accounts.bson").write_bytes(b"\x05\x00\x00\x00\x00")
    with pytest.raises(backup.BackupError, match="accounts.bson is missing or altered"):
        backup.read_manifest(folder)


def test_keys_other_than_the_datas_are_refused(tmp_path):
    folder = a_backup(tmp_path / "backup", {"HARBOUR_AUTH_KEK": "k1"})
    other = tmp_path / "keys"
    other.mkdir()
    (other / "secrets.json").write_text(json.dumps({"HARBOUR_AUTH_KEK": "k2"}))
    manifest = backup.read_manifest(folder)
    with pytest.raises(backup.BackupError, match="other keys than the ones this backup's data was written with"):
        backup._read_secrets(manifest, folder, other)
    assert backup._read_secrets(manifest, folder, None) == {"HARBOUR_AUTH_KEK": "k1"}
