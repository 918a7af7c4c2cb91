import http.server
import os
import shutil
import threading
import urllib.request
import zipfile
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

from conftest import write_label_with_value
from dataset_tools.__main__ import main
from dataset_tools.fetch import ZIP_NAMES, FetchError, download, fetch
from fcnkit.data import SAMPLE_ROOT, CMPFacade, cmp_splits


@pytest.fixture(scope="module")
def official_zips(cmp_root, tmp_path_factory):
    """Zips laid out like the official ones (a top folder base/ or extended/)."""
    out = tmp_path_factory.mktemp("zips")
    for subset, name in ZIP_NAMES.items():
        with zipfile.ZipFile(out / name, "w", zipfile.ZIP_STORED) as zf:
            for f in sorted((cmp_root / subset).iterdir()):
                zf.write(f, f"{subset}/{f.name}")
    return out


def link_copy(cmp_root: Path, dest: Path) -> Path:
    """A copy of the dataset made of symlinks (cheap); tests replace the files they damage."""
    for subset in ("base", "extended"):
        (dest / subset).mkdir(parents=True)
        for f in (cmp_root / subset).iterdir():
            (dest / subset / f.name).symlink_to(f)
    return dest


def replace(path: Path, write):
    target = path.resolve()
    path.unlink()
    write(target, path)


def test_verify_passes_on_shared_copy(cmp_root, capsys):
    assert main(["verify", str(cmp_root)]) == 0
    assert "OK" in capsys.readouterr().out


def test_verify_reports_every_problem_by_name(cmp_root, tmp_path, capsys):
    root = link_copy(cmp_root, tmp_path / "copy")
    (root / "base" / "cmp_b0010.png").unlink()
    replace(root / "base" / "cmp_b0020.jpg", lambda src, dst: dst.write_bytes(src.read_bytes()[:5000]))
    replace(root / "extended" / "cmp_x0030.png",
            lambda src, dst: Image.open(src).resize((50, 40), Image.NEAREST).save(dst))

    replace(root / "extended" / "cmp_x0040.png", lambda src, dst: write_label_with_value(src, dst, 13))
    before = sorted(os.listdir(root / "base"))
    assert main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert "base/cmp_b0010.png: missing" in out
    assert "base/cmp_b0020.jpg: checksum differs" in out and "cmp_b0020.jpg cannot be read" in out
    assert "cmp_x0030.png is 50x40" in out
    assert "label value 13" in out and "cmp_x0040" in out
    assert "605 complete jpg/png pairs, expected 606" in out
    assert sorted(os.listdir(root / "base")) == before  # verify never modifies data


def test_fetch_from_zips(official_zips, tmp_path, capsys):
    dest = tmp_path / "data"
    assert main(["fetch", "--from", str(official_zips), "--dest", str(dest)]) == 0
    assert len(list((dest / "extended").glob("*.png"))) == 228
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]
    # a second fetch refuses instead of overwriting
    assert main(["fetch", "--from", str(official_zips), "--dest", str(dest)]) == 2
    assert "never overwrites" in capsys.readouterr().err


def test_fetch_from_folders_and_bad_zip(cmp_root, tmp_path):
    assert fetch(tmp_path / "a", source=cmp_root) == []
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ZIP_NAMES.values():
        (bad / name).write_bytes(b"not a zip")
    with pytest.raises(FetchError, match="not a valid zip"):
        fetch(tmp_path / "b", source=bad)
    with pytest.raises(FetchError, match="holds neither"):
        fetch(tmp_path / "c", source=tmp_path / "a" / "base")


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support; the first request for *flaky* names fails mid-way."""
    failed = set()

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        data = path.read_bytes()
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if "flaky" in path.name and path.name not in self.failed:
            self.failed.add(path.name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection half-way
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_download_resumes_after_a_dropped_connection(server, tmp_path):
    root, url = server
    payload = os.urandom(300_000)
    (root / "flaky.bin").write_bytes(payload)
    out = download(url + "flaky.bin", tmp_path / "flaky.bin", retries=3, backoff=0)
    assert out.read_bytes() == payload
    with pytest.raises(FetchError, match="--from"):
        download(url + "missing.bin", tmp_path / "missing.bin", retries=2, backoff=0)


def test_fetch_over_http_extracts_and_verifies(server, official_zips, tmp_path):
    root, url = server
    for name in ZIP_NAMES.values():
        shutil.copy(official_zips / name, root / name)
    assert fetch(tmp_path / "data", url=url) == []
    assert len(cmp_splits(tmp_path / "data")["test"]) == 76


def test_fetch_from_official_site(tmp_path):
    try:
        urllib.request.urlopen("https://cmp.felk.cvut.cz/~tylecr1/facade/", timeout=5)
    except OSError as err:
        pytest.skip(f"no network to the official CMP site ({err})")
    assert fetch(tmp_path / "data") == []


def test_split_reproduces_original_ids(cmp_root, tmp_path, capsys):
    root = link_copy(cmp_root, tmp_path / "copy")
    assert main(["split", str(root)]) == 0
    train = (root / "splits" / "train.txt").read_text().split()
    val = (root / "splits" / "val.txt").read_text().split()
    test = (root / "splits" / "test.txt").read_text().split()
    assert (len(train), len(val), len(test)) == (500, 30, 76)
    assert (train[0], train[-1], val[0], test[-1]) == ("cmp_b0001", "cmp_x0122", "cmp_x0123", "cmp_x0228")
    original = cmp_splits(cmp_root)
    assert [p.name for p in cmp_splits(root)["val"]] == [p.name for p in original["val"]]
    assert main(["split", str(root), "--seed", "3"]) == 2  # refuses to overwrite
    assert main(["split", str(root), "--seed", "3", "--force"]) == 0
    seeded = cmp_splits(root)
    assert [len(v) for v in seeded.values()] == [500, 30, 76]
    assert set(p.stem for v in seeded.values() for p in v) == set(train + val + test)
    assert seeded["test"] != original["test"]
    held = tmp_path / "held.txt"
    held.write_text("cmp_b0001\ncmp_x0005\n")
    assert main(["split", str(root), "--test-list", str(held), "--force"]) == 0
    assert [p.stem for p in cmp_splits(root)["test"]] == ["cmp_b0001", "cmp_x0005"]


def test_sample_loads_through_fcnkit():
    splits = cmp_splits(SAMPLE_ROOT)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [24, 6, 8]
    x, y = CMPFacade(splits["test"])[0]
    assert max(x.shape[1:]) <= 192 and y.max() <= 11
    assert (SAMPLE_ROOT / "ATTRIBUTION.txt").read_text().count("CC BY-SA") >= 1
    size = sum(f.stat().st_size for f in SAMPLE_ROOT.rglob("*") if f.is_file())
    assert size < 3 * 2**20


def test_sample_rebuild_matches_shipped(cmp_root, tmp_path):
    main(["sample", str(cmp_root), "--dest", str(tmp_path / "s")])
    shipped = sorted(p.relative_to(SAMPLE_ROOT) for p in SAMPLE_ROOT.rglob("*.png"))
    assert sorted(p.relative_to(tmp_path / "s") for p in (tmp_path / "s").rglob("*.png")) == shipped
