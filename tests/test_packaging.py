"""The project as an installable package: no module edits sys.path or hides an import cycle in a function, a
non-editable `pip install .` works from outside the checkout, and every saved checkpoint carries a model card that
the Hub's parser reads."""

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib

import pytest
from conftest import ROOT
from test_train import run_stage

PACKAGES = ("training", "evaluation", "synthesis", "conversion", "bench", "scripts", "serving")
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as _handle:  # the top-level modules the package declares
    TOP_LEVEL = tuple(tomllib.load(_handle)["tool"]["setuptools"]["py-modules"])


def project_modules() -> dict[str, str]:
    """{dotted module name: file} of every installed module of the project."""
    modules = {name: os.path.join(ROOT, name + ".py") for name in TOP_LEVEL}
    for package in PACKAGES:
        for file in sorted(os.listdir(os.path.join(ROOT, package))):
            if file.endswith(".py"):
                name = package if file == "__init__.py" else f"{package}.{file[:-3]}"
                modules[name] = os.path.join(ROOT, package, file)
    return modules


def imported_project_modules(node, modules) -> set[str]:
    names = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name in modules}


def test_no_module_edits_sys_path_and_imports_are_at_the_top():
    edits = [name for name, file in project_modules().items() if "sys.path.insert" in open(file).read() or "sys.path.append" in open(file).read()]
    assert edits == []
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    result = subprocess.run([ruff, "check", "--select", "E402", "--output-format", "concise", *PACKAGES, *(m + ".py" for m in TOP_LEVEL)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_no_import_inside_a_function_dodges_a_cycle():
    """A function-level import of B in A is a hidden cycle when B's top-level imports lead back to A."""
    modules = project_modules()
    top, inner = {}, {}
    for name, file in modules.items():
        tree = ast.parse(open(file).read())
        top[name] = set().union(*(imported_project_modules(node, modules) for node in tree.body))
        inner[name] = set().union(*(imported_project_modules(node, modules) for node in ast.walk(tree) if node not in tree.body))

    def reaches(start, goal, seen=None):
        seen = seen if seen is not None else set()
        if start == goal:
            return True
        seen.add(start)
        return any(reaches(nxt, goal, seen) for nxt in top.get(start, ()) if nxt not in seen)

    hidden = sorted((a, b) for a in modules for b in inner[a] - top[a] if reaches(b, a))
    assert hidden == []
    assert reaches("synthesis.build_dataset", "synthesis.talks") and reaches("synthesis.genres", "synthesis.talks")


def test_a_non_editable_install_works_from_outside_the_checkout(tmp_path):
    """`pip install .` into a fresh venv (its third-party packages borrowed from this one's, so no download): every
    package imports from the installed copy, not the checkout, and the console scripts and `-m` entry points run."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    # a plain path (not a site dir): this venv's own .pth files, the project's editable install among them, stay out
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(venv / "bin" / "python")
    source = tmp_path / "source"  # a copy of what the package is made of: pip builds in the tree it is given
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *(f for f in os.listdir(ROOT) if f.startswith("requirements")), *(m + ".py" for m in TOP_LEVEL)):
        shutil.copy(os.path.join(ROOT, name), source / name)
    for package in PACKAGES:
        shutil.copytree(os.path.join(ROOT, package), source / package, ignore=shutil.ignore_patterns("__pycache__", "spoken"))
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    names = [*PACKAGES, *TOP_LEVEL, "training.sources", "training.model_card", "synthesis.build_dataset", "evaluation.run"]
    script = f"import importlib, json; print(json.dumps({{n: importlib.import_module(n).__file__ for n in {names!r}}}))"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([python, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    files = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(file.startswith(str(site)) for file in files.values()), files
    assert os.path.exists(os.path.join(os.path.dirname(files["evaluation.run"]), "metrics", "normalised_wer", "normalised_wer.py"))
    help_text = subprocess.run([python, "-m", "evaluation.run", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert help_text.returncode == 0 and "--text_column" in help_text.stdout
    console = subprocess.run([str(venv / "bin" / "speechllm-train"), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert console.returncode == 0 and "--train_file" in console.stdout


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory, manifest):
    """Two joint steps from a tiny Whisper checkpoint that names its base models, with a checkpoint at step 2."""
    from scripts.make_tiny_checkpoint import build_tiny

    model, processor = build_tiny("whisper", seed=0)
    model.config.base_models = {"encoder": "openai/whisper-tiny.en", "llm": "Qwen/Qwen2.5-Coder-0.5B-Instruct"}
    start = tmp_path_factory.mktemp("card-start")
    model.save_pretrained(start)
    processor.save_pretrained(start)
    output = tmp_path_factory.mktemp("card-run") / "out"
    run_stage("joint", str(start), manifest, output, "--save_strategy", "steps", "--save_steps", "2", steps=2)
    return output


def test_every_saved_checkpoint_carries_a_model_card_the_hub_parses(trained_tiny):
    from huggingface_hub import ModelCard

    for directory in (trained_tiny, trained_tiny / "checkpoint-2"):
        card = ModelCard.load(directory / "README.md")
        assert card.data.base_model == ["openai/whisper-tiny.en", "Qwen/Qwen2.5-Coder-0.5B-Instruct"]
        assert card.data.datasets == ["train"] and card.data.language == ["en", "de", "it", "zh"]
        assert (card.data.license, card.data.library_name, card.data.pipeline_tag) == ("apache-2.0", "transformers", "audio-text-to-text")
        assert "trust_remote_code=True" in card.text and "| stage | joint |" in card.text
    assert "| steps_done | 2 |" in (trained_tiny / "checkpoint-2" / "README.md").read_text()


def test_evaluation_adds_its_scores_to_the_card(trained_tiny):
    from huggingface_hub import ModelCard

    from training.model_card import record_results

    record_results(str(trained_tiny), "arctic", {"asr/en": {"wer": 0.5}, "st/de": {"chrf": 30.1, "bleu": 3.0}})
    record_results(str(trained_tiny), "arctic", {"asr/en": {"wer": 0.25}})  # the same data again replaces its results
    record_results(str(trained_tiny), "jfk", {"sqa/all": {"accuracy": 0.5}})
    results = ModelCard.load(trained_tiny / "README.md").data.eval_results
    assert sorted((r.dataset_name, r.metric_type, r.metric_value) for r in results) == [("arctic", "wer", 25.0), ("jfk", "accuracy", 50.0)]
    assert ModelCard.load(trained_tiny / "README.md").data.base_model[1] == "Qwen/Qwen2.5-Coder-0.5B-Instruct"


def test_push_to_hub_without_a_network_says_so_in_one_line(tiny_checkpoint, manifest, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--stage", "joint", "--model_name_or_path", tiny_checkpoint,
               "--train_file", manifest, "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--report_to", "none",
               "--push_to_hub", "--hub_model_id", "someone/speechllm-try"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: --push_to_hub cannot reach the Hugging Face Hub for someone/speechllm-try")
