"""`llmos agent` with MCP servers (--mcp), http_get (--allow-url) and run_command (--allow-command):
each comes only when asked for, and bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from llmos.cli.agent import select_tools

pytest.importorskip("mcp")
SERVER = Path(__file__).with_name("mcp_server.py")


def test_tools_that_reach_outside_come_only_with_their_allow_list(tmp_path):
    (tmp_path / "notes.txt").write_text("hi\n")
    with ExitStack() as stack:
        default = select_tools("calculate,current_time", None, [], [], [], stack)
        assert [fn.__name__ for fn in default] == ["calculate", "current_time"]
        chosen = select_tools("calculate", tmp_path, ["https://example.org/docs/"], ["ls"], [], stack)
        assert [fn.__name__ for fn in chosen] == ["calculate", "http_get", "run_command"]
        assert chosen[2]("ls") == "notes.txt\n"  # runs in the workspace
        with pytest.raises(ValueError, match="not under an allowed URL prefix"):
            chosen[1]("https://example.org/admin")


def test_cli_agent_calls_a_tool_of_an_mcp_server(tiny_chat_model, tmp_path, llmos_cli):
    pytest.importorskip("llguidance")
    model, tokenizer = tiny_chat_model
    model.save_pretrained(tmp_path / "tiny", tokenizer=tokenizer)
    code, out, err = llmos_cli("agent", str(tmp_path / "tiny"), "say hi", "--tools", "",
                             "--mcp", f"{sys.executable} {SERVER} --only shout", "--require-tool",
                             "--max-steps", "1")
    assert code == 0, err
    first = out.splitlines()[0]
    assert first in ("[1] shout({'word': 'hi'}) -> HI", "[1] shout({'word': 'bye'}) -> BYE")


@pytest.mark.parametrize("args, message", [
    (["--tools", "http_get"], "tool 'http_get' needs --allow-url PREFIX"),
    (["--tools", "run_command,read_file"], "tool 'run_command' needs --allow-command PROGRAM; "
                                            "tool 'read_file' needs --workspace DIR"),
    (["--allow-url", "ftp://example.org/"], "'ftp://example.org/' is not an http:// or https:// URL"),
    (["--allow-command", "wc"], "--allow-command needs --workspace DIR"),
    (["--allow-command", "env", "--workspace", "."], "program 'env' runs other programs"),
    (["--mcp", "no-such-mcp-server --flag"], "cannot start MCP server 'no-such-mcp-server --flag'"),
    (["--mcp", "python 'unclosed"], "--mcp \"python 'unclosed\": No closing quotation"),
    (["--mcp", " "], "--mcp needs the server's command line"),
    (["--tools", ""], "no tools: name some with --tools"),
])
def test_cli_agent_bad_tool_input_is_one_line_and_exit_2(args, message, tmp_path, llmos_cli):
    code, out, err = llmos_cli("agent", str(tmp_path / "no-model"), "task", *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
