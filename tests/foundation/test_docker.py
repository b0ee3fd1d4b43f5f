"""What can be checked of the Docker deployment without a Docker engine: structure and scripts."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT, skip_or_fail

DOCKER = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def entrypoint_roles() -> set[str]:
    script = (DOCKER / "entrypoint.sh").read_text()
    return set(re.findall(r"^\s{2}([a-z-]+)\)$", script, flags=re.MULTILINE))


def test_compose_names_every_service(compose: dict) -> None:
    assert set(compose["services"]) == {"db", "redis", "web", "worker", "gpu-worker", "beat"}
    assert compose["services"]["db"]["image"] == "postgres:16"
    assert compose["services"]["redis"]["image"].startswith("redis:")


def test_every_service_has_a_healthcheck(compose: dict) -> None:
    for name, service in compose["services"].items():
        assert "test" in service.get("healthcheck", {}), f"{name} has no health check"


def test_app_services_use_known_entrypoint_roles(compose: dict) -> None:
    roles = entrypoint_roles()
    assert {"web", "worker", "gpu-worker", "beat"} <= roles
    for name in ("web", "worker", "gpu-worker", "beat"):
        service = compose["services"][name]
        assert service["command"][0] in roles
        assert "DATABASE_URL" in service["environment"]
        assert service["environment"]["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert service["depends_on"]["db"]["condition"] == "service_healthy"


def test_gpu_worker_reserves_a_gpu_and_uses_the_cuda_image(compose: dict) -> None:
    gpu = compose["services"]["gpu-worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert "cu" in (DOCKER / "Dockerfile.gpu").read_text().split("download.pytorch.org/whl/")[1][:5]


def test_named_volumes_for_database_and_media(compose: dict) -> None:
    assert {"pgdata", "media"} <= set(compose["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in compose["services"]["db"]["volumes"]
    assert any(volume.startswith("media:") for volume in compose["services"]["web"]["volumes"])


def test_private_files_have_their_own_volume_outside_media(compose: dict) -> None:
    """Reports (participant data) must survive a redeploy and never sit under the public media tree."""
    mounts = dict(v.split(":", 1) for v in compose["services"]["web"]["volumes"])
    assert mounts["private"] == "/data/private" and not mounts["private"].startswith(mounts["media"])
    assert dict(v.split(":", 1) for v in compose["services"]["worker"]["volumes"])["private"] == "/data/private"
    assert "PRIVATE_ROOT=/data/private" in (DOCKER / "Dockerfile").read_text()


def test_web_refuses_to_start_with_placeholder_keys() -> None:
    web = (DOCKER / "entrypoint.sh").read_text().split("  web)")[1].split(";;")[0]
    assert web.index("check --deploy --fail-level ERROR") < web.index("gunicorn")


def test_web_runs_migrations_and_gunicorn() -> None:
    script = (DOCKER / "entrypoint.sh").read_text()
    web = script.split("  web)")[1].split(";;")[0]
    assert "migrate --no-input" in web and "gunicorn config.wsgi:application" in web


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_copy_existing_paths_and_pin_torch(dockerfile: str) -> None:
    text = (DOCKER / dockerfile).read_text()
    for source in re.findall(r"^COPY (\S+)", text, flags=re.MULTILINE):
        for part in source.split():
            assert (ROOT / part).exists(), f"{dockerfile} copies missing {part}"
    assert "torch==2.13.0" in text


def test_env_example_documents_required_variables() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "POSTGRES_PASSWORD", "PSEUDONYM_KEY"} <= names


SHELL_SCRIPTS = ["docker/entrypoint.sh", ".ci/run", "scripts/install-venv", "scripts/ensure-chromium"]


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_scripts_parse_and_pass_shellcheck(script: str) -> None:
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)
    if shutil.which("shellcheck") is None:
        skip_or_fail("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", str(ROOT / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
