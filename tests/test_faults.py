"""Faults: damaged files, odd LabelMe files, a full disk, two commands at once, stale temp files.

Each case ends in one clear message naming the file and the fix (nothing changed), or, for derived
state, in a recomputation equal to what an uninterrupted run computes. The long cases (kill -9 chains,
a real small tmpfs, 200+ fuzz variants) are in ``benchmarks/faults.py``.
"""

import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgan_al.errors import UserError
from dgan_al.files import atomic_copy, atomic_write_bytes, remove_stale_temp_files
from dgan_al.workflows.build_dataset import build_dataset
from dgan_al.workflows.features import cached_features
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.next_round import _read_chunk, next_round
from dgan_al.workflows.status import workspace_status
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from dgan_al.workspace.lock import WorkspaceLock
from dgan_al.workspace.rounds import read_round_state
from labelme_fuzz import judge, mutations
from workspaces import annotated, edit_json, mean_json, snapshot, ws  # noqa: F401 (fixtures)

pytest.importorskip("labelme._label_file", reason="the real LabelMe (pip install labelme) is the reference")
pytest.importorskip("loguru").logger.disable("labelme")  # LabelMe logs every image it loads


def refused(ws, call, *names):
    """``call()`` raises a UserError whose message names every one of ``names`` and a fix; nothing changed."""
    before = snapshot(ws.root)
    with pytest.raises(UserError) as err:
        call()
    text = str(err.value)
    for name in names:
        assert name in text, text
    assert err.value.fix or "(" in text
    assert snapshot(ws.root) == before
    return text


def run_import(ws):
    return import_annotations(ws, AnnotationStore(ws.annotations_dir))


# --- LabelMe files: the strict reader decides before pending / done / unrealistic ---------------------

@pytest.mark.parametrize("top", [None, [], "text", 3, {}])
def test_a_file_that_is_not_a_labelme_object_is_a_problem_not_pending(ws, top):
    mean_json(ws).write_text(json.dumps(top))
    text = refused(ws, lambda: run_import(ws), "mean.json")
    assert ("must hold one JSON object" in text) if top != {} else ("imagePath is missing" in text)


def test_done_written_as_text_is_a_problem_not_pending(ws):
    edit_json(mean_json(ws), lambda raw: raw["flags"].update(done="true"))
    assert "flags values must be true or false" in refused(ws, lambda: run_import(ws), "mean.json")


def test_done_and_unrealistic_both_ticked_is_a_problem(ws):
    edit_json(mean_json(ws), lambda raw: raw["flags"].update(done=True, unrealistic=True))
    assert "both 'done' and 'unrealistic'" in refused(ws, lambda: run_import(ws), "mean.json", "untick one")


def test_a_pending_file_is_read_strictly_too(ws):
    edit_json(mean_json(ws), lambda raw: (raw["flags"].update(done=False), raw["shapes"][0].update(label="skn")))
    refused(ws, lambda: run_import(ws), "mean.json", "skn")


def test_deep_nesting_is_a_problem_not_a_recursion_error(ws):
    text = mean_json(ws).read_text().replace('"imageData": null', '"imageData": ' + "[" * 5000 + "]" * 5000)
    mean_json(ws).write_text(text)
    assert "nested too deeply" in refused(ws, lambda: run_import(ws), "mean.json")


def test_a_too_long_image_path_is_a_problem(ws):
    edit_json(mean_json(ws), lambda raw: raw.update(imagePath="x" * 300 + ".png"))
    assert "cannot be used: File name too long" in refused(ws, lambda: run_import(ws), "mean.json")


@pytest.mark.parametrize("where", ["label", "shape_type", "imagePath", "imageHeight", "group_id"])
def test_a_million_characters_anywhere_are_refused_at_once_in_a_short_message(annotated, tmp_path, where):
    raw = json.loads(mean_json(Workspace.find(annotated)).read_text())
    long = "a" * 1_000_000
    (raw["shapes"][0] if where in ("label", "shape_type", "group_id") else raw)[where] = long
    t0 = time.perf_counter()
    outcome, message = judge(annotated, tmp_path / "ws", json.dumps(raw).encode())
    assert time.perf_counter() - t0 < 10  # copying the workspace included
    assert outcome == "refused" and "(1000000 characters)" in message and len(message) < 400, message


# --- damaged files of ours -------------------------------------------------------------------------

def test_a_truncated_selection_is_reported_as_such_not_blamed_on_the_annotations(ws):
    path = ws.round_dir(0) / "selection.json"
    path.write_bytes(path.read_bytes()[:100])
    text = refused(ws, lambda: run_import(ws), "selection.json", "restore it")
    assert "no image" not in text and text.count("selection.json") >= 1
    assert "selection.json" in workspace_status(ws).next_step


