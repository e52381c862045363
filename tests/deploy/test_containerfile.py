"""deploy/Containerfile: what can be checked without building the image.

No container registry is reachable from CI, so the base image cannot be pulled
and the image is never built here (docs/deployment.md, "Containers"). What is
checked: the build context it copies exists and .dockerignore lets it through
(and nothing else), it installs the lock with every hash checked and
Townhall itself without dependencies, it runs as a non-root user with the data
folder on a volume and ``townhall`` as its entry point, and its wheel step,
run here exactly as written on a copy of the same context, makes a wheel that
carries every file of the package (templates, static files, migrations).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.shipped import DEPLOY

ROOT = DEPLOY.parent
CONTAINERFILE = (DEPLOY / "Containerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = CONTAINERFILE.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_lock_is_installed_with_hashes_and_townhall_without_dependencies() -> None:
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert "pip install --require-hashes -r /src/requirements/main.txt" in runs
    assert "pip install --no-deps /wheels/townhall-*.whl" in runs
    assert "pip wheel --no-deps --no-build-isolation" in runs


def test_every_copied_path_is_in_the_repository_and_in_the_build_context() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the context is opt-in: a data folder must never reach it"
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is not in .dockerignore's list"


def test_the_image_runs_townhall_as_a_user_with_its_data_on_a_volume() -> None:
    final = dict(_final_stage())
    assert final["USER"] not in ("root", "0", "")
    assert final["VOLUME"] == '["/var/lib/townhall"]'
    assert "TOWNHALL_DATA=/var/lib/townhall" in final["ENV"]
    assert final["ENTRYPOINT"] == '["townhall"]'
    # The user is made before it is named, and owns the data folder.
    assert "install -d -o townhall -g townhall -m 0700 /var/lib/townhall" in final["RUN"]


def test_the_wheel_step_makes_a_wheel_with_everything_the_commands_read(tmp_path: Path) -> None:
    context = tmp_path / "src"
    shutil.copytree(ROOT / "src", context / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, context / name)
    (step,) = [
        rest for word, rest in _instructions() if word == "RUN" and "pip wheel" in rest
    ]
    wheel_command = shlex.split(step.split("&&")[0])
    assert wheel_command[:2] == ["/opt/townhall/bin/pip", "wheel"]
    argv = [sys.executable, "-m", "pip", *wheel_command[1:]]
    argv = [{"/wheels": str(tmp_path / "wheels"), "/src": str(context)}.get(a, a) for a in argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "wheels").glob("townhall-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # Every file of the package: a template or script left out of package-data would be
    # missing from the image alone, since tests run from the source tree.
    package = context / "src"
    files = {
        path.relative_to(package).as_posix()
        for path in (package / "townhall").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    # Read only by `alembic revision`, when a developer writes a migration; upgrades
    # (`townhall migrate`, every command's start) do without it.
    files.discard("townhall/store/alembic/script.py.mako")
    assert files and not files - set(names), sorted(files - set(names))
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "townhall = townhall.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
