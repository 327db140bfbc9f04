"""The wheel: an installed package works without a checkout (its SQL, its demo page)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "clients" / "js" / "dist"
PAGE_FILES = ("index.html", "page.css", "demo-page.js")

_WHERE = """
import json
from daemon.demo.web import assets_dir, assets_ready
from daemon.sqlfiles import migrations, triggers_sql
root = assets_dir()
print(json.dumps({"page": str(root), "ready": assets_ready(root), "triggers": len(triggers_sql()),
                  "migrations": [m.version for m in migrations()]}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
         str(ROOT)],
        check=True, timeout=300,
    )  # fmt: skip
    [built] = out.glob("results_realtime-*.whl")
    return built


def test_the_wheel_carries_the_demo_page_as_built(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for name in PAGE_FILES:
            assert archive.read(f"daemon/demo/page/{name}") == (PAGE / name).read_bytes()
        assert "daemon/sql/triggers.sql" in archive.namelist()


def test_an_installed_wheel_serves_its_own_page_and_sql(wheel: Path, tmp_path: Path) -> None:
    """Installed elsewhere and run from elsewhere: nothing of the checkout is on its path."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    shown = subprocess.run(
        [sys.executable, "-c", _WHERE],
        cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    where = json.loads(shown.stdout)
    assert Path(where["page"]) == site / "daemon" / "demo" / "page"
    assert where["ready"] is True
    expected = sorted(int(p.name[:4]) for p in (ROOT / "sql" / "migrations").glob("*.sql"))
    assert where["migrations"] == expected
    assert where["triggers"] == len((ROOT / "sql" / "triggers.sql").read_text(encoding="utf-8"))
