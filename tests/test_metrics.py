"""The paper's metrics (Eqs. 20–24), per-image scores, bins and boundary F1 on hand-made cases."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from scdnn.metrics import (Evaluator, boundary_counts, boundary_f1_from_counts, boundary_pixels,
                           format_table, miou_bin, miou_bins, per_image_scores,
                           scores_from_confusion)

# rows = truth (background, landslide), columns = prediction
CM = [[50, 10], [5, 35]]


def test_equations_20_to_24_on_a_hand_computed_matrix() -> None:
    s = scores_from_confusion(CM)
    assert s["pa"] == pytest.approx(85 / 100)                                  # Eq. 20
    assert s["class_pa"] == pytest.approx({"background": 50 / 60, "landslide": 35 / 40})
    assert s["mpa"] == pytest.approx((50 / 60 + 35 / 40) / 2)                  # Eq. 21
    # IoU_i = p_ii / (Σ_j p_ij + Σ_j p_ji − p_ii): background 50/(60+55−50), landslide 35/(40+45−35)
    assert s["class_iou"] == pytest.approx({"background": 50 / 65, "landslide": 35 / 50})
    assert s["miou"] == pytest.approx((50 / 65 + 35 / 50) / 2)                 # Eqs. 22–23
    assert s["fwiou"] == pytest.approx(0.6 * 50 / 65 + 0.4 * 35 / 50)          # Eq. 24
    assert s["confusion_normalized"][0] == pytest.approx([50 / 60, 10 / 60])
    assert s["confusion_normalized"][1] == pytest.approx([5 / 40, 35 / 40])
    assert s["landslide_precision"] == pytest.approx(35 / 45)
    assert s["landslide_recall"] == pytest.approx(35 / 40)
    p, r = 35 / 45, 35 / 40
    assert s["landslide_f1"] == pytest.approx(2 * p * r / (p + r))
    assert s["confusion"] == CM and s["pixels"] == 100


def test_paper_table_1_rows_give_table_3_pa() -> None:
    """The paper's normalized Table 1 rows, scaled to counts, reproduce its Table 3 PA."""
    cm = np.array([[9896, 104], [2589, 7411]])
    s = scores_from_confusion(cm)
    assert s["class_pa"]["landslide"] == pytest.approx(0.7411)
    assert s["class_pa"]["background"] == pytest.approx(0.9896)


def test_absent_class_is_left_out_of_the_means() -> None:
    s = scores_from_confusion([[40, 0], [0, 0]])
    assert s["class_pa"]["landslide"] is None and s["class_iou"]["landslide"] is None
    assert s["miou"] == 1.0 and s["mpa"] == 1.0 and s["fwiou"] == 1.0
    assert s["landslide_f1"] is None
    empty = scores_from_confusion([[0, 0], [0, 0]])
    assert empty["pa"] is None and empty["miou"] is None


def test_per_image_rules() -> None:
    target = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    assert per_image_scores(pred, target)["miou"] == 1.0          # both lack landslide
    assert per_image_scores(pred, target)["landslide_pa"] is None  # no landslide truth
    pred[0, 0] = 1  # a false positive: landslide IoU 0/1, background IoU 15/16
    assert per_image_scores(pred, target)["miou"] == pytest.approx((15 / 16 + 0) / 2)
    target[1, 1] = 255  # ignored
    pred[1, 1] = 1
    assert per_image_scores(pred, target)["miou"] == pytest.approx((14 / 15 + 0) / 2)


@pytest.mark.parametrize("value, label", [(0.95, "> 0.9"), (0.9, "0.8–0.9"), (0.85, "0.8–0.9"),
                                          (0.8, "0.8–0.9"), (0.79, "0.7–0.8"), (0.6, "0.6–0.7"),
                                          (0.5999, "< 0.6"), (0.0, "< 0.6")])
def test_fig8_bin_edges(value: float, label: str) -> None:
    assert miou_bin(value) == label


