"""The Bluesky PDS the tests run against (npm `@atproto/dev-env`, pinned by package-lock.json).

`npm ci` of it takes minutes (it compiles better-sqlite3), so it is installed once per lock file
and Node ABI into the user cache dir and linked as tests/pds/node_modules: a fresh clone on the
same machine links the same install instead of paying for it again. npm's output is shown, not
swallowed. CI runs this as its own step; the `pds` fixture calls `ensure` when it is needed.

    python tests/pds/install.py     # install (or link) now; prints where

POSTER_TEST_CACHE overrides the cache folder (default: the user cache dir's poster-tests/).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PDS_DIR = Path(__file__).resolve().parent
LOCK_FILES = ("package.json", "package-lock.json")
TIMEOUT = 3600  # seconds; a cold install took 27 min on 2 cores at load 13 (212 s of CPU)


class InstallError(Exception):
    """The PDS could not be installed; the message says why."""


def cache_root() -> Path:
    env = os.environ.get("POSTER_TEST_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_path

    return user_cache_path("poster-tests")


def _count_packages(node_modules: Path) -> int:
    try:
        tops = [p for p in node_modules.iterdir() if not p.name.startswith(".")]
        return sum(len(list(p.iterdir())) if p.name.startswith("@") else 1 for p in tops)
    except OSError:
        return 0


def _installed(node_modules: Path) -> bool:
    return (node_modules / "@atproto" / "dev-env" / "package.json").is_file()


def install_key(node: str) -> str:
    """What an install depends on: the lock files and the Node ABI (native modules)."""
    abi = subprocess.run(
        [node, "-p", "[process.versions.modules, process.platform, process.arch].join('-')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if abi.returncode != 0:
        raise InstallError(f"`node -p` failed: {abi.stderr.strip()[-500:]}")
    h = hashlib.sha256(abi.stdout.strip().encode())
    for name in LOCK_FILES:
        h.update((PDS_DIR / name).read_bytes())
    return h.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One install at a time per key (parallel test workers, two clones running at once)."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _npm_ci(npm: str, where: Path, say: Callable[[str], None]) -> None:
    where.mkdir(parents=True)
    for name in LOCK_FILES:
        shutil.copyfile(PDS_DIR / name, where / name)
    # --foreground-scripts: the long native build (better-sqlite3) prints as it goes
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--foreground-scripts"]
    say(f"$ npm {' '.join(cmd[2:])}   (in {where})")
    t0 = time.monotonic()
    # npm's output to stderr: a pytest-xdist worker's stdout does not reach the terminal
    proc = subprocess.Popen(cmd, cwd=where, stdout=sys.stderr.fileno())
    while True:
        try:
            proc.wait(timeout=20)
            break
        except subprocess.TimeoutExpired:
            # npm says nothing while it fetches and unpacks: a line now and then, with a count
            elapsed = time.monotonic() - t0
            if elapsed > TIMEOUT:
                proc.kill()
                proc.wait()
                raise InstallError(f"`npm ci` did not finish in {TIMEOUT} s") from None
            say(f"npm ci: {elapsed:.0f} s, {_count_packages(where / 'node_modules')} packages unpacked")
    if proc.returncode != 0:
        raise InstallError(f"`npm ci` exited {proc.returncode} (its output is above)")
    if not _installed(where / "node_modules"):
        raise InstallError("`npm ci` finished but @atproto/dev-env is not installed")
    say(f"npm ci done in {time.monotonic() - t0:.0f} s")


def ensure(node: str, npm: str, say: Callable[[str], None]) -> Path:
    """tests/pds/node_modules, installed; returns it. Raises InstallError with the reason.

    An install already there (a directory, or a link to one) is used as it is. Otherwise the
    cached install for this lock file and Node ABI is linked, made first if there is none."""
    link = PDS_DIR / "node_modules"
    if _installed(link):
        return link
    root = cache_root() / "pds"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"{root}: cannot create the cache folder: {exc.strerror}") from None
    key = install_key(node)
    cached = root / key / "node_modules"
    with _locked(root / f"{key}.lock"):
        if not _installed(cached):
            say(f"installing the Bluesky PDS for the tests, once per package-lock.json, into {root / key}")
            partial = root / f"{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            _npm_ci(npm, partial, say)
            shutil.rmtree(root / key, ignore_errors=True)
            partial.rename(root / key)
        else:
            say(f"the Bluesky PDS for the tests: linking the cached install {cached}")
        if link.is_symlink() or link.is_file():
            link.unlink()  # a link to a removed install
        elif link.is_dir():
            shutil.rmtree(link)  # an interrupted npm ci in place
        tmp = PDS_DIR / f".node_modules.{os.getpid()}"
        tmp.symlink_to(cached, target_is_directory=True)
        tmp.replace(link)
    return link


def main() -> int:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        print("tests/pds: node and npm are needed (Node >= 20)", file=sys.stderr)
        return 1

    def say(line: str) -> None:
        print(f"tests/pds: {line}", file=sys.stderr, flush=True)

    try:
        path = ensure(node, npm, say)
    except InstallError as exc:
        say(str(exc))
        return 1
    say(f"ready: {path} -> {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
