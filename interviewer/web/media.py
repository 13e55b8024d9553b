"""Serving recordings: byte ranges over one file or over a recorder's chunks, never cached.

Browsers seek in <audio>/<video> with ``Range: bytes=a-b`` requests, so every media response
supports one range (a multi-range request gets the whole file, which RFC 9110 allows). A camera
recording is its MediaRecorder chunks concatenated; ranges are served across them without
joining the files on disk. Sizes are taken once per request, so a chunk that grows while an
interview is still running cannot make a response longer than its Content-Length.

The caller has already decided that the viewer may see these files and resolved them through
``Recordings`` from database ids; nothing here takes a path from a client.
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

NO_STORE = {
    "Cache-Control": "private, no-store, max-age=0",
    "Pragma": "no-cache",
    "Accept-Ranges": "bytes",
    "X-Content-Type-Options": "nosniff",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_BLOCK = 256 * 1024


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) inclusive for one satisfiable range; None to send everything; "416" when
    the range cannot be satisfied."""
    if not header:
        return None
    header = header.strip()
    if "," in header:
        return None  # several ranges: the whole representation is a valid answer
    match = _RANGE.match(header.replace(" ", ""))
    if not match or (not match.group(1) and not match.group(2)):
        return None  # not a byte range we understand: ignore it, as RFC 9110 allows
    first_text, last_text = match.groups()
    if not first_text:  # suffix: the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            return "416"
        return max(0, size - length), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return "416"
    return first, min(last, size - 1)


def _read(files: Sequence[tuple[Path, int]], first: int, last: int) -> Iterator[bytes]:
    """Bytes first..last (inclusive) of the concatenation of ``files`` at their given sizes."""
    position = 0
    remaining = last - first + 1
    for path, size in files:
        if remaining <= 0:
            break
        if position + size <= first:
            position += size
            continue
        start = max(0, first - position)
        with path.open("rb") as f:
            f.seek(start)
            left_here = min(size - start, remaining)
            while left_here > 0:
                block = f.read(min(_BLOCK, left_here))
                if not block:
                    # A file shrank under us: stop short rather than pad with invented bytes.
                    return
                left_here -= len(block)
                remaining -= len(block)
                yield block
        position += size


def attachment(
    body: str | bytes, media_type: str, filename: str, cache: dict[str, str] = NO_STORE
) -> Response:
    """A download (an export, a zip of personal data) that no cache keeps: ``cache`` headers."""
    return Response(
        body,
        media_type=media_type,
        headers={**cache, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


class _Cancelled(Exception):
    """The client went away: the writer thread stops at its next write."""


class _ChunkPipe:
    """A write-only, unseekable file whose bytes go, in blocks of ``_BLOCK``, to a bounded
    queue: the writer thread waits while the client is slow, so memory stays a few blocks."""

    def __init__(self, chunks: queue.Queue[Any], stop: threading.Event) -> None:
        self._chunks = chunks
        self._stop = stop
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= _BLOCK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Cancelled()


async def stream_written(write: Callable[[Any], Any], *, depth: int = 8) -> AsyncIterator[bytes]:
    """The bytes that blocking ``write(file)`` writes to ``file``, as they come: ``write`` runs
    in a thread (a zip of gigabytes of recordings is streamed, never built in memory)."""
    chunks: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()
    pipe = _ChunkPipe(chunks, stop)

    def produce() -> None:
        try:
            write(pipe)
            pipe.flush()
            pipe._put(done)
        except _Cancelled:
            pass
        except BaseException as err:  # handed to the response, which logs it and aborts
            if not stop.is_set():
                pipe._put(err)

    producer = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while True:
            item = await asyncio.to_thread(chunks.get)
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # a client that went away stops the writer at its next block
        await producer


def streamed_attachment(
    body: AsyncIterator[bytes], media_type: str, filename: str, cache: dict[str, str] = NO_STORE
) -> StreamingResponse:
    """Like :func:`attachment`, for a download written as it is sent."""
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={**cache, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def serve_files(
    request: Request, paths: Sequence[Path], media_type: str, *, filename: str | None = None
) -> Response:
    """A 200/206/416 response for ``paths`` concatenated, with no-store caching headers."""
    files = [(p, p.stat().st_size) for p in paths]
    size = sum(s for _, s in files)
    headers = dict(NO_STORE)
    if filename:
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    wanted = parse_range(request.headers.get("range"), size)
    if wanted == "416":
        headers["Content-Range"] = f"bytes */{size}"
        return JSONResponse(
            {"error": f"range not satisfiable: the recording has {size} bytes"},
            status_code=416,
            headers=headers,
        )
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            _read(files, 0, size - 1) if size else iter(()),
            media_type=media_type,
            headers=headers,
        )
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(
        _read(files, first, last), status_code=206, media_type=media_type, headers=headers
    )
