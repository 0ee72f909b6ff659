"""The real-image pool: identities, duplicates, unreadable files, changes between scans, the resize/crop
and its coordinate map, byte-identical copies, the first image. Real PNG/JPEG files written with PIL."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import PIL.Image
import pytest
import torch

from dgan_al.errors import UserError
from dgan_al.workspace.image_pool import (
    PoolIndex,
    copy_annotated_image,
    dest_name,
    diff,
    load_pool_image,
    nearest_to_mean,
    pool_transform,
    scan_pool,
)


def _rgb(w, h, seed=0):
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _png_bytes(image):
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def pool(tmp_path):
    """a.png, B.PNG (upper case), sub/c.jpg, sub/deep/d.webp, e.bmp, a duplicate of a.png, and things to skip."""
    root = tmp_path / "photos"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / ".cache").mkdir()
    _rgb(30, 20, 1).save(root / "a.png")
    _rgb(16, 16, 2).save(root / "B.PNG")
    _rgb(24, 12, 3).save(root / "sub" / "c.jpg", quality=95)
    _rgb(10, 14, 4).save(root / "sub" / "deep" / "d.webp", lossless=True)
    _rgb(8, 8, 5).save(root / "e.bmp")
    (root / "sub" / "z_copy.png").write_bytes((root / "a.png").read_bytes())
    _rgb(8, 8, 6).save(root / ".hidden.png")
    _rgb(8, 8, 7).save(root / ".cache" / "x.png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_scan_identities_sorted_and_duplicates(pool):
    index = scan_pool(pool)
    assert [e.name for e in index.entries] == ["B.PNG", "a.png", "e.bmp", "sub/c.jpg", "sub/deep/d.webp"]
    for e in index.entries:
        data = (pool / e.name).read_bytes()
        assert e.sha256 == hashlib.sha256(data).hexdigest() and e.n_bytes == len(data)
        assert e.pool_id == "p-" + e.sha256[:12]
    sizes = {e.name: (e.width, e.height) for e in index.entries}
    assert sizes == {"B.PNG": (16, 16), "a.png": (30, 20), "e.bmp": (8, 8), "sub/c.jpg": (24, 12),
                     "sub/deep/d.webp": (10, 14)}
    [dup] = index.duplicates
    assert (dup.name, dup.kept, dup.pool_id) == ("sub/z_copy.png", "a.png", index.by_name()["a.png"].pool_id)


def test_exif_rotated_jpeg_is_measured_and_read_turned(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 tall: top half red, bottom half blue
    stored[:10] = (255, 0, 0)
    stored[10:] = (0, 0, 255)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: the stored top becomes the right side
    PIL.Image.fromarray(stored).save(tmp_path / "r.jpg", quality=95, exif=exif.tobytes())
    [entry] = scan_pool(tmp_path).entries
    assert (entry.width, entry.height, entry.orientation) == (20, 40, 6)
    image = load_pool_image(tmp_path, entry, 20)  # no resize (shorter side 20), rows 10..30 kept
    assert image.shape == (20, 20, 3) and image.dtype == np.uint8
    assert np.abs(image[:, :7].astype(int) - (0, 0, 255)).max() < 40  # left: blue
    assert np.abs(image[:, 13:].astype(int) - (255, 0, 0)).max() < 40  # right: red


def test_palette_and_alpha_over_white(tmp_path):
    pal = PIL.Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)  # index 0 black, index 1 green
    pal.paste(1, (0, 0, 4, 8))  # left half green, right half index 0 (transparent)
    pal.save(tmp_path / "p.png", transparency=0)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128  # half-transparent red over white
    PIL.Image.fromarray(rgba, "RGBA").save(tmp_path / "q.png")
    index = scan_pool(tmp_path)
    p = load_pool_image(tmp_path, index.by_name()["p.png"], 8)
    assert (p[:, :4] == (10, 200, 30)).all() and (p[:, 4:] == 255).all()
    q = load_pool_image(tmp_path, index.by_name()["q.png"], 8)
    expected = np.rint(np.array([200, 0, 0]) * 128 / 255 + 255 * (1 - 128 / 255))
    assert np.abs(q.astype(int) - expected).max() <= 1


def test_unreadable_files_one_error_or_skipped(pool):
    (pool / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no jpeg")
    whole = (pool / "a.png").read_bytes()
    (pool / "sub" / "cut.png").write_bytes(_png_bytes(_rgb(64, 64, 9))[:300])  # a truncated download
    with pytest.raises(UserError) as err:
        scan_pool(pool)
    text = str(err.value)
    assert "2 of 8 image files cannot be read" in text and "broken.jpg" in text and "sub/cut.png" in text
    assert err.value.path == pool and err.value.fix
    index = scan_pool(pool, skip_unreadable=True)
    assert [u.name for u in index.unreadable] == ["broken.jpg", "sub/cut.png"]
    assert len(index) == 5 and (pool / "a.png").read_bytes() == whole


def test_save_load_round_trip_and_bad_index(pool, tmp_path):
    index = scan_pool(pool)
    index.save(tmp_path / "pool.json")
    assert PoolIndex.load(tmp_path / "pool.json") == index
    (tmp_path / "bad.json").write_text('{"version": 1, "entries": [{"pool_id": 3}]}')
    with pytest.raises(UserError, match="not a pool index"):
        PoolIndex.load(tmp_path / "bad.json")
    with pytest.raises(UserError, match="missing"):
        PoolIndex.load(tmp_path / "none.json")


def test_diff_added_removed_changed_renamed(pool):
    old = scan_pool(pool)
    assert diff(old, old).empty
    ids = old.by_name()
    _rgb(12, 12, 11).save(pool / "new.png")  # added
    (pool / "e.bmp").unlink()  # removed
    _rgb(16, 16, 12).save(pool / "B.PNG")  # changed: same name, other bytes
    (pool / "sub" / "c.jpg").rename(pool / "sub" / "deep" / "c2.jpg")  # renamed: same bytes
    (pool / "a.png").unlink()  # its duplicate sub/z_copy.png takes over: renamed, same id
    changes = diff(old, scan_pool(pool))
    assert [e.name for e in changes.added] == ["new.png"]
    assert [e.name for e in changes.removed] == ["e.bmp"]
    assert [(o.name, n.name) for o, n in changes.changed] == [("B.PNG", "B.PNG")]
    assert changes.changed[0][0].pool_id != changes.changed[0][1].pool_id
    assert [(o.name, n.name) for o, n in changes.renamed] == [("sub/c.jpg", "sub/deep/c2.jpg"),
                                                              ("a.png", "sub/z_copy.png")]
    assert all(o.pool_id == n.pool_id for o, n in changes.renamed)
    assert changes.renamed[1][1].pool_id == ids["a.png"].pool_id
    assert changes.summary() == "1 added, 1 removed, 1 changed, 2 renamed"


def test_diff_moved_away_and_name_reused_is_renamed_plus_added(tmp_path):
    _rgb(8, 8, 1).save(tmp_path / "a.png")
    old = scan_pool(tmp_path)
    (tmp_path / "a.png").rename(tmp_path / "b.png")
    _rgb(8, 8, 2).save(tmp_path / "a.png")
    changes = diff(old, scan_pool(tmp_path))
    assert [(o.name, n.name) for o, n in changes.renamed] == [("a.png", "b.png")]
    assert [e.name for e in changes.added] == ["a.png"] and not changes.changed and not changes.removed


def test_copy_is_byte_identical_and_checked(pool, tmp_path):
    index = scan_pool(pool)
    jpg = index.by_name()["sub/c.jpg"]
    dest = copy_annotated_image(pool, jpg, tmp_path / "store" / dest_name(jpg))
    assert dest.name == jpg.pool_id + ".jpg"
    assert dest.read_bytes() == (pool / "sub" / "c.jpg").read_bytes()
    _rgb(24, 12, 99).save(pool / "sub" / "c.jpg")  # edited after the scan
    with pytest.raises(UserError, match="bytes changed since the scan"):
        copy_annotated_image(pool, jpg, tmp_path / "other.jpg")
    with pytest.raises(UserError, match="bytes changed since the scan"):
        load_pool_image(pool, jpg, 8)
    assert not (tmp_path / "other.jpg").exists()


def test_square_image_is_a_plain_bilinear_resize(pool):
    entry = scan_pool(pool).by_name()["B.PNG"]
    expected = np.asarray(PIL.Image.open(pool / "B.PNG").convert("RGB").resize((10, 10), PIL.Image.BILINEAR))
    assert np.array_equal(load_pool_image(pool, entry, 10), expected)


def test_crop_box_by_checkerboard_and_known_points(tmp_path):
    cell = 12
    ys, xs = np.mgrid[0:60, 0:120]  # 120 wide, 60 tall: 10 x 5 cells, each its own colour
    cx, cy = xs // cell, ys // cell
    board = np.stack([cx * 25, cy * 50, (cx + cy) % 2 * 255], axis=-1).astype(np.uint8)
    PIL.Image.fromarray(board).save(tmp_path / "board.png")
    [entry] = scan_pool(tmp_path).entries
    size = 30
    t = pool_transform(entry, size)
    assert (t.resized_width, t.resized_height, t.left, t.top) == (60, 30, 15, 0)
    assert t.crop_box == (30.0, 0.0, 90.0, 60.0)
    assert t.pool_to_original(0, 0) == (30.0, 0.0) and t.pool_to_original(15, 15) == (60.0, 30.0)
    assert t.pool_to_original(30, 30) == (90.0, 60.0)
    assert t.original_to_pool(60.0, 30.0) == (15.0, 15.0)

    image = load_pool_image(tmp_path, entry, size)
    assert image.shape == (size, size, 3)
    u, v = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)  # pool pixel centres
    x, y = t.pool_to_original(u, v)
    far = (np.abs(x - np.rint(x / cell) * cell) >= 3) & (np.abs(y - np.rint(y / cell) * cell) >= 3)
    assert far.sum() > 100  # most pixels lie well inside a cell
    expected = board[y.astype(int), x.astype(int)]
    assert np.abs(image[far].astype(int) - expected[far]).max() <= 1
    assert not np.array_equal(image, np.asarray(PIL.Image.fromarray(board).resize((size, size))))  # it is cropped


def test_tall_image_transform_round_trips(tmp_path):
    _rgb(30, 61, 3).save(tmp_path / "tall.png")
    [entry] = scan_pool(tmp_path).entries
    t = pool_transform(entry, 10)
    assert (t.resized_width, t.resized_height, t.left, t.top) == (10, 20, 0, 5)  # int(10 * 61 / 30) = 20
    assert t.pool_to_original(0, 0) == (0.0, 5 * 61 / 20)
    pts = np.array([[0.0, 0.0], [3.25, 7.5], [10.0, 10.0]])
    back = t.original_to_pool(*t.pool_to_original(pts[:, 0], pts[:, 1]))
    np.testing.assert_allclose(np.stack(back, axis=1), pts, atol=1e-12)
    assert load_pool_image(tmp_path, entry, 10).shape == (10, 10, 3)


def test_nearest_to_mean():
    f = np.array([[0.0, 0.0], [10.0, 0.0], [4.0, 0.0], [6.0, 0.0]])  # mean (5, 0): rows 2 and 3 tie
    assert nearest_to_mean(f) == 2
    assert nearest_to_mean(f, chunk=1) == 2 and nearest_to_mean(f[::-1]) == 0
    assert nearest_to_mean(torch.tensor(f, dtype=torch.float32)) == 2
    assert nearest_to_mean(np.ones((1, 3))) == 0
    rng = np.random.default_rng(0)
    g = rng.normal(size=(257, 16)).astype(np.float32)
    brute = int(np.argmin(((g.astype(np.float64) - g.astype(np.float64).mean(0)) ** 2).sum(1)))
    assert nearest_to_mean(g, chunk=50) == brute
    with pytest.raises(ValueError):
        nearest_to_mean(np.zeros((0, 3)))
