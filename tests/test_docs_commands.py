"""The commands in README.md and docs/*.md are checked against the code they call, so that a renamed flag or config
fails this test rather than a user who copies the command.

Every ```bash / ```sh / ```shell / ```console block is read as a shell script would be: lines ending in ``\\`` are
joined, comments dropped, commands split on ``&&``, ``||``, ``;`` and ``|``, redirections dropped, leading
``VAR=value`` assignments removed (a line of assignments only defines variables, which later ``$VAR`` / ``${VAR}`` in
the same block expand to). Each command is then checked by its kind:

* ``dpsims-aug SUB ...``: parsed by the real parser (``dpsims_aug.cli.build_parser``); ``train``'s trainer options by
  ``train_gan.train.parse_args``; the config of ``train``, ``seg-train``, ``seg-test`` and ``configs NAME`` must be an
  existing file or the name of a shipped config;
* ``python -m train_gan.train ...``, and the ``-m train_gan.train`` (or ``-m dpsims_aug``) part of ``torchrun`` /
  ``srun`` lines: the same;
* ``python benchmarks/X.py ...``: the script exists and every ``--flag`` used appears in its ``--help``;
* ``make TARGET``: the target is in the Makefile;
* ``pip install ...``: every ``-r FILE`` exists and every extra of this package is in setup.cfg's extras_require;
* anything else (git, cd, ...) is counted, not checked.

Paths that the commands read or write (datasets, checkpoints, work dirs) are examples and are not checked; configs
are. Every relative markdown link in those files must point to an existing file in the repository (and an anchor to
one of its headings).

``python tests/test_docs_commands.py`` prints how many commands of each kind the documents hold.
"""

from __future__ import annotations

import configparser
import contextlib
import functools
import io
import re
import shlex
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
SEPARATORS = {";", "&&", "||", "|", "&"}
REDIRECTIONS = {">", ">>", "<", "2>", "&>", ">&"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")


def doc_files() -> list[Path]:
    """The documents whose commands and links are checked."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Command:
    """One simple command of a document: where it is, its words after expansion, and what checks it."""

    file: str  # repository-relative
    line: int  # 1-based line where the command starts
    text: str  # the logical line it came from (continuations joined)
    argv: tuple[str, ...]
    kind: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


# ------------------------------------------------------------------------------------------------- extraction


def shell_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """Fenced code blocks of a markdown text: (language, 1-based line of the block's first content line, lines)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.group(1), match.group(2).lower()
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j])
            j += 1
        blocks.append((lang, i + 2, body))
        i = j + 1
    return blocks


def logical_lines(body: list[str], first_line: int, console: bool) -> list[tuple[int, str]]:
    """Join continuation lines; in a console block keep only the lines after a ``$`` prompt."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(body):
        number = first_line + offset
        if pending is None:
            line = raw
            if console:
                stripped = raw.lstrip()
                if not stripped.startswith("$ "):
                    continue
                line = stripped[2:]
            start = number
        else:
            start, line = pending[0], pending[1] + " " + raw.strip()
        if line.rstrip().endswith("\\"):
            pending = (start, line.rstrip()[:-1].rstrip())
            continue
        pending = None
        if line.strip():
            out.append((start, line.strip()))
    if pending is not None and pending[1].strip():
        out.append(pending)
    return out


def tokenize(line: str) -> list[list[str]]:
    """The simple commands of one logical shell line, as word lists (quotes removed, comments dropped)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    tokens = list(lexer)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in SEPARATORS:
            commands.append([])
        elif token in REDIRECTIONS or (token.isdigit() and i + 1 < len(tokens) and tokens[i + 1] in REDIRECTIONS):
            i += 1 if token.isdigit() else 0  # a file descriptor before the operator
            i += 1  # the operator's target
        else:
            commands[-1].append(token)
        i += 1
    return [c for c in commands if c]


