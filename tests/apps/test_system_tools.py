"""HTTP GET and shell tools: nothing without an allow-list; outside it refused before anything is sent
or run; inside it they work, within their size and time limits."""

from __future__ import annotations

import http.server
import threading

import pytest

from llmos.apps.system_tools import HttpGet, Shell
from llmos.apps.tool_schema import ToolError, function_schema


class _Site(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):
        self.seen.append(self.path)
        pages = {"/docs/a.txt": (200, "text/plain; charset=utf-8", "héllo".encode()),
                 "/docs/big": (200, "text/plain", b"x" * 5000),
                 "/docs/image": (200, "image/png", b"\x89PNG"),
                 "/private/x": (200, "text/plain", b"secret")}
        if self.path.startswith("/docs/go-"):
            self.send_response(302)
            self.send_header("Location", {"/docs/go-in": "/docs/a.txt", "/docs/go-out": "/private/x"}[self.path])
            self.end_headers()
            return
        code, kind, body = pages.get(self.path, (404, "text/plain", b"no"))
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_http_get_needs_an_allow_list():
    for allow in ([], None, "https://example.org/"):
        with pytest.raises(ToolError, match="needs a list of allowed URL prefixes"):
            HttpGet(allow)
    with pytest.raises(ToolError, match="not an http:// or https:// URL"):
        HttpGet(["example.org/docs"])


def test_http_get_fetches_under_the_prefix_and_follows_redirects_that_stay_there(site):
    http = HttpGet([f"{site}/docs/"], max_bytes=1000)
    assert http.http_get(f"{site}/docs/a.txt") == "héllo"
    assert http.http_get(f"{site}/docs/go-in") == "héllo"
    assert http.http_get(f"{site}/docs/big") == "x" * 1000 + "\n[cut at 1000 bytes]"
    with pytest.raises(ToolError, match="HTTP 404"):
        http.http_get(f"{site}/docs/missing")
    with pytest.raises(ToolError, match="is image/png, not text"):
        http.http_get(f"{site}/docs/image")
    assert function_schema(http.http_get)["function"]["parameters"]["required"] == ["url"]


def test_http_get_refuses_every_url_outside_the_prefix_before_sending_it(site):
    http = HttpGet([f"{site}/docs/"])
    host, port = site.removeprefix("http://").split(":")
    _Site.seen.clear()
    for url in (f"{site}/private/x", f"{site}/docsx", f"{site}/docs/../private/x", f"{site}/docs/%2e%2e/private/x",
                f"http://localhost:{port}/docs/a.txt", f"http://{host}:{int(port) + 1}/docs/a.txt",
                f"https://{host}:{port}/docs/a.txt", f"http://user@{host}:{port}/docs/a.txt",
                "file:///etc/passwd", "/docs/a.txt"):
        with pytest.raises(ToolError, match="not under an allowed|'..'|user name|not an http"):
            http.http_get(url)
    assert _Site.seen == []
    with pytest.raises(ToolError, match="redirects outside the allow-list"):
        http.http_get(f"{site}/docs/go-out")
    assert _Site.seen == ["/docs/go-out"]  # the redirect's target was never asked for


def test_a_prefix_without_a_trailing_slash_matches_whole_path_segments(site):
    http = HttpGet([f"{site}/docs/a.txt"])
    assert http.http_get(f"{site}/docs/a.txt") == "héllo"
    with pytest.raises(ToolError, match="not under an allowed"):
        http.http_get(f"{site}/docs/a.txt.bak")


def test_shell_needs_an_allow_list_and_runs_only_what_is_on_it(tmp_path):
    for allow in ([], None, "ls"):
        with pytest.raises(ToolError, match="needs a list of allowed programs"):
            Shell(allow)
    (tmp_path / "notes.txt").write_text("one\ntwo\n")
    shell = Shell(["wc", "echo"], cwd=tmp_path)
    assert shell.run_command("wc -l notes.txt") == "2 notes.txt\n"
    assert shell.run_command("echo 'a;b' \"c|d\"") == "a;b c|d\n"  # quoted: arguments, not operators
    assert shell.run_command("wc -l missing.txt").endswith("[exit status 1]")
    refused = {"ls": "program 'ls' is not allowed; allowed: wc, echo",
               "/bin/echo hi": "program '/bin/echo' is not allowed",
               "echo hi; ls": r"; cannot be used", "echo hi && ls": "&& cannot be used",
               "echo hi > out.txt": "> cannot be used", "wc -l < notes.txt": "< cannot be used",
               "echo hi | wc": r"\| cannot be used", "echo $(ls)": "not expanded", "echo `ls`": "not expanded",
               "echo $HOME": "not expanded", "echo 'unclosed": "cannot split", "  ": "empty"}
    for command, message in refused.items():
        with pytest.raises(ToolError, match=message):
            shell.run_command(command)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_shell_kills_a_command_past_its_timeout_and_cuts_long_output(tmp_path):
    with pytest.raises(ToolError, match="sleep did not finish within 0.3 s"):
        Shell(["sleep"], timeout=0.3).run_command("sleep 5")
    output = Shell(["yes"], max_output=1000).run_command("yes")  # endless: killed at the limit
    assert output == "y\n" * 500 + "\n[output cut at 1000 bytes]"
    with pytest.raises(ToolError, match="not installed"):
        Shell(["no-such-program-xyz"]).run_command("no-such-program-xyz")
