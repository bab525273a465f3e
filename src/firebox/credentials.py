"""The server's root credentials: from settings, or generated once into the data dir."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from firebox.settings import Settings
from firebox.store.private import private_dir

FILE_NAME = "credentials.json"


@dataclass(frozen=True, slots=True)
class RootCredentials:
    access_key_id: str
    secret_access_key: str


def _generate() -> RootCredentials:
    alphabet = string.ascii_uppercase + string.digits
    key_id = "FBX" + "".join(secrets.choice(alphabet) for _ in range(17))
    return RootCredentials(key_id, secrets.token_urlsafe(30)[:40])


def load_credentials(settings: Settings, create: bool = True) -> RootCredentials | None:
    """Settings win; otherwise read (or, with create, generate) data_dir/credentials.json."""
    if settings.access_key_id and settings.secret_access_key:
        return RootCredentials(settings.access_key_id, settings.secret_access_key)
    path = Path(settings.data_dir) / FILE_NAME
    try:
        data = json.loads(path.read_text())
        return RootCredentials(data["access_key_id"], data["secret_access_key"])
    except FileNotFoundError:
        if not create:
            return None
    creds = _generate()
    private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key}, fh
        )
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return creds
