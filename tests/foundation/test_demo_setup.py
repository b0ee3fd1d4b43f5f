"""The demo command's admin account: created once, password kept, and it logs in to /admin/."""

from __future__ import annotations

import pytest
from django.test import Client

from config.management.commands.demo_setup import admin_account_ensure


@pytest.mark.django_db
def test_admin_account_is_created_once_and_logs_in(tmp_path) -> None:
    password_file = tmp_path / "admin-password"
    username, password, created = admin_account_ensure(password_file=password_file)
    assert created and password_file.read_text().strip() == password
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    again = admin_account_ensure(password_file=password_file)
    assert again == (username, password, False)

    client = Client()
    # Through the real login form: the login throttle (django-axes) needs the request, as in production.
    login = client.post("/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"})
    assert login.status_code == 302, login.content[:500]
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"Site administration" in response.content
