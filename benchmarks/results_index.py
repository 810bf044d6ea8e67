"""The index of the committed benchmark results: writes ``benchmarks/results/README.md``, one row per result (a JSON,
its PNG beside it and its folder of grids, if any, share the row) with the question it answers, the command that
produced it, the commit that added it and its date, and whether it is current or archived (``archive/``).

    .venv/bin/python benchmarks/results_index.py            # (re)write benchmarks/results/README.md
    .venv/bin/python benchmarks/results_index.py --check    # exit 1 naming files missing from the index or absent

The question comes from the curated ``QUESTIONS`` below (first matching file-name pattern), completed from the JSON's
``settings`` for ``bench_seg_gain.py`` runs; a file no pattern matches gets its JSON's ``benchmark`` / ``report``
text. The command is the JSON's ``command`` (``info.command`` for ``dpsims-aug evaluate``), else ``COMMANDS``. The
commit is the latest ``git log --diff-filter=A`` of the file (for an archived file the first one, under its old path
too); a file that git does not know yet gets "uncommitted". The output depends only on the files, this script,
docs/studies.md's headings and the git history, so it is the same on every full clone. ``--check`` compares the file
lists only (a shallow clone has other commits). Unlike the measuring scripts, a plain run writes the committed file:
the index measures nothing and is rebuilt from what is committed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote

from common import REPO, RESULTS  # benchmarks/common.py

from dpsims_aug.fileio import atomic_write_text

INDEX_NAME = "README.md"
ARCHIVE = "archive"
STUDIES = REPO / "docs" / "studies.md"

# Sections in output order; a result's section and group come from the first SECTIONS pattern its name matches
# (names relative to benchmarks/results/ or archive/, without .json / .png).
SECTION_TITLES = {
    "speed": "Speed",
    "fidelity": "Fidelity and the GAN ablation",
    "studies": "Segmentation-gain studies",
    "paper": "Paper scale",
    "other": "Other (no section yet: add the name to SECTIONS in benchmarks/results_index.py)",
}
SECTIONS: list[tuple[str, str, str]] = [  # (pattern, section, group: a study version or "")
    ("generator_speed", "speed", ""), ("generate_speed*", "speed", ""), ("train_speed*", "speed", ""),
    ("backbone_precision", "speed", ""), ("transform_overhead", "speed", ""), ("scenes_speed", "speed", ""),
    ("bundled_fidelity*", "fidelity", ""), ("fidelity", "fidelity", ""), ("gan_ablation*", "fidelity", ""),
    ("seg_gain", "studies", "v1"), ("seg_gain_quick", "studies", "v1"),
    ("seg_gain_bundle_2026-11-25", "studies", "v1b"), ("seg_gain_bundled", "studies", "v1b"),
    ("seg_gain_recipe_L*", "studies", "v2"), ("seg_gain_own_gan_L16", "studies", "v2"),
    ("seg_gain_headroom", "studies", "v2"),
    ("seg_gain_own_gan_L16_run*", "studies", "v4"), ("seg_gain_own_gan_L16_*", "studies", "v3"),
    ("seg_gain_recipe2_L16", "studies", "v3"), ("seg_gain_shares", "studies", "v3"),
    ("seg_gain_own_gan_nce0_L16_*", "studies", "v4"), ("seg_gain_finetune*", "studies", "v4"),
    ("seg_gain_recipe3_L16_*", "studies", "v4"), ("seg_gain_runs", "studies", "v4"),
    ("seg_gain_pool_colour", "studies", "v4"),
    ("seg_gain_v5_*", "studies", "v5"), ("seg_gain_v6_*", "studies", "v6"), ("seg_gain_v7_*", "studies", "v7"),
    ("pool_diversity", "studies", "v7"),
    ("paper_dry_run", "paper", ""),
]
# Group titles the study log (docs/studies.md, "## vN: title") does not have.
EXTRA_GROUPS = {"v1b": "v1 follow-up: the bundled generator in v1's pool protocol (32 labelled images)"}
GROUP_ORDER = ["v1", "v1b", "v2", "v3", "v4", "v5", "v6", "v7"]

# What each result answers, one line (first matching pattern; from docs/benchmarks.md and docs/studies.md).
QUESTIONS: list[tuple[str, str]] = [
    ("generator_speed", "How fast is the generator (fp32 / bf16, batch 1 / 8), against OASIS in the same run?"),
    ("pool_diversity", "How different are a pool's images of one label map? (study v7 snow pools against the "
     "oracle)"),
    ("generate_speed", "How much of the bare forward's speed survives `dpsims-aug generate` end to end? "
     "(small preset, 128x128, 128 images)"),
    ("generate_speed_512img", "`dpsims-aug generate` against the bare forward for 512 images (small preset, 128x128)"),
    ("generate_speed_ade20k", "`dpsims-aug generate` against the bare forward, `ade20k` preset at 256x256"),
    ("train_speed", "How long is one training step (D + G + EMA), and how much memory does it take, per config?"),
    ("train_speed_small", "Is an `embedded_small` step faster in channels_last? (two threads)"),
    ("train_speed_small_1thread", "Is an `embedded_small` step faster in channels_last? (one thread, as the studies "
     "train)"),
    ("backbone_precision", "Is the frozen backbone faster in bf16 or channels_last?"),
    ("transform_overhead", "What does `DPSIMSAugment` (pool, online, batch preprocessor) cost per mmseg iteration?"),
    ("scenes_speed", "How fast is the embedded dataset written (1000 scenes at 128x128)?"),
    ("bundled_fidelity", "Fidelity of the current bundle: KID, colour distance, contrast, near-white, diversity, "
     "TSTR (`dpsims-aug evaluate`)"),
    ("bundled_fidelity_no_colour", "Fidelity of the bundle before colour matching (no PatchNCE, commit f6b92e0)"),
    ("bundled_fidelity_with_patchnce", "Fidelity of the bundle with PatchNCE (mode seeking 0.1, commit 5a4b707)"),
    ("bundled_fidelity_2026-11-25", "Fidelity of the first bundle (mode seeking 1.0, live BN statistics)"),
    ("fidelity", "FID, label consistency and diversity of the previous bundle (`bench_fidelity.py`, the older "
     "measurement; the script was removed, `dpsims-aug evaluate` measures the same: `bundled_fidelity`)"),
    ("gan_ablation", "Which parts of the GAN recipe make images a segmenter can learn from? (mode seeking 1.0 / 0 / "
     "0.1 / capped, BN recalibration, D backbone from scratch; seed 0)"),
    ("gan_ablation_part3", "Comparison figure of an early partial ablation run (`div0.1+scratch_d` only)"),
    ("gan_ablation_part4", "PatchNCE off and LabelMix off on the shipped recipe (seed 0)"),
    ("gan_ablation_seeds", "Mode seeking 1.0 against 0.1 over two GAN seeds"),
    ("gan_ablation_nce0_seeds", "No PatchNCE on the shipped recipe, two GAN seeds"),
    ("gan_ablation_colour", "Per-class colour matching at weight 1 and 10 on the shipped recipe"),
    ("seg_gain", "Does synthetic data from a GAN trained on the 32 labelled images improve a segmenter?"),
    ("seg_gain_quick", "Does synthetic data from a GAN trained on the labelled images improve a segmenter? "
     "(`--quick`: 1 seed, short runs)"),
    ("seg_gain_bundle_2026-11-25", "The first bundle's pool at 32 labelled images"),
    ("seg_gain_bundled", "The retrained bundle's pool at 32 labelled images"),
    ("seg_gain_recipe_L16", "Headroom at 16 labelled images: the bundled pool (share 0.5, 0.25), filtered pool, new "
     "layouts, oracle"),
    ("seg_gain_recipe_L32", "Headroom at 32 labelled images: the bundled pool (share 0.5, 0.25), filtered pool, new "
     "layouts, oracle"),
    ("seg_gain_own_gan_L16", "A GAN trained on the 16 labelled images only: its pool at share 0.5"),
    ("seg_gain_headroom", "How much does more labelled data help, and how much of it does synthesis get? (report)"),
    ("seg_gain_own_gan_L16_recipe", "Own GAN, run 1: share 0.5, share 0.25, two-stage"),
    ("seg_gain_own_gan_L16_shares", "Own GAN, run 1: shares 0.25 and 0.1"),
    ("seg_gain_own_gan_L16_s0.25_5seeds", "Own GAN, run 1: share 0.25 over 5 segmenter seeds"),
    ("seg_gain_own_gan_L16_online", "Own GAN, online `DPSIMSAugment` (p=0.25)"),
    ("seg_gain_own_gan_L16_ada", "Own GAN trained with ADA"),
    ("seg_gain_own_gan_L16_div1", "Own GAN with mode seeking 1.0"),
    ("seg_gain_recipe2_L16", "Bundled generator: two-stage and share 0.25; the oracle at share 0.25"),
    ("seg_gain_shares", "What synthetic share is best, per generator? (report)"),
    ("seg_gain_own_gan_L16_run3", "From scratch on the 16 images, GAN run 3"),
    ("seg_gain_own_gan_nce0_L16_run*", "From scratch without PatchNCE, one GAN run"),
    ("seg_gain_finetune_L16_run1_n16", "Fine-tuned from the bundled generator, run 1, 16 images per map"),
    ("seg_gain_finetune_L16_run*", "Fine-tuned from the bundled generator on the 16 images, one GAN run"),
    ("seg_gain_finetune250_L16_run1", "Fine-tuned for 250 iterations only"),
    ("seg_gain_finetune_warmup200_L16_run1", "Fine-tuned after 200 iterations of discriminator warm-up"),
    ("seg_gain_finetune_nce0_L16_run*", "Fine-tuned without PatchNCE, one GAN run"),
    ("seg_gain_recipe3_L16_n16", "Bundled generator, 16 images per map"),
    ("seg_gain_recipe3_L16_resample", "Bundled generator with FreeMask's hardness-aware resampling"),
    ("seg_gain_recipe3_L16_oraclenew", "Oracle with new scenes (new layouts and images)"),
    ("seg_gain_runs", "How much do GAN training runs of one recipe differ? (report)"),
    ("seg_gain_pool_colour", "What colours do the study's pools have, against the real images? (report)"),
    ("seg_gain_v5_bundle", "The bundle without PatchNCE (commit f6b92e0), share 0.25"),
    ("seg_gain_v5_bundle_with_patchnce", "The bundle with PatchNCE, on the same real-only runs"),
    ("seg_gain_v5_oracle", "Both oracles (new appearances, new scenes) beside the v5 bundle's pool"),
    ("seg_gain_v6_colour_bundle", "The colour-matched (current) bundle's gain"),
    ("seg_gain_v7_shift_source", "How far does a segmenter trained on the source world fall on arid and snow?"),
    ("seg_gain_v7_*_runs", "Target domain: each recipe's gain per GAN run, paired by segmenter seed (report)"),
    ("seg_gain_v7_*_bundle_asis*", "Target domain: the source generator as is, and the oracle"),
    ("seg_gain_v7_*_bundle_finetuned*_run2", "Target domain: the source generator fine-tuned on the target images, "
     "run 2 (GAN seed 1; iterations in the command)"),
    ("seg_gain_v7_*_bundle_finetuned*_run3", "Target domain: the source generator fine-tuned on the target images, "
     "run 3 (GAN seed 2; iterations in the command)"),
    ("seg_gain_v7_*_bundle_finetuned*", "Target domain: the source generator fine-tuned on the target images "
     "(iterations in the command)"),
    ("seg_gain_v7_*_own_gan", "Target domain: a GAN trained on the target images only, run 1"),
    ("seg_gain_v7_*_own_gan_run2", "Target domain: a GAN trained on the target images only, run 2 (GAN seed 1)"),
    ("seg_gain_v7_*_own_gan_run3", "Target domain: a GAN trained on the target images only, run 3 (GAN seed 2)"),
    ("seg_gain_v7_*_own_gan_class_codes", "Target domain: own GAN with per-class appearance codes"),
    ("seg_gain_v7_*_own_gan_*_run2", "Target domain: a GAN trained on the target images only, with one lever (in "
     "the command), run 2 (GAN seed 1)"),
    ("seg_gain_v7_*_own_gan_*_run3", "Target domain: a GAN trained on the target images only, with one lever (in "
     "the command), run 3 (GAN seed 2)"),
    ("seg_gain_v7_*_own_gan_*", "Target domain: a GAN trained on the target images only, with one lever (in the "
     "command)"),
    ("seg_gain_v7_*_recolour*", "Target domain: per-class recolouring of the real images in the segmenter's "
     "pipeline (ClassRecolour, no synthesis)"),
    ("paper_dry_run", "Do the paper presets (ade20k, coco_stuff, cityscapes) run end to end, and what do they cost? "
     "(docs/cost_card.md)"),
]
# Commands the JSON does not record (from the docs or the commit that added the file).
COMMANDS = {
    "bundled_fidelity_2026-11-25": "not recorded: `dpsims-aug evaluate` as for bundled_fidelity.json, "
                                   "--checkpoint work_dirs/bundle_2026-11-25.safetensors",
    "gan_ablation_part3": "not recorded: an early `benchmarks/studies/bench_gan_ablation.py` run",
}
# Why an archived result was archived.
SUPERSEDED_BY = {
    "bundled_fidelity_2026-11-25": "a dated copy of a bundle no longer shipped; current: bundled_fidelity.json",
    "fidelity": "the older measurement, of the previous bundle; current: bundled_fidelity.json",
    "gan_ablation_part3": "a partial run; gan_ablation.png shows every variant",
    "seg_gain_bundle_2026-11-25": "a dated copy of a bundle no longer shipped (then seg_gain_bundled, then study v2)",
    "seg_gain_bundled": "its runs are the real and pool_n4 rows of seg_gain_recipe_L32.json (study v2)",
}


class Entry:
    """One row: a result stem (relative to benchmarks/results/, no suffix) and its files (relative to
    benchmarks/results/, sorted). A plain class: the tests load this script without registering it as a module,
    which dataclasses need."""

    def __init__(self, stem: str, files: list[str] | None = None) -> None:
        self.stem, self.files = stem, list(files or [])

    @property
    def base(self) -> str:
        """The stem's own name (without ``archive/``): what the curated tables match."""
        return self.stem.rsplit("/", 1)[-1]

    @property
    def archived(self) -> bool:
        return self.stem.split("/", 1)[0] == ARCHIVE

    @property
    def primary(self) -> str:
        """The file whose command and commit the row shows: the JSON, else the PNG, else the first file."""
        for suffix in (".json", ".png"):
            if self.stem + suffix in self.files:
                return self.stem + suffix
        return self.files[0]


