"""Get the two official zips (download, or a copy the user already has) and extract them as
``DEST/base`` and ``DEST/extended``, verified file by file against the committed manifest."""
from __future__ import annotations

import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from .verify import SUBSETS, verify

OFFICIAL_URL = "https://cmp.felk.cvut.cz/~tylecr1/facade/"
ZIP_NAMES = {"base": "CMP_facade_DB_base.zip", "extended": "CMP_facade_DB_extended.zip"}


class FetchError(RuntimeError):
    """Fetching failed; the message names what and how to fix it."""


def download(url: str, dest: Path, retries: int = 3, timeout: float = 30, backoff: float = 2.0) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` and retrying on errors."""
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, retries + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                resumed = response.status == 206
                total = int(response.headers.get("Content-Length", 0)) + (have if resumed else 0)
                with open(part, "ab" if resumed else "wb") as out, tqdm(
                        total=total or None, initial=have if resumed else 0, unit="B", unit_scale=True,
                        desc=dest.name) as bar:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
            if total and part.stat().st_size < total:  # the server closed the connection early
                raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")
            part.replace(dest)
            return dest
        except (urllib.error.URLError, OSError) as err:
            if attempt == retries:
                raise FetchError(
                    f"Could not download {url} after {retries} tries ({err}). Without network, download "
                    f"{' and '.join(ZIP_NAMES.values())} elsewhere and run "
                    f"`python -m dataset_tools fetch --from FOLDER --dest {dest.parent.parent}`."
                ) from None
            time.sleep(backoff * attempt)
    raise AssertionError("unreachable")


def _extract(zip_path: Path, subset: str, staging: Path) -> Path:
    """Extract one zip into ``staging`` and return the folder holding its images."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            bad = zf.testzip()
            if bad:
                raise FetchError(f"{zip_path}: member {bad} is corrupt; download the zip again.")
            zf.extractall(staging / subset)
    except zipfile.BadZipFile:
        raise FetchError(f"{zip_path} is not a valid zip file; download it again.") from None
    # The official zips hold a top folder (base/, extended/); accept flat zips too.
    candidates = [p.parent for p in (staging / subset).rglob("*.jpg")]
    if not candidates:
        raise FetchError(f"{zip_path} holds no .jpg images; is it the CMP Facade {subset} zip?")
    return min(candidates, key=lambda p: len(p.parts))


def _sources_from(path: Path) -> dict[str, Path]:
    """Map each subset to a zip or a folder found at ``path`` (a folder holding zips or base/ extended/)."""
    found = {}
    for subset, zip_name in ZIP_NAMES.items():
        for candidate in (path / zip_name, path / subset):
            if candidate.exists():
                found[subset] = candidate
                break
        else:
            raise FetchError(f"{path} holds neither {zip_name} nor a {subset}/ folder.")
    return found


def fetch(dest: str | Path, source: str | Path | None = None, url: str = OFFICIAL_URL) -> list[str]:
    """Install the dataset into ``dest``; return the problems :func:`verify` finds (empty: all good).

    ``source`` (a folder with the zips or with base/ and extended/) avoids the network. Existing
    ``dest/base`` or ``dest/extended`` folders are never touched: fetch refuses instead.
    """
    dest = Path(dest)
    existing = [dest / s for s in SUBSETS if (dest / s).exists()]
    if existing:
        raise FetchError(
            f"{', '.join(map(str, existing))} already exist(s); fetch never overwrites data. Check the copy "
            f"with `python -m dataset_tools verify {dest}`, or move it away first."
        )
    dest.mkdir(parents=True, exist_ok=True)
    if source is None:
        downloads = dest / ".downloads"
        downloads.mkdir(exist_ok=True)
        sources = {s: download(url.rstrip("/") + "/" + name, downloads / name) for s, name in ZIP_NAMES.items()}
    else:
        source = Path(source)
        if not source.is_dir():
            raise FetchError(f"--from {source}: no such folder.")
        sources = _sources_from(source)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".staging-") as staging:
        staged = {}
        for subset, src in sources.items():
            staged[subset] = _extract(src, subset, Path(staging)) if src.is_file() else src
        for subset, folder in staged.items():
            # Move what we extracted; copy what the user owns.
            (shutil.move if Path(staging) in folder.parents else shutil.copytree)(str(folder), str(dest / subset))
    shutil.rmtree(dest / ".downloads", ignore_errors=True)
    return verify(dest)

