"""Backup and restore of a dev stack: every service's database, the HSM token, and the keys the data needs.

`python -m libs.devstack backup DIR` (`make backup`) and `python -m libs.devstack restore DIR` (`make restore
DIR=...`); docs/operations.md, *Backup and restore*, says what, how and why. A backup is a folder:

    manifest.json                              what is in it: time, sources, counts, key labels, SHA-256 of every file
    mongo/<database>/<collection>.bson         the documents, concatenated BSON (mongodump's directory layout)
    mongo/<database>/<collection>.metadata.json  options (validators...) and indexes, canonical Extended JSON
    softhsm/tokens/<token>/...                 the SoftHSM2 token's files (keys encrypted under the token's PINs)
    secrets.json                               the keys the data depends on (KEKs, hash key, sealing keys, HSM PINs),
                                               or in a folder of their own (--keys-dir): keys apart from data

Consistency: every database is read inside one multi-document transaction with read concern "snapshot" (one point
in time across all of them, services running); the token is copied after that snapshot under SoftHSM2's own file
locks, so it holds every key the snapshot names (keys are only ever added). What the broker held is not backed
up: a restore publishes again the outbox events sent in the last `replay_window_s` before the snapshot, and
consumers, which remember event ids, apply each once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo import MongoClient
from pymongo.read_concern import ReadConcern

from . import softhsm
from .stack import DevStack

FORMAT = "harbour-backup/1"
RAW = CodecOptions(document_class=RawBSONDocument)
JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS
# Where signing names its keys in the HSM (services/signing/collections.py): the CA, TSA and citizens' keys.
KEY_LABEL_COLLECTIONS = ("authorities", "certificates")
# Leases name the processes of the stack that was backed up; on a restore they would only make the new
# processes wait for them to lapse (libs/events/outbox.py, libs/events/partition_leases.py).
LEASE_COLLECTIONS = ("outbox_lease", "consumer_leases", "consumer_members")
# Outbox events sent this long before the snapshot are published again on a restore (consumers deduplicate).
DEFAULT_REPLAY_WINDOW_S = 900
INSERT_BATCH_DOCS = 1000
INSERT_BATCH_BYTES = 8 * 1024 * 1024
TOKEN_KEYS_SCRIPT = Path(__file__).with_name("token_keys.py")


class BackupError(RuntimeError):
    """A backup or restore refused or failed; the message says why (the CLI prints it and exits 1)."""


# -- backup ------------------------------------------------------------------------------------------------------

def backup(stack: DevStack, target: Path, *, keys_dir: Path | None = None) -> dict:
    """Write a backup of `stack` (its database must be running; its services may be) to the new folder `target`.

    Returns the manifest. The folder appears only once complete (written as `<target>.partial`, then renamed)."""
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} exists and is not empty: a backup goes to a new folder")
    if not stack.infra_running():
        raise BackupError("the stack's database is not running: start it (make up) and run the backup again")
    secrets_file = stack.dev_dir / "secrets.json"
    if not secrets_file.exists():
        raise BackupError(f"{secrets_file} is missing: this stack has never run its services, there is nothing to back up")
    if keys_dir is not None and (keys_dir / "secrets.json").exists():
        raise BackupError(f"{keys_dir / 'secrets.json'} exists: keys go to a new place")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    umask = os.umask(0o077)  # everything in a backup is readable by its owner only
    try:
        _private_dir(partial)
        manifest = _write_backup(stack, partial, secrets_file, keys_dir.resolve() if keys_dir else None)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return manifest
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        os.umask(umask)


def _write_backup(stack: DevStack, folder: Path, secrets_file: Path, keys_dir: Path | None) -> dict:
    prefix = stack.config.db_prefix
    with MongoClient(stack.config.mongo_uri, serverSelectionTimeoutMS=5000) as client:
        names = sorted(n for n in client.list_database_names() if n.startswith(prefix))
        if not names:
            raise BackupError(f"no database named {prefix}* on {stack.config.mongo_uri}")
        catalog = {name: _catalog(client[name]) for name in names}  # DDL is not transactional: read it first
        created_at = datetime.now(UTC)
        databases, key_labels = _snapshot(client, catalog, folder / "mongo", signing_db=f"{prefix}signing")
    databases = {name[len(prefix):]: {"name": name, "collections": collections} for name, collections in databases.items()}

    secrets = json.loads(secrets_file.read_text())
    hsm = _copy_token(stack.dev_dir, folder, secrets, key_labels)
    keys_at = _write_secrets(keys_dir or folder, secrets)

    manifest = {
        "format": FORMAT,
        "created_at": created_at.isoformat(),
        "source": {"dev_dir": str(stack.dev_dir), "db_prefix": prefix},
        "databases": databases,
        "hsm": hsm,
        "secrets": {"in_backup": keys_dir is None, "file": str(keys_at) if keys_dir else "secrets.json",
                    "fingerprint": _fingerprint(secrets)},
        "files": {str(path.relative_to(folder)): _sha256(path) for path in sorted(_files(folder))},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _catalog(db) -> list[dict]:
    """Each collection's name, type, options and indexes (outside the transaction: listIndexes is not allowed in one)."""
    collections = []
    for info in db.list_collections():
        if info["name"].startswith("system."):
            continue
        indexes = list(db[info["name"]].list_indexes()) if info.get("type", "collection") == "collection" else []
        collections.append({"collectionName": info["name"], "type": info.get("type", "collection"),
                            "options": info.get("options", {}), "indexes": indexes})
    return collections


