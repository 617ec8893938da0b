"""The real download path, `python -m tmu download NAME`, against a local HTTP server.

torchvision's own downloader fetches tiny archives in the real formats from 127.0.0.1; the
URLs and md5 sums hard-coded in its dataset classes are monkeypatched to point at them. Nothing
leaves the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import socket
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data import _write_cifar10, _write_cifar100, _write_mnist
from torchvision import datasets as tvd

from tmu import cli
from tmu.data import load_dataset

pytestmark = pytest.mark.timeout(120)

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving `folder`; `paths` lists the requested paths."""

    def __init__(self, folder: Path) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.SimpleHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold a handler thread for ever

            def log_request(self, code="-", size="-"):  # once per request, answered or not
                paths.append(self.path)

            def log_message(self, fmt, *args):  # keep stderr quiet
                pass

        handler = partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local server for tmp_path/www; no proxy, and a socket timeout so nothing can hang."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    www = tmp_path / "www"
    www.mkdir()
    srv = _Server(www)
    srv.www = www
    try:
        yield srv
    finally:
        srv.close()
        socket.setdefaulttimeout(old_timeout)


def _serve_cifar(monkeypatch, srv: _Server, tmp_path: Path, cls: type, write) -> tuple:
    """Pack `write`'s tiny pickles into cls.filename on the server; point cls at it and at the
    md5 sums of these files. Returns what `write` returned."""
    staging = tmp_path / f"staging-{cls.__name__}"
    written = write(staging)
    folder = staging / cls.base_folder
    archive = srv.www / cls.filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=cls.base_folder)
    monkeypatch.setattr(cls, "url", f"{srv.url}/{cls.filename}")
    monkeypatch.setattr(cls, "tgz_md5", _md5(archive))
    monkeypatch.setattr(cls, "train_list", [[f, _md5(folder / f)] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, _md5(folder / f)] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / cls.meta["filename"])})
    return written


def _assert_cifar_pool(pool, x, y, classes, n_test):
    n = len(y)
    assert pool.x.shape == (n, 3, 32, 32) and pool.x.dtype == torch.float32
    assert pool.x.min().item() >= 0.0 and pool.x.max().item() <= 1.0
    assert torch.equal(pool.x, torch.from_numpy(x).float() / 255)
    assert pool.y.dtype == torch.int64 and pool.y.tolist() == list(y)
    assert pool.classes == tuple(classes)
    assert pool.official_test.tolist() == list(range(n - n_test, n))


def test_download_cifar10_from_local_server(server, tmp_path, monkeypatch, capsys):
    x, y, names = _serve_cifar(monkeypatch, server, tmp_path, tvd.CIFAR10, _write_cifar10)
    root = tmp_path / "data"
    assert cli.main(["download", "cifar10", "--data-root", str(root)]) == 0
    assert capsys.readouterr().out == "cifar10: 13 images, 10 classes, ready\n"
    assert "/cifar-10-python.tar.gz" in server.paths  # fetched over HTTP, not found on disk
    assert (root / "cifar-10-python.tar.gz").is_file()
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        assert (root / "cifar-10-batches-py" / f).is_file()
    _assert_cifar_pool(load_dataset("cifar10", root), x, y, names, n_test=3)
    # A second download finds the verified files and fetches nothing.
    server.paths.clear()
    assert cli.main(["download", "cifar10", "--data-root", str(root)]) == 0
    assert server.paths == []


def test_download_cifar100_coarse_from_local_server(server, tmp_path, monkeypatch, capsys):
    x, _, _, coarse, coarse_names = _serve_cifar(
        monkeypatch, server, tmp_path, tvd.CIFAR100, _write_cifar100
    )
    root = tmp_path / "data"
    assert cli.main(["download", "cifar100-coarse", "--data-root", str(root)]) == 0
    assert capsys.readouterr().out == "cifar100-coarse: 8 images, 20 classes, ready\n"
    assert "/cifar-100-python.tar.gz" in server.paths
    for f in ("train", "test", "meta"):
        assert (root / "cifar-100-python" / f).is_file()
    _assert_cifar_pool(load_dataset("cifar100-coarse", root), x, coarse, coarse_names, n_test=3)
    assert load_dataset("cifar100", root).num_classes == 100  # the same files, fine labels


