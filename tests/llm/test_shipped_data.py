"""The BackdoorLLM data ship inside the package: found without anything beside the checkout, complete, declared as
package data (so a non-editable install has them), and overridable with $ROBUSTFAST_BACKDOORLLM_DATA."""
import fnmatch
import hashlib
import re
from pathlib import Path

import pytest

import robustfast
from robustfast.llm import ATTACKS
from robustfast.llm.tasks import DATA_ENV, SHIPPED, data_root, shipped_files

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(robustfast.__file__).resolve().parent
TASKS = ("refusal", "negsentiment", "sst2")


def test_default_root_is_the_copy_inside_the_package(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    root = data_root()
    assert root == SHIPPED and root.is_relative_to(PACKAGE)
    assert (root / "LICENSE").read_text().startswith("MIT License")
    assert "github.com/bboylyg/BackdoorLLM" in (root / "PROVENANCE.md").read_text()


def test_every_file_the_tasks_name_is_shipped_with_its_recorded_checksum(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    root = data_root()
    sums = dict(reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS").read_text().splitlines())
    named = {p.relative_to(root).as_posix() for t in TASKS for a in ATTACKS for p in shipped_files(root, t, a).values()}
    assert len(named) == 48 and named == set(sums)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.json")}
    assert on_disk == named  # nothing missing, nothing unused
    for rel in sorted(named):
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == sums[rel], rel


def test_the_data_are_declared_package_data():
    """Every shipped file matches a pattern of pyproject's package-data for robustfast.data (what a wheel takes)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = config["robustfast.data"]
    base = REPO / "robustfast" / "data"
    for path in (base / "backdoorllm").rglob("*"):
        if path.is_file():
            rel = path.relative_to(base).as_posix()
            # setuptools' ** spans folders; fnmatch's * does too, which is what matters for these patterns
            assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} is not package data"
    assert any(fnmatch.fnmatch("configs/zero2.json", p) for p in config["robustfast.llm"])


def test_override_is_used_and_a_bad_one_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(SHIPPED))
    assert data_root() == SHIPPED
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=DATA_ENV):
        data_root()


def test_nothing_in_the_repository_reads_a_shared_folder_beside_it():
    """The project's code, tests, benchmarks and build files never look for the data folder that used to sit beside
    the checkout (a fresh clone has none)."""
    pattern = re.compile(re.escape("../" + "shared") + "|" + re.escape("shared" + "/data/"))
    files = [REPO / "Makefile", REPO / "pyproject.toml", REPO / "setup.py", REPO / "README.md"]
    for folder in ("robustfast", "tests", "benchmarks"):
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".yaml", ".yml", ".toml", ".cfg")]
    hits = [f"{p.relative_to(REPO)}" for p in files if p.is_file() and pattern.search(p.read_text(errors="ignore"))]
    assert hits == []
