"""Layer 8: what each program `Shell` may run is allowed to be given: a small table, checked before it runs.

Allowing a program by name is not enough: `find -exec` runs any program,
`sort -o FILE` writes anywhere, `cat /abs/secret` reads anywhere. So only the
programs in `PROGRAMS` can be allowed, each with the options it may take (an
allow-list: an option not named there is refused, GNU's abbreviations of long
options included), and every argument that names a file (the operands, and
option values such as `sort -o FILE`, `grep -f FILE`, `find -newer FILE`) must
resolve, `..` and symlinks followed, inside the working folder. Options that
follow symlinks while recursing (`ls -L`, `grep -R`, `find -L`) are not on the
lists. Programs that run other programs (`env`, `xargs`, shells, interpreters,
`sudo`, ...) cannot be allowed at all; `find` takes only the primaries listed in
`FIND`, never -exec/-execdir/-ok/-okdir, -delete, or -fprint/-fprint0/-fprintf/-fls.

The table follows GNU coreutils, findutils and grep. What remains the user's
risk: what an allowed program does inside the folder (`rm -r` deletes, `cp`,
`mv` and `sort -o` overwrite), hard links in the folder to files outside it
(they look like any file), a link or folder swapped by another process between
the check and the program's own open, and the program found on PATH being the
one the table describes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmos.apps.tool_schema import ToolError

PATH, TEXT = "path", "text"  # an option value or operand that names a file / that does not

RUNS_PROGRAMS = frozenset(
    "env xargs nice nohup timeout time stdbuf setsid chroot sudo doas su runuser pkexec sh bash dash zsh ksh fish "
    "csh tcsh busybox python python2 python3 perl ruby node deno php lua awk gawk mawk nawk sed make git ssh scp "
    "rsync tar zip watch strace ltrace gdb script parallel flock vi vim nvim emacs less more man ionice taskset "
    "unshare nsenter systemd-run".split())

_RUNS, _WRITES, _FOLLOWS = "it runs other programs", "it writes a file", "it follows symbolic links out"
_REASONS = {  # why an option left off a program's list is refused, where it is a known danger
    "find": {"-exec": _RUNS, "-execdir": _RUNS, "-ok": _RUNS, "-okdir": _RUNS, "-delete": "it deletes files",
             "-fprint": _WRITES, "-fprint0": _WRITES, "-fprintf": _WRITES, "-fls": _WRITES, "-L": _FOLLOWS,
             "-H": _FOLLOWS, "-follow": _FOLLOWS},
    "ls": {"-L": _FOLLOWS, "-H": _FOLLOWS, "--dereference": _FOLLOWS},
    "grep": {"-R": _FOLLOWS, "--dereference-recursive": _FOLLOWS},
    "du": {"-L": _FOLLOWS, "--dereference": _FOLLOWS},
    "cp": {"-L": _FOLLOWS, "-H": _FOLLOWS, "--dereference": _FOLLOWS, "-s": "it makes symbolic links",
           "--symbolic-link": "it makes symbolic links", "-l": "it makes hard links", "--link": "it makes hard links"},
    "sort": {"--compress-program": _RUNS, "-T": "it writes outside", "--temporary-directory": "it writes outside"},
    "tail": {"-f": "it never ends", "-F": "it never ends", "--follow": "it never ends"},
    "wc": {"--files0-from": "it reads file names from a file, unchecked"},
    "rmdir": {"-p": "it removes the folders above too"},
}


def _options(flags: str = "", text: str = "", path: str = "") -> dict[str, str | None]:
    """An option table from space-separated names: flags take no value; text and path ones take one."""
    table: dict[str, str | None] = dict.fromkeys(flags.split())
    table.update(dict.fromkeys(text.split(), TEXT))
    table.update(dict.fromkeys(path.split(), PATH))
    return table


@dataclass(frozen=True)
class Program:
    """What one program may be given. `options` None: every argument is plain text (echo)."""

    options: dict[str, str | None] | None
    operands: str = PATH  # PATH: every operand names a file; TEXT: none does
    pattern_first: bool = False  # grep: the first operand is the pattern unless -e or -f gave one
    numeric: bool = False  # head, tail: -5 means -n 5
    max_operands: int | None = None
    keeps_folder: bool = False  # rm, rmdir, mv: the working folder itself is not an operand


_HEAD_TAIL = _options("-q -v -z --quiet --silent --verbose --zero-terminated", "-n -c --lines --bytes")
PROGRAMS: dict[str, Program] = {
    "cat": Program(_options("-A -b -e -E -n -s -t -T -u -v --show-all --number-nonblank --show-ends --number "
                            "--squeeze-blank --show-tabs --show-nonprinting")),
    "head": Program(_HEAD_TAIL, numeric=True),
    "tail": Program(_HEAD_TAIL, numeric=True),
    "wc": Program(_options("-c -m -l -L -w --bytes --chars --lines --max-line-length --words")),
    "ls": Program(_options("-a -A -l -h -r -R -t -S -1 -d -F -i -s -n -g -G -p -U -X -v -c -u -Q -m -x -C -k "
                           "--all --almost-all --human-readable --reverse --recursive --directory --inode --size "
                           "--numeric-uid-gid --group-directories-first --full-time",
                           "-I -w --ignore --hide --width --sort")),
    "grep": Program(_options("-i -v -n -c -l -L -r -w -x -E -F -G -P -o -h -H -s -q -z -a -I --ignore-case "
                             "--invert-match --line-number --count --files-with-matches --files-without-match "
                             "--recursive --word-regexp --line-regexp --extended-regexp --fixed-strings "
                             "--basic-regexp --perl-regexp --only-matching --no-filename --with-filename "
                             "--no-messages --quiet --silent --null-data --text",
                             "-e -m -A -B -C --regexp --max-count --after-context --before-context --context "
                             "--include --exclude --exclude-dir", "-f --file --exclude-from"), pattern_first=True),
    "sort": Program(_options("-b -d -f -g -i -M -h -n -R -r -V -c -C -s -u -z -m --ignore-leading-blanks "
                             "--dictionary-order --ignore-case --general-numeric-sort --month-sort "
                             "--human-numeric-sort --numeric-sort --random-sort --reverse --version-sort --check "
                             "--stable --unique --zero-terminated --merge",
                             "-k -t -S --key --field-separator --buffer-size --parallel", "-o --output")),
    "uniq": Program(_options("-c -d -D -u -i -z --count --repeated --unique --ignore-case --zero-terminated",
                             "-f -s -w --skip-fields --skip-chars --check-chars"), max_operands=2),
    "cut": Program(_options("-s -z --only-delimited --complement --zero-terminated",
                            "-b -c -d -f --bytes --characters --delimiter --fields --output-delimiter")),
    "du": Program(_options("-a -b -c -h -k -m -s -x --all --bytes --total --human-readable --summarize "
                           "--one-file-system", "-d --max-depth --exclude")),
    "stat": Program(_options("-L -f -t --dereference --file-system --terse", "-c --format --printf")),
    "sha256sum": Program(_options("-b -t -z --binary --text --zero --tag")),
    "md5sum": Program(_options("-b -t -z --binary --text --zero --tag")),
    "mkdir": Program(_options("-p -v --parents --verbose", "-m --mode")),
    "touch": Program(_options("-a -c -m -h --no-create --no-dereference", "-d -t --date", "-r --reference")),
    "cp": Program(_options("-r -R -a -f -n -p -u -v -T --recursive --archive --force --no-clobber "
                           "--verbose --no-target-directory", path="-t --target-directory")),
    "mv": Program(_options("-f -n -u -v -T --force --no-clobber --verbose --no-target-directory",
                           path="-t --target-directory"), keeps_folder=True),
    "rm": Program(_options("-r -R -f -d -v --recursive --force --dir --verbose"), keeps_folder=True),
    "rmdir": Program(_options("-v --verbose --ignore-fail-on-non-empty"), keeps_folder=True),
    "pwd": Program(_options("-L -P"), max_operands=0),
    "echo": Program(None, operands=TEXT),
    "yes": Program(None, operands=TEXT),
    "sleep": Program(None, operands=TEXT),
    "true": Program(None, operands=TEXT),
    "false": Program(None, operands=TEXT),
    "find": Program({}),  # its own grammar: FIND
}

# find: the options before its starting points, and the primaries of its expression (None: no value).
FIND_OPTIONS = {"-P"}
FIND = _options("-depth -xdev -mount -empty -prune -print -print0 -ls -not ! -a -and -o -or -true -false "
                "-readable -writable -executable -quit -nouser -nogroup",
                "-maxdepth -mindepth -name -iname -path -ipath -wholename -iwholename -regex -iregex -regextype "
                "-type -size -mtime -mmin -atime -amin -ctime -cmin -perm -user -group -uid -gid -links -printf",
                "-newer -anewer -cnewer -samefile")


def program_policy(name: str) -> Program:
    """The policy of the program `name` (a bare name or a path to it), or ToolError saying why it has none."""
    base = os.path.basename(name)
    if base in RUNS_PROGRAMS:
        raise ToolError(f"program {name!r} runs other programs (or a script of its own), so allowing it would "
                        "allow everything; it cannot be allowed")
    if base not in PROGRAMS:
        raise ToolError(f"program {name!r} has no argument policy here, so it cannot be allowed; "
                        f"programs that can: {', '.join(sorted(PROGRAMS))}")
    return PROGRAMS[base]


def check_arguments(argv: list[str], cwd: Path) -> None:
    """ToolError unless every argument of `argv` is allowed by its program's policy, every file it names
    inside `cwd` (a resolved folder)."""
    program = os.path.basename(argv[0])
    policy = program_policy(argv[0])
    if program == "find":
        _check_find(argv[1:], cwd)
    elif policy.options is not None:
        _check_options(program, policy, argv[1:], cwd)


def _refuse(program: str, option: str, allowed: dict[str, str | None] | set[str]) -> ToolError:
    reason = _REASONS.get(program, {}).get(option)
    return ToolError(f"{program}: {option} is not allowed{': ' + reason if reason else ''}; "
                     f"allowed: {' '.join(sorted(allowed)) or 'none'}")


def _inside(program: str, argument: str, cwd: Path, keeps_folder: bool = False) -> None:
    """ToolError unless the file `argument` names (relative to `cwd`, links followed) is inside `cwd`."""
    try:
        target = (cwd / argument).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ToolError(f"{program}: path {argument!r} cannot be resolved: {exc}") from None
    if target != cwd and cwd not in target.parents:
        raise ToolError(f"{program}: path {argument!r} is outside the working folder {str(cwd)!r}")
    if keeps_folder and target == cwd:
        raise ToolError(f"{program}: path {argument!r} is the working folder itself; name something in it")


def _check_options(program: str, policy: Program, args: list[str], cwd: Path) -> None:
    """getopt's reading of `args` (options may follow operands; `--` ends them), each option checked."""
    options, operands, pattern_given, i = policy.options or {}, [], False, 0
    while i < len(args):
        arg, named = args[i], []  # named: (option, value) for the options here that take one
        if arg == "--":
            operands += args[i + 1:]
            break
        if arg.startswith("--"):
            name, has_value, value = arg.partition("=")
            if name not in options:
                raise _refuse(program, name, options)
            if options[name] is None and has_value:
                raise ToolError(f"{program}: {name} takes no value")
            if options[name] is not None:
                if not has_value:
                    i, value = _next_value(program, name, args, i)
                named.append((name, value))
        elif arg.startswith("-") and arg != "-":
            if not (policy.numeric and arg[1:].isdigit()):  # head -5 is head -n 5
                i = _short_options(program, options, args, i, named)
        else:
            operands.append(arg)
        for name, value in named:
            pattern_given |= name in ("-e", "-f", "--regexp", "--file")
            if options[name] == PATH:
                _inside(program, value, cwd)
        i += 1
    if policy.pattern_first and not pattern_given and operands:
        operands = operands[1:]
    if policy.max_operands is not None and len(operands) > policy.max_operands:
        raise ToolError(f"{program} takes at most {policy.max_operands} file operand(s), got {len(operands)}")
    for operand in operands:
        _inside(program, operand, cwd, policy.keeps_folder)