def _snapshot(client: MongoClient, catalog: dict[str, list[dict]], root: Path, *, signing_db: str) -> tuple[dict, list[str]]:
    """Every document of every collection, read in one snapshot transaction across the databases; the HSM key
    labels signing's documents name, from the same snapshot."""
    databases: dict[str, dict] = {}
    labels: set[str] = set()
    with client.start_session() as session, session.start_transaction(read_concern=ReadConcern("snapshot")):
        for name, collections in catalog.items():
            folder = root / name
            folder.mkdir(parents=True)
            db = client.get_database(name, codec_options=RAW)
            databases[name] = {}
            for meta in collections:
                coll = meta["collectionName"]
                (folder / f"{coll}.metadata.json").write_text(json_util.dumps(meta, json_options=JSON_OPTIONS, indent=1))
                count = 0
                with open(folder / f"{coll}.bson", "wb") as out:
                    if meta["type"] == "collection":
                        for doc in db[coll].find({}, session=session):
                            out.write(doc.raw)
                            count += 1
                            if name == signing_db and coll in KEY_LABEL_COLLECTIONS and "key_label" in doc:
                                labels.add(doc["key_label"])
                databases[name][coll] = {"documents": count}
    return databases, sorted(labels)


def _copy_token(dev_dir: Path, folder: Path, secrets: dict, key_labels: list[str]) -> dict | None:
    """Copy the stack's SoftHSM2 token directory, each file under the shared lock SoftHSM2 itself takes to read an
    object (fcntl, whole file), so no object is copied half written; then open the copy and check it holds every
    key the database snapshot names."""
    source = softhsm.config_path(dev_dir).parent / "tokens"
    if not source.is_dir() or not any(source.iterdir()):
        if key_labels:
            raise BackupError(f"signing's database names {len(key_labels)} HSM keys but {source} holds no token")
        return None
    copied = folder / "softhsm" / "tokens"
    for token in sorted(p for p in source.iterdir() if p.is_dir()):
        _private_dir(copied / token.name)
        for path in sorted(token.iterdir()):
            _copy_locked(path, copied / token.name / path.name)
    present = token_key_labels(copied, secrets)
    missing = sorted(set(key_labels) - set(present))
    if missing:
        raise BackupError(f"the token copy lacks keys signing's database names: {', '.join(missing)}")
    return {"token_label": secrets["HARBOUR_SIGNING_TOKEN_LABEL"], "key_labels": key_labels, "keys_in_token": len(present)}


