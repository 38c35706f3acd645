"""The background on a lattice of boxes (image3.background) and its tiled form
(image3.tile_background): the same numbers from pieces as from the whole image, and a kept
tile mesh only where the background did not move."""

import numpy as np
import pytest

from image3.background import (BackgroundMesh, BoxStatistics, Lattice, background_mesh,
                               box_statistics, image_background)
from image3.tile_background import KEPT_CHANGE, write_background_mesh
from image3.tiles import tile_layout

SKY, NOISE = 10.0, 1.0


def _sky(shape, seed=1):
    """A sloped sky with noise, stars, ERR = NOISE / 1.5 and an uncovered corner."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    data = SKY + 0.004 * xx - 0.002 * yy + rng.normal(0, NOISE, shape)
    for x, y in rng.uniform((0, 0), shape[::-1], (40, 2)):
        data += 50 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0)
    masked = (xx + yy) < 60
    data[masked] = np.nan
    return data.astype(np.float32), masked, np.full(shape, NOISE / 1.5, dtype=np.float32)


def test_a_mesh_made_of_tiles_boxes_is_the_whole_images_mesh():
    """Truth: the mesh of the whole 230 x 310 image (boxes of 40 px, which straddle 70-px
    tiles). Each tile computes the boxes that start in it from a cut-out holding just their
    pixels: the same meshes to the last bit, the zoomed maps of a window within 1e-6 of the
    whole maps', and the noise ratio the scatter over ERR (1.5, within 5 %)."""
    data, masked, error = _sky((230, 310))
    whole = image_background(data, masked, 40, error)
    lattice = Lattice.of(data.shape, 40)
    pieces = []
    for tile in tile_layout(data.shape, 70, 0):
        boxes = lattice.boxes_starting_in(tile.inner)
        y0, y1, x0, x1 = lattice.pixels(boxes)
        cut = (slice(y0, y1), slice(x0, x1))
        pieces.append(box_statistics(lattice, boxes, data[cut].copy(), masked[cut], error[cut],
                                     origin=(y0, x0)))
    assert sum(p.background.size for p in pieces) == np.prod(lattice.counts)
    tiled = background_mesh(lattice, pieces)
    for name in ("background", "rms", "noise_ratio"):
        np.testing.assert_array_equal(getattr(tiled, name), getattr(whole, name))
    window = (63, 141, 77, 240)
    full = whole.maps(names=("background", "rms", "noise_ratio"))
    part = tiled.maps(window, names=("background", "rms", "noise_ratio"))
    for all_of_it, of_window in zip(full, part, strict=True):
        np.testing.assert_allclose(of_window, all_of_it[63:141, 77:240], rtol=1e-6)
    assert np.median(whole.noise_ratio) == pytest.approx(1.5, rel=0.05)


def test_a_good_box_added_far_away_leaves_the_fill_of_other_boxes_alone():
    """Truth: a 20 x 20 mesh with good boxes in its left half; one good box added at the far
    right. Boxes whose 10 nearest good boxes do not come nearer keep their filled values to
    the bit (ties at equal distance are all weighted, whatever the k-d tree's layout)."""
    rng = np.random.default_rng(4)
    lattice = Lattice((200, 200), (10, 10))
    values = rng.normal(SKY, 0.1, (20, 20))
    good = np.zeros((20, 20), dtype=np.int64)
    good[:, :8] = 100

    def mesh(count):
        return background_mesh(lattice, [BoxStatistics((0, 20, 0, 20), values, values / 10,
                                                       np.full((20, 20), np.nan), count)],
                               filter_size=1)

    before = mesh(good)
    more = good.copy()
    more[10, 19] = 100
    after = mesh(more)
    np.testing.assert_array_equal(after.background[:, :11], before.background[:, :11])
    assert after.background[10, 19] == values[10, 19] != before.background[10, 19]


def test_a_tile_keeps_its_mesh_file_where_members_added_elsewhere_leave_its_background(tmp_path):
    """Truth: the mesh of a 100 x 500 grid (boxes of 20 px, five 100-px tiles, margin 10) with
    data in its left 300 columns, then in all 500, made without anything kept. On the second
    run the leftmost tile, 9 boxes from the new data, keeps its file byte for byte, and every
    tile that keeps its file has maps within KEPT_CHANGE of the new mesh's; the two tiles
    the new data fall in, and every tile that does not keep, get the new mesh; with refit,
    every tile gets it."""
    data, uncovered, error = _sky((100, 500), seed=5)
    lattice = Lattice.of(data.shape, 20)
    tiles = tile_layout(data.shape, 100, 10)

    def run(columns, keep_in, refit=False):
        masked = uncovered.copy()
        masked[:, columns:] = True
        folder = tmp_path / f"{columns}-{keep_in is not None}-{refit}"
        folder.mkdir()
        paths = []
        for tile in tiles:
            piece = box_statistics(lattice, lattice.boxes_starting_in(tile.inner), data, masked,
                                   error)
            paths.append(folder / f"{tile.name}_boxes.npz")
            piece.write(paths[-1])
        write_background_mesh(paths, data.shape, 20, tiles, folder / "mesh", keep_in, refit)
        return {t.name: folder / "mesh" / f"{t.name}.npz" for t in tiles}

    first = run(300, tmp_path)
    second = run(500, tmp_path)
    fresh = {name: BackgroundMesh.read(path) for name, path in run(500, None).items()}
    kept = {t.name for t in tiles if second[t.name].read_bytes() == first[t.name].read_bytes()}
    assert "t00-00" in kept and not {"t00-03", "t00-04"} & kept
    for tile in tiles:
        mesh = BackgroundMesh.read(second[tile.name])
        if tile.name in kept:
            assert mesh.largest_change(fresh[tile.name], tile.window) <= KEPT_CHANGE
        else:
            np.testing.assert_array_equal(mesh.background, fresh[tile.name].background)
    refit = run(500, tmp_path, refit=True)
    for tile in tiles:
        np.testing.assert_array_equal(BackgroundMesh.read(refit[tile.name]).rms,
                                      fresh[tile.name].rms)
