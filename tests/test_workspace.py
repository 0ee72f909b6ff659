"""Workspace plumbing: the config file (strict, commented), the lock, atomic writes, class lists."""

import os
import subprocess
import sys

import pytest

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_bytes, inside
from dgan_al.workflows.init import read_classes
from dgan_al.workspace.config import WorkspaceConfig, load_config, render_config
from dgan_al.workspace.lock import WorkspaceLock


def write_config(tmp_path, **edits):
    config = WorkspaceConfig(classes=["background", "skin", "hair"])
    text = render_config(config)
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "dgan-al.toml"
    path.write_text(text)
    return path


def test_config_round_trip_keeps_every_setting_with_comments(tmp_path):
    config = WorkspaceConfig(classes=["background", "a", "b"])
    config.selection.centers = 9
    config.run.prefill = False
    path = tmp_path / "dgan-al.toml"
    path.write_text(render_config(config))
    assert load_config(path) == config
    text = path.read_text()
    assert "skip_top = 0.1  # drop this most-uncertain fraction" in text


@pytest.mark.parametrize("edit,message", [
    ({"skip_top = 0.1": "skiptop = 0.1"}, "did you mean 'selection.skip_top'"),
    ({"centers = 12": 'centers = "twelve"'}, "selection.centers"),
    ({"[pool]": "[pools]"}, "did you mean 'pool'"),
    ({"band = 0.1": "band = 0.95"}, "selection.band"),
    ({"embedding = \"activations\"": "embedding = \"pixels\""}, "selection.embedding"),
    ({"size = 10000": "size = 10000\nsize = 3"}, "not valid TOML"),
    ({"prefill = true": "prefill = 1"}, "run.prefill"),
    ({"prefill_min_annotations = 1": "prefill_min_annotations = 0"}, "run.prefill_min_annotations = 0: must be >= 1"),
])
def test_config_mistakes_name_the_file_and_the_key(tmp_path, edit, message):
    path = write_config(tmp_path, **edit)
    with pytest.raises(UserError) as err:
        load_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_lock_refuses_a_second_writer_and_names_the_holder(tmp_path):
    with WorkspaceLock(tmp_path, "next-round"):
        with pytest.raises(UserError, match=r"busy: `dgan-al next-round` \(pid %d" % os.getpid()):
            WorkspaceLock(tmp_path, "remove").acquire()
    assert not (tmp_path / ".dgan-al.lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    import json
    import socket

    (tmp_path / ".dgan-al.lock").write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(),
                                                        "command": "next-round"}))
    with WorkspaceLock(tmp_path, "status") as lock:
        assert lock.held


def test_atomic_write_replaces_whole_and_keeps_normal_modes(tmp_path):
    path = tmp_path / "a" / "file.bin"
    atomic_write_bytes(path, b"one")
    assert path.read_bytes() == b"one"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_paths_must_stay_inside(tmp_path):
    assert inside(tmp_path, "a/b.json") == (tmp_path / "a" / "b.json").resolve()
    with pytest.raises(UserError, match="leaves the workspace"):
        inside(tmp_path, "../outside.json")


def test_read_classes_from_labelme_labels_file_and_lists(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\nwheel\ndoor\n\n")
    assert read_classes(str(labels)) == ["background", "wheel", "door"]
    assert read_classes("wheel,door") == ["background", "wheel", "door"]
    assert read_classes("background,wheel") == ["background", "wheel"]
    with pytest.raises(UserError):
        read_classes(str(tmp_path / "missing.txt"))
