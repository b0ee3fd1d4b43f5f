"""`manage.py demo_setup`: what the README's demo command needs before the server starts.

Creates (once) an admin account whose password is kept in var/, renders the demo stimuli, loads the
example study, and prints where to go. Every step is idempotent, so `make demo` can be rerun.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandParser

ADMIN_USERNAME = "admin"


def admin_account_ensure(*, password_file: Path) -> tuple[str, str, bool]:
    """Create the demo superuser if missing; the password lives in a 0600 file under var/."""
    user_model = get_user_model()
    if password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(12)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    user, created = user_model.objects.get_or_create(
        username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": ""}
    )
    if created or not user.check_password(password):
        user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
    return ADMIN_USERNAME, password, created


class Command(BaseCommand):
    help = "Create the demo admin account, demo stimuli and the example study (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the server will listen")
        parser.add_argument("--skip-content", action="store_true", help="only create the admin account")

    def handle(self, *args: object, base_url: str, skip_content: bool, **options: object) -> None:
        username, password, created = admin_account_ensure(password_file=Path(settings.VAR_DIR) / "admin-password")
        available = get_commands()
        root = Path(settings.BASE_DIR)
        if not skip_content:
            if "render_demo" in available:
                self.stdout.write(self.style.MIGRATE_HEADING("Rendering the demo stimuli"))
                call_command("render_demo")
            if "load_study" in available and (root / "examples" / "study.yaml").exists():
                self.stdout.write(self.style.MIGRATE_HEADING("Loading the example study"))
                call_command("load_study", str(root / "examples" / "study.yaml"))
            if "study_links" in available:
                call_command("study_links", "example", "--base-url", base_url)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Admin:    {base_url}/admin/"))
        self.stdout.write(
            f"          user {username!r}, password {password!r}"
            f"{' (new)' if created else ''}; kept in {Path(settings.VAR_DIR) / 'admin-password'}"
        )
        self.stdout.write(f"Health:   {base_url}/healthz")
