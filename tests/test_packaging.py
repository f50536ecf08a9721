"""The distribution installs the import names `layerserve` and `layerserve.server`, nothing generic."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib

import pytest

from tests.server import ROOT

SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    found = set()
    for name, folder in SETUPTOOLS["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    return found


def test_pyproject_lists_every_package_folder() -> None:
    assert sorted(SETUPTOOLS["packages"]) == sorted(_packages_on_disk())


def test_import_names_map_to_the_repository_folders() -> None:
    import layerserve
    import layerserve.server

    assert pathlib.Path(layerserve.__file__).parent == ROOT / "client"
    assert pathlib.Path(layerserve.server.__file__).parent == ROOT / "service"


@pytest.mark.slow
def test_wheel_installs_no_top_level_client_or_service(tmp_path: pathlib.Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob("layerserve-*.whl"))
    import zipfile

    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "client" not in tops and "service" not in tops
    assert "layerserve" in tops
    members = zipfile.ZipFile(wheel).namelist()
    assert "layerserve/protocol.py" in members and "layerserve/server/cli.py" in members
    # The dashboard's page and assets ship as package data.
    assets = ("index.html", "app.js", "charts.js", "sections.js", "style.css", "favicon.svg")
    assert {f"layerserve/server/api/static/{name}" for name in assets} <= set(members)
