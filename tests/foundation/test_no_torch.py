"""The web process, the admin and every command that does not render start without importing torch."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, subprocess_env

# Commands that render or make model weights: the only ones allowed to import torch at import time.
RENDERING_COMMANDS = {"biggan_weights", "render_demo", "render_recipe", "render_walk"}


def _loads_torch(code: str) -> tuple[bool, str]:
    probe = code + "\nimport sys\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "TORCH", result.stdout


def test_wsgi_application_loads_no_torch() -> None:
    loads, _ = _loads_torch("import config.wsgi")
    assert not loads


def test_admin_and_non_rendering_commands_load_no_torch() -> None:
    code = f"""
import importlib
import django
django.setup()
from django.contrib import admin
admin.autodiscover()
from django.core.management import get_commands
import config.celery  # the Celery app autodiscovers every app's tasks module
for module in ("study.tasks", "generation.tasks", "config.tasks"):
    importlib.import_module(module)
for name, app in sorted(get_commands().items()):
    if name not in {sorted(RENDERING_COMMANDS)!r}:
        importlib.import_module(f"{{app}}.management.commands.{{name}}")
"""
    loads, _ = _loads_torch(code)
    assert not loads


def test_rendering_commands_still_import_torch() -> None:
    """The probe is real: a rendering command does load torch."""
    loads, _ = _loads_torch("import django\ndjango.setup()\nimport generation.management.commands.render_recipe")
    assert loads
