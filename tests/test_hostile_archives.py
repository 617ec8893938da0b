"""Hostile archives, images and weights files, crafted tiny in tmp_path: headers that claim huge
sizes (no big data), encrypted or deflate64 members, corrupt deflate streams, `.pt` bombs. Each is
refused with a message naming the member or the limit, before anything big is decoded."""

from __future__ import annotations

import io
import struct
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tmu import cli
from tmu.data import DatasetError, load_imagefolder, read_imagefolder
from tmu.importer import ImportLimits, import_dataset
from tmu.models import WeightsError, WeightsLimits, check_weights_archive, read_state_dict


def png_header(width: int, height: int, color_type: int = 0) -> bytes:
    """A PNG whose header claims width x height (8-bit; gray 0 or RGB 2) and holds one empty
    IDAT: it opens (the header is read) but never decodes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def png(value: int = 0, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (size, size), color=value).save(buf, format="PNG")
    return buf.getvalue()


def zip_of(path: Path, files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def patch_member(path: Path, name: str, **fields) -> Path:
    """Rewrite fields of member `name`'s local and central headers in place (flag bits,
    compression method): what another zip tool would have written."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    local = info.header_offset
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name.encode():
        central = data.find(b"PK\x01\x02", central + 4)
    for field, value in fields.items():
        local_at, central_at = {"flags": (6, 8), "method": (8, 10)}[field]
        struct.pack_into("<H", data, local + local_at, value)
        struct.pack_into("<H", data, central + central_at, value)
    path.write_bytes(bytes(data))
    return path


CLASSES = {f"{c}/{i}.png": png(v + i) for c, v in (("cat", 10), ("dog", 200)) for i in range(2)}


# --- the total decoded size, from the headers ---------------------------------------------------


def test_two_huge_headers_are_refused_before_any_pixel_is_decoded(tmp_path):
    """The issue's 66 KB zip of two 3000 x 3000 PNGs: 72 MB of float32 from a few hundred bytes
    here; refused from the headers (these never decode, so a decode would fail differently)."""
    files = {"a/big.png": png_header(3000, 3000), "b/big.png": png_header(3000, 3000)}
    archive = zip_of(tmp_path / "two.zip", files)
    with pytest.raises(DatasetError, match=r"72,000,000 bytes once decoded .* over the limit of"):
        import_dataset(archive, "two", tmp_path / "data", ImportLimits(max_pool_bytes=50_000_000))
    assert not list((tmp_path / "data" / "imported").iterdir())


