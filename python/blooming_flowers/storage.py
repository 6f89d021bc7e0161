"""Where a datastore's objects are: a local directory or an S3-compatible bucket.

The same layout either way (keys are ``/``-separated, each segment ``[A-Za-z0-9._-]``, never
starting with ``.``). Reads only: this package never writes a datastore.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
from pathlib import Path

#: The datastore a flow binary uses when none is given, as in the Rust CLI.
DATASTORE_ENV = "BLOOMING_DATASTORE"
DEFAULT_DATASTORE = ".blooming"

#: The largest record (run record, done marker, pointer) read: as the Rust side limits it.
MAX_RECORD_SIZE = 16 << 20

#: Blobs of this size and more are mapped rather than read (see `LocalStorage.get_blob`).
_MAP_FROM = 1 << 20

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")


class DatastoreError(OSError):
    """A datastore that cannot be reached or read."""


class NotFound(KeyError):
    """No object at a key."""


def check_segment(value: str, what: str) -> str:
    """``value`` if it is one key segment (a run id, a step, a task id, a flow), else an error
    naming ``what``: nothing a caller passes can leave the datastore."""
    if not isinstance(value, str) or not _SEGMENT.match(value) or value in (".", ".."):
        raise ValueError(
            f"{what} {value!r} is not valid: letters, digits, '.', '_' and '-' only, "
            "not starting with '.'"
        )
    return value


def open_storage(datastore: str | os.PathLike | None):
    """The storage at ``datastore``: ``s3://bucket/prefix`` or a directory (default:
    ``$BLOOMING_DATASTORE``, else ``./.blooming``)."""
    if datastore is None:
        datastore = os.environ.get(DATASTORE_ENV) or DEFAULT_DATASTORE
    text = os.fspath(datastore)
    if text.startswith("s3://"):
        return S3Storage(text)
    return LocalStorage(text)


class LocalStorage:
    """A datastore in a local directory."""

    def __init__(self, root: str):
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise DatastoreError(f"there is no datastore at {self.root} (no such directory)")
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _open(self, key: str) -> tuple[int, os.stat_result, Path]:
        """The object ``key`` opened for reading: a regular file, never reached through a link,
        as the Rust side reads only regular files; the caller closes the descriptor."""
        path = self._path(key)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise NotFound(key) from None
        except OSError as e:
            raise DatastoreError(f"cannot read {path}: {e}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise DatastoreError(f"{path} is not a regular file")
        return fd, info, path

    def get(self, key: str, limit: int | None = None) -> bytes:
        fd, info, path = self._open(key)
        with os.fdopen(fd, "rb") as file:
            if limit is not None and info.st_size > limit:
                raise DatastoreError(
                    f"{path} has {info.st_size} bytes, more than the {limit} expected"
                )
            return file.read(info.st_size)

    def get_blob(self, key: str, size: int):
        """A blob expected to hold ``size`` bytes: a large one mapped into memory rather than
        copied (hashing and decoding read the page cache directly; bytes artifacts stay views
        of it), a small one read. A blob of another size is read as any object, for the caller
        to refuse. Blobs are never changed in place (only replaced by a rename), so the mapping
        stays what was checked; a file truncated by another program while mapped, or a disk
        error under it, would stop the process with SIGBUS, as with any memory-mapped reader."""
        if size < _MAP_FROM:
            return self.get(key, limit=size)
        fd, info, _ = self._open(key)
        try:
            if info.st_size == size:
                return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        return self.get(key, limit=size)

    def children(self, prefix: str) -> tuple[list[str], list[str]]:
        """(objects, prefixes) directly under ``prefix``, by name, sorted."""
        path = self._path(prefix)
        objects, prefixes = [], []
        try:
            entries = list(os.scandir(path))
        except FileNotFoundError:
            return [], []
        except OSError as e:
            raise DatastoreError(f"cannot list {path}: {e}") from None
        for entry in entries:
            if not _SEGMENT.match(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                prefixes.append(entry.name)
            elif entry.is_file(follow_symlinks=False):
                objects.append(entry.name)
        return sorted(objects), sorted(prefixes)


class S3Storage:
    """A datastore in an S3-compatible bucket (``boto3``, configured as the AWS CLI is: the
    ``AWS_*`` variables, ``AWS_ENDPOINT_URL`` for a self-hosted server)."""

    def __init__(self, url: str):
        rest = url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError(f"{url!r} names no bucket: s3://BUCKET/PREFIX")
        try:
            import boto3  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise DatastoreError(
                f"reading {url} needs boto3: pip install 'blooming-flowers[s3]'"
            ) from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = url
        self.client = boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str, limit: int | None = None) -> bytes:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(key) from None
            raise DatastoreError(f"cannot read {self.url}/{key}: {e}") from None
        size = response.get("ContentLength", 0)
        if limit is not None and size > limit:
            raise DatastoreError(f"{self.url}/{key} has {size} bytes, more than the {limit} expected")
        return response["Body"].read()

    def get_blob(self, key: str, size: int) -> bytes:
        return self.get(key, limit=size)

    def children(self, prefix: str) -> tuple[list[str], list[str]]:
        full = self._key(prefix).rstrip("/") + "/"
        objects, prefixes = [], []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                for item in page.get("Contents", []):
                    name = item["Key"][len(full) :]
                    if _SEGMENT.match(name):
                        objects.append(name)
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(full) :].rstrip("/")
                    if _SEGMENT.match(name):
                        prefixes.append(name)
        except Exception as e:  # botocore's errors have no common base worth naming
            raise DatastoreError(f"cannot list {self.url}/{prefix}: {e}") from None
        return sorted(objects), sorted(prefixes)
