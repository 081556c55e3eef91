"""Project-level promises: README commands match CI, the CLI is wired, the layers keep their import contracts."""

from __future__ import annotations

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


def test_import_contracts_of_the_layers_are_kept():
    """import-linter checks pyproject.toml's contracts (inkwalk/ imports no Ray and no Ray adapter;
    services and training above data_pipeline, all above inkwalk), function-level imports included."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", proc.stdout)
    assert kept and int(kept.group(1)) >= 2, proc.stdout[-3000:]  # the contracts were read, not skipped
