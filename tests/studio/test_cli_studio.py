"""`llmos studio`: bad options are one line on stderr and exit 2; a good start prints the URL and serves."""

from __future__ import annotations

import subprocess
import sys

import httpx
from live_server import free_port
from studio_helpers import wait_for


def test_bad_options_are_one_line_and_exit_2(tmp_path):
    for args, message in ((["--port", "70000"], "error: --port must be between 1 and 65535, got 70000"),
                          (["--data-dir", str(tmp_path / "none")], f"error: --data-dir '{tmp_path / 'none'}' is not "
                                                                      "a directory")):
        done = subprocess.run([sys.executable, "-m", "llmos", "studio", *args], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2 and done.stderr.strip() == message, done.stderr


def test_the_studio_prints_its_url_and_serves_the_runs_folder(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "llmos", "studio", "--runs-dir", str(tmp_path / "runs"),
                                "--data-dir", str(tmp_path), "--port", str(port), "--api-key", "k"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith(f"LLMOS Studio on http://127.0.0.1:{port}/?key=k"), first
        headers = {"Authorization": "Bearer k"}

        def answers():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/runs", headers=headers, timeout=5)
            except httpx.TransportError:
                return None

        response = wait_for(answers, "the studio to answer")
        assert response.status_code == 200 and response.json() == {"runs": []}
        assert (tmp_path / "runs").is_dir()
    finally:
        process.terminate()
        process.wait(timeout=20)