def _short_options(program: str, options: dict[str, str | None], args: list[str], i: int,
                   named: list[tuple[str, str]]) -> int:
    """Check the cluster args[i] (`-rn`, `-ofile`, `-o file`); an option with a value takes the rest of
    the word or the next argument (appended to `named`). Returns the index of the last argument used."""
    arg = args[i]
    for j, letter in enumerate(arg[1:], start=1):
        name = "-" + letter
        if name not in options:
            raise _refuse(program, name, options)
        if options[name] is not None:
            value = arg[j + 1:]
            if not value:
                i, value = _next_value(program, name, args, i)
            named.append((name, value))
            break
    return i


def _next_value(program: str, option: str, args: list[str], i: int) -> tuple[int, str]:
    if i + 1 == len(args):
        raise ToolError(f"{program}: {option} needs a value")
    return i + 1, args[i + 1]


def _check_find(args: list[str], cwd: Path) -> None:
    """find [-P] [starting point...] [expression]: starting points and file-valued primaries inside `cwd`."""
    i = 0
    while i < len(args) and args[i][:2] in ("-P", "-L", "-H", "-D", "-O"):
        if args[i] not in FIND_OPTIONS:
            raise _refuse("find", args[i], FIND_OPTIONS)
        i += 1
    while i < len(args) and not args[i].startswith("-") and args[i] != "!":
        _inside("find", args[i], cwd)
        i += 1
    while i < len(args):
        primary = args[i]
        if primary not in FIND:
            if not primary.startswith("-") and primary != "!":
                raise ToolError(f"find: {primary!r} is not a primary; starting points come before the expression")
            raise _refuse("find", primary, FIND)
        if FIND[primary] is not None:
            i, value = _next_value("find", primary, args, i)
            if FIND[primary] == PATH:
                _inside("find", value, cwd)
        i += 1
