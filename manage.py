#!/usr/bin/env python
"""Django's command-line entry point, with one-line errors for the usual set-up mistakes."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    from config.errors import run_with_readable_errors

    run_with_readable_errors(sys.argv)


if __name__ == "__main__":
    main()
