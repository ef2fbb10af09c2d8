"""Image files for the clients: list a folder, read and check each file with the ingestion gate, predict the
usable ones in batches (retrying a rejected batch one by one so only the bad files fail), keep input order.

The check is `components.example_gen.images.prepare_image`, the same gate ingestion quarantines with, so a file
`visionline predict` refuses would also have been refused as training data; and what it sends is what ingestion
would have stored: an EXIF-oriented image turned upright, a TIFF or WebP transcoded to PNG (both as PNG). A file
of a folder whose real path leaves the folder (a symlink out of it) is refused without being opened, and so is
anything listed that is not a regular file (a symlinked folder, which is not followed; a FIFO, socket or device; a
broken symlink): each gets a row with its reason, none is skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from components.example_gen.images import MAX_IMAGE_PIXELS, Quarantined, prepare_image
from serving.clients.predictors import Predictor
from serving.clients.results import FileResult, PredictionError

DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS  # checked before sending, as at ingestion


OUTSIDE_FOLDER = "symlink points outside the folder (not followed)"
LINKED_FOLDER = "a folder, not an image file (symlinked folders are not followed)"
T = TypeVar("T")
NOT_A_FILE = "not a regular file (a FIFO, socket, device or broken symlink): not opened"


def read_and_check(path: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                   folder: str | None = None) -> tuple[bytes | None, str, str]:
    """(bytes to send, "", "") for a usable image, else (None, stage, reason) — the ingestion gate's verdict.

    With `folder`, a path whose real location is outside it is refused before it is opened."""
    if folder is not None and not inside(path, folder):
        return None, "read", OUTSIDE_FOLDER
    if os.path.isdir(path):
        return None, "read", LINKED_FOLDER
    if not os.path.isfile(path):  # opening a FIFO would block
        return None, "read", NOT_A_FILE
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return None, "read", f"cannot read file: {err.strerror or err}"
    try:
        return prepare_image(data, max_pixels).data, "", ""
    except Quarantined as err:
        return None, "validate", err.reason


def inside(path: str, folder: str) -> bool:
    """True when the real path of `path` (symlinks resolved) is `folder`'s real path or below it."""
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def call_with_fallback(call: Callable[[list[bytes]], Sequence[T]], items: Sequence[tuple[str, bytes]],
                       ) -> Iterator[tuple[str, T | None, str]]:
    """(path, result, "") per item from one `call` on the whole batch; if the service rejects the batch
    (`PredictionError`), retried one by one so only the bad inputs fail: (path, None, reason) for those."""
    try:
        results = call([data for _path, data in items])
    except PredictionError as err:
        if len(items) == 1:
            yield items[0][0], None, err.reason
            return
        for item in items:
            yield from call_with_fallback(call, [item])
        return
    for (path, _data), result in zip(items, results, strict=True):
        yield path, result, ""


def predict_with_fallback(predictor: Predictor, items: Sequence[tuple[str, bytes]]) -> Iterator[FileResult]:
    """Predict a batch; if the service rejects it, retry one by one so only the bad inputs fail."""
    for path, prediction, reason in call_with_fallback(predictor.predict, items):
        yield FileResult(path, prediction) if prediction is not None else \
            FileResult(path, stage="predict", reason=reason)


def read_files(paths: Iterable[str], max_pixels: int = DEFAULT_MAX_PIXELS,
               ) -> tuple[dict[str, FileResult], list[tuple[str, bytes]]]:
    """Each file read and checked once (`read_and_check`): the refused ones' results by path, and (path, bytes to
    send) of the usable ones, in input order."""
    refused: dict[str, FileResult] = {}
    usable: list[tuple[str, bytes]] = []
    for path in paths:
        data, stage, reason = read_and_check(path, max_pixels)
        if data is None:
            refused[path] = FileResult(path, stage=stage, reason=reason)
        else:
            usable.append((path, data))
    return refused, usable


def predict_read(paths: Sequence[str], refused: dict[str, FileResult], usable: Sequence[tuple[str, bytes]],
                 predictor: Predictor, batch_size: int = 32) -> list[FileResult]:
    """Predict the usable files of `read_files` in batches; every path's result, in the order of `paths`."""
    results = dict(refused)
    for start in range(0, len(usable), batch_size):
        for result in predict_with_fallback(predictor, usable[start:start + batch_size]):
            results[result.path] = result
    return [results[path] for path in paths]


def predict_files(paths: Iterable[str], predictor: Predictor, max_pixels: int = DEFAULT_MAX_PIXELS,
                  batch_size: int = 32) -> list[FileResult]:
    """Validate and predict files, in input order."""
    ordered = list(paths)
    return predict_read(ordered, *read_files(ordered, max_pixels), predictor, batch_size)


def list_files(folder: str, exclude: Iterable[str] = ()) -> list[str]:
    """Every entry below `folder` that is not a folder walked into (recursively, sorted), as paths relative to it:
    files, and also symlinks to folders (not followed) and other non-regular entries, which `read_and_check`
    then refuses with their reason."""
    excluded = {os.path.realpath(p) for p in exclude}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        linked = [name for name in dirs if os.path.islink(os.path.join(root, name))]  # os.walk does not enter them
        for name in [*files, *linked]:
            path = os.path.join(root, name)
            if os.path.realpath(path) in excluded:
                continue
            found.append(os.path.relpath(path, folder).replace(os.sep, "/"))
    return sorted(found)
