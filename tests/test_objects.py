"""Object scores on hand-computed cases: split, merged pair, hole, image edge, no-data."""

from __future__ import annotations

import numpy as np
import pytest

from scdnn.metrics.objects import object_counts, object_scores


def canvas(h=12, w=12):
    return np.zeros((h, w), np.uint8)


def test_perfect_map_scores_one():
    truth = canvas()
    truth[1:4, 1:4] = 1
    truth[6:10, 6:11] = 1
    counts = object_counts(truth.copy(), truth)
    assert counts == {"true": 2, "pred": 2, "matched": 2, "matched_iou_sum": 2.0,
                      "true_area": 9 + 20, "pred_area": 9 + 20}
    s = object_scores(counts)
    assert (s["precision"], s["recall"], s["f1"], s["count_ratio"], s["matched_iou"],
            s["area_bias"]) == (1.0, 1.0, 1.0, 1.0, 1.0, 0.0)


def test_a_split_landslide_matches_at_most_one_piece():
    truth = canvas()
    truth[2:8, 2:10] = 1                        # 6 x 8 = 48 px
    pred = canvas()
    pred[2:8, 2:7] = 1                          # 30 px: IoU 30/48 = 0.625 -> matched
    pred[2:8, 8:10] = 1                         # 12 px: IoU 12/48 = 0.25 -> not
    counts = object_counts(pred, truth)
    assert (counts["true"], counts["pred"], counts["matched"]) == (1, 2, 1)
    assert counts["matched_iou_sum"] == pytest.approx(30 / 48)
    s = object_scores(counts)
    assert s["precision"] == 0.5 and s["recall"] == 1.0 and s["f1"] == pytest.approx(2 / 3)
    assert s["count_ratio"] == 2.0
    assert s["area_bias"] == pytest.approx((42 - 48) / 48)


def test_a_merged_pair_matches_the_larger_only():
    truth = canvas()
    truth[2:8, 1:7] = 1                         # 36 px
    truth[2:8, 8:10] = 1                        # 12 px, one column apart
    pred = canvas()
    pred[2:8, 1:10] = 1                         # 54 px covering both and the gap
    # IoU with the large one: 36/54 = 0.667 (match); with the small one 12/54 (no)
    counts = object_counts(pred, truth)
    assert (counts["true"], counts["pred"], counts["matched"]) == (2, 1, 1)
    assert counts["matched_iou_sum"] == pytest.approx(36 / 54)
    s = object_scores(counts)
    assert s["recall"] == 0.5 and s["precision"] == 1.0 and s["count_ratio"] == 0.5


def test_a_hole_changes_iou_not_the_count():
    truth = canvas()
    truth[1:11, 1:11] = 1                       # 100 px
    pred = truth.copy()
    pred[4:8, 4:8] = 0                          # a 16 px hole: IoU 84/100
    counts = object_counts(pred, truth)
    assert (counts["true"], counts["pred"], counts["matched"]) == (1, 1, 1)
    assert counts["matched_iou_sum"] == pytest.approx(0.84)
    pred[1:11, 5:7] = 0                         # the hole cut through: two halves of 40 px
    counts = object_counts(pred, truth)
    assert (counts["pred"], counts["matched"]) == (2, 0)  # each half IoU 0.4 < 0.5


def test_eight_neighbours_join_diagonal_pixels():
    pred = canvas(4, 4)
    pred[0, 0] = pred[1, 1] = pred[2, 2] = 1
    assert object_counts(pred, canvas(4, 4))["pred"] == 1


def test_an_object_cut_by_the_image_edge_is_scored_as_seen():
    truth = canvas(6, 6)
    truth[:, 3:] = 1                            # runs off the right and both horizontal edges
    pred = canvas(6, 6)
    pred[:, 2:] = 1                             # 24 px; IoU 18/24 = 0.75
    counts = object_counts(pred, truth)
    assert counts["matched"] == 1 and counts["matched_iou_sum"] == pytest.approx(0.75)


