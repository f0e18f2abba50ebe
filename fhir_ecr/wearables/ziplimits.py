"""Limits on the zip archives a wearable import opens, so that a zip bomb is refused fast.

Two checks, because the central directory (where a zip lists each member's sizes) can lie:

1. **Before decompressing**, from the central directory: the members that will be read may hold at most
   ``max_bytes`` in total, and no member may claim more than ``max_ratio`` times its compressed size (above a
   1 MiB floor, so small, very regular files pass). 1 GB of zeros deflates to about 1 MB (a ratio of ~1000);
   real exports stay far below (Apple Health's ``export.xml`` deflates about 10-20 times).
2. **While streaming**: the archive is opened on a :class:`CountingFile` (which counts the compressed bytes
   really read) and each member through :class:`LimitedMember` (which counts the bytes that really come out);
   reading stops at the first chunk past the member's declared size, past the ratio of the bytes really read,
   or past the archive's total. (CPython's ``zipfile`` itself stops a member at its declared size, and a
   declared compressed size larger than the bytes present ends in EOF; these checks keep the limits true for
   any reader of the stream and any directory.)

Both raise :class:`ArchiveTooLarge` (a :class:`~mappings.errors.MalformedInputError` that names the file); the
upload route answers it with 413, ``mecr import wearable`` with exit status 1.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from mappings.errors import MalformedInputError

__all__ = [
    "ArchiveTooLarge",
    "CountingFile",
    "LimitedMember",
    "ZipLimits",
    "check_members",
    "open_archive",
    "open_member",
]

_RATIO_FLOOR = 1024 * 1024
# Bytes asked of zipfile at a time: it reads about as many compressed bytes as it is asked to produce, so small
# steps keep the ratio of the bytes really read meaningful (a reader asking for megabytes gets them in steps).
_STEP = 64 * 1024


class ArchiveTooLarge(MalformedInputError):
    """A zip archive that decompresses past the limits (a zip bomb, or an export larger than allowed)."""


@dataclass(frozen=True)
class ZipLimits:
    """``max_bytes``: total uncompressed bytes read from one archive; ``max_ratio``: largest uncompressed /
    compressed size of one member (members under 1 MiB uncompressed are not held to it)."""

    max_bytes: int = 8 * 1024**3
    max_ratio: int = 200

    def allowance(self, info: zipfile.ZipInfo) -> int:
        """The most bytes ``info`` may decompress to."""
        return max(_RATIO_FLOOR, self.max_ratio * max(info.compress_size, 1))


def check_members(members: Sequence[zipfile.ZipInfo], name: str, limits: ZipLimits) -> None:
    """Refuse (:class:`ArchiveTooLarge`) members whose declared sizes break ``limits``, before reading any."""
    total = sum(i.file_size for i in members)
    if total > limits.max_bytes:
        raise ArchiveTooLarge(
            f"the archive decompresses to {total:,} bytes; the limit is {limits.max_bytes:,}", file=name
        )
    for info in members:
        if info.file_size > limits.allowance(info):
            raise ArchiveTooLarge(
                f"{info.filename} is compressed {info.file_size // max(info.compress_size, 1):,} times (the limit is "
                f"{limits.max_ratio}): refused as a zip bomb",
                file=name,
            )


class CountingFile(io.RawIOBase):
    """A seekable binary file that counts the bytes read through it (the archive's compressed bytes)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.read_bytes = 0
        self.unzipped = 0  # bytes decompressed from the archive so far, across its members

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size)
        self.read_bytes += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_archive(stream: IO[bytes], name: str) -> tuple[zipfile.ZipFile, CountingFile]:
    """The zip archive in ``stream`` (seekable), opened on a :class:`CountingFile`."""
    counted = CountingFile(stream)
    try:
        return zipfile.ZipFile(counted), counted
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MalformedInputError(f"not a readable zip archive ({exc})", file=name) from exc


class LimitedMember(io.RawIOBase):
    """A member of an archive, read with the limits counted on the bytes that really go in and come out."""

    def __init__(
        self, raw: IO[bytes], info: zipfile.ZipInfo, label: str, limits: ZipLimits, counted: CountingFile
    ) -> None:
        self._raw = raw
        self._declared = info.file_size
        self._label = label
        self._limits = limits
        self._counted = counted
        self._start = counted.read_bytes  # compressed bytes read before this member
        self._seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._raw.read(min(len(buffer), _STEP))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise MalformedInputError(
                f"the zip archive is truncated or corrupt ({exc})", file=self._label
            ) from exc
        n = len(data)
        buffer[:n] = data
        self._seen += n
        self._counted.unzipped += n
        if self._seen > self._declared:
            raise ArchiveTooLarge(
                f"the member decompresses to more than the {self._declared:,} bytes its directory "
                "entry declares: refused as a zip bomb",
                file=self._label,
            )
        compressed = max(self._counted.read_bytes - self._start, 1)
        if self._seen > _RATIO_FLOOR and self._seen > self._limits.max_ratio * compressed:
            raise ArchiveTooLarge(
                f"the member decompresses more than {self._limits.max_ratio} times its compressed "
                "size: refused as a zip bomb",
                file=self._label,
            )
        if self._counted.unzipped > self._limits.max_bytes:
            raise ArchiveTooLarge(
                f"the archive decompresses to more than {self._limits.max_bytes:,} bytes", file=self._label
            )
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_member(
    archive: zipfile.ZipFile, counted: CountingFile, info: zipfile.ZipInfo, label: str, limits: ZipLimits
) -> IO[bytes]:
    """``info``'s bytes as a buffered stream that stops with :class:`ArchiveTooLarge` past the limits
    (``archive`` and ``counted`` from :func:`open_archive`)."""
    try:
        raw = archive.open(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise MalformedInputError(f"the zip archive member cannot be opened ({exc})", file=label) from exc
    return io.BufferedReader(LimitedMember(raw, info, label, limits, counted), buffer_size=_STEP)