def expand(words: list[str], variables: dict[str, str]) -> list[str]:
    """``$VAR`` and ``${VAR}``: a word that is only a variable splits into the variable's words, as unquoted shell
    variables do; a variable inside a word is replaced in place. Unknown variables are left as they are."""
    out: list[str] = []
    for word in words:
        whole = VARIABLE.fullmatch(word)
        if whole and (whole.group(1) or whole.group(2)) in variables:
            out.extend(shlex.split(variables[whole.group(1) or whole.group(2)]))
            continue
        out.append(VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), word))
    return out


def strip_wrappers(argv: list[str]) -> list[str]:
    """Drop ``nice [-n N]``, ``time`` and ``env VAR=...`` in front of a command."""
    while argv:
        if argv[0] == "nice":
            argv = argv[3:] if len(argv) > 2 and argv[1] == "-n" else argv[1:]
        elif argv[0] == "time":
            argv = argv[1:]
        elif argv[0] == "env":
            argv = argv[1:]
            while argv and ASSIGNMENT.match(argv[0]):
                argv = argv[1:]
        else:
            break
    return argv


def classify(argv: list[str]) -> tuple[str, list[str]]:
    """(kind, the words its checker needs)."""
    prog = Path(argv[0]).name
    if prog == "dpsims-aug":
        return "dpsims-aug", argv[1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", prog) and len(argv) > 1:
        if argv[1] == "-m" and len(argv) > 2:
            module = argv[2]
            if module == "train_gan.train":
                return "train_gan.train", argv[3:]
            if module == "dpsims_aug":
                return "dpsims-aug", argv[3:]
            if module == "pip":
                return "pip", argv[3:]
            return "other", argv
        if argv[1].startswith("benchmarks/") and argv[1].endswith(".py"):
            return "benchmark", argv[1:]
        return "other", argv
    if prog in ("pip", "pip3"):
        return "pip", argv[1:]
    if prog == "make":
        return "make", argv[1:]
    if prog in ("torchrun", "srun"):
        for i in range(len(argv) - 1):
            if argv[i] == "-m" and argv[i + 1] == "train_gan.train":
                return "train_gan.train", argv[i + 2:]
            if argv[i] == "-m" and argv[i + 1] == "dpsims_aug":
                return "dpsims-aug", argv[i + 2:]
        return "other", argv
    return "other", argv


def commands_of(path: Path) -> list[Command]:
    """Every simple command in the shell blocks of one document."""
    rel = path.relative_to(REPO).as_posix()
    found: list[Command] = []
    for lang, first_line, body in shell_blocks(path.read_text(encoding="utf-8")):
        if lang not in SHELL_LANGUAGES:
            continue
        variables: dict[str, str] = {}
        for number, line in logical_lines(body, first_line, console=lang == "console"):
            for words in tokenize(line):
                assignments = 0
                while assignments < len(words) and ASSIGNMENT.match(words[assignments]):
                    assignments += 1
                if assignments == len(words):  # a line of assignments only: shell variables for what follows
                    for word in words:
                        name, value = word.split("=", 1)
                        variables[name] = " ".join(expand([value], variables)) if "$" in value else value
                    continue
                argv = strip_wrappers(expand(words[assignments:], variables))
                if not argv:
                    continue
                kind, _ = classify(argv)
                found.append(Command(rel, number, line, tuple(argv), kind))
    return found


def all_commands() -> list[Command]:
    return [c for path in doc_files() for c in commands_of(path)]


def command_id(commands: list[Command]) -> list[str]:
    """Test ids ``file:line`` (``file:line#k`` for the k-th further command on one line)."""
    seen: Counter[str] = Counter()
    ids = []
    for c in commands:
        ids.append(c.where if not seen[c.where] else f"{c.where}#{seen[c.where]}")
        seen[c.where] += 1
    return ids


# ------------------------------------------------------------------------------------------------- checkers


def fail(cmd: Command, problem: str) -> None:
    pytest.fail(f"{cmd.where}: `{shlex.join(cmd.argv)}`\n  {problem}", pytrace=False)


def shipped_configs(kind: str) -> dict[str, list[Path]]:
    """Config names a command accepts instead of a path: ``train_gan/configs/NAME.py`` (the GAN trainer) and
    ``augment/**/NAME.py`` (segmenters), ``_base_`` files excluded."""
    names: dict[str, list[Path]] = {}
    roots = {"gan": [REPO / "train_gan" / "configs"], "seg": [REPO / "augment"],
             "any": [REPO / "train_gan" / "configs", REPO / "augment"]}[kind]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "_base_" not in path.relative_to(root).parts and path.name != "__init__.py":
                names.setdefault(path.stem, []).append(path)
    return names


def resolve_config(name_or_path: str, kind: str, written: set[str] = frozenset()) -> Path | str:
    """The config file a command names, or a string saying why there is none. ``written``: files that an earlier
    ``dpsims-aug configs NAME --out FILE`` of the same document writes."""
    if name_or_path in written:
        return Path(name_or_path)
    if (REPO / name_or_path).is_file():
        return REPO / name_or_path
    if "/" in name_or_path or name_or_path.endswith(".py"):
        return f"config {name_or_path!r} is not a file in the repository"
    found = shipped_configs(kind).get(name_or_path, [])
    if len(found) == 1:
        return found[0]
    where = {"gan": "train_gan/configs/", "seg": "augment/**/", "any": "train_gan/configs/ or augment/**/"}[kind]
    if not found:
        return f"config {name_or_path!r} is neither a file nor the name of a shipped config in {where}"
    return f"config name {name_or_path!r} is ambiguous: {[p.relative_to(REPO).as_posix() for p in found]}"


def written_configs(path_rel: str) -> set[str]:
    """Files that ``dpsims-aug configs NAME --out FILE`` commands of one document write."""
    out: set[str] = set()
    for c in commands_of(REPO / path_rel):
        words = list(c.argv[1:]) if c.kind == "dpsims-aug" else []
        if words[:1] == ["configs"] and "--out" in words[:-1]:
            out.add(words[words.index("--out") + 1])
    return out


def run_parser(parse, argv: list[str]):
    """``parse(argv)`` with argparse's exit turned into (namespace or None, error text)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            return parse(argv), ""
        except SystemExit as err:
            if err.code in (0, None):  # --help
                return None, ""
            lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
            return None, lines[-1] if lines else f"exit code {err.code}"


def check_config(cmd: Command, name_or_path: str, kind: str) -> None:
    resolved = resolve_config(name_or_path, kind, written_configs(cmd.file))
    if isinstance(resolved, str):
        fail(cmd, resolved)


def check_trainer_args(cmd: Command, argv: list[str]) -> None:
    from train_gan.train import parse_args

    if any(a in ("-h", "--help") for a in argv):
        return
    ns, error = run_parser(parse_args, argv)
    if error:
        fail(cmd, f"train_gan.train.parse_args: {error}")
    check_config(cmd, ns.config, "gan")


def check_dpsims_aug(cmd: Command) -> None:
    from dpsims_aug.cli import build_parser

    words = list(classify(list(cmd.argv))[1])
    ns, error = run_parser(build_parser().parse_args, words)
    if error:
        fail(cmd, f"dpsims-aug's parser: {error}")
    if ns is None or not words:  # --help
        return
    sub = words[0]
    if sub == "train":
        check_trainer_args(cmd, [ns.config, *ns.train_args])
    elif sub in ("seg-train", "seg-test") or (sub == "configs" and len(words) > 1):
        if len(words) > 1 and not words[1].startswith("-"):
            check_config(cmd, words[1], "seg" if sub != "configs" else "any")
        elif sub != "configs":
            fail(cmd, f"`dpsims-aug {sub}` needs a CONFIG as its first argument")


def check_train_gan(cmd: Command) -> None:
    check_trainer_args(cmd, list(classify(list(cmd.argv))[1]))


@functools.cache
def script_help(script: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    return result.returncode, result.stdout + result.stderr


def check_benchmark(cmd: Command) -> None:
    script, *args = classify(list(cmd.argv))[1]
    if not (REPO / script).is_file():
        fail(cmd, f"{script} does not exist")
    code, text = script_help(script)
    if code != 0:
        fail(cmd, f"`python {script} --help` failed (exit code {code}): {text.strip().splitlines()[-1:]}")
    missing = sorted({a.split("=", 1)[0] for a in args if a.startswith("--")}
                     - {f for f in re.findall(r"(?<![\w-])--[\w][\w-]*", text)})
    if missing:
        fail(cmd, f"{script} --help does not list {', '.join(missing)}")


@functools.cache
def make_targets() -> frozenset[str]:
    targets = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+(?:\s+[A-Za-z0-9_.\-]+)*)\s*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return frozenset(targets)


def check_make(cmd: Command) -> None:
    wanted = [a for a in classify(list(cmd.argv))[1] if not a.startswith("-") and "=" not in a]
    missing = [t for t in wanted if t not in make_targets()]
    if missing:
        fail(cmd, f"no Makefile target {', '.join(missing)} (targets: {sorted(make_targets())})")


@functools.cache
def extras() -> frozenset[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return frozenset(parser["options.extras_require"])


def check_pip(cmd: Command) -> None:
    args = list(classify(list(cmd.argv))[1])
    if args[:1] != ["install"]:
        return
    problems = []
    for i, arg in enumerate(args):
        if arg in ("-r", "--requirement"):
            if i + 1 >= len(args) or not (REPO / args[i + 1]).is_file():
                problems.append(f"requirements file {args[i + 1] if i + 1 < len(args) else '(none)'} is missing")
        match = re.fullmatch(r"(?P<what>[^\[\]]*)\[(?P<extras>[^\]]*)\]", arg)
        if match and match.group("what") in (".", "./", "dpsims-aug", "dpsims_aug"):
            unknown = [e.strip() for e in match.group("extras").split(",") if e.strip() not in extras()]
            if unknown:
                problems.append(f"extras {unknown} are not in setup.cfg's extras_require {sorted(extras())}")
    if problems:
        fail(cmd, "; ".join(problems))


CHECKERS = {
    "dpsims-aug": check_dpsims_aug,
    "train_gan.train": check_train_gan,
    "benchmark": check_benchmark,
    "make": check_make,
    "pip": check_pip,
}

COMMANDS = all_commands()
CHECKED = [c for c in COMMANDS if c.kind in CHECKERS]


@pytest.mark.parametrize("cmd", CHECKED, ids=command_id(CHECKED))
def test_documented_command(cmd: Command) -> None:
    CHECKERS[cmd.kind](cmd)


def test_documents_hold_commands() -> None:
    """The extraction finds the commands at all (a broken extractor would otherwise pass everything)."""
    kinds = Counter(c.kind for c in COMMANDS)
    assert set(CHECKERS) <= set(kinds), f"kinds found: {dict(kinds)}"
    readme = Counter(c.kind for c in COMMANDS if c.file == "README.md")
    assert readme["dpsims-aug"] >= 20 and readme["make"] >= 2 and readme["pip"] >= 2, dict(readme)


# ------------------------------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings (outside code blocks)."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    in_code = None
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(line)
        if fence and (in_code is None or line.strip().startswith(in_code)):
            in_code = fence.group(1) if in_code is None else None
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code is None and match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    return anchors


def links() -> list[tuple[str, int, str]]:
    """Every relative link of the documents, outside code blocks and inline code: (file, line, target)."""
    found = []
    for path in doc_files():
        rel = path.relative_to(REPO).as_posix()
        in_code = None
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            fence = FENCE.match(line)
            if fence and (in_code is None or line.strip().startswith(in_code)):
                in_code = fence.group(1) if in_code is None else None
                continue
            if in_code is not None:
                continue
            for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
                if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    found.append((rel, number, target))
    return found


LINKS = links()


@pytest.mark.parametrize(("doc", "line", "target"), LINKS, ids=[f"{d}:{n}:{t}" for d, n, t in LINKS])
def test_relative_link(doc: str, line: int, target: str) -> None:
    source = REPO / doc
    path_part, _, anchor = target.partition("#")
    dest = (source.parent / path_part).resolve() if path_part else source
    assert dest.is_relative_to(REPO), f"{doc}:{line}: link {target} leaves the repository"
    assert dest.exists(), f"{doc}:{line}: link {target} points to a missing file"
    if anchor and dest.suffix == ".md":
        assert anchor in heading_anchors(dest), f"{doc}:{line}: {dest.name} has no heading #{anchor}"


# ------------------------------------------------------------------------------------------------- the extractor


def test_extractor_reads_shell_like_a_shell(tmp_path: Path) -> None:
    text = "\n".join([
        "```bash",
        'B="python benchmarks/studies/bench_seg_gain.py --seeds 3 \\',
        '   --jobs 1"; S=--labelled',
        "OMP_NUM_THREADS=1 $B $S 16 --gan \"a (b)=c\"   # a comment",
        "make env && make test; git show x:y > out.bin",
        "srun -p gpu python -m train_gan.train train_gan/configs/ade20k.py --launcher slurm",
        "nice -n 19 .venv/bin/dpsims-aug dataset --out d",
        "```",
        "```python",
        "dpsims-aug not-a-shell-block",
        "```",
        "```console",
        "$ pip install -e '.[dev]'",
        "output line",
        "```",
    ])
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    blocks = shell_blocks(text)
    assert [(lang, start) for lang, start, _ in blocks] == [("bash", 2), ("python", 10), ("console", 13)]
    lines = logical_lines(blocks[0][2], blocks[0][1], console=False)
    assert [n for n, _ in lines] == [2, 4, 5, 6, 7]
    variables: dict[str, str] = {}
    argvs = []
    for _, line in lines:
        for words in tokenize(line):
            if all(ASSIGNMENT.match(w) for w in words):
                variables.update(w.split("=", 1) for w in words)
                continue
            n = 0
            while ASSIGNMENT.match(words[n]):
                n += 1
            argvs.append(strip_wrappers(expand(words[n:], variables)))
    assert argvs[0] == ["python", "benchmarks/studies/bench_seg_gain.py", "--seeds", "3", "--jobs", "1",
                        "--labelled", "16", "--gan", "a (b)=c"]
    assert argvs[1:4] == [["make", "env"], ["make", "test"], ["git", "show", "x:y"]]
    assert classify(argvs[4]) == ("train_gan.train", ["train_gan/configs/ade20k.py", "--launcher", "slurm"])
    assert classify(argvs[5]) == ("dpsims-aug", ["dataset", "--out", "d"])
    assert classify(["torchrun", "--nproc_per_node=8", "-m", "dpsims_aug", "seg-train", "x"]) == (
        "dpsims-aug", ["seg-train", "x"])
    console = logical_lines(blocks[2][2], blocks[2][1], console=True)
    assert console == [(13, "pip install -e '.[dev]'")]


def test_config_names_resolve() -> None:
    assert resolve_config("embedded_small", "gan") == REPO / "train_gan" / "configs" / "embedded_small.py"
    pool = REPO / "augment" / "embedded" / "fastscnn_embedded_pool.py"
    assert resolve_config("fastscnn_embedded_pool", "seg") == pool
    assert isinstance(resolve_config("fastscnn_embedded_pool", "gan"), str)
    assert isinstance(resolve_config("no_such_config", "any"), str)
    assert isinstance(resolve_config("embedded", "any"), str)  # a _base_ file is not a shipped config


if __name__ == "__main__":
    counts = Counter((c.kind, c.file) for c in COMMANDS)
    for kind in sorted({k for k, _ in counts}):
        per_file = {f: n for (k, f), n in sorted(counts.items()) if k == kind}
        print(f"{kind:16s} {sum(per_file.values()):4d}  {per_file}")
    print(f"{'links':16s} {len(LINKS):4d}")
