"""A local SMTP server for the embedded default: keeps every message as a .eml file."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from services.config import private_folder, write_private


class SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        private_folder(folder)  # join links: owner only

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        # Not *.eml until complete: readers glob "*.eml" (pathlib's glob matches dot-files).
        tmp = self.folder / f".{name}.part"
        write_private(tmp, envelope.original_content or envelope.content)
        tmp.rename(self.folder / name)  # readers never see half a message
        return "250 Message accepted for delivery"


def start(folder: Path, port: int, host: str = "127.0.0.1") -> Controller:
    controller = Controller(SaveToFolder(folder), hostname=host, port=port)
    controller.start()
    return controller