def result_files(root: Path = RESULTS) -> list[str]:
    """Every file under ``root`` (relative, posix, sorted) but the index itself and hidden files."""
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != INDEX_NAME and not any(p.startswith(".") for p in rel.split("/")):
            out.append(rel)
    return sorted(out)


def stem_of(rel: str) -> str:
    """The row a file belongs to: ``x.json`` / ``x.png`` -> ``x``; a file in a folder ``x/`` (not archive/) -> ``x``;
    other files are rows of their own. Suffixes are cut as strings: stems hold dots (``..._s0.25``)."""
    parts = rel.split("/")
    top = 2 if parts[0] == ARCHIVE else 1
    if len(parts) > top:
        return "/".join(parts[:top])
    for suffix in (".json", ".png"):
        if rel.endswith(suffix):
            return rel[: -len(suffix)]
    return rel


def entries(files: list[str]) -> list[Entry]:
    rows: dict[str, Entry] = {}
    for rel in files:
        rows.setdefault(stem_of(rel), Entry(stem_of(rel))).files.append(rel)
    return [rows[k] for k in sorted(rows)]


def first_match(name: str, table: list[tuple]):
    for row in table:
        if fnmatch.fnmatchcase(name, row[0]):
            return row[1:]
    return None


def read_json(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def seg_gain_detail(record: dict) -> str:
    """``bench_seg_gain.py``'s settings in a few words: labelled count, domain, variants."""
    settings, summary = record.get("settings"), record.get("summary")
    if not isinstance(settings, dict) or not isinstance(summary, dict) or "labelled" not in settings:
        return ""
    words = [f"{settings['labelled']} labelled"]
    if settings.get("domain") not in (None, "source"):
        words.append(f"domain {settings['domain']}")
    variants = [v for v in summary if v != "real"]
    return f" ({', '.join(words)}; {' '.join(variants) if variants else 'real only'})"


def question(entry: Entry, record: dict) -> str:
    found = first_match(entry.base, QUESTIONS)
    if found is None:
        text = record.get("benchmark") or record.get("report") or "(no description: add one to QUESTIONS)"
        return str(text)
    return found[0] + seg_gain_detail(record)


def command(entry: Entry, record: dict) -> str:
    """The recorded command, its script path brought up to date (``current_script_paths``)."""
    info = record.get("info") if isinstance(record.get("info"), dict) else {}
    recorded = record.get("command") or info.get("command")
    if recorded:
        text = current_script_paths(str(recorded).replace(str(REPO) + "/", ""))
        return "`" + text.replace("|", "\\|") + "`"
    return COMMANDS.get(entry.base, "not recorded")


def current_script_paths(command_text: str) -> str:
    """``command_text`` with ``benchmarks/<script>.py`` of a script that has since moved into ``speed/`` or
    ``studies/`` written at its current path (the JSON keeps the command as it ran; the index shows one that runs)."""
    def moved(match: re.Match) -> str:
        name = match.group(1)
        for folder in ("speed", "studies"):
            if (REPO / "benchmarks" / folder / name).is_file():
                return f"benchmarks/{folder}/{name}"
        return match.group(0)

    return re.sub(r"benchmarks/([A-Za-z0-9_]+\.py)", moved, command_text)


def git_additions(root: Path = RESULTS) -> dict[str, list[tuple[int, str, str]]]:
    """``{repository-relative path: [(age, short hash, commit date), ...] newest first}`` of the commits that added
    each file under ``root`` (``age``: the commit's place in ``git log``, 0 the newest; ``--no-renames``: a move is an
    addition at its new path). Empty without git or history."""
    rel_root = root.relative_to(REPO).as_posix()
    try:
        text = subprocess.run(["git", "-c", "core.quotepath=off", "log", "--no-renames", "--diff-filter=A",
                               "--format=@@%H %cs", "--name-only", "--", rel_root], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    added: dict[str, list[tuple[int, str, str]]] = {}
    commit, age = None, -1
    for line in text.splitlines():
        if line.startswith("@@"):
            sha, date = line[2:].split()
            age += 1
            commit = (age, sha[:7], date)
        elif line.strip() and commit is not None:
            added.setdefault(line.strip(), []).append(commit)
    return added


def added(entry: Entry, additions: dict[str, list[tuple[int, str, str]]], root: Path = RESULTS) -> str:
    """The commit that added the row's primary file, with its date; for an archived file the first addition at its
    archive path or at its path before it was archived; "uncommitted" when git knows neither."""
    rel_root = root.relative_to(REPO).as_posix()
    path = entry.primary
    commits = list(additions.get(f"{rel_root}/{path}", []))
    if entry.archived:
        commits += additions.get(f"{rel_root}/{path.split('/', 1)[1]}", [])
        commits = sorted(commits, reverse=True)[:1]  # the oldest
    if not commits:
        return "uncommitted"
    _, sha, date = commits[0]
    return f"`{sha}` {date}"


def link(rel: str) -> str:
    return f"[{rel}]({quote(rel, safe='/+._-')})"


def files_cell(entry: Entry) -> str:
    own = [link(f) for f in entry.files if f in (entry.stem + ".json", entry.stem + ".png")]
    rest = [f for f in entry.files if f not in (entry.stem + ".json", entry.stem + ".png")]
    if rest and all(f.startswith(entry.stem + "/") for f in rest):
        own.append(f"grids in `{entry.stem.rsplit('/', 1)[-1]}/`: " + ", ".join(link(f) for f in rest))
    else:
        own += [link(f) for f in rest]
    return ", ".join(own)


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def study_groups() -> dict[str, str]:
    """``{"v1": "[v1: title](../../docs/studies.md#anchor)", ...}`` from the study log's headings."""
    groups = dict(EXTRA_GROUPS)
    try:
        lines = STUDIES.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        m = re.match(r"^## (v\d+): (.+)$", line)
        if m:
            heading = f"{m.group(1)}: {m.group(2)}"
            groups[m.group(1)] = f"[{heading}](../../docs/studies.md#{slug(heading)})"
    return groups


def render(root: Path = RESULTS) -> str:
    """The index's markdown for the files under ``root``."""
    additions = git_additions(root)
    groups = study_groups()
    placed: dict[str, dict[str, list[str]]] = {s: {} for s in SECTION_TITLES}
    for entry in entries(result_files(root)):
        section, group = first_match(entry.base, SECTIONS) or ("other", "")
        record = read_json(root / (entry.stem + ".json"))
        status = "current"
        if entry.archived:
            status = "archived" + (f": {SUPERSEDED_BY[entry.base]}" if entry.base in SUPERSEDED_BY else "")
        row = (f"| {files_cell(entry)} | {question(entry, record)} | {command(entry, record)} | "
               f"{added(entry, additions, root)} | {status} |")
        placed[section].setdefault(group, []).append((entry.archived, entry.stem, row))
    rel_root = root.relative_to(REPO).as_posix()
    out = [
        f"# Index of `{rel_root}/`",
        "",
        "Written by `benchmarks/results_index.py` (run `.venv/bin/python benchmarks/results_index.py` after adding, "
        "moving or removing a result; `--check` lists what the index misses); do not edit by hand. One row per "
        "result: its JSON, the PNG beside it and its folder of grids, paths relative to this folder; what it answers; "
        "the command that produced it, as recorded in the JSON (run from the repository root); the commit that "
        "added it and the commit's date; current, or archived in `archive/` (superseded: kept for the record and the "
        "docs that cite it). What the scripts are and how long they take: "
        "[docs/benchmarks.md](../../docs/benchmarks.md); the studies' findings: "
        "[docs/studies.md](../../docs/studies.md).",
    ]
    header = ["| files | question | command | added | status |", "|---|---|---|---|---|"]
    for section, title in SECTION_TITLES.items():
        if not placed[section]:
            continue
        out += ["", f"## {title}"]
        order = sorted(placed[section], key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER),
                                                        g))
        for group in order:
            if group:
                out += ["", f"### {groups.get(group, group)}"]
            out += ["", *header, *(row for _, _, row in sorted(placed[section][group]))]
    return "\n".join(out) + "\n"


