"""build-dataset and next-round under torchrun itself (CPU, gloo, 2 ranks of one thread) against one process of
one thread: the same bytes, the same selection, a resume after one rank is killed, a failing rank's one line."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgan_al.workflows.build_dataset import build_dataset
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.next_round import RoundOverrides, next_round
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from dgan_al.workspace.lock import WorkspaceLock
from processes import children_of
from workspaces import make_workspace, snapshot

SIZE, CHUNK = 16, 2  # 8 chunks: 4 per rank
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def torchrun(*args: str, logs: Path | None = None, **popen) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node 2 -m dgan_al ARGS`` on this checkout, one thread per rank."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    tee = ["--tee", "3", "--log-dir", str(logs)] if logs else []
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "--monitor-interval", "0.1", *tee, "-m", "dgan_al", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def rank_output(logs: Path, local_rank: int) -> str:
    return "".join(p.read_text() for p in sorted(logs.rglob(f"attempt_*/{local_rank}/std*.log")))


def relative(files: dict[str, bytes], root: Path) -> dict[str, bytes]:
    """Paths relative to ``root``; without the temp files a kill -9 leaves (``.<name>.<random>.tmp``)."""
    return {str(Path(p).relative_to(root)): data for p, data in files.items()
            if not (Path(p).name.startswith(".") and p.endswith(".tmp"))}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """After round 001 was exported: a pool of 24 in 3 chunks of 8, a band wide enough for 4 centres."""
    root = tmp_path_factory.mktemp("ws") / "faces"
    oracle_annotate(make_workspace(root, pool_size=24, settings={"run.chunk": 8, "selection.band": 0.3}), 0)
    next_round(Workspace.find(root))
    return root


@pytest.fixture(scope="module")
def reference(workspace, tmp_path_factory) -> Path:
    """One process, one thread (conftest), uninterrupted."""
    out = tmp_path_factory.mktemp("data") / "ref"
    build_dataset(Workspace.find(workspace), out, SIZE, filter_fraction=0.25, chunk=CHUNK)
    return out


def build_args(workspace: Path, out: Path) -> list[str]:
    return ["build-dataset", "-w", str(workspace), "--out", str(out), "--size", str(SIZE), "--chunk", str(CHUNK),
            "--filter", "0.25", "--device", "cpu"]


def _local_rank(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((int(e.split(b"=")[1]) for e in env if e.startswith(b"LOCAL_RANK=")), None)


def test_build_on_two_ranks_with_one_killed_and_restarted_is_byte_identical(workspace, reference, tmp_path):
    out = tmp_path / "data"
    job = torchrun(*build_args(workspace, out))
    deadline = time.monotonic() + 120
    while not (out / "parts" / "chunk_00001.json").is_file():  # rank 1 finished its first chunk
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[0]
        time.sleep(0.05)
    rank1 = [pid for pid in children_of(job.pid) if _local_rank(pid) == 1]
    assert len(rank1) == 1
    os.kill(rank1[0], signal.SIGKILL)
    code, output = finish(job)
    assert code != 0 and not (out / "manifest.csv").exists(), output
    done_before = len(list((out / "parts").glob("chunk_*.json")))
    assert 1 <= done_before < SIZE // CHUNK
    code, output = finish(torchrun(*build_args(workspace, out), logs=tmp_path / "logs"))
    assert code == 0, output
    assert relative(snapshot(out), out) == relative(snapshot(reference), reference)
    assert [json.loads(p.read_text())["chunk"] for p in sorted((out / "parts").glob("chunk_*.json"))] == \
        list(range(SIZE // CHUNK))
    rank0, rank1 = rank_output(tmp_path / "logs", 0), rank_output(tmp_path / "logs", 1)
    assert rank1 == ""  # the other ranks print nothing but errors
    # rank 0's bar and summary count the whole job, though it computed about half of what was left
    assert f"{SIZE}/{SIZE}" in rank0 and "kept (train.txt)" in rank0
    assert f"dataset: {SIZE // CHUNK - done_before} chunks generated, {done_before} already done" in rank0


def test_pool_scoring_on_two_ranks_selects_as_one_process(workspace, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(workspace, one)
    oracle_annotate(Workspace.find(one), 1, keep=2)
    shutil.copytree(one, two)
    job = torchrun("next-round", "-w", str(two), "--device", "cpu", logs=tmp_path / "logs")
    alone = next_round(Workspace.find(one), RoundOverrides(device="cpu"))  # meanwhile, in this process
    code, output = finish(job)
    assert code == 0, output
    assert alone.round == 2 and alone.chunks_computed == 3
    first, second = (json.loads((root / "rounds/round_002/selection.json").read_text()) for root in (one, two))
    assert [(i["id"], i["score"], i["rank"]) for i in first["items"]] == \
           [(i["id"], i["score"], i["rank"]) for i in second["items"]]
    assert first == second
    scores = [relative(snapshot(root / "rounds/round_002/scores"), root / "rounds/round_002/scores") for root in (one, two)]
    assert scores[0] == scores[1] and len(scores[0]) == 3
    rank0 = rank_output(tmp_path / "logs", 0)
    assert rank_output(tmp_path / "logs", 1) == ""
    assert "24/24" in rank0 and "pool chunks computed 3, reused 0" in rank0
    assert not (two / ".dgan-al.lock").exists()


def test_a_failing_rank_stops_the_job_with_its_one_line_error(workspace, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    # another build holds the part that rank 1 of 2 would build: rank 1 fails, rank 0 stops with it
    with WorkspaceLock(out, "build-dataset 1/2", name=".build-1-of-2.lock"):
        code, output = finish(torchrun(*build_args(workspace, out)))
    assert code != 0
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "this dataset folder is busy" in errors[0] and ".build-1-of-2.lock" in errors[0], output
    assert "exitcode  : 2" in output and "rank      : 1" in output  # torchrun's own summary names the rank
    assert "dgan_al" not in "".join(line for line in output.splitlines() if line.strip().startswith("File "))
    assert not (out / "parts").exists() or not any((out / "parts").iterdir())


def test_build_with_keypoints_on_two_ranks_is_byte_identical_to_one_process(tmp_path):
    """With [keypoints] names: the chunk rows carry the points and merge writes keypoints.json; two ranks
    write exactly the files one process writes."""
    from dgan_al.generators.toy_faces import KEYPOINTS

    root = tmp_path / "kp"
    oracle_annotate(make_workspace(root, pool_size=8, settings={"keypoints.names": list(KEYPOINTS)}), 0)
    ws = Workspace.find(root)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    reference = tmp_path / "ref"
    build_dataset(Workspace.find(root), reference, SIZE, filter_fraction=0.25, chunk=CHUNK)
    assert (reference / "keypoints.json").is_file()
    out = tmp_path / "data"
    code, output = finish(torchrun(*build_args(root, out)))
    assert code == 0, output
    assert relative(snapshot(out), out) == relative(snapshot(reference), reference)