def test_forty_huge_headers_are_refused_by_the_cli_default(tmp_path, capsys):
    """Forty 3000 x 3000 PNGs (1.44 GB of float32) in a tiny zip: the CLI's default refuses."""
    files = {f"c{i % 2}/{i}.png": png_header(3000, 3000) for i in range(40)}
    archive = zip_of(tmp_path / "forty.zip", files)
    assert archive.stat().st_size < 20_000
    code = cli.main(["import-dataset", str(archive), "--name", "f", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "1,440,000,000 bytes once decoded (40 images of 1 x 3000 x 3000" in err


def test_mixed_sizes_count_as_32x32_and_a_direct_folder_load_is_capped(tmp_path, monkeypatch):
    """The size policy decides the total: two huge RGB headers of two sizes make a 2 x 3 x 32 x
    32 pool, within a limit that fits it (then the forged images fail to decode and leave their
    classes empty); env var TMU_MAX_POOL_BYTES caps a folder loaded directly."""
    for c, size in (("a", 3000), ("b", 2999)):
        (tmp_path / c).mkdir()
        (tmp_path / c / "x.png").write_bytes(png_header(size, size, color_type=2))
    with pytest.raises(DatasetError, match="class folder .* has no images"):
        load_imagefolder(tmp_path, max_bytes=3 * 32 * 32 * 4 * 2)  # the total fits
    monkeypatch.setenv("TMU_MAX_POOL_BYTES", "1000")
    with pytest.raises(DatasetError, match=r"24,576 bytes once decoded \(2 images of 3 x 32 x 32"):
        load_imagefolder(tmp_path)
    monkeypatch.setenv("TMU_MAX_POOL_BYTES", "lots")
    with pytest.raises(DatasetError, match="TMU_MAX_POOL_BYTES='lots' must be a positive"):
        load_imagefolder(tmp_path)


def test_uint8_codes_are_the_rounded_float_pool(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i, size in enumerate((9, 12)):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / c / f"{i}.png")
    pool = load_imagefolder(tmp_path)
    codes, y, classes = read_imagefolder(tmp_path, dtype=torch.uint8)
    assert codes.dtype == torch.uint8 and codes.shape == pool.x.shape == (4, 3, 32, 32)
    assert torch.equal(codes, pool.x.mul(255).round().clamp(0, 255).to(torch.uint8))
    assert y == pool.y.tolist() and tuple(classes) == pool.classes


# --- zip members that fail halfway through ------------------------------------------------------


def test_an_encrypted_member_is_refused_by_name(tmp_path):
    archive = patch_member(zip_of(tmp_path / "e.zip", CLASSES), "cat/1.png", flags=1)
    with pytest.raises(DatasetError, match=r"'cat/1.png' is encrypted; zip the images without"):
        import_dataset(archive, "e", tmp_path / "data")


@pytest.mark.parametrize("method", [9, 99, 12345])  # deflate64, AES, nonsense
def test_an_unreadable_compression_method_is_refused_by_name(tmp_path, method):
    archive = patch_member(zip_of(tmp_path / "m.zip", CLASSES), "dog/0.png", method=method)
    with pytest.raises(DatasetError, match=rf"'dog/0.png' uses compression method {method}, "):
        import_dataset(archive, "m", tmp_path / "data")


def test_a_corrupt_deflate_stream_is_refused_by_name_and_leaves_nothing(tmp_path):
    big = {"cat/a.png": bytes(range(256)) * 64, **CLASSES}
    archive = zip_of(tmp_path / "c.zip", big)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("cat/a.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start : start + 8] = b"\xff" * 8  # an invalid block type: zlib.error
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"'cat/a.png' is damaged and cannot be unpacked"):
        import_dataset(archive, "c", tmp_path / "data")
    assert not list((tmp_path / "data" / "imported").iterdir())


def test_a_bad_crc_is_refused_by_name(tmp_path):
    archive = zip_of(tmp_path / "crc.zip", CLASSES, method=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("dog/1.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 20] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"'dog/1.png' is damaged .*BadZipFile.*CRC"):
        import_dataset(archive, "crc", tmp_path / "data")


def test_the_cli_prints_one_line_for_a_deflate64_member(tmp_path, capsys):
    archive = patch_member(zip_of(tmp_path / "d.zip", CLASSES), "cat/0.png", method=9)
    code = cli.main(["import-dataset", str(archive), "--name", "d", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: zip member 'cat/0.png' uses compression method 9")
    assert "Traceback" not in err


def test_two_imports_of_one_name_at_once_refuse_the_second_by_name(tmp_path, monkeypatch):
    """The loser's rename meets the winner's folder (ENOTEMPTY): a message, no temp folder."""
    from tmu import importer

    archive = zip_of(tmp_path / "p.zip", CLASSES)
    root = tmp_path / "data"
    real, barrier = importer.load_imagefolder, threading.Barrier(2)

    def both_loaded(*args, **kwargs):
        pool = real(*args, **kwargs)
        barrier.wait(timeout=30)  # both imports passed the "name is free" check
        return pool

    monkeypatch.setattr(importer, "load_imagefolder", both_loaded)
    errors: list[Exception] = []

    def one() -> None:
        try:
            import_dataset(archive, "pets", root)
        except DatasetError as err:
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1
    assert "a dataset named 'pets' was just imported by someone else; choose another" in str(
        errors[0]
    )
    assert sorted(p.name for p in (root / "imported").iterdir()) == ["pets"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(1, 12_000), st.integers(1, 12_000), st.sampled_from([0, 2])),
        min_size=2,
        max_size=6,
    )
)
def test_any_claimed_sizes_are_refused_or_fit_the_limit(tmp_path_factory, headers):
    """Whatever sizes the headers claim, the load either refuses them by a limit from the
    headers alone, or the pool it would make fits the limit (then the forged images, which
    never decode, leave their classes empty)."""
    folder = tmp_path_factory.mktemp("claims")
    for i, (w, h, color) in enumerate(headers):
        (folder / f"c{i % 2}").mkdir(exist_ok=True)
        (folder / f"c{i % 2}" / f"{i}.png").write_bytes(png_header(w, h, color))
    limit = 10**7
    with pytest.raises(DatasetError) as err:
        load_imagefolder(folder, max_pixels=2**31, max_bytes=limit)
    sizes = {(w, h) for w, h, _ in headers}
    w, h = sizes.pop() if len(sizes) == 1 else (32, 32)
    total = 4 * len(headers) * (3 if any(c == 2 for *_, c in headers) else 1) * w * h
    if total > limit:
        assert f"{total:,} bytes once decoded" in str(err.value)
    else:
        assert "has no images" in str(err.value)


# --- .pt bombs ----------------------------------------------------------------------------------


def pt_bomb(path: Path, numel: int, method: int = zipfile.ZIP_DEFLATED) -> Path:
    """A real torch file of zeros with its entries compressed: small on disk, `4 x numel` bytes
    once torch.load inflates it."""
    buf = io.BytesIO()
    torch.save({"head.weight": torch.zeros(numel)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info), compress_type=method)
    return path


def test_a_pt_that_inflates_a_thousandfold_is_refused_unread(tmp_path):
    path = pt_bomb(tmp_path / "bomb.pt", 2**21)  # 8 MB of zeros in ~8 KB
    assert path.stat().st_size < 50_000
    with pytest.raises(WeightsError, match=r"entry '.*/data/0' expands \d+x to 8,388,608 bytes"):
        read_state_dict(path)


def test_a_pt_over_the_total_or_the_entry_count_is_refused(tmp_path, monkeypatch):
    path = pt_bomb(tmp_path / "w.pt", 1000, method=zipfile.ZIP_STORED)
    assert read_state_dict(path)["head.weight"].shape == (1000,)  # a plain file loads
    with pytest.raises(WeightsError, match="unpacks to more than 2,000 bytes"):
        check_weights_archive(path, WeightsLimits(max_bytes=2000))
    with pytest.raises(WeightsError, match=r"holds \d+ entries \(limit 3\)"):
        check_weights_archive(path, WeightsLimits(max_entries=3))
    monkeypatch.setenv("TMU_MAX_WEIGHTS_BYTES", "2000")
    with pytest.raises(WeightsError, match="unpacks to more than 2,000 bytes"):
        read_state_dict(path)


def test_a_pt_with_a_damaged_directory_is_refused_by_name(tmp_path):
    path = pt_bomb(tmp_path / "cut.pt", 100)
    path.write_bytes(path.read_bytes()[:-30])  # the end of the central directory is cut
    with pytest.raises(WeightsError, match=r"cut.pt. cannot be read .* \(a damaged archive"):
        read_state_dict(path)


def test_the_cli_refuses_a_pt_bomb_before_loading_it(tmp_path, capsys):
    path = pt_bomb(tmp_path / "bomb.pt", 2**21)
    code = cli.main(["run", "--dataset", "digits", "--original-weights", str(path), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "an archive bomb? refused" in err and "Traceback" not in err


# --- grammars: member names, arbitrary bytes -----------------------------------------------------

SEGMENT = st.sampled_from(["..", ".", "", "cat", "dog", "C:", "a\\..\\b", "~", ".hidden", "x y"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=st.lists(st.lists(SEGMENT, min_size=1, max_size=4).map("/".join), max_size=4))
def test_any_member_names_import_under_the_root_or_are_refused_by_name(tmp_path_factory, names):
    """Members named from path segments ('..', '', 'C:', backslashes...) beside two good classes:
    the import succeeds with every file under DATA_ROOT/imported/NAME, or is a DatasetError."""
    tmp = tmp_path_factory.mktemp("names")
    files = {**CLASSES, **{f"{n}.png": png(7) for n in names}}
    root = tmp / "data"
    try:
        done = import_dataset(zip_of(tmp / "n.zip", files), "n", root)
    except DatasetError as err:
        assert str(err)  # a message, never another exception
    else:
        inside = (root / "imported" / "n").resolve()
        assert all(p.resolve().is_relative_to(inside) for p in done.path.rglob("*"))
    leftovers = [p for p in tmp.rglob("*") if p.suffix == ".png"]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in leftovers)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400), zipped=st.booleans())
def test_any_bytes_as_a_pt_file_are_a_weights_error(tmp_path_factory, data, zipped):
    """Arbitrary bytes, raw or as the one entry of a zip (torch's format), never load as a
    state_dict and never raise anything but a WeightsError."""
    path = tmp_path_factory.mktemp("pt") / "x.pt"
    if zipped:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", data)
    else:
        path.write_bytes(data)
    with pytest.raises(WeightsError, match=r"weights file '.*x.pt'"):
        read_state_dict(path)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(0, 2000), flip=st.integers(0, 2000))
def test_a_cut_or_bit_flipped_zip_is_a_dataset_or_a_dataset_error(tmp_path_factory, cut, flip):
    """Any prefix of a good archive, with any one byte flipped: imported, or a DatasetError."""
    tmp = tmp_path_factory.mktemp("cut")
    good = zip_of(tmp / "good.zip", CLASSES).read_bytes()
    data = bytearray(good[: max(cut, 1)] if cut < len(good) else good)
    data[flip % len(data)] ^= 0x55
    (tmp / "bad.zip").write_bytes(bytes(data))
    try:
        import_dataset(tmp / "bad.zip", "cut", tmp / "data")
    except DatasetError as err:
        assert str(err)
