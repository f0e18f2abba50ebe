"""Reading the file: progress counting, its SHA-256, and a large Apple Health ``export.xml`` in two processes.

A large plain ``export.xml`` has its second half parsed by a forked process (:class:`SplitExport`), replayed in
the importer in file order, so de-duplication, totals, batches and resume see the sequence of a one-process read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import IO, Any, Final

from mappings.errors import MalformedInputError, MappingError, SkipLog, UnsupportedInputError
from mappings.wearables.apple_health import ExportPart, read_apple_health, split_export

from .formats import ReaderOptions

__all__ = ["Counting", "SplitExport", "file_sha256"]


class Counting(io.RawIOBase):
    """A read-only file wrapper that reports bytes read (the progress bar) and passes seeks through."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Tail(io.RawIOBase):
    """Reads a file at a position of its own (``pread``): the second process writes the same open file, whose
    offset the two processes share, while this one reads what it has written so far."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence not in (os.SEEK_SET, os.SEEK_CUR):
            raise io.UnsupportedOperation("only from the start or the current position")
        self._pos = offset if whence == os.SEEK_SET else self._pos + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = os.pread(self._fd, len(buffer), self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def file_sha256(stream: IO[bytes]) -> str:
    """SHA-256 of a seekable stream (left at offset 0)."""
    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


_PARALLEL_MIN: Final = 48 * 1024 * 1024  # bytes: below, a second process costs more than it saves


class SplitExport:
    """An Apple Health ``export.xml`` read in two processes (``docs/wearables.md``).

    :func:`~mappings.wearables.apple_health.split_export` cuts the file near its middle. A forked process reads
    the second part and writes what it yields (readings, light records, the reader's skipped records, in order)
    to an anonymous temporary file, while this process reads the first part as usual. Then the second part's
    items are replayed here, in file order, through the same loop: de-duplication, daily totals, batches,
    resume and error reporting see exactly the sequence of a one-process read. When the first part's reader
    does not stop cleanly at the cut, it reads the whole file and the second process's work is discarded.

    Used only where forking is safe and useful: a plain file on disk (not a zip, not an upload stream) of at
    least 48 MB, without ``--samples``, in a process with a single thread (the CLI, the benchmark).
    """

    def __init__(
        self, path: str, name: str, options: ReaderOptions, first: ExportPart, second: ExportPart, size: int
    ) -> None:
        import multiprocessing
        import tempfile

        self.name = name
        self.options = options
        self.first = first
        self.second = second
        self.size = size
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), after the import loop
        # the second process says how far the output holds whole messages (8-byte offsets; it closes its end
        # when it is done): the items are replayed while it is still reading
        self.ready, notify = os.pipe()
        context = multiprocessing.get_context("fork")
        self.process = context.Process(
            target=_read_second_part,
            args=(path, name, options, second, self.out.fileno(), notify),
            daemon=True,
        )
        try:
            self.process.start()
        except BaseException:
            os.close(self.ready)
            raise
        finally:
            os.close(notify)

    @classmethod
    def plan(cls, stream: IO[bytes], fmt: str, name: str, options: ReaderOptions) -> SplitExport | None:
        path = getattr(stream, "name", None)
        if fmt != "apple-health" or not isinstance(path, str) or not os.path.isfile(path):
            return None
        if not _can_fork():
            return None
        size = os.path.getsize(path)
        if size < _PARALLEL_MIN:
            return None
        parts = split_export(stream, size)
        stream.seek(0)
        return None if parts is None else cls(path, name, options, *parts, size)

    def readings(
        self, stream: IO[bytes], problems: SkipLog, progress: Callable[[int], None] | None
    ) -> Iterator[Any]:
        """The first part's items as they are read, then the second part's."""
        o = self.options
        yield from read_apple_health(
            stream,
            file=self.name,
            errors=problems,
            summary_tz=o.tz,
            light=o.light,
            counted=o.counted,
            part=self.first,
        )
        if not self.first.complete:  # read to the end: the second part is in already
            return
        shift = self.first.lines  # the second process numbered its lines from the cut
        reader = io.BufferedReader(_Tail(self.out.fileno()), 1 << 20)
        with reader:
            for message in self._messages(reader):
                if isinstance(message, list):
                    for item in message:
                        if item.__class__ is _Skipped:
                            item.replay(problems, shift)
                        elif item.__class__ is not tuple and item.location:
                            head, _, line = item.location.rpartition(":")
                            yield replace(item, location=f"{head}:{int(line) + shift}")
                        else:
                            yield item
                    continue
                kind, *rest = message
                if kind == "end":
                    for metric, n in rest[0].items():
                        o.counted[metric] += n  # type: ignore[index]
                    if progress is not None:
                        progress(self.size - self.second.start)
                    return
                if kind == "error":
                    raise (MalformedInputError if rest[0] == "malformed" else UnsupportedInputError)(
                        rest[1],
                        file=rest[2],
                        line=None if rest[3] is None else rest[3] + shift,
                        record=rest[4],
                    )
                raise RuntimeError(f"the second process reading {self.name} failed: {rest[0]}")
        raise RuntimeError(
            f"the second process reading {self.name} ended without a result (exit code {self.process.exitcode})"
        )

    def _messages(self, reader: io.BufferedIOBase) -> Iterator[Any]:
        """The second process's messages as it writes them: each one once its offset has been announced, the
        rest when it has ended (a message cut short by its end is not read)."""
        whole = 0  # the output holds whole messages up to here
        pending = b""
        while True:
            chunk = os.read(self.ready, 1 << 16)  # waits for the next announcement, or the end
            if chunk:
                pending += chunk
                usable = len(pending) - len(pending) % 8
                if usable:
                    whole = max(whole, *struct.unpack(f"<{usable // 8}Q", pending[:usable]))
                    pending = pending[usable:]
            else:
                self.process.join()
                whole = os.fstat(self.out.fileno()).st_size
            while reader.tell() < whole:
                try:
                    yield pickle.load(reader)
                except (EOFError, pickle.UnpicklingError):
                    return
            if not chunk:
                return

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        os.close(self.ready)
        self.out.close()


def _can_fork() -> bool:
    """Forking is safe here: the platform has it and this process runs one thread (a forked child would not
    hold the other threads' locks)."""
    import multiprocessing
    import threading

    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


@dataclass(frozen=True)
class _Skipped:
    """A record the second part's reader skipped (its SkipLog call), replayed in order into the import's."""

    kind: str  # "add" or "ignore"
    reason: str
    malformed: bool = True
    file: str | None = None
    line: int | None = None
    record: str | None = None

    def replay(self, log: SkipLog, shift: int) -> None:
        if self.kind == "ignore":
            log.ignore(self.reason)
            return
        error = (MalformedInputError if self.malformed else UnsupportedInputError)(
            self.reason,
            file=self.file,
            line=None if self.line is None else self.line + shift,
            record=self.record,
        )
        log.add(error)


class _Recording(SkipLog):
    """The second process's skip log: each call becomes a :class:`_Skipped` item in the output, in order."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__()
        self.items = items

    def add(self, error: MappingError) -> None:
        self.items.append(
            _Skipped(
                "add",
                error.reason,
                not isinstance(error, UnsupportedInputError),
                error.file,
                error.line,
                error.record,
            )
        )

    def ignore(self, reason: str) -> None:
        self.items.append(_Skipped("ignore", reason))


def _read_second_part(
    path: str, name: str, options: ReaderOptions, part: ExportPart, fd: int, notify: int
) -> None:
    """The second process: read ``part`` and pickle its items in batches to ``fd``, then a closing message;
    after each message, announce on ``notify`` the offset up to which the output holds whole messages."""
    out = io.BufferedWriter(io.FileIO(os.dup(fd), "wb"), 1 << 20)
    # never wait for the reader: an announcement that does not fit is dropped, a later one supersedes it, and
    # the end of the process (this end closed) says that everything is written
    os.set_blocking(notify, False)

    def send(message: Any) -> None:
        pickle.dump(message, out, pickle.HIGHEST_PROTOCOL)
        out.flush()
        with contextlib.suppress(BlockingIOError):
            os.write(notify, struct.pack("<Q", out.tell()))

    counted = dict.fromkeys(options.counted or {}, 0)
    items: list[Any] = []
    try:
        with open(path, "rb") as stream:
            for item in read_apple_health(
                stream,
                file=name,
                errors=_Recording(items),
                summary_tz=options.tz,
                light=options.light,
                counted=counted,
                part=part,
            ):
                items.append(item)
                if len(items) >= 2000:
                    send(items)
                    items.clear()
        send(items)
        send(("end", counted))
    except MappingError as exc:
        send(items)
        kind = "unsupported" if isinstance(exc, UnsupportedInputError) else "malformed"
        send(("error", kind, exc.reason, exc.file, exc.line, exc.record))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()
        os.close(notify)
