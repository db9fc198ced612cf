""".github/workflows: valid for GitHub Actions (actionlint, which also runs shellcheck on
every `run:` script when shellcheck is installed, and the workflow JSON schema), one pipeline
per service triggered by its own folder and the chassis, and a platform workflow."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _workflow_files() -> list[str]:
    return sorted(str(p) for p in WORKFLOWS.glob("*.yml"))


def test_actionlint(tool: Any, run: Any) -> None:
    # Run inside the checkout: actionlint finds the repository and its reusable workflows.
    run(tool("actionlint"), "-no-color", *_workflow_files(), cwd=ROOT)


def test_actionlint_lints_the_run_scripts(tmp_path: Path, tool: Any, run: Any) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    # With shellcheck on PATH, test_actionlint above also checked every `run:` script.
    sloppy = tmp_path / "sloppy.yml"
    sloppy.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: rm -rf $TARGET/build\n"
    )
    result = run(tool("actionlint"), "-no-color", str(sloppy), check=False, cwd=tmp_path)
    assert result.returncode != 0
    assert "SC2086" in result.stdout


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path, tool: Any, run: Any) -> None:
    # The lint above can fail: an unknown job in `needs` and an undefined input are errors.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    needs: [nowhere]\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ inputs.missing }}\n"
    )
    result = run(tool("actionlint"), "-no-color", str(broken), check=False, cwd=tmp_path)
    assert result.returncode != 0
    assert "nowhere" in result.stdout


def test_workflow_schema(tool: Any, run: Any) -> None:
    run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *_workflow_files())


def test_each_service_has_its_pipeline(service: str, topology: ModuleType) -> None:
    workflow = _load(f"{service}.yml")
    for event in ("push", "pull_request"):
        paths = workflow["on"][event]["paths"]
        assert f"services/{service}/**" in paths
        assert "libs/chassis/**" in paths
        assert "uv.lock" in paths
    # It builds only when its code changes: no other service's folder triggers it.
    others = {f"services/{name}/**" for name in topology.SERVICES if name != service}
    assert not others & set(workflow["on"]["push"]["paths"])
    (job,) = workflow["jobs"].values()
    assert job["uses"] == "./.github/workflows/service.yml"
    assert job["with"] == {"service": service}


def test_the_service_pipeline_goes_from_lint_to_production() -> None:
    workflow = _load("service.yml")
    assert set(workflow["on"]["workflow_call"]["inputs"]) == {"service"}
    jobs = workflow["jobs"]
    assert set(jobs) == {"lint", "typecheck", "test", "image", "staging", "production"}
    assert set(jobs["image"]["needs"]) == {"lint", "typecheck", "test"}
    assert jobs["staging"]["needs"] == "image"
    assert set(jobs["production"]["needs"]) == {"image", "staging"}
    assert jobs["staging"]["environment"]["name"] == "staging"
    assert jobs["production"]["environment"]["name"] == "production"

    steps = {step.get("name", step.get("uses")): step for step in jobs["image"]["steps"]}
    build = steps["Build (and push from main)"]["with"]
    assert build["file"] == "services/${{ inputs.service }}/Dockerfile"
    assert build["tags"].endswith(":${{ github.sha }}")  # tagged with the commit

    # Staging and production deploy the same digest to their own overlays.
    for job, overlay in (("staging", "staging"), ("production", "prod")):
        (step,) = [s for s in jobs[job]["steps"] if "run" in s]
        assert f"overlay=deploy/k8s/overlays/{overlay}" in step["run"]
        assert (ROOT / "deploy" / "k8s" / "overlays" / overlay).is_dir()
        assert step["env"]["IMAGE"].endswith("@${{ needs.image.outputs.digest }}")


def test_the_platform_workflow_runs_every_test() -> None:
    workflow = _load("platform.yml")
    runs = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert "make test" in runs
    assert any("tests/deploy/test_image.py" in r for r in runs)


def test_ci_entry_point_still_calls_make_test() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in [line.strip() for line in lines]