def _copy_locked(source: Path, target: Path) -> None:
    if source.suffix == ".lock":  # SoftHSM2's empty lock files: recreated, never read
        target.touch(mode=0o600)
        return
    try:
        with open(source, "rb") as handle:
            fcntl.lockf(handle, fcntl.LOCK_SH)
            try:
                data = handle.read()
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)
    except FileNotFoundError:
        return  # removed while we listed: not part of the token any more
    if source.suffix == ".object" and not data:
        return  # an object being created after the snapshot (SoftHSM2 itself treats an empty one as invalid)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def token_key_labels(tokens_dir: Path, secrets: dict) -> list[str]:
    """The private keys' labels in the token under `tokens_dir`, opened with the PIN in `secrets` (a process of
    its own: SoftHSM2 reads its configuration when the module is loaded)."""
    try:
        module = secrets.get("HARBOUR_SIGNING_PKCS11_MODULE") or softhsm.module_path()
    except softhsm.SoftHSMMissing as exc:
        raise BackupError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="harbour-token-") as scratch:
        conf = Path(scratch) / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens_dir}\nobjectstore.backend = file\nlog.level = ERROR\n")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SOFTHSM2_CONF": str(conf),
               "HARBOUR_SIGNING_TOKEN_LABEL": secrets["HARBOUR_SIGNING_TOKEN_LABEL"],
               "HARBOUR_SIGNING_HSM_PIN": secrets["HARBOUR_SIGNING_HSM_PIN"]}
        # Run as a script, not `-m libs.devstack...`: importing the package would load the whole stack (seconds).
        ran = subprocess.run([sys.executable, str(TOKEN_KEYS_SCRIPT), module], env=env, capture_output=True,
                             text=True, timeout=60)
    if ran.returncode != 0:
        raise BackupError(f"the token under {tokens_dir} does not open with the backed-up PIN: {ran.stderr.strip()[-500:]}")
    return json.loads(ran.stdout)


def _write_secrets(folder: Path, secrets: dict) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # a folder of the operator's own keeps its mode
    path = folder / "secrets.json"
    if path.exists():
        raise BackupError(f"{path} exists: keys go to a new place")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(secrets, handle, indent=2)
    return path


# -- restore -----------------------------------------------------------------------------------------------------

def restore(stack: DevStack, source: Path, *, keys_dir: Path | None = None,
            replay_window_s: float = DEFAULT_REPLAY_WINDOW_S) -> dict:
    """Replace `stack`'s databases, HSM token and secrets with the backup in `source`.

    The stack's services must be stopped; its broker and database are started if they are not. Returns a summary
    (documents per database, keys in the token, events published again)."""
    source = source.resolve()
    manifest = read_manifest(source)
    secrets = _read_secrets(manifest, source, keys_dir)
    running = [name for name, pid in stack.status().items() if pid and name not in ("kafka", "mongodb")]
    if running:
        raise BackupError(f"stop the stack's services first (make down): {', '.join(running)} running")
    if not stack.infra_running():
        stack.up_infra()

    _write_stack_secrets(stack.dev_dir, secrets)
    keys = _restore_token(stack.dev_dir, source, manifest, secrets)
    created_at = datetime.fromisoformat(manifest["created_at"])
    summary = {"databases": {}, "hsm": keys, "replayed_events": {}}
    with MongoClient(stack.config.mongo_uri, serverSelectionTimeoutMS=5000) as client:
        for service, entry in manifest["databases"].items():
            name = f"{stack.config.db_prefix}{service}"
            client.drop_database(name)
            db = client[name]
            counts = {coll: _restore_collection(db, source / "mongo" / entry["name"], coll)
                      for coll in entry["collections"]}
            for coll, wanted in entry["collections"].items():
                if counts[coll] != wanted["documents"]:
                    raise BackupError(f"{name}.{coll}: restored {counts[coll]} documents, the backup has {wanted['documents']}")
            for lease in LEASE_COLLECTIONS:
                db[lease].delete_many({})
            summary["databases"][name] = sum(counts.values())
            summary["replayed_events"][name] = (
                _replay_outbox(db, created_at - timedelta(seconds=replay_window_s)) if replay_window_s > 0 else 0)
    return summary