def test_no_data_splits_objects_and_is_never_scored():
    truth = canvas(6, 9)
    truth[1:5, 1:8] = 1
    truth[:, 4] = 255                           # a no-data column through the landslide
    pred = canvas(6, 9)
    pred[1:5, 1:8] = 1
    pred[0, 4] = 1                              # predicted on no-data: not an object pixel
    counts = object_counts(pred, truth)
    assert (counts["true"], counts["pred"], counts["matched"]) == (2, 2, 2)
    assert counts["true_area"] == counts["pred_area"] == 24
    valid = np.ones_like(truth, bool)
    valid[:, :4] = False                        # and `valid` masks like 255
    counts = object_counts(pred, truth, valid=valid)
    assert (counts["true"], counts["pred"], counts["matched"]) == (1, 1, 1)


def test_empty_truth_and_prediction():
    s = object_scores(object_counts(canvas(), canvas()))
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    assert s["count_ratio"] is None and s["matched_iou"] is None and s["area_bias"] is None
    pred = canvas()
    pred[0, 0] = 1
    s = object_scores(object_counts(pred, canvas()))
    assert s["precision"] == 0.0 and s["recall"] is None and s["f1"] == 0.0


def test_below_one_half_each_object_is_matched_once():
    truth = canvas(3, 9)
    truth[0:3, 2:5] = 1                         # 9 px
    pred = canvas(3, 9)
    pred[0:3, 0:3] = 1                          # 9 px, overlap 3: IoU 3/15 = 0.2
    pred[0:3, 4:7] = 1                          # 9 px, overlap 3: IoU 0.2 (the gap is col 3)
    pred[:, 3] = 0
    assert object_counts(pred, truth, min_iou=0.5)["matched"] == 0
    counts = object_counts(pred, truth, min_iou=0.2)
    assert (counts["pred"], counts["matched"]) == (2, 1)


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="one shape"):
        object_counts(canvas(3, 3), canvas(3, 4))


# ---------------------------------------------------------------------------- in the Evaluator

def test_evaluator_reports_objects_and_boundary_f1_at_every_tolerance():
    from scdnn.metrics import Evaluator, boundary_counts, boundary_f1_from_counts, format_table

    truth = canvas(30, 40)
    truth[5:20, 5:25] = 1                       # 300 px
    pred = truth.copy()
    pred[5:20, 15:17] = 0                       # split: 150 px (IoU 0.5, matched) + 120 px
    evaluator = Evaluator(tolerance=2)
    evaluator.update(pred, truth, "a")
    m = evaluator.compute()
    assert m["objects"]["true_objects"] == 1 and m["objects"]["pred_objects"] == 2
    assert m["objects"]["matched"] == 1 and m["objects"]["f1"] == pytest.approx(2 / 3)
    assert m["objects"]["area_bias"] == pytest.approx((270 - 300) / 300)
    assert sorted(m["boundary_f1_at"]) == ["1", "2", "4", "8"]
    assert m["boundary_f1_at"]["2"]["f1"] == m["boundary_f1"]
    for tol in (1, 4, 8):  # the same as scoring at that tolerance alone
        alone = boundary_f1_from_counts(boundary_counts(pred, truth, tol))
        assert m["boundary_f1_at"][str(tol)] == alone
    assert m["boundary_f1_at"]["1"]["f1"] < m["boundary_f1_at"]["8"]["f1"] == 1.0
    table = format_table(m)
    assert "landslides" in table and "1 of 1 true matched" in table and "8 px" in table


def test_scenes_scored_in_strips_give_the_same_objects_and_outlines():
    from scdnn.metrics import Evaluator

    rng = np.random.default_rng(3)
    truth = (rng.random((70, 50)) < 0.3).astype(np.uint8)
    truth[:3] = 255
    pred = (rng.random((70, 50)) < 0.3).astype(np.uint8)
    whole, strips = Evaluator(tolerance=3), Evaluator(tolerance=3)
    whole.update(pred, truth, "s")
    strips.update_scene(pred, truth, "s", strip_rows=16)
    a, b = whole.compute(), strips.compute()
    assert a["objects"] == b["objects"] and a["boundary_f1_at"] == b["boundary_f1_at"]
    assert sorted(a["boundary_f1_at"]) == ["1", "2", "3", "4", "8"]  # its own tolerance too


# ------------------------------------------------------------------ boundary F1 in metres

def stripe(h: int, w: int, edge: int) -> np.ndarray:
    """Landslide left of column ``edge``: one boundary pixel per row, in column edge - 1
    (the image border is no boundary), so stripes with edges k apart lie k pixels apart."""
    return np.broadcast_to(np.arange(w) < edge, (h, w)).astype(np.uint8)


