"""Bad and unusual inputs, each a real file made with Pillow/numpy: ingested (and then decoded by the Transform's
own `components.transform.preprocessing.decode_and_resize`) or quarantined with a specific reason; data roots that
cannot train a classifier fail with an error naming the class.

One real ImageExampleGen run (Beam) over a pre-split `train/` + `test/` tree that holds every case is shared by
the tests of this module; the accounting invariant (files seen = ingested + quarantined, per split and per class)
is checked against what the fixture wrote, what the TFRecords hold and what the quarantine report lists.
"""

from __future__ import annotations

import io
import os
import struct
import types
import zlib
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import features
from components.example_gen import accounting, sources
from components.transform.preprocessing import decode_and_resize
from tests.components.test_example_gen import _records, _report, _run, _summary, _write
from tests.image_files import asymmetric, gif_with_frames, oriented_jpeg, upright_pixels

SIZE = 16  # test images are SIZE x SIZE, so decode_and_resize(…, SIZE) keeps every pixel


def _save(image: Image.Image, fmt: str, **save_args: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` (a decompression bomb's calling card); tiny pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _png16_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = pixels.shape
    raw = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _pillow_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def _decoded(data: bytes) -> np.ndarray:
    """The Transform's decode path on ingested bytes: float32 [SIZE, SIZE, 3] in [0, 255]."""
    return decode_and_resize(tf.constant([data]), SIZE).numpy()[0]


# What each special file should expect: ("ingested", check(pixels) or None) or ("quarantined", reason).
# 16-bit gray: high byte i, low byte 255 - i, so scaling (≈ i) differs from keeping the low byte (255 - i)
GRAY16 = np.array([i * 256 + 255 - i for i in range(SIZE * SIZE)], dtype=np.uint16).reshape(SIZE, SIZE)
RGB16 = np.stack([GRAY16, GRAY16[::-1], GRAY16.T], -1)
PROGRESSIVE = _save(Image.fromarray(_rgb(14)), "JPEG", quality=95, progressive=True)
GRAY_JPEG = _save(Image.fromarray(_rgb(15)[..., 0]), "JPEG", quality=95)
PALETTE = Image.fromarray(_rgb(3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
RED, GREEN = (255, 0, 0), (0, 255, 0)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (SIZE, SIZE), colour) for colour in (RED, GREEN)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _cmyk_jpeg() -> tuple[bytes, np.ndarray, np.ndarray]:
    """A smooth RGB gradient saved as a CMYK JPEG; with the original RGB and Pillow's RGB reading of the file."""
    ramp = np.linspace(0, 255, SIZE)
    rgb = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.full((SIZE, SIZE), 128.0)), -1)
    rgb = rgb.astype(np.uint8)
    data = _save(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as image:
        return data, rgb.astype(np.float32), np.asarray(image.convert("RGB"), dtype=np.float32)


def _check_cmyk(pixels: np.ndarray) -> None:
    # libjpeg builds differ by a few levels (IDCT, upsampling); inverted or swapped channels would be off by ~100
    assert np.abs(pixels - CMYK_AS_RGB).mean() < 2.0 and np.abs(pixels - CMYK_AS_RGB).max() <= 12
    assert np.abs(pixels - CMYK_RGB).mean() < 6.0


CMYK, CMYK_RGB, CMYK_AS_RGB = _cmyk_jpeg()
ASYMMETRIC = asymmetric(SIZE, SIZE)  # square, so the upright image keeps SIZE x SIZE
# stored as PNG instead of their original bytes, with what the converted report says
CONVERTED = {"scan.tiff": ("transcode", "TIFF transcoded to PNG"),
             "scan-16bit.tiff": ("transcode", "TIFF transcoded to PNG"),
             "photo.webp": ("transcode", "WEBP transcoded to PNG"),
             "rotated-6.jpg": ("orientation", "EXIF orientation 6 applied, re-encoded as PNG"),
             "rotated-8.jpg": ("orientation", "EXIF orientation 8 applied, re-encoded as PNG")}
# hidden/system files a Mac, Windows or a copy tool leaves: skipped, listed apart, never in the accounting
HIDDEN = {"train/cat/.DS_Store": b"\0\0\0\x01Bud1", "train/cat/._0.png": b"\0\x05\x16\x07AppleDouble",
          "train/dog/Thumbs.db": b"\xd0\xcf\x11\xe0", "train/desktop.ini": b"[.ShellClassInfo]\r\n",
          "test/dog/.hidden.png": b"not even a PNG"}
TRUNCATED = _save(Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
SPECIAL = {  # train/cat/<name>: bytes (made when the fixture runs), expected
    "zero.jpg": (lambda: b"", ("quarantined", "empty file (0 bytes)")),
    "truncated.jpg": (lambda: TRUNCATED[: len(TRUNCATED) // 2],  # header intact, scan data cut
                      ("quarantined", "corrupt or truncated image (TensorFlow cannot decode it")),
    "notes.jpg": (lambda: b"shopping list: milk, eggs\n", ("quarantined", "not an image (format not recognised)")),
    "gray16.png": (lambda: _save(Image.fromarray(GRAY16), "PNG"),
                   ("ingested", lambda px: np.testing.assert_allclose(px, np.repeat(GRAY16[..., None] / 257.0, 3, -1),
                                                                      atol=1.0))),
    "cmyk.jpg": (lambda: CMYK, ("ingested", _check_cmyk)),
    "gray.png": (lambda: _save(Image.fromarray(_rgb(6)[..., 0]), "PNG"),
                 ("ingested", lambda px: np.testing.assert_allclose(px, np.repeat(_rgb(6)[..., :1], 3, -1)))),
    "rgba.png": (lambda: _save(Image.fromarray(np.dstack([_rgb(7), np.full((SIZE, SIZE), 40, np.uint8)])), "PNG"),
                 ("ingested", lambda px: np.testing.assert_allclose(px, _rgb(7)))),  # alpha dropped
    "palette.png": (lambda: _save(PALETTE, "PNG"),
                    ("ingested", lambda px: np.testing.assert_allclose(px, np.asarray(PALETTE.convert("RGB"))))),
    "palette-transparent.png": (lambda: _save(PALETTE, "PNG", transparency=0),  # colour 0 transparent: still its colour
                                ("ingested",
                                 lambda px: np.testing.assert_allclose(px, np.asarray(PALETTE.convert("RGB"))))),
    "rgb16.png": (lambda: _png16_rgb(RGB16),
                  ("ingested", lambda px: np.testing.assert_allclose(px, RGB16 / 257.0, atol=1.0))),
    "gray-alpha.png": (lambda: _save(Image.fromarray(_rgb(16)[..., 0]).convert("LA"), "PNG"),
                       ("ingested", lambda px: np.testing.assert_allclose(px, np.repeat(_rgb(16)[..., :1], 3, -1)))),
    "one-bit.png": (lambda: _save(Image.fromarray(_rgb(17)).convert("1"), "PNG"),
                    ("ingested", lambda px: np.testing.assert_allclose(
                        px, _pillow_rgb(_save(Image.fromarray(_rgb(17)).convert("1"), "PNG"))))),
    "progressive.jpg": (lambda: PROGRESSIVE,  # libjpeg builds may differ by a level or two
                        ("ingested", lambda px: np.testing.assert_allclose(px, _pillow_rgb(PROGRESSIVE), atol=8))),
    "gray.jpg": (lambda: GRAY_JPEG,
                 ("ingested", lambda px: np.testing.assert_allclose(px, _pillow_rgb(GRAY_JPEG), atol=8))),
    "scan.tiff": (lambda: _save(Image.fromarray(_rgb(18)), "TIFF"),  # transcoded to PNG (data.transcode)
                  ("ingested", lambda px: np.testing.assert_allclose(px, _rgb(18)))),
    "scan-16bit.tiff": (lambda: _save(Image.fromarray(GRAY16), "TIFF"),
                        ("ingested", lambda px: np.testing.assert_allclose(
                            px, np.repeat(GRAY16[..., None] / 257.0, 3, -1), atol=1.0))),
    "pages.tiff": (lambda: _save(Image.fromarray(_rgb(21)), "TIFF", save_all=True,
                                 append_images=[Image.fromarray(_rgb(22))]),
                   ("quarantined", "multi-page TIFF (2 pages/frames) is not transcoded")),
    "phone.heic": (lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(200),
                   ("quarantined", "HEIC/HEIF image: Pillow needs the pillow-heif plugin to read it, which is not "
                                   "installed; convert it to JPEG or PNG first")),
    "rotated-6.jpg": (lambda: oriented_jpeg(ASYMMETRIC, 6),  # a phone photo held upright: stored upright as PNG
                      ("ingested", lambda px: np.testing.assert_array_equal(
                          px, upright_pixels(oriented_jpeg(ASYMMETRIC, 6))))),
    "rotated-8.jpg": (lambda: oriented_jpeg(ASYMMETRIC, 8),
                      ("ingested", lambda px: np.testing.assert_array_equal(
                          px, upright_pixels(oriented_jpeg(ASYMMETRIC, 8))))),
    "pixel.png": (lambda: _save(Image.new("RGB", (1, 1), RED), "PNG"),
                  ("quarantined", "image too small: 1x1 px (under data.min_image_side=8 px on a side)")),
    "strip.png": (lambda: _save(Image.new("RGB", (300, 4), RED), "PNG"),
                  ("quarantined", "image too small: 300x4 px (under data.min_image_side=8 px on a side)")),
    "big-frame.gif": (lambda: gif_with_frames((SIZE, SIZE), [(SIZE, SIZE), (7000, 6000)]),  # ~40 KB, 42 Mpx frame 2
                      ("quarantined", "image too large: GIF frame 2 of 2 is 7000x6000 px (logical screen 16x16); "
                                      "TensorFlow decodes every frame onto a 7000x6000 px canvas, which exceeds "
                                      "max_image_pixels=40000000")),
    "many-frames.gif": (lambda: gif_with_frames((1000, 1000), [(1000, 1000)] * 41),
                        ("quarantined", "image too large: 41 GIF frames decode to 41000000 px in all (TensorFlow "
                                        "decodes every frame), which exceeds max_image_pixels=40000000")),
    "no-end-chunk.png": (lambda: _save(Image.fromarray(_rgb(19)), "PNG")[:-12],
                         ("quarantined", "not decodable by TensorFlow although Pillow reads it (PNG, mode RGB")),
    "animated.gif": (_animated_gif, ("ingested", lambda px: np.testing.assert_allclose(px, np.full_like(px, RED)))),
    "image.bmp": (lambda: _save(Image.fromarray(_rgb(8)), "BMP"),
                  ("ingested", lambda px: np.testing.assert_allclose(px, _rgb(8)))),
    "palette.bmp": (lambda: _save(PALETTE, "BMP"), ("quarantined", "palette BMP (indexed colour) is not supported")),
    "one-bit.bmp": (lambda: _save(Image.fromarray(_rgb(9)).convert("1"), "BMP"),
                    ("quarantined", "1-bit BMP is not supported by TensorFlow's BMP decoder")),
    "photo.webp": (lambda: _save(Image.fromarray(_rgb(10)), "WEBP", lossless=True),  # transcoded to PNG
                   ("ingested", lambda px: np.testing.assert_allclose(px, _rgb(10)))),
    "huge.png": (lambda: _save(Image.new("1", (6500, 6500)), "PNG"),  # a real, valid 42 Mpx PNG of ~30 kB
                 ("quarantined", "image too large: 6500x6500 px exceeds max_image_pixels=40000000")),
    "bomb.png": (lambda: _png_header_only(20_000, 20_000),
                 ("quarantined", "image too large (Pillow decompression-bomb guard")),
}


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """A pre-split tree with every case → (examples artifact, {relative path: expected}, files written per
    (split, class), {relative path: bytes written})."""
    base = tmp_path_factory.mktemp("bad-inputs")
    root = base / "data"
    expected: dict[str, tuple] = {}
    seen: Counter = Counter()
    written: dict[str, bytes] = {}

    def add(relative: str, data: bytes, outcome: tuple, label: str | None = None) -> None:
        _write(root / relative, data)
        written[relative] = data
        expected[relative] = outcome
        split = "train" if relative.startswith("train/") else "eval"
        seen[(split, label if label is not None else relative.split("/")[1])] += 1

    seed = 100
    for split, count in (("train", 4), ("test", 2)):
        for label, fmt in (("cat", "PNG"), ("dog", "JPEG"), ("chat noir ü", "PNG")):
            for i in range(count):
                seed += 1
                name = f"naïve café {i}.png" if label == "chat noir ü" else f"{i}.{fmt.lower()}"
                add(f"{split}/{label}/{name}", _save(Image.fromarray(_rgb(seed)), fmt), ("ingested", None))
    for name, (make, outcome) in SPECIAL.items():
        add(f"train/cat/{name}", make(), outcome)
    # within-split duplicate (counted, kept) and train/eval leakage (eval copy removed)
    add("train/dog/copy of 0.jpg", (root / "train/dog/0.jpeg").read_bytes(), ("ingested", None))
    add("train/cat/same as dog 2.jpeg", (root / "train/dog/2.jpeg").read_bytes(), ("ingested", None))  # 2 labels
    add("test/dog/leaked.jpeg", (root / "train/dog/1.jpeg").read_bytes(),
        ("quarantined", "duplicate of train image train/dog/1.jpeg (train/eval leakage)"))
    # a class with training images only, and one with evaluation images only
    add("train/hamster/0.png", _save(Image.fromarray(_rgb(20)), "PNG"), ("ingested", None))
    add("test/bird/0.png", _save(Image.fromarray(_rgb(11)), "PNG"),
        ("quarantined", "class 'bird' has no training images"))
    # symlinks leaving the data root: a file, and a whole class folder
    outside = base / "outside"
    _write(outside / "elsewhere.png", _save(Image.fromarray(_rgb(12)), "PNG"))
    _write(outside / "cats" / "a.png", _save(Image.fromarray(_rgb(13)), "PNG"))
    os.symlink(outside / "elsewhere.png", root / "train/cat/escape.png")
    expected["train/cat/escape.png"] = ("quarantined", "symlink points outside the data root (not followed)")
    seen[("train", "cat")] += 1
    os.symlink(outside / "cats", root / "train/linked class")
    expected["train/linked class/a.png"] = ("quarantined", "symlink points outside the data root (not followed)")
    seen[("train", "linked class")] += 1
    # an empty class folder, a nested folder, a stray file outside any class folder
    (root / "train" / "empty class").mkdir()
    (root / "train" / "cat" / "nested").mkdir()
    expected["train/cat/nested"] = ("quarantined", "nested folder: only <class>/<file> is scanned")
    seen[("train", "cat")] += 1
    add("train/README.txt", b"photos from the shelter", ("quarantined", "not inside a class folder (no label)"),
        label=sources.NO_LABEL)
    for relative, data in HIDDEN.items():  # not added to `expected` / `seen`: they are not inputs
        _write(root / relative, data)

    examples = _run(root, base)
    return examples, expected, seen, written


def _ingested(examples) -> dict[str, tuple[str, str, bytes]]:
    """relative path → (split, label, encoded bytes) of every example written."""
    out = {}
    for split in ("train", "eval"):
        for example in _records(examples, split):
            feature = example.features.feature
            path = feature[features.PATH].bytes_list.value[0].decode()
            label = feature[features.LABEL].bytes_list.value[0].decode()
            out[path] = (split, label, feature[features.IMAGE].bytes_list.value[0])
    return out


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_each_special_file_is_ingested_and_decodes_or_is_quarantined_with_its_reason(messy, name):
    examples, _, _, written = messy
    kind, detail = SPECIAL[name][1]
    path = f"train/cat/{name}"
    reasons = {row["path"]: row["reason"] for row in _report(examples)}
    ingested = _ingested(examples)
    if kind == "quarantined":
        assert path not in ingested
        assert reasons[path].startswith(detail), reasons[path]
    else:
        assert path not in reasons
        split, label, data = ingested[path]
        assert (split, label) == ("train", "cat")
        if name in CONVERTED:  # re-encoded as PNG, and listed as such
            assert data.startswith(b"\x89PNG\r\n") and data != written[path]
            rows = {row["path"]: row for row in _report(examples, accounting.CONVERTED_REPORT)}
            assert (rows[path]["kind"], rows[path]["note"], rows[path]["split"], rows[path]["label"]) == (
                *CONVERTED[name], "train", "cat")
        else:
            assert data == written[path]  # original bytes
        pixels = _decoded(data)
        assert pixels.shape == (SIZE, SIZE, 3)
        detail(pixels)


def test_every_file_has_its_expected_outcome(messy):
    examples, expected, _, _ = messy
    reasons = {row["path"]: row["reason"] for row in _report(examples)}
    ingested = _ingested(examples)
    assert set(reasons) | set(ingested) == set(expected)  # nothing lost, nothing invented
    assert not set(reasons) & set(ingested)
    for path, (kind, detail) in expected.items():
        if kind == "ingested":
            assert path in ingested, (path, reasons.get(path))
        else:
            assert reasons.get(path, "").startswith(detail), (path, reasons.get(path))


def test_converted_images_are_counted_and_listed(messy):
    examples, _, _, _ = messy
    summary = _summary(examples)
    assert summary["converted"]["count"] == len(CONVERTED)
    assert summary["converted"]["by_kind"] == {"transcode": 3, "orientation": 2}
    assert sorted(row["path"] for row in _report(examples, accounting.CONVERTED_REPORT)) == sorted(
        f"train/cat/{name}" for name in CONVERTED)
    assert "5 image(s) stored re-encoded as PNG (orientation: 2, transcode: 3); see converted_report.csv" in \
        summary["warnings"]


def test_hidden_and_system_files_are_skipped_and_listed_not_quarantined(messy):
    examples, _, _, _ = messy
    summary = _summary(examples)
    assert summary["skipped"]["count"] == len(HIDDEN)
    assert {row["path"]: (row["split"], row["reason"]) for row in summary["skipped"]["files"]} == {
        path: ("train" if path.startswith("train/") else "eval", "hidden/system file, skipped") for path in HIDDEN}
    reported = {row["path"] for row in _report(examples)}
    assert not reported & set(HIDDEN)  # not errors
    assert "hidden" not in " ".join(summary["quarantined_by_reason"])
    first = summary["skipped"]["files"][0]["path"]  # said once on the console (run, last-run print the warnings)
    assert (f"{len(HIDDEN)} hidden/system file(s) skipped (e.g. {first}); listed under 'skipped' in "
            "ingest_summary.json") in summary["warnings"]


def test_unicode_and_spaces_in_names_survive(messy):
    examples, _, _, _ = messy
    ingested = _ingested(examples)
    assert ingested["train/chat noir ü/naïve café 0.png"][1] == "chat noir ü"
    assert ingested["test/chat noir ü/naïve café 1.png"][:2] == ("eval", "chat noir ü")
    assert _decoded(ingested["train/chat noir ü/naïve café 0.png"][2]).shape == (SIZE, SIZE, 3)


def test_empty_class_folder_and_unusable_classes_are_warnings(messy):
    examples, _, _, _ = messy
    warnings = _summary(examples)["warnings"]
    assert "empty class folder 'train/empty class': class 'empty class' gets no images from it" in warnings
    assert "class 'linked class' has no images in split 'train' (all 1 file(s) quarantined)" in warnings
    assert "class 'hamster' has no images in split 'eval' (not evaluated)" in warnings


def test_duplicates_within_a_split_and_label_conflicts_are_counted_and_leakage_is_reported(messy):
    examples, _, _, _ = messy
    summary = _summary(examples)
    assert summary["duplicates"]["within_split_extra_copies"] == {"train": 2, "eval": 0}
    assert summary["duplicates"]["label_conflicts"] == 1
    assert summary["duplicates"]["label_conflict_examples"] == [["train/cat/same as dog 2.jpeg", "train/dog/2.jpeg"]]
    assert any(w.startswith("1 set(s) of byte-identical images carry different labels") for w in summary["warnings"])
    assert summary["leakage"]["eval_files_duplicating_train"] == summary["leakage"]["removed"] == 1
    assert [(r["eval_path"], r["train_path"]) for r in _report(examples, "leakage_report.csv")] == [
        ("test/dog/leaked.jpeg", "train/dog/1.jpeg")]


def test_accounting_invariant_per_split_and_class(messy):
    examples, expected, seen, _ = messy
    summary = _summary(examples)
    ingested_counts = Counter((split, label) for split, label, _ in _ingested(examples).values())
    quarantined_counts = Counter()
    for row in _report(examples):
        quarantined_counts[(row["split"], row["label"] or sources.NO_LABEL)] += 1
    assert summary["accounting_ok"] is True
    assert summary["files_seen"] == len(expected) == summary["ingested"] + summary["quarantined"]
    for split in ("train", "eval"):
        counts = summary["per_split"][split]
        assert counts["files_seen"] == counts["ingested"] + counts["quarantined"]
        assert counts["files_seen"] == sum(n for (s, _), n in seen.items() if s == split)
        classes = {name for s, name in seen if s == split}
        assert set(counts["classes"]) == classes
        for name in classes:
            cls = counts["classes"][name]
            # seen as written by the fixture; ingested as found in the TFRecords; quarantined as in the report
            assert (cls["seen"], cls["ingested"], cls["quarantined"]) == (
                seen[(split, name)], ingested_counts[(split, name)], quarantined_counts[(split, name)]), (split, name)
            assert cls["seen"] == cls["ingested"] + cls["quarantined"]


# ---------------------------------------------------------------- data that cannot train a classifier


def _png(seed: int) -> bytes:
    return _save(Image.fromarray(_rgb(seed)), "PNG")


def test_single_class_folder_is_refused_naming_the_class(tmp_path):
    for i in range(4):
        _write(tmp_path / "data" / "only cats" / f"{i}.png", _png(i))
    (tmp_path / "data" / "dogs").mkdir()  # empty: no second class
    with pytest.raises(sources.DataLayoutError, match="has only one class, 'only cats': training needs at least two"):
        _run(tmp_path / "data", tmp_path)


def test_presplit_with_one_training_class_names_the_eval_only_class(tmp_path):
    for i in range(3):
        _write(tmp_path / "data" / "train" / "cat" / f"{i}.png", _png(i))
        _write(tmp_path / "data" / "test" / "dog" / f"{i}.png", _png(10 + i))
    with pytest.raises(sources.DataLayoutError, match=r"only one class, 'cat' \(seen only in other splits: 'dog'\)"):
        _run(tmp_path / "data", tmp_path)


def test_csv_manifest_with_one_distinct_label_is_refused(tmp_path):
    rows = ["path,label"]
    for i in range(5):
        _write(tmp_path / "data" / f"{i}.png", _png(i))
        rows.append(f"{i}.png,scan")
    _write(tmp_path / "data" / "labels.csv", "\n".join(rows).encode())
    with pytest.raises(sources.DataLayoutError, match="only one class, 'scan'"):
        _run(tmp_path / "data" / "labels.csv", tmp_path, data_format="auto")


def test_class_left_without_usable_training_images_fails_after_the_reports_are_written(tmp_path):
    for i in range(5):
        _write(tmp_path / "data" / "train" / "good" / f"{i}.png", _png(i))
        _write(tmp_path / "data" / "train" / "broken" / f"{i}.png", b"")
        _write(tmp_path / "data" / "test" / "good" / f"{i}.png", _png(20 + i))
    message = r"after quarantining 5 file\(s\) \(see .*quarantine_report.csv\), the training split has only one class"
    with pytest.raises(sources.DataLayoutError, match=message + ", 'good'"):
        _run(tmp_path / "data", tmp_path)
    reasons = _report(types.SimpleNamespace(uri=str(tmp_path / "examples")))
    assert [r["reason"] for r in reasons] == ["empty file (0 bytes)"] * 5


def test_a_root_without_any_image_file_is_refused(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "dog").mkdir()
    with pytest.raises(sources.DataLayoutError, match="no image files found under"):
        _run(tmp_path / "data", tmp_path)
