"""`dgan-al status`: readable at 80 columns, `--json` for scripts, exit 2 on a damaged round file."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.status import workspace_status
from dgan_al.workspace.layout import Workspace
from workspaces import after_first_round

runner = CliRunner()
HEADERS = ("round", "stage", "exported", "done", "imported", "unrealistic", "open", "median score")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Round 000 imported; round 001 (4 images) with 1 done and 3 unrealistic, not imported yet."""
    root = tmp_path_factory.mktemp("status") / "ws"
    ws = after_first_round(root, pool_size=40)
    oracle_annotate(ws, 1, keep=1)
    return root


@pytest.fixture
def root(built, tmp_path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(built, copy)
    return copy


def test_status_reads_at_80_columns_and_its_json_holds_the_same_counts(root):
    result = runner.invoke(app, ["status", "-w", str(root)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.lstrip().startswith("round "))
    assert header.split() == [w for h in HEADERS for w in h.split()]  # every header whole, in one line
    assert "…" not in result.output
    row = next(line for line in lines if line.lstrip().startswith("001 "))
    assert row.split() == ["001", "complete", "4", "1", "0", "3", "0", row.split()[-1]]
    assert "next: 1 finished file(s) not imported yet" in result.output
    # narrower than the table: one line per round, still whole words
    narrow = runner.invoke(app, ["status", "-w", str(root)], env={"COLUMNS": "60"})
    said = " ".join(narrow.output.split())
    assert "round 001 complete: exported 4, done 1 (0 imported), unrealistic 3, open 0" in said
    assert "…" not in narrow.output

    scripted = runner.invoke(app, ["status", "--json", "-w", str(root)])
    assert scripted.exit_code == 0, scripted.output
    data = json.loads(scripted.stdout)
    st = workspace_status(Workspace.find(root))
    assert data["format"] == 1 and data["workspace"] == str(root.resolve()) and data["damaged"] == []
    assert (data["annotations"], data["skipped"], data["removed"]) == (st.annotations, st.skipped, st.removed) == (1, 0, 0)
    assert [r["round"] for r in data["rounds"]] == [0, 1]
    one = data["rounds"][1]
    assert {k: one[k] for k in ("stage", "exported", "done", "imported", "unrealistic", "problem", "edited",
                                "untouched")} == {"stage": "complete", "exported": 4, "done": 1, "imported": 0,
                                                  "unrealistic": 3, "problem": 0, "edited": 0, "untouched": 0}
    assert sorted(f["state"] for f in one["files"]) == ["done", "unrealistic", "unrealistic", "unrealistic"]
    assert all((root / f["json"]).is_file() for f in one["files"])
    assert list(data["classes"]) == st.classes
    assert data["classes"]["skin"] == {"images": 1, "pixels": st.class_totals["skin"][1]}
    assert data["next"] == st.next_step and data["cross_validation"] is None


def test_status_exits_2_on_a_damaged_state_or_selection_and_still_prints_the_rest(root):
    state = root / "rounds" / "round_001" / "state.json"
    state.write_bytes(state.read_bytes()[:20])
    result = runner.invoke(app, ["status", "-w", str(root)], env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "error:" in said and "round_001/state.json" in said and "restore it from a backup" in said
    assert "round 000 files:" in said and "annotations per class" in said and "Traceback" not in said
    scripted = runner.invoke(app, ["status", "--json", "-w", str(root)])
    assert scripted.exit_code == 2
    data = json.loads(scripted.stdout)
    assert data["rounds"][1]["stage"] == "damaged" and "state.json" in data["damaged"][0]

    shutil.copy(root / "rounds" / "round_000" / "state.json", state)  # repaired
    assert runner.invoke(app, ["status", "-w", str(root)]).exit_code == 0
    selection = root / "rounds" / "round_001" / "selection.json"
    for damage in (b"[1, 2]", b'{"items": 3}', selection.read_bytes()[:50]):
        selection.write_bytes(damage)
        result = runner.invoke(app, ["status", "-w", str(root)], env={"COLUMNS": "80"})
        assert result.exit_code == 2, result.output
        said = " ".join(result.output.split())
        assert "round_001/selection.json: damaged" in said and "restore it" in said, said
        assert "Traceback" not in said and "round 001" in said
