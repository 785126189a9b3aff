"""kombu's filesystem transport (the embedded default's broker), made safe for concurrency.

kombu writes a message file in place, and a consumer polling the folder can move and read it
before the write is complete: it then fails with a JSONDecodeError that stops the worker.
Messages are written to a hidden temporary name and renamed into place, and claimed by
renaming them into our own processed folder on the same filesystem, both atomic. Names
start with the message's priority, so lower numbers are taken first.
"""

from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Consumers take files in name order: the priority (0 first, as kombu's Redis
        # transport does), then the time it was written.
        priority = self._get_message_priority(payload, reverse=False)
        name = f"{priority}-{int(round(monotonic() * 1000)):015d}_{uuid.uuid4()}.{queue}.msg"
        tmp = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(tmp, os.path.join(self.data_folder_out, name))

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.startswith(".") or name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, f"{os.getpid()}-{name}")
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:  # another consumer took it first
                continue
            with open(claimed, "rb") as f:
                payload = f.read()
            os.remove(claimed)
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
    # A folder has no host. Without a default one, kombu no longer warns "No hostname was
    # supplied" on every connection of a `filesystem://` URL.
    @property
    def default_connection_params(self) -> dict[str, Any]:
        return {"port": self.default_port}


def install() -> None:
    """Make `filesystem://` URLs use this transport in this process."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
