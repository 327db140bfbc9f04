"""Build hook: the demo page goes into the wheel, so `results-realtime demo` from an installed
package serves it (at daemon/demo/page; a checkout serves clients/js/dist itself).

The page is bundled by npm from clients/js (the reference client and supabase-js). When it is not
built yet and npm is on PATH, the hook builds it first; an sdist carries the built page, so a wheel
built from the sdist needs no npm. Without npm (or when its build fails, offline say) and without a
built page the wheel is built without it, with a warning: the daemon needs no page, and the demo
then says how to get one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PAGE_FILES = ("index.html", "page.css", "demo-page.js")
WHEEL_PAGE_DIR = "daemon/demo/page"


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return  # an editable install is a checkout: it serves clients/js/dist
        js = Path(self.root) / "clients" / "js"
        dist = js / "dist"
        if not _built(dist):
            self._build(js)
        if not _built(dist):
            self.app.display_warning(
                f"{self.target_name}: no demo page in {dist}, and npm is missing or could not "
                "build it; building without it (`results-realtime demo` will say how to get one; "
                "`make install-js` builds it)"
            )
            return
        where = WHEEL_PAGE_DIR if self.target_name == "wheel" else "clients/js/dist"
        for name in PAGE_FILES:
            build_data["force_include"][str(dist / name)] = f"{where}/{name}"

    def _build(self, js: Path) -> None:
        npm = shutil.which("npm")
        if npm is None or not (js / "package.json").is_file():
            return
        self.app.display_info("building the demo page with npm (clients/js) ...")
        try:
            if not (js / "node_modules").is_dir():
                subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=js, check=True)
            subprocess.run([npm, "run", "build", "--silent"], cwd=js, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:  # offline, say: not the daemon's
            self.app.display_warning(f"building the demo page failed ({exc})")


def _built(dist: Path) -> bool:
    return all((dist / name).is_file() for name in PAGE_FILES)
