"""Every command the README and docs/ show still exists with the flags they give it: each named module or script
answers `--help` (one process runs them all), and every `--flag` written after it is in that help. A renamed module
or flag breaks the suite, not the reader."""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
COMMAND = re.compile(r"(?:^|[\s`(])(python -m [\w.]+|python [\w/]+\.py|\./run \w+)((?:[^\n`|;&#]|\\\n)*)")
NOT_OURS = ("vllm.",)  # vLLM's own server module: in its own venv, and its flags are vLLM's

HELP_ALL = r"""
import contextlib, io, json, runpy, sys
results = {}
for target, argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    sys.argv = [target, *argv, "--help"]
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            if target.endswith(".py"):
                runpy.run_path(target, run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            code = stop.code or 0
    results[target + " " + " ".join(argv)] = [code, out.getvalue()]
print(json.dumps(results))
"""


def run_script_targets() -> dict[str, str]:
    """`./run X` → the script or module X runs, read from the run script's own case arms."""
    targets = {}
    for name, body in re.findall(r"^\s+(\w+)\) (.*) ;;$", open(os.path.join(ROOT, "run")).read(), re.M):
        found = re.search(r"(scripts/\w+\.py|-m ([\w.]+))", body)
        if found:
            targets[name] = found.group(2) or found.group(1)
    return targets


def documented_commands() -> list[tuple[str, list[str], str]]:
    """(module or script, leading words before its first flag, the flags it is given) for every command shown."""
    runs = run_script_targets()
    commands = []
    for page in PAGES:
        text = open(os.path.join(ROOT, page)).read()
        for head, rest in COMMAND.findall(text):
            rest = rest.replace("\\\n", " ")
            if head.startswith("./run "):
                name = head.split()[1]
                assert name in runs or name == "test", f"{page}: ./run {name} is not a command of ./run"
                if name == "test":
                    continue
                target = runs[name]
                rest = rest.split(" -- ")[0]  # after --, the flags are vLLM's
            else:
                target = head.split()[-1]
            if target.startswith(NOT_OURS):
                continue
            if target == "train.py" or target.endswith("/train.py"):
                target = "train.py"
            try:
                words = shlex.split(rest, comments=False)
            except ValueError:
                words = rest.split()
            leading = []
            for word in words:
                if word.startswith("-"):
                    break
                leading.append(word)
            flags = sorted({word.split("=")[0] for word in words if re.fullmatch(r"--[a-z][\w-]*(=.*)?", word)})
            commands.append((target, leading, flags, page))
    return commands


def help_texts(commands) -> dict:
    calls = []
    for target, leading, _, _ in commands:
        argv = ["--stage", "mapper"] if target == "train.py" else [w for w in leading if re.fullmatch(r"[a-z_]+", w)][:1]
        if [target, argv] not in calls:
            calls.append([target, argv])
    result = subprocess.run([sys.executable, "-c", HELP_ALL, json.dumps(calls)], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), calls


def test_every_documented_command_answers_help_with_its_flags():
    commands = documented_commands()
    assert len(commands) > 40 and {"train.py", "evaluation.run", "scripts/demo.py", "serving.serve"} <= {c[0] for c in commands}
    helps, calls = help_texts(commands)
    problems = []
    for target, argv in calls:
        code, text = helps[target + " " + " ".join(argv)]
        if code != 0 or "usage:" not in text:
            problems.append(f"{target} {' '.join(argv)} --help: exit {code}: {text[-300:]}")
    for target, leading, flags, page in commands:
        argv = ["--stage", "mapper"] if target == "train.py" else [w for w in leading if re.fullmatch(r"[a-z_]+", w)][:1]
        text = helps[target + " " + " ".join(argv)][1]
        problems += [f"{page}: {target} has no {flag}" for flag in flags if flag not in text]
    assert not problems, "\n".join(problems)
