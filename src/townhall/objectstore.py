"""``ObjectStore``: the bucket of an S3-compatible store that keeps finished recordings.

The recorder service uploads each finished part of a recording here
(``recording.service``) and the Center streams the objects back to viewers
(``center.recording_routes``), so this module holds the few calls both need,
over boto3 (path-style addressing, which every on-premise store answers:
MinIO, Ceph's RADOS Gateway, Garage ...): upload a file, read a small
object, open an object with a viewer's ``Range`` passed through, delete an
event's objects. Objects are named ``<prefix><event id>/<file name>``, the
file names of ``<data>/recordings/<event id>/``. Failures of the store
itself (unreachable, refused keys, a 5xx) raise ``StoreUnavailable``; a
missing object is ``None`` or ``ObjectMissing``; boto3 retries a few times
before either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from townhall.config import StorageSettings

__all__ = [
    "ObjectMissing",
    "ObjectStore",
    "OpenedObject",
    "RangeNotSatisfiable",
    "StoreUnavailable",
    "single_range",
]

CHUNK: Final = 64 * 1024  # bytes read from the store per piece streamed to a viewer
# One range, as a player or a resumed download asks: "bytes=10-", "bytes=10-20", "bytes=-500".
_SINGLE_RANGE: Final = re.compile(r"bytes=(?:\d{1,15}-\d{0,15}|-\d{1,15})")
_MISSING: Final = frozenset({"NoSuchKey", "404", "NotFound"})


class StoreUnavailable(Exception):
    """The object store did not answer as it should (down, keys refused, a 5xx)."""


class ObjectMissing(Exception):
    """No such object."""


class RangeNotSatisfiable(Exception):
    """The range asked for lies past the object's end (``size``: the object's length)."""

    def __init__(self, size: int | None) -> None:
        super().__init__(f"range outside the object's {size} bytes")
        self.size = size


def single_range(header: str | None) -> str | None:
    """The ``Range`` header to pass to the store: one byte range, or None (the whole object).

    Anything else (several ranges, other units, nonsense) is ignored, as HTTP lets a
    server do: the viewer gets the whole object with 200.
    """
    if header is None:
        return None
    header = header.strip().replace(" ", "")
    if not _SINGLE_RANGE.fullmatch(header):
        return None
    first, _, last = header.removeprefix("bytes=").partition("-")
    if first and last and int(last) < int(first):
        return None
    return header


@dataclass(slots=True)
class OpenedObject:
    """An object being read: what to tell the viewer, and its bytes as they come."""

    status: int  # 200, or 206 for a range
    length: int  # bytes in this answer
    content_range: str | None  # "bytes 0-99/1234" for a range
    etag: str | None
    last_modified: str | None  # as an HTTP date
    _body: Any

    def chunks(self) -> Iterator[bytes]:
        """The bytes in pieces of at most ``CHUNK``; the connection is let go at the end."""
        try:
            yield from self._body.iter_chunks(CHUNK)
        except (BotoCoreError, OSError) as error:
            raise StoreUnavailable(f"reading from the object store failed: {error}") from error
        finally:
            self._body.close()


class ObjectStore:
    """The bucket of ``settings`` (``kind = "s3"``), one client shared by threads."""

    def __init__(self, settings: StorageSettings) -> None:
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self._client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            verify=settings.ca_file or True,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                max_pool_connections=32,
            ),
        )

    def key(self, event_id: int, name: str) -> str:
        """The object name of an event's file: ``<prefix><event id>/<name>``."""
        return f"{self.prefix}{int(event_id)}/{name}"

    def upload(self, path: Path, key: str, content_type: str) -> None:
        """Put the file at ``key`` (in parts when large); replaces what was there."""
        try:
            self._client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
            )
        except (BotoCoreError, ClientError, OSError) as error:
            raise StoreUnavailable(f"uploading {key} failed: {error}") from error

    def read_small(self, key: str, limit: int) -> bytes | None:
        """The whole object when it has at most ``limit`` bytes; None when missing or larger."""
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit}")
            data: bytes = answer["Body"].read(limit + 1)
        except ClientError as error:
            if _code(error) in _MISSING or _code(error) == "InvalidRange":  # missing or empty
                return None if _code(error) in _MISSING else b""
            raise StoreUnavailable(f"reading {key} failed: {error}") from error
        except BotoCoreError as error:
            raise StoreUnavailable(f"reading {key} failed: {error}") from error
        return data if len(data) <= limit else None

    def open(self, key: str, byte_range: str | None = None) -> OpenedObject:
        """Start reading ``key`` (one ``byte_range`` of it, from ``single_range``)."""
        asked: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            asked["Range"] = byte_range
        try:
            answer = self._client.get_object(**asked)
        except ClientError as error:
            code = _code(error)
            if code in _MISSING:
                raise ObjectMissing(key) from error
            if code == "InvalidRange":
                size = error.response.get("Error", {}).get("ActualObjectSize")
                raise RangeNotSatisfiable(int(size) if size else None) from error
            raise StoreUnavailable(f"reading {key} failed: {error}") from error
        except BotoCoreError as error:
            raise StoreUnavailable(f"reading {key} failed: {error}") from error
        status = int(answer["ResponseMetadata"]["HTTPStatusCode"])
        modified = answer["ResponseMetadata"].get("HTTPHeaders", {}).get("last-modified")
        return OpenedObject(
            status=206 if status == 206 else 200,
            length=int(answer["ContentLength"]),
            content_range=answer.get("ContentRange") if status == 206 else None,
            etag=answer.get("ETag"),
            last_modified=modified,
            _body=answer["Body"],
        )

    def delete_event(self, event_id: int) -> int:
        """Delete every object of the event; how many there were."""
        prefix = f"{self.prefix}{int(event_id)}/"
        deleted = 0
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:  # a page holds at most 1,000: what one delete_objects takes
                    self._client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                    deleted += len(keys)
        except (BotoCoreError, ClientError) as error:
            raise StoreUnavailable(
                f"deleting the objects under {prefix} failed: {error}"
            ) from error
        return deleted


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
