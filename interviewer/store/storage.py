"""Where applicants' recordings live: a local folder (the default) or an S3-compatible bucket.

Both backends share one contract, the one :class:`~interviewer.store.recordings.Recordings`
has always had, so no caller changes with the backend:

- ``answer_audio(...)`` / ``media_chunk(...)`` give a *local* file to write into, built from
  server-side ids only. Answers are written frame by frame while the applicant speaks, which
  an object store cannot do, so the S3 backend writes into a local staging folder too;
- ``commit(path)`` is called once the file is complete. It returns the key stored in the
  database (``<interview_id>/answers/<question>/<attempt>.wav``, relative, POSIX). Locally
  that is all; for S3 it also uploads the file. An upload that fails is logged and the file
  stays staged, so an answer is never lost to a storage outage: ``sync()`` (``interviewer
  storage sync``) uploads whatever is staged but not in the bucket;
- ``open_for_read(key)`` gives a local file for a stored key, refusing anything outside the
  root; the S3 backend downloads it into the staging folder first if it is not there;
- ``purge_interview(id)`` deletes all of one interview's media, in the bucket as well.

Keys are checked exactly like local paths (no absolute paths, no ``..``, nothing a client
sent), so the bucket holds the same tree as the local folder and a deployment can move from
one to the other by copying files.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from interviewer.errors import UserError
from interviewer.store.recordings import _MAX_ID, Recordings, _int_id

if TYPE_CHECKING:
    from interviewer.config import Settings

log = logging.getLogger(__name__)

__all__ = ["LocalStorage", "S3Storage", "Storage", "StorageConfigError", "open_storage"]


class StorageConfigError(UserError):
    """The recordings storage is misconfigured (missing bucket, unreachable endpoint...)."""


class LocalStorage(Recordings):
    """The recordings folder (``INTERVIEWER_RECORDINGS_DIR``): today's behaviour, the default."""

    backend = "local"

    def sync(self) -> int:
        """Nothing is ever pending locally."""
        return 0

    def describe(self) -> str:
        return f"local folder {self.root}"


Storage = LocalStorage
"""The storage interface: every backend is a :class:`LocalStorage` (it writes locally first)."""


