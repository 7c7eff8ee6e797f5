"""HTTP GET and shell tools: nothing without an allow-list; outside it refused before anything is sent
or run; inside it they work, within their size and time limits."""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path

import pytest

from llmos.apps.shell_policy import PROGRAMS
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
        Shell(["sleep"], cwd=tmp_path, timeout=0.3).run_command("sleep 5")
    output = Shell(["yes"], cwd=tmp_path, max_output=1000).run_command("yes")  # endless: killed at the limit
    assert output == "y\n" * 500 + "\n[output cut at 1000 bytes]"


def test_shell_says_when_an_allowed_program_is_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="not installed"):
        Shell(["wc"], cwd=tmp_path).run_command("wc -l notes.txt")


@pytest.fixture
def folders(tmp_path):
    """A working folder with a note, a folder beside it with a secret, and links from one to the other."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (work / "notes.txt").write_text("one\ntwo\nthree\n")
    (outside / "secret.txt").write_text("keep out\n")
    (work / "link.txt").symlink_to(outside / "secret.txt")
    (work / "out").symlink_to(outside)
    return work, outside


def _files(*folders):
    return sorted(str(p) for folder in folders for p in folder.rglob("*"))


def test_shell_refuses_what_the_issue_reproduced_and_leaves_no_file_behind(folders):
    work, outside = folders
    before = _files(work, outside)
    shell = Shell(["find", "cat", "ls", "touch"], cwd=work)
    refused = {"find . -maxdepth 0 -exec touch M {} +": "find: -exec is not allowed: it runs other programs",
               f"find . -fprint {outside / 'FILE'}": "find: -fprint is not allowed: it writes a file",
               f"cat {outside / 'secret.txt'}": "is outside the working folder",
               "ls ../outside": "'../outside' is outside the working folder"}
    for command, message in refused.items():
        with pytest.raises(ToolError, match=message):
            shell.run_command(command)
    with pytest.raises(ToolError, match="'env' runs other programs"):
        Shell(["env"], cwd=work)
    assert _files(work, outside) == before


def test_shell_confines_every_path_argument_and_option_value_to_its_folder(folders):
    work, outside = folders
    before = _files(work, outside)
    shell = Shell(["cat", "ls", "sort", "uniq", "grep", "wc", "cp", "touch", "find", "rm"], cwd=work)
    for command in ("cat link.txt", "cat out/secret.txt", "ls out", "ls -l /", "cat notes.txt ../outside/secret.txt",
                    f"sort -o {outside / 'sorted'} notes.txt", f"sort --output={outside / 'sorted'} notes.txt",
                    "sort -o../sorted notes.txt", "uniq notes.txt ../outside/u.txt", f"grep -f {outside}/secret.txt x",
                    "grep -r keep ../outside", "cp notes.txt out/",
                    "touch -r ../outside/secret.txt notes.txt", "find .. -name secret.txt",
                    "find . -newer out/secret.txt", "cat -- ../outside/secret.txt", "rm -r ../work", "rm -rf ."):
        with pytest.raises(ToolError, match="outside the working folder|the working folder itself"):
            shell.run_command(command)
    assert _files(work, outside) == before


def test_shell_refuses_options_not_on_a_programs_list_and_programs_without_one(folders):
    work, _ = folders
    shell = Shell(["ls", "grep", "sort", "find", "cp", "tail", "wc"], cwd=work)
    refused = {"ls -L out": "ls: -L is not allowed: it follows symbolic links",
               "grep -R keep .": "grep: -R is not allowed: it follows symbolic links",
               "sort --compress-program=sh notes.txt": "sort: --compress-program is not allowed",
               "sort --outp=x notes.txt": "sort: --outp is not allowed",  # an abbreviation GNU would accept
               "find -L . -name x": "find: -L is not allowed", "find . -delete": "find: -delete is not allowed",
               "find . -fls x": "find: -fls is not allowed: it writes a file", "find . notes.txt -name": "needs a value",
               "cp -s notes.txt n2": "cp: -s is not allowed", "tail -f notes.txt": "tail: -f is not allowed",
               "wc --files0-from=names": "wc: --files0-from is not allowed: it reads file names from a file",
               "ls -l\0 .": "NUL"}
    for command, message in refused.items():
        with pytest.raises(ToolError, match=message):
            shell.run_command(command)
    for program, message in (("python3", "runs other programs"), ("xargs", "runs other programs"),
                             ("bash", "runs other programs"), ("/usr/bin/env", "runs other programs"),
                             ("chmod", "has no argument policy"), ("git", "runs other programs")):
        with pytest.raises(ToolError, match=message):
            Shell(["ls", program], cwd=work)
    with pytest.raises(ToolError, match="needs cwd="):
        Shell(["ls"])


def test_shell_runs_known_programs_with_their_safe_options_inside_its_folder(folders):
    work, _ = folders
    shell = Shell(["ls", "grep", "sort", "head", "find", "wc", "cp", "mkdir"], cwd=work)
    assert shell.run_command("ls -1") == "link.txt\nnotes.txt\nout\n"
    assert shell.run_command("head -n 1 notes.txt") == "one\n" and shell.run_command("head -2 notes.txt") == "one\ntwo\n"
    assert shell.run_command("grep -c -e o notes.txt") == "2\n" and shell.run_command("grep -n thr notes.txt") == "3:three\n"
    assert shell.run_command("sort -r -o sorted.txt notes.txt") == "" and (work / "sorted.txt").read_text() == "two\nthree\none\n"
    found = shell.run_command("find . -maxdepth 1 -name '*.txt' -type f")
    assert sorted(found.split()) == ["./notes.txt", "./sorted.txt"]
    assert shell.run_command("mkdir -p a/b") == "" and shell.run_command("cp notes.txt a/b/") == ""
    assert shell.run_command("wc -l a/b/notes.txt") == "3 a/b/notes.txt\n"


def test_the_automation_guide_names_every_program_the_shell_can_be_allowed():
    guide = (Path(__file__).parents[2] / "docs" / "guides" / "automation.md").read_text(encoding="utf-8")
    listed = re.search(r"has a table for it: `([^`]+)`", guide.replace("\n  ", " "))
    assert listed is not None and sorted(listed.group(1).split()) == sorted(PROGRAMS)