def test_metre_tolerances_are_converted_with_each_images_pixel_size():
    """An edge 2 px off at 0.5 m (1 m on the ground) and one 1 px off at 2 m (2 m): each is
    matched from the metre tolerance equal to its offset on the ground, not below it."""
    from scdnn.metrics import Evaluator, format_table

    evaluator = Evaluator(tolerance=2)
    evaluator.update(stripe(30, 40, 22), stripe(30, 40, 20), "fine", pixel_size_m=0.5)
    evaluator.update_scene(stripe(10, 40, 21), stripe(10, 40, 20), "coarse", strip_rows=4,
                           pixel_size_m=2.0)
    m = evaluator.compute()
    assert m["boundary_images_m"] == 2
    counts = m["boundary_counts_at_m"]
    # 0.5 m = 1 px (fine) and 0.25 px (coarse): neither matched
    assert counts["0.5"] == {"pred_boundary": 40, "pred_matched": 0,
                             "true_boundary": 40, "true_matched": 0}
    # 1 m = 2 px (fine, matched) and 0.5 px (coarse, not): 30 of 40
    assert counts["1"] == {"pred_boundary": 40, "pred_matched": 30,
                           "true_boundary": 40, "true_matched": 30}
    assert m["boundary_f1_at_m"]["0.5"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert m["boundary_f1_at_m"]["1"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75}
    for metres in ("2", "4"):  # 4 px and 1 px, 8 px and 2 px: all matched
        assert m["boundary_f1_at_m"][metres] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # the pixel tolerances are unchanged: at 1 px only the coarse edge is matched
    assert m["boundary_f1_at"]["1"]["f1"] == pytest.approx(10 / 40)
    lines = format_table(m).splitlines()
    header = next(i for i, line in enumerate(lines) if "0.5 m" in line)
    assert lines[header].split()[3:] == ["0.5", "m", "1", "m", "2", "m", "4", "m"]
    assert lines[header + 1].split() == ["0.00", "75.00", "100.00", "100.00"]


def test_images_without_a_metre_pixel_size_have_no_metre_scores():
    from scdnn.metrics import Evaluator, format_table

    evaluator = Evaluator()
    evaluator.update(stripe(10, 20, 12), stripe(10, 20, 10), "png")
    m = evaluator.compute()
    assert "boundary_f1_at_m" in m and m["boundary_f1_at_m"] is None
    assert m["boundary_counts_at_m"] is None and m["boundary_images_m"] == 0
    assert " m " not in format_table(m) + " "
    # one image with a pixel size: the metre scores are its alone, and say so
    evaluator.update(stripe(10, 20, 12), stripe(10, 20, 10), "tif", pixel_size_m=1.0)
    m = evaluator.compute()
    assert m["boundary_counts_at_m"]["2"]["pred_boundary"] == 10
    assert m["boundary_f1_at_m"]["2"]["f1"] == 1.0 and m["boundary_f1_at_m"]["1"]["f1"] == 0.0
    assert "1 of 2 images have a pixel size in metres" in format_table(m)


def test_a_metre_tolerance_of_a_whole_number_of_pixels_survives_floating_point():
    """0.3 / 0.1 is 2.9999999999999996 in floating point; 3 px off at 0.1 m is 0.3 m off."""
    from scdnn.metrics import Evaluator
    from scdnn.metrics.evaluator import metres_to_pixels

    assert metres_to_pixels(0.3, 0.1) == 3.0
    assert metres_to_pixels(1, 0.5) == 2.0 and metres_to_pixels(0.5, 2.0) == 0.25
    evaluator = Evaluator()
    # at 0.125 m, 0.5 m is exactly 4 px: an edge 4 px off is matched there
    evaluator.update(stripe(8, 30, 14), stripe(8, 30, 10), "a", pixel_size_m=0.125)
    assert evaluator.compute()["boundary_f1_at_m"]["0.5"]["f1"] == 1.0
    with pytest.raises(ValueError, match="pixel_size_m"):
        evaluator.update(stripe(8, 30, 14), stripe(8, 30, 10), "b", pixel_size_m=0.0)
