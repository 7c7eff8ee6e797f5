"""A real uvicorn server on a free loopback port, for tests that talk HTTP to an app."""

from __future__ import annotations

import socket
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app) -> tuple[object, threading.Thread, str]:
    """(uvicorn server, its thread, base URL); stop with `server.should_exit = True`."""
    import uvicorn

    port = free_port()
    # log_config=None: uvicorn's own logging setup (dictConfig) would first close every handler in the
    # process, absl's among them (imported by lm-eval's metrics), which closes pytest's captured stderr.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"
