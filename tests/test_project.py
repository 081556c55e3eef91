"""Project-level promises: README commands match CI, the CLI is wired, inkwalk/ stays free of Ray."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from inkwalk import __version__

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks]


def test_ci_runs_exactly_the_readme_test_command():
    commands = _readme_commands()
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test_command
    assert any("inkwalk demo" in c for c in commands[:1]), "the first README command renders a walk"


def test_cli_version_and_help_list_every_command():
    out = subprocess.run([sys.executable, "-m", "inkwalk.cli", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"inkwalk {__version__}"
    helptext = subprocess.run([sys.executable, "-m", "inkwalk.cli", "--help"], capture_output=True,
                              text=True, check=True).stdout
    for command in ["info", "models", "interpolate", "walk", "demo", "upscale", "t2v", "eval"]:
        assert re.search(rf"^\s+{command}\s", helptext, re.M), f"`inkwalk {command}` missing"


def test_algorithms_never_import_ray():
    for path in (ROOT / "inkwalk").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "ray" or n.startswith("ray.") for n in names), path