class S3Storage(LocalStorage):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...) through boto3.

    ``root`` is the local staging folder: answers are written there while they are spoken,
    uploaded by ``commit``, and downloaded there again when read on another machine.
    ``keep_local`` keeps the staged copy after a successful upload (a read cache); without it
    an answer's copy is removed once the bucket holds it (``media/`` chunks always stay: the
    upload route counts them to number parts and enforce the quota).
    """

    backend = "s3"

    def __init__(
        self,
        root: Path | str,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
        keep_local: bool = True,
        client: Any = None,
    ) -> None:
        super().__init__(root)
        if not bucket:
            raise StorageConfigError(
                "INTERVIEWER_STORAGE=s3 needs a bucket: set INTERVIEWER_S3_BUCKET "
                "(and INTERVIEWER_S3_ENDPOINT_URL for a non-AWS server)"
            )
        prefix = prefix.strip("/")
        if prefix and (".." in PurePosixPath(prefix).parts or "\\" in prefix):
            raise StorageConfigError(f"INTERVIEWER_S3_PREFIX {prefix!r} must be a plain folder")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.keep_local = keep_local
        # after a failed upload, answers are staged without trying for a while: an outage
        # must not add a connection timeout to every answer (the next question waits on it)
        self.retry_after_s = 30.0
        self._down_until = 0.0
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url or None,
                region_name=region or "us-east-1",
                aws_access_key_id=access_key_id or None,
                aws_secret_access_key=secret_access_key or None,
                config=Config(
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=3,
                    read_timeout=20,
                    s3={"addressing_style": "path"},  # MinIO/Ceph without wildcard DNS
                ),
            )
        self.client = client

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, staging={self.root})"

    def describe(self) -> str:
        where = self.endpoint_url or "AWS"
        return f"S3 bucket {self.bucket!r} at {where} (staging {self.root})"

    def key(self, relative_path: str) -> str:
        """The object key of a stored relative path (checked like a local path)."""
        return self.prefix + self._check_relative(relative_path).as_posix()

    # -- writing --

    def commit(self, path: Path | str) -> str:
        rel = self.relative(path)
        local = self.root / rel
        if time.monotonic() < self._down_until:
            log.warning("bucket %s was unreachable: %s stays staged", self.bucket, rel)
            return rel
        try:
            self._upload(local, rel)
        except Exception as exc:  # an outage must not lose the answer: it stays staged
            self._down_until = time.monotonic() + self.retry_after_s
            log.error(
                "could not upload %s to bucket %s (%s); it stays in %s until "
                "`interviewer storage sync`",
                rel,
                self.bucket,
                exc,
                self.root,
            )
            return rel
        # media/ (camera chunks, thumbnails) stays staged: the upload route numbers and
        # meters an interview's chunks from that folder
        if not self.keep_local and PurePosixPath(rel).parts[1] != "media":
            local.unlink(missing_ok=True)
        return rel

    def _upload(self, local: Path, rel: str) -> None:
        self.client.upload_file(str(local), self.bucket, self.key(rel))

    def sync(self) -> int:
        """Upload every staged file the bucket lacks (or holds at another size); the count."""
        self._down_until = 0.0
        uploaded = 0
        for local in sorted(p for p in self.root.rglob("*") if p.is_file() and not p.is_symlink()):
            if local.name.startswith(".part-"):
                continue
            rel = self.relative(local)
            size = self._remote_size(rel)
            if size == local.stat().st_size:
                continue
            self._upload(local, rel)
            uploaded += 1
        return uploaded

    # -- reading --

    def exists(self, relative_path: str) -> bool:
        local = self._local_of(relative_path)
        return local.is_file() or self._remote_size(relative_path) is not None

    def open_for_read(self, relative_path: str | PurePosixPath) -> Path:
        """The staged file, downloaded first when only the bucket has it."""
        text = str(relative_path)
        local = self._local_of(text)
        if local.is_file():
            return super().open_for_read(text)
        from botocore.exceptions import ClientError

        local.parent.mkdir(parents=True, exist_ok=True)
        self._inside(local.parent)
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=local.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self.key(text), tmp)
        except ClientError as exc:
            Path(tmp).unlink(missing_ok=True)
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise FileNotFoundError(f"no recording {text!r} in bucket {self.bucket}") from exc
            raise
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        os.replace(tmp, local)
        return super().open_for_read(text)

    # -- deleting --

    def purge_interview(self, interview_id: int) -> bool:
        interview_id = _int_id("interview_id", interview_id, 1, _MAX_ID)
        found = super().purge_interview(interview_id)
        prefix = f"{self.prefix}{interview_id}/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                found = True
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
        return found

    def list_keys(self, interview_id: int) -> list[str]:
        """Relative paths of one interview's objects in the bucket (exports, checks)."""
        interview_id = _int_id("interview_id", interview_id, 1, _MAX_ID)
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{interview_id}/"):
            out += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        return sorted(out)

    # -- helpers --

    def _check_relative(self, text: str) -> PurePosixPath:
        if not text or "\x00" in text or "\\" in text:
            raise ValueError(f"not a recordings path: {text!r}")
        pure = PurePosixPath(text)
        if pure.is_absolute() or ".." in pure.parts or "." in pure.parts:
            raise ValueError(f"not a recordings path: {text!r}")
        return pure

    def _local_of(self, text: str) -> Path:
        pure = self._check_relative(text)
        return self._inside(self.root.joinpath(*pure.parts))

    def _remote_size(self, relative_path: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(relative_path))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return int(head["ContentLength"])

    def check(self) -> None:
        """Raise a one-line error when the bucket cannot be reached (start-up check)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageConfigError(
                f"cannot reach bucket {self.bucket!r} at {self.endpoint_url or 'AWS'} ({exc}): "
                "check INTERVIEWER_S3_ENDPOINT_URL, INTERVIEWER_S3_BUCKET and the keys, "
                "or set INTERVIEWER_STORAGE=local"
            ) from exc


def open_storage(settings: Settings) -> LocalStorage:
    """The backend the settings select (``INTERVIEWER_STORAGE``)."""
    if settings.storage == "s3":
        return S3Storage(
            settings.recordings_dir,
            bucket=settings.s3_bucket or "",
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=(
                settings.s3_secret_access_key.get_secret_value()
                if settings.s3_secret_access_key
                else None
            ),
            prefix=settings.s3_prefix,
            keep_local=settings.s3_keep_local,
        )
    return LocalStorage(settings.recordings_dir)
