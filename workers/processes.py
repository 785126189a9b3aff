"""Starting and supervising the parts `twofa up` runs as child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Supervisor:
    env: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, args: Sequence[str], **env: str) -> None:
        self.children[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "workers.cli", *args],
            env={**self.env, **env},
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )

    def wait(self) -> str | None:
        """Block until a child exits (returns its name) or we are interrupted (None)."""
        stop = {"flag": False}

        def on_signal(*_: object) -> None:
            stop["flag"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop["flag"]:
            for name, child in self.children.items():
                if child.poll() is not None:
                    return name
            time.sleep(0.2)
        return None

    def stop(self, timeout: float = 15.0) -> None:
        for child in self.children.values():
            if child.poll() is None:
                # The leader only: Celery's main process then shuts its pool down warmly.
                child.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
