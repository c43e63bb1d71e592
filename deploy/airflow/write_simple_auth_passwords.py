"""Write the simple auth manager's passwords file from the environment (run by airflow-init).

Airflow 3's simple auth manager reads its users from ``[core] simple_auth_manager_users``
(``user:role,...``) and their passwords from the JSON file ``[core] simple_auth_manager_passwords_file``
(``{"user": "password"}``); it only generates a password for a user missing from that file. Writing
the file before the api-server starts gives the admin the password set in ``.env`` instead of a
generated one, and rewriting it on every ``airflow-init`` run applies a changed password.

Environment: ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE`` (the path),
``AIRFLOW_ADMIN_USER`` (default ``admin``), ``AIRFLOW_ADMIN_PASSWORD`` (required, not empty).
The password never appears on a command line; the file is created with mode 600 and replaced
atomically.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def write_passwords(path: str, user: str, password: str) -> None:
    """Replace ``path`` with ``{user: password}`` as JSON, readable by its owner only."""
    if not user or ":" in user or "," in user:
        raise ValueError(f"invalid admin user name {user!r} (no ':' or ',')")
    if not password:
        raise ValueError("AIRFLOW_ADMIN_PASSWORD is empty")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".passwords-")  # mkstemp creates it with mode 600
    try:
        with os.fdopen(fd, "w") as file:
            json.dump({user: password}, file)
            file.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main() -> int:
    path = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "")
    if not path:
        print("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set", file=sys.stderr)
        return 2
    user = os.environ.get("AIRFLOW_ADMIN_USER") or "admin"
    try:
        write_passwords(path, user, os.environ.get("AIRFLOW_ADMIN_PASSWORD", ""))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"simple auth manager: password of {user!r} written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