def _serve_mnist(monkeypatch, srv: _Server, tmp_path: Path) -> tuple:
    """The four gzipped IDX files of a tiny MNIST on the server at /mnist/; MNIST's mirrors and
    md5 sums point at them. Returns (images, labels, resources)."""
    x, y = _write_mnist(tmp_path / "staging", "MNIST")  # un-gzipped IDX files
    (srv.www / "mnist").mkdir()
    resources = []
    for name, _ in tvd.MNIST.resources:
        raw = tmp_path / "staging" / "MNIST" / "raw" / name.removesuffix(".gz")
        gz = srv.www / "mnist" / name
        with open(raw, "rb") as src, gzip.open(gz, "wb") as dst:
            shutil.copyfileobj(src, dst)
        resources.append((name, _md5(gz)))
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"{srv.url}/mnist/"])
    monkeypatch.setattr(tvd.MNIST, "resources", resources)
    return x, y, resources


def test_download_mnist_from_local_server(server, tmp_path, monkeypatch, capsys):
    x, y, resources = _serve_mnist(monkeypatch, server, tmp_path)
    root = tmp_path / "data"
    assert cli.main(["download", "mnist", "--data-root", str(root)]) == 0
    assert capsys.readouterr().out == "mnist: 10 images, 10 classes, ready\n"
    assert set(server.paths) == {f"/mnist/{name}" for name, _ in resources}
    for name, _ in resources:
        assert (root / "MNIST" / "raw" / name.removesuffix(".gz")).is_file()
    pool = load_dataset("mnist", root)
    assert pool.x.shape == (10, 1, 28, 28) and pool.x.dtype == torch.float32
    assert torch.equal(pool.x[:, 0], torch.from_numpy(x).float() / 255)
    assert pool.y.tolist() == y.tolist() and pool.official_test.tolist() == [6, 7, 8, 9]
    assert np.isin(pool.y.numpy(), np.arange(10)).all()


def test_download_404_is_a_clear_error(server, tmp_path, monkeypatch, capsys):
    url = f"{server.url}/nothing-here/cifar-10-python.tar.gz"
    monkeypatch.setattr(tvd.CIFAR10, "url", url)
    root = tmp_path / "data"
    assert cli.main(["download", "cifar10", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1  # one line, no stack
    assert err.startswith(
        f"error: cifar10: cannot load the dataset files from {root / 'cifar-10-batches-py'}/"
    )
    assert "missing: data_batch_1" in err and "HTTP Error 404" in err
    assert f"The download from {url} into {root} failed" in err
    assert set(server.paths) == {"/nothing-here/cifar-10-python.tar.gz"}


def test_download_404_mnist_names_every_mirror(server, tmp_path, monkeypatch, capsys):
    mirrors = [f"{server.url}/a/", f"{server.url}/b/"]
    monkeypatch.setattr(tvd.MNIST, "mirrors", mirrors)
    root = tmp_path / "data"
    assert cli.main(["download", "mnist", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"error: mnist: cannot load the dataset files from {root}/MNIST/raw/")
    assert "Error downloading train-images-idx3-ubyte.gz" in err and "HTTP Error 404" in err
    assert f"The download from {mirrors[0]} or {mirrors[1]} into {root} failed" in err


def test_download_with_a_wrong_md5_is_a_clear_error(server, tmp_path, monkeypatch, capsys):
    _serve_cifar(monkeypatch, server, tmp_path, tvd.CIFAR10, _write_cifar10)
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", "0" * 32)  # the archive is not the expected one
    root = tmp_path / "data"
    assert cli.main(["download", "cifar10", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err  # torchvision's progress bar, then our one-line error
    assert "Traceback" not in err and err.endswith("copy the files there.\n")
    last = err.splitlines()[-1]
    assert last.startswith("error: cifar10: cannot load the dataset files from")
    assert "File not found or corrupted" in last and f"into {root} failed" in last
    archive = root / "cifar-10-python.tar.gz"
    assert f"The downloaded {archive} did not match the md5 sum" in last


def test_download_mnist_with_a_wrong_md5_names_the_file(server, tmp_path, monkeypatch, capsys):
    _, _, resources = _serve_mnist(monkeypatch, server, tmp_path)
    monkeypatch.setattr(tvd.MNIST, "resources", [(name, "0" * 32) for name, _ in resources])
    root = tmp_path / "data"
    assert cli.main(["download", "mnist", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert "Traceback" not in err and last.startswith("error: mnist: cannot load")
    bad = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert f"The downloaded {bad} did not match the md5 sum" in last