def test_a_selection_item_without_id_is_reported(ws):
    edit_json(ws.round_dir(0) / "selection.json", lambda raw: raw["items"][0].pop("id"))
    refused(ws, lambda: run_import(ws), "selection.json", "lacks one of")


def test_a_garbled_state_of_a_finished_round_is_refused_before_anything_changes(ws):
    path = ws.round_dir(0) / "state.json"
    path.write_bytes(b'{"round": 0, "stage": "compl')
    refused(ws, lambda: next_round(ws), "state.json", "round_000", "restore it")
    assert workspace_status(ws).rounds[0].stage == "damaged"
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="not a dgan-al round state"):
        read_round_state(ws.round_dir(0))
    assert read_round_state(ws.round_dir(5)) == {}  # no folder, no state: nothing to refuse


def test_a_truncated_or_garbled_score_chunk_is_recomputed(tmp_path):
    part = {k: np.arange(8, dtype=np.float32).reshape(4, 2) for k in ("score_sum", "score_top10", "activations", "w")}
    buf = io.BytesIO()
    np.savez(buf, key=np.array("k"), **part)
    path = tmp_path / "chunk_00000.npz"
    path.write_bytes(buf.getvalue())
    assert _read_chunk(path, "k", 4) is not None
    assert _read_chunk(path, "other", 4) is None and _read_chunk(path, "k", 5) is None
    for damaged in (buf.getvalue()[: len(buf.getvalue()) // 2], b"", os.urandom(len(buf.getvalue()))):
        path.write_bytes(damaged)
        assert _read_chunk(path, "k", 4) is None


def test_truncated_pool_latents_are_regenerated_from_the_seed(ws):
    expected = ws.pool_latents(512)
    path = ws.pool_dir / "latents_s0.npy"
    good = path.read_bytes()
    for damaged in (good[:200], good[:-7], b"garbage", good[:128] + os.urandom(len(good) - 128)):
        path.write_bytes(damaged)
        assert torch.equal(ws.pool_latents(512), expected)
        assert path.read_bytes() == good


def test_a_truncated_mask_is_refused_where_read_and_rebuilt_by_the_next_import(ws):
    run_import(ws)
    store = AnnotationStore(ws.annotations_dir)
    path = store.mask_path("mean")
    good, mask = path.read_bytes(), store.mask("mean")
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="mask is missing or damaged") as err:
        store.mask("mean")
    assert "masks/mean.png" in str(err.value) and "next-round" in str(err.value)
    report = run_import(ws)
    assert report.masks_rebuilt == ["mean"] and path.read_bytes() == good
    assert np.array_equal(AnnotationStore(ws.annotations_dir).mask("mean"), mask)


def test_an_unreadable_feature_cache_file_is_recomputed(ws):
    generator = ws.load_generator()
    z = generator.sample_latents(2, seed=3)
    paths = cached_features(generator, ws.cache_dir, ["a", "b"], z)
    good = paths[0].read_bytes()
    paths[0].write_bytes(good[: len(good) // 3])
    paths[1].write_bytes(paths[0].read_bytes())
    cached_features(generator, ws.cache_dir, ["a", "b"], z)
    assert paths[0].read_bytes() == good
    assert torch.load(paths[1], weights_only=True)["id"] == "b"


# --- features do not depend on what else was in the batch -----------------------------------------

def test_cached_features_do_not_depend_on_batch_composition(ws, tmp_path):
    generator = ws.load_generator()
    z = generator.sample_latents(5, seed=7)
    ids = [f"x{i}" for i in range(5)]
    together = cached_features(generator, tmp_path / "a", ids, z, batch=5)
    cached_features(generator, tmp_path / "b", ids[:1] + ids[3:4], z[[0, 3]])  # an interrupted first run
    apart = cached_features(generator, tmp_path / "b", ids, z, batch=2)
    for p, q in zip(together, apart):
        for m, n in zip(torch.load(p, weights_only=True)["maps"], torch.load(q, weights_only=True)["maps"]):
            assert torch.equal(m, n)


# --- a full disk ----------------------------------------------------------------------------------

@contextmanager
def file_size_limit(nbytes):
    """Writes past ``nbytes`` fail with EFBIG, as a full disk fails them with ENOSPC (benchmarks/faults.py
    fills a real tmpfs)."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_disk_full_while_caching_features_is_a_message_and_leaves_no_temp_file(ws):
    generator = ws.load_generator()
    z = generator.sample_latents(1, seed=1)
    with file_size_limit(500_000), pytest.raises(UserError) as err:
        cached_features(generator, ws.cache_dir, ["a"], z)
    text = str(err.value)
    assert "a.pt" in text and "file-size limit" in text and "run the command again" in text
    assert not any(ws.cache_dir.rglob("*.pt")) and not any(ws.cache_dir.rglob("*.tmp"))
    path = cached_features(generator, ws.cache_dir, ["a"], z)[0]  # with room again: resumes
    assert path.is_file()


def test_disk_full_while_copying_is_a_message_and_the_target_is_untouched(tmp_path):
    src, dst = tmp_path / "interpreter.pt", tmp_path / "out" / "interpreter.pt"
    src.write_bytes(os.urandom(3_000_000))
    with file_size_limit(1_000_000), pytest.raises(UserError, match="interpreter.pt: could not write"):
        atomic_copy(src, dst)
    assert list((tmp_path / "out").iterdir()) == []
    atomic_copy(src, dst)
    assert dst.read_bytes() == src.read_bytes()


# --- locks and stale temp files -------------------------------------------------------------------

def dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_readers_share_the_workspace_and_exclude_a_writer(tmp_path):
    with WorkspaceLock(tmp_path, "build-dataset 0/2", shared=True), \
            WorkspaceLock(tmp_path, "build-dataset 1/2", shared=True):
        with pytest.raises(UserError, match=r"busy: `dgan-al build-dataset 0/2` .* is reading it"):
            WorkspaceLock(tmp_path, "next-round").acquire()
    assert list(tmp_path.iterdir()) == []
    with WorkspaceLock(tmp_path, "next-round"):
        with pytest.raises(UserError, match=r"busy: `dgan-al next-round` .* is writing to it"):
            WorkspaceLock(tmp_path, "build-dataset 0/1", shared=True).acquire()
        assert [p.name for p in tmp_path.iterdir()] == [".dgan-al.lock"]


def test_locks_of_dead_processes_are_taken_over(tmp_path):
    holder = {"pid": dead_pid(), "host": socket.gethostname(), "command": "build-dataset 0/1"}
    (tmp_path / ".dgan-al.read.1@x.0.lock").write_text(json.dumps(holder))
    with WorkspaceLock(tmp_path, "next-round"):
        pass
    (tmp_path / ".dgan-al.lock").write_text(json.dumps(holder | {"command": "next-round"}))
    with WorkspaceLock(tmp_path, "build-dataset 0/1", shared=True):
        pass
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_files_are_removed_when_the_lock_is_taken(tmp_path):
    atomic_write_bytes(tmp_path / "annotations" / "index.json", b"{}")
    from dgan_al.files import _HOST

    stale = tmp_path / "annotations" / f".mean.json.{dead_pid()}@{_HOST}.abc123.tmp"
    live = tmp_path / "rounds" / "round_001" / f".README.txt.{os.getpid()}@{_HOST}.def456.tmp"
    other_host = tmp_path / "rounds" / f".x.npz.{dead_pid()}@00000000.g.tmp"
    not_ours = tmp_path / "annotations" / "notes.tmp"
    for p in (stale, live, other_host, not_ours):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    with WorkspaceLock(tmp_path, "next-round", clean=[tmp_path / "annotations", tmp_path / "rounds"]) as lock:
        assert lock.removed == [stale]
    assert not stale.exists() and live.exists() and other_host.exists() and not_ours.exists()
    assert remove_stale_temp_files([tmp_path]) == []


def test_build_dataset_waits_for_next_round_and_a_second_build_says_busy(ws, tmp_path):
    out = tmp_path / "data"
    with WorkspaceLock(ws.root, "next-round"):
        with pytest.raises(UserError, match="the workspace is busy: `dgan-al next-round`"):
            build_dataset(ws, out, size=4)
    assert not any(out.iterdir())
    with WorkspaceLock(out, "build-dataset 0/1", name=".build-0-of-1.lock"):
        (out / "interpreter.pt").write_bytes(b"pinned by the first build before its dataset.json")
        with pytest.raises(UserError, match=r"this dataset folder is busy: `dgan-al build-dataset 0/1`"):
            build_dataset(ws, out, size=4)
    (out / "interpreter.pt").unlink()
    (out / "notes.txt").write_text("someone's")
    with pytest.raises(UserError, match="not a dgan-al dataset .*notes.txt"):
        build_dataset(ws, out, size=4)


# --- import fuzz: every outcome a clear refusal or an acceptance the real LabelMe agrees with ---------

@pytest.mark.slow
@settings(max_examples=60, deadline=30_000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow], derandomize=True)
@given(data=st.data())
def test_import_fuzz_refuses_clearly_or_agrees_with_labelme(annotated, tmp_path, data):
    original = json.loads((annotated / "rounds" / "round_000" / "annotate" / "mean.json").read_text())
    outcome, detail = judge(annotated, tmp_path / "fuzz", data.draw(mutations(original)))
    assert not outcome.startswith("wrong"), f"{outcome}: {detail}"