def read_manifest(source: Path) -> dict:
    """The backup's manifest, once every file it lists is there with the SHA-256 it recorded."""
    try:
        manifest = json.loads((source / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a backup (manifest.json: {exc})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: unknown backup format {manifest.get('format')!r} (this version reads {FORMAT})")
    for relative, digest in manifest["files"].items():
        path = source / relative
        if not path.is_file() or _sha256(path) != digest:
            raise BackupError(f"{path} is missing or altered since the backup was made")
    return manifest


def _read_secrets(manifest: dict, source: Path, keys_dir: Path | None) -> dict:
    path = (keys_dir.resolve() / "secrets.json") if keys_dir else source / "secrets.json"
    if not path.exists():
        apart = "" if manifest["secrets"]["in_backup"] else " (this backup's keys were written apart from it: --keys-dir)"
        raise BackupError(f"{path} is missing{apart}")
    secrets = json.loads(path.read_text())
    if _fingerprint(secrets) != manifest["secrets"]["fingerprint"]:
        raise BackupError(f"{path} holds other keys than the ones this backup's data was written with")
    return secrets


def _write_stack_secrets(dev_dir: Path, secrets: dict) -> None:
    dev_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(dev_dir / "secrets.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(secrets, handle, indent=2)


def _restore_token(dev_dir: Path, source: Path, manifest: dict, secrets: dict) -> dict | None:
    """Put the backed-up token in the stack's token directory (replacing what was there) and check it opens with
    the restored PIN and holds every key the restored database names."""
    tokens = softhsm.config_path(dev_dir).parent / "tokens"
    shutil.rmtree(tokens, ignore_errors=True)
    hsm = manifest["hsm"]
    if hsm is None:
        return None
    _private_dir(tokens.parent)
    shutil.copytree(source / "softhsm" / "tokens", tokens)
    softhsm.ensure_token(dev_dir, label=secrets["HARBOUR_SIGNING_TOKEN_LABEL"], so_pin=secrets["HARBOUR_SIGNING_SO_PIN"],
                         pin=secrets["HARBOUR_SIGNING_HSM_PIN"])  # writes the configuration; the token is there
    present = token_key_labels(tokens, secrets)
    missing = sorted(set(hsm["key_labels"]) - set(present))
    if missing:
        raise BackupError(f"the restored token lacks keys signing's database names: {', '.join(missing)}")
    return {"token_label": hsm["token_label"], "keys": len(present)}


def _restore_collection(db, folder: Path, coll: str) -> int:
    meta = json_util.loads((folder / f"{coll}.metadata.json").read_text(), json_options=JSON_OPTIONS)
    db.command(SON([("create", coll), *meta["options"].items()]))
    if meta["type"] != "collection":
        return 0
    inserted = 0
    for batch in _batches(folder / f"{coll}.bson"):
        # The documents were valid when they were written; a validator added since must not refuse the past.
        # Ordered: a document refused raises, so the whole batch is in when this returns (PyMongo does not list
        # the ids of raw documents).
        db.get_collection(coll, codec_options=RAW).insert_many(batch, ordered=True, bypass_document_validation=True)
        inserted += len(batch)
    indexes = [SON((k, v) for k, v in spec.items() if k not in ("v", "ns")) for spec in meta["indexes"] if spec["name"] != "_id_"]
    if indexes:
        db.command(SON([("createIndexes", coll), ("indexes", indexes)]))
    return inserted


def _batches(path: Path) -> Iterator[list[RawBSONDocument]]:
    batch: list[RawBSONDocument] = []
    size = 0
    with open(path, "rb") as handle:
        for doc in bson.decode_file_iter(handle, codec_options=RAW):
            batch.append(doc)
            size += len(doc.raw)
            if len(batch) >= INSERT_BATCH_DOCS or size >= INSERT_BATCH_BYTES:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def _replay_outbox(db, since: datetime) -> int:
    """Mark the outbox events sent since `since` pending again, so the relay publishes them to the (new) broker;
    an event its consumers had already applied is skipped by them (they remember event ids), one they had not is
    applied now."""
    result = db["outbox"].update_many(
        {"sent_at": {"$gte": since}},
        {"$set": {"pending": True}, "$unset": {"sent_at": "", "partition": "", "offset": "", "unverified": "", "in_flight": ""}})
    return result.modified_count


# -- helpers -----------------------------------------------------------------------------------------------------

def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _files(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file() and path.name != "manifest.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(secrets: dict) -> str:
    return hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).hexdigest()
