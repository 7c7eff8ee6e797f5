"""Layer 8: tools that reach outside the workspace, off by default: HTTP GET and one program at a time.

Neither exists until it is built with an allow-list; an empty list is an error,
not "everything".

- `HttpGet(allow=["https://example.org/docs/"]).http_get(url)`: a GET only to a
  URL under an allowed prefix: same scheme, host and port, and a path under the
  prefix's (on a `/` boundary; `.`/`..` segments, even percent-encoded, and
  user names in URLs are refused). A redirect is followed only when its target
  passes the same check. The body is cut at `max_bytes`, the whole request at
  `timeout` seconds.
- `Shell(allow=["ls", "wc"], cwd=workspace).run_command(command)`: the command
  is split like a shell would (`shlex`) but run without one (`shell=False`),
  so pipes, `;`, `&&`, redirects and `$(...)` would silently mean something
  else: they are refused with a message saying so. Only a program named in the
  allow-list (exactly as written there) runs, in `cwd` (required: the one
  folder its arguments may name), with a timeout that kills its whole process
  group, and its output (stdout and stderr) is cut at `max_output` bytes.
  Its arguments are checked first against `llmos.apps.shell_policy`: only the
  programs in its table can be allowed (never one that runs other programs),
  each with the options listed there, and every file an argument names must be
  inside `cwd`. What remains the user's risk is said there: chiefly what an
  allowed program does inside `cwd` (allow `rm` and it deletes there).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from llmos.apps.shell_policy import check_arguments, program_policy
from llmos.apps.tool_schema import ToolError

MAX_RESPONSE_BYTES = 1 << 20
MAX_OUTPUT_BYTES = 64 << 10
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")
_OPERATORS = set("();<>|&")


def _url_parts(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL, or ToolError saying why it is not one we fetch."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ToolError(f"{url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ToolError(f"{url!r} is not an http:// or https:// URL with a host")
    if "@" in parts.netloc:
        raise ToolError(f"{url!r} has a user name in it; such URLs are refused")
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        raise ToolError(f"{url!r} has '.' or '..' in its path; give the path without them")
    return scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], parts.path or "/"


class HttpGet:
    """`http_get(url)`, allowed only under the URL prefixes given (see the module docstring)."""

    def __init__(self, allow: Sequence[str], timeout: float = 10.0, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        if isinstance(allow, str) or not allow:
            raise ToolError(f"HttpGet needs a list of allowed URL prefixes (e.g. ['https://example.org/docs/']), "
                            f"got {allow!r}")
        self.prefixes = [_url_parts(prefix) for prefix in allow]
        self.allow, self.timeout, self.max_bytes = list(allow), timeout, max_bytes
        self._opener = urllib.request.build_opener(_CheckedRedirects(self))

    def check(self, url: str) -> None:
        """ToolError unless `url` is under an allowed prefix."""
        scheme, host, port, path = _url_parts(url)
        for p_scheme, p_host, p_port, p_path in self.prefixes:
            under = path.startswith(p_path if p_path.endswith("/") else p_path + "/") or path == p_path
            if (scheme, host, port) == (p_scheme, p_host, p_port) and under:
                return
        raise ToolError(f"{url!r} is not under an allowed URL prefix; allowed: {', '.join(self.allow)}")

    def http_get(self, url: str) -> str:
        """Fetch a URL with HTTP GET and return its text (only URLs under the allowed prefixes).

        Args:
            url: the full URL, starting with http:// or https://
        """
        self.check(url)
        request = urllib.request.Request(url, headers={"User-Agent": "llmos-agent"})
        deadline = time.monotonic() + self.timeout
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                kind = response.headers.get_content_type() if response.headers.get("Content-Type") else "text/plain"
                if not any(t in kind for t in _TEXT_TYPES):
                    raise ToolError(f"{url!r} is {kind}, not text")
                body = b""
                while len(body) <= self.max_bytes:
                    chunk = response.read(min(1 << 16, self.max_bytes + 1 - len(body)))
                    if not chunk:
                        break
                    body += chunk
                    if time.monotonic() > deadline:
                        raise TimeoutError
                charset = response.headers.get_content_charset() or "utf-8"
        except urllib.error.HTTPError as exc:
            raise ToolError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, TimeoutError):
                raise ToolError(f"GET {url} failed: {exc.reason}") from None
            raise ToolError(f"GET {url} took longer than {self.timeout} s") from None
        except TimeoutError:
            raise ToolError(f"GET {url} took longer than {self.timeout} s") from None
        text = body[:self.max_bytes].decode(charset, errors="replace")
        return text + (f"\n[cut at {self.max_bytes} bytes]" if len(body) > self.max_bytes else "")

    def tools(self) -> list:
        return [self.http_get]


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL the allow-list accepts."""

    def __init__(self, http: HttpGet) -> None:
        self.http = http

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        try:
            self.http.check(newurl)
        except ToolError as exc:
            fp.close()
            raise ToolError(f"{req.full_url!r} redirects outside the allow-list: {exc}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)  # the program and anything it started
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


class Shell:
    """`run_command(command)` for the allowed programs only (see the module docstring)."""

    def __init__(self, allow: Sequence[str], cwd: str | Path | None = None, timeout: float = 10.0,
                 max_output: int = MAX_OUTPUT_BYTES) -> None:
        if isinstance(allow, str) or not allow:
            raise ToolError(f"Shell needs a list of allowed programs (e.g. ['ls', 'wc']), got {allow!r}")
        for program in allow:
            program_policy(program)  # ToolError for a program that runs others or has no argument policy
        if cwd is None:
            raise ToolError("Shell needs cwd=FOLDER: the one folder its programs run in and their arguments "
                            "may name")
        self.allow, self.timeout, self.max_output = list(allow), timeout, max_output
        self.cwd = Path(cwd).resolve()
        if not self.cwd.is_dir():
            raise ToolError(f"command folder {str(cwd)!r} is not a folder")

    def parse(self, command: str) -> list[str]:
        """The argument list of `command`, or ToolError if it needs a shell, names a program not allowed,
        or gives it an argument its policy refuses."""
        if "\0" in command:
            raise ToolError("the command contains a NUL character")
        if "$" in command or "`" in command:
            raise ToolError("there is no shell here: $VARIABLES, $(...) and `...` are not expanded; "
                            "write the values out")
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            argv = list(lexer)
        except ValueError as exc:
            raise ToolError(f"cannot split {command!r}: {exc}") from None
        operators = [a for a in argv if set(a) <= _OPERATORS]
        if operators:
            raise ToolError(f"there is no shell here: {' '.join(operators)} cannot be used; "
                            "run one program per call (no pipes, ;, &&, redirects or subshells)")
        if not argv:
            raise ToolError("the command is empty")
        if argv[0] not in self.allow:
            raise ToolError(f"program {argv[0]!r} is not allowed; allowed: {', '.join(self.allow)}")
        check_arguments(argv, self.cwd)
        return argv

    def run_command(self, command: str) -> str:
        """Run one allowed program with its arguments and return its output (no shell: no pipes or globs).

        Args:
            command: the program and its arguments, quoted as in a shell, e.g. wc -l 'my notes.txt'
        """
        argv = self.parse(command)
        program = argv[0] if os.sep in argv[0] else shutil.which(argv[0])
        if program is None:
            raise ToolError(f"program {argv[0]!r} is not installed (not on PATH)")
        proc = subprocess.Popen([program, *argv[1:]], cwd=self.cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        expired = threading.Event()
        timer = threading.Timer(self.timeout, lambda: (expired.set(), _kill_group(proc)))
        timer.start()
        try:
            output = proc.stdout.read(self.max_output + 1)  # ends at EOF, at the limit, or when killed
            cut = len(output) > self.max_output
            if cut:
                _kill_group(proc)
            code = proc.wait()
        finally:
            timer.cancel()
            proc.stdout.close()
        if expired.is_set():
            raise ToolError(f"{argv[0]} did not finish within {self.timeout} s")
        text = output[:self.max_output].decode(errors="replace")
        if cut:
            return text + f"\n[output cut at {self.max_output} bytes]"
        return text + (f"\n[exit status {code}]" if code != 0 else "")

    def tools(self) -> list:
        return [self.run_command]
