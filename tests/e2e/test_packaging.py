"""A normal install works: build the sdist and the wheel from it the standard way
(``python -m build``), install the wheel into a fresh virtual environment, and run the first
commands a new user runs from there (``init``, ``doctor``, ``demo``).

Slow (a build in an isolated environment, a fresh venv, a pip install): run by ``.ci/run``.
The dependencies come from the package index pip is configured with, as for any user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_BIN = ROOT / "tests" / "fakes" / "bin"

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Without --sdist/--wheel, build makes the sdist and then the wheel *from the sdist*:
    # what a release and `pip install` from PyPI's sdist get.
    p = _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out


def _wheel(dist: Path) -> Path:
    wheels = list(dist.glob("burnless-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_built_from_the_sdist_holds_the_package_data(dist: Path) -> None:
    names = set(zipfile.ZipFile(_wheel(dist)).namelist())
    for needed in ("burnless/example/config.yaml", "burnless/example/prefix.md",
                   "burnless/example/checks/page_audit.py",
                   "burnless/example/checks/README.md",
                   "burnless/example/checks/pages/clean.html",
                   "burnless/data/prices.json", "burnless/py.typed"):
        assert needed in names, f"{needed} missing from the wheel"
    assert not any("__pycache__" in n for n in names)
    from burnless import __version__

    info = f"burnless-{__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    meta = zipfile.ZipFile(_wheel(dist)).read(f"{info}/METADATA").decode()
    assert f"Version: {__version__}\n" in meta and "License-Expression: Apache-2.0\n" in meta
    assert "Author: burnless developers" in meta and "Classifier: Typing :: Typed" in meta


def test_the_sdist_holds_the_example_once_under_the_package(dist: Path) -> None:
    sdists = list(dist.glob("burnless-*.tar.gz"))
    assert len(sdists) == 1, sdists
    with tarfile.open(sdists[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert "burnless/example/config.yaml" in names
    assert "LICENSE" in names
    assert not any(n.startswith(".burnless") for n in names), sorted(names)[:20]


def test_init_doctor_and_demo_run_from_a_fresh_install(dist: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    p = _run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              str(_wheel(dist))], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    exe = env_dir / "bin" / "burnless"
    project = tmp_path / "project"
    project.mkdir()
    # A clean environment: the fresh venv's scripts, then a stand-in `claude` (the example's
    # tiers run Claude Code), then the system. Nothing from this checkout on sys.path.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "BURNLESS_"))}
    env["PATH"] = os.pathsep.join([str(env_dir / "bin"), str(FAKE_BIN), "/usr/bin", "/bin"])
    env["BURNLESS_HOME"] = str(tmp_path / "home")

    where = _run([str(py), "-c", "import burnless, sys; print(burnless.__file__)"],
                 cwd=project, env=env)
    assert where.stdout.strip().startswith(str(env_dir)), where.stdout + where.stderr

    init = _run([str(exe), "init"], cwd=project, env=env)
    assert init.returncode == 0, init.stderr
    assert (project / ".burnless" / "config.yaml").read_bytes() == (
        ROOT / "burnless" / "example" / "config.yaml").read_bytes()
    assert (project / ".burnless" / "checks" / "page_audit.py").is_file()

    doctor = _run([str(exe), "doctor", "--json"], cwd=project, env=env)
    report = orjson.loads(doctor.stdout)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} >= {"config", "tier gold", "tier checks",
                                                     "state dir"}

    demo = _run([str(exe), "demo", "--json"], cwd=project, env=env, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert orjson.loads(demo.stdout)["simulated"] is True

    # The page-audit tier-0 script the example installs answers a clean page at $0.
    audit = _run([str(exe), "run", "page audit of .burnless/checks/pages/clean.html",
                  "--json"], cwd=project, env=env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert orjson.loads(audit.stdout)["tier"] == "checks"