def listed_files(index: Path) -> list[str]:
    """The files an index links to, relative to its folder (links that leave the folder are not results)."""
    text = index.read_text() if index.is_file() else ""
    found = set()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        target = unquote(target.split("#", 1)[0])
        if target and not target.startswith(("../", "/")) and "://" not in target:
            found.add(target)
    return sorted(found)


def check(root: Path = RESULTS) -> tuple[list[str], list[str]]:
    """``(missing, absent)``: files under ``root`` that its committed index does not list, and files it lists that
    do not exist. Compares file lists only, never the commit column, so it holds on any clone."""
    files, listed = set(result_files(root)), set(listed_files(root / INDEX_NAME))
    return sorted(files - listed), sorted(listed - files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update-results", action="store_true",
                        help="write the committed benchmarks/results/README.md (the default: the index measures "
                        "nothing, it is rebuilt from the committed files)")
    parser.add_argument("--out", type=Path, default=None, help="write the index here instead")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming the files missing from the committed index or listed "
                        "in it but absent")
    args = parser.parse_args(argv)
    if args.check:
        missing, absent = check()
        for name in missing:
            print(f"missing from the index: benchmarks/results/{name}")
        for name in absent:
            print(f"listed but absent: benchmarks/results/{name}")
        if missing or absent:
            print("run: .venv/bin/python benchmarks/results_index.py", file=sys.stderr)
            return 1
        print(f"{RESULTS.relative_to(REPO).as_posix()}/{INDEX_NAME} lists every result file")
        return 0
    out = args.out or RESULTS / INDEX_NAME
    text = render()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    try:
        shown = out.resolve().relative_to(REPO).as_posix()
    except ValueError:
        shown = str(out)
    print(f"wrote {shown} ({text.count(chr(10) + '| [')} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