def test_bins_count_and_share() -> None:
    bins = miou_bins([0.95, 0.85, 0.85, 0.5, None])
    assert bins["> 0.9"] == {"count": 1, "fraction": 0.25}
    assert bins["0.8–0.9"]["count"] == 2 and bins["< 0.6"]["count"] == 1


def square(size: int = 7, lo: int = 2, hi: int = 5) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


def test_boundary_of_a_3x3_square_is_its_8_outer_pixels() -> None:
    b = boundary_pixels(square())
    assert b.sum() == 8 and not b[3, 3]
    # the image border is not a boundary
    assert boundary_pixels(np.ones((5, 5))).sum() == 0


def test_boundary_f1_identity_shift_and_tolerance() -> None:
    truth = square(12, 3, 8)
    assert boundary_f1_from_counts(boundary_counts(truth, truth, 2))["f1"] == 1.0
    shifted = np.roll(truth, 1, axis=1)
    assert boundary_f1_from_counts(boundary_counts(shifted, truth, 2))["f1"] == 1.0
    assert boundary_f1_from_counts(boundary_counts(shifted, truth, 0))["f1"] < 1.0


def test_boundary_counts_by_hand() -> None:
    truth = square()              # boundary: rows/cols 2..4, 8 pixels
    pred = np.zeros_like(truth)
    pred[2:4, 2:4] = 1            # a 2x2 square: all 4 pixels are boundary, all on truth's
    c = boundary_counts(pred, truth, tolerance=0)
    # predicted boundary pixels (2,2),(2,3),(3,2) lie on the true boundary; (3,3) does not
    assert c == {"pred_boundary": 4, "pred_matched": 3, "true_boundary": 8, "true_matched": 3}
    f = boundary_f1_from_counts(c)
    assert f["precision"] == 3 / 4 and f["recall"] == 3 / 8


def test_boundary_empty_cases() -> None:
    empty = np.zeros((6, 6), np.uint8)
    assert boundary_f1_from_counts(boundary_counts(empty, empty))["f1"] == 1.0
    assert boundary_f1_from_counts(boundary_counts(square(6, 1, 4), empty))["f1"] == 0.0


def test_evaluator_sums_pixels_of_all_images(tmp_path) -> None:
    t1 = np.array([[0, 0], [1, 1]])
    p1 = np.array([[0, 1], [1, 1]])
    t2 = np.array([[1, 255], [0, 0]])
    p2 = np.array([[0, 1], [0, 0]])
    ev = Evaluator(tolerance=1)
    ev.update(p1, t1, "a")
    ev.update(p2, t2, "b")
    m = ev.compute()
    # by hand: bg→bg 1+2, bg→ls 1, ls→bg 1, ls→ls 2; the 255 pixel ignored
    assert m["confusion"] == [[3, 1], [1, 2]]
    assert m["miou"] == pytest.approx(scores_from_confusion([[3, 1], [1, 2]])["miou"])
    assert m["images"] == 2 and m["boundary_tolerance_px"] == 1
    ev.write_csv(tmp_path / "per_image.csv")
    rows = list(csv.DictReader(open(tmp_path / "per_image.csv")))
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[1]["landslide_iou"] == "0.000000" and rows[1]["pixels"] == "3"
    assert not [p for p in tmp_path.iterdir() if p.name != "per_image.csv"]
    assert "MIoU" in format_table(m)


def test_evaluator_valid_mask_excludes_pixels() -> None:
    ev = Evaluator()
    ev.update(np.ones((2, 2)), np.zeros((2, 2)), "x", valid=np.array([[1, 0], [0, 0]]))
    assert ev.compute()["confusion"] == [[0, 1], [0, 0]]


def test_csv_leaves_undefined_cells_empty(tmp_path) -> None:
    ev = Evaluator()
    ev.update(np.zeros((3, 3)), np.zeros((3, 3)), "background-only")
    ev.write_csv(tmp_path / "p.csv")
    row = next(csv.DictReader(open(tmp_path / "p.csv")))
    assert row["landslide_pa"] == "" and row["miou"] == "1.000000"
