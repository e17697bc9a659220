"""The paper's metrics (Eqs. 20–24), per-image scores, Fig. 8 bins and boundary F1, on cases
whose expected values are worked out by hand in the comments."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from scdnn.metrics import (
    CLASS_NAMES,
    MIOU_BINS,
    Evaluator,
    boundary_counts,
    boundary_f1_from_counts,
    boundary_pixels,
    format_table,
    miou_bin,
    miou_bins,
    per_image_scores,
    scores_from_confusion,
)

# rows = truth (background, landslide), columns = prediction
CM = [[50, 10], [5, 35]]


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r)


def square(size: int = 7, lo: int = 2, hi: int = 5) -> np.ndarray:
    """A ``size`` x ``size`` background image with landslide at ``[lo:hi, lo:hi]``."""
    mask = np.zeros((size, size), np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


# --- Eqs. 20–24 -----------------------------------------------------------------------------

def test_equations_20_to_24_on_a_hand_computed_matrix() -> None:
    s = scores_from_confusion(CM)
    assert CLASS_NAMES == ("background", "landslide")
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
    assert s["landslide_f1"] == pytest.approx(f1(35 / 45, 35 / 40))
    assert s["confusion"] == CM and s["pixels"] == 100
    assert set(s) == {"pa", "mpa", "miou", "fwiou", "class_pa", "class_iou", "confusion",
                      "confusion_normalized", "landslide_precision", "landslide_recall",
                      "landslide_f1", "pixels"}
    # plain python types: JSON round trip is lossless
    assert json.loads(json.dumps(scores_from_confusion(np.array(CM, np.int64)))) == s


def test_paper_table_1_rows_give_table_3_pa() -> None:
    """The paper's normalized Table 1 rows, scaled to counts, give its Table 3 class PA."""
    s = scores_from_confusion([[9896, 104], [2589, 7411]])
    assert s["class_pa"]["landslide"] == pytest.approx(0.7411)
    assert s["class_pa"]["background"] == pytest.approx(0.9896)
    assert s["confusion_normalized"][1] == pytest.approx([0.2589, 0.7411])


def test_paper_tables_1_2_3_are_one_confusion_matrix() -> None:
    """Table 1's rows with a landslide share of 11.25 % of the test pixels reproduce every SCDnn
    figure of Tables 2 and 3 to within 0.02 percentage points: our equations read the paper's."""
    n, share = 1_000_000, 0.1125
    ls = round(n * share)
    bg = n - ls
    cm = [[round(0.9896 * bg), bg - round(0.9896 * bg)],
          [ls - round(0.7411 * ls), round(0.7411 * ls)]]
    s = scores_from_confusion(cm)
    published = {"pa": 0.9616, "mpa": 0.8654, "miou": 0.8214, "fwiou": 0.9274}
    for key, value in published.items():
        assert s[key] == pytest.approx(value, abs=2e-4), key
    assert s["class_iou"]["landslide"] == pytest.approx(0.6848, abs=2e-4)
    assert s["class_iou"]["background"] == pytest.approx(0.9581, abs=2e-4)


def test_absent_classes_are_none_and_left_out_of_the_means() -> None:
    # no landslide in truth or prediction: landslide PA/IoU 0/0
    s = scores_from_confusion([[40, 0], [0, 0]])
    assert s["class_pa"]["landslide"] is None and s["class_iou"]["landslide"] is None
    assert s["confusion_normalized"][1] == [None, None]
    assert s["miou"] == 1.0 and s["mpa"] == 1.0 and s["fwiou"] == 1.0 and s["pa"] == 1.0
    assert s["landslide_precision"] is None and s["landslide_recall"] is None
    assert s["landslide_f1"] is None
    # landslide in the truth, never predicted: precision 0/0, recall 0, F1 = 2TP/(2TP+FP+FN) = 0
    s = scores_from_confusion([[40, 0], [10, 0]])
    assert s["landslide_precision"] is None and s["landslide_recall"] == 0.0
    assert s["landslide_f1"] == 0.0 and s["class_iou"]["landslide"] == 0.0
    assert s["miou"] == pytest.approx((40 / 50 + 0) / 2)
    # landslide predicted, absent from truth: PA undefined, IoU defined (0)
    s = scores_from_confusion([[30, 10], [0, 0]])
    assert s["class_pa"]["landslide"] is None and s["class_iou"]["landslide"] == 0.0
    assert s["mpa"] == pytest.approx(30 / 40) and s["miou"] == pytest.approx((30 / 40 + 0) / 2)
    assert s["fwiou"] == pytest.approx(30 / 40)  # landslide weight 0/40
    # nothing scored: every score None
    empty = scores_from_confusion([[0, 0], [0, 0]])
    assert empty["pixels"] == 0
    assert all(empty[k] is None for k in ("pa", "mpa", "miou", "fwiou", "landslide_f1"))
    assert set(empty["class_iou"].values()) == {None}


def test_confusion_matrix_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="2x2"):
        scores_from_confusion([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="negative"):
        scores_from_confusion([[1, -2], [3, 4]])


# --- per image and Fig. 8 bins --------------------------------------------------------------

def test_per_image_absent_class_rules() -> None:
    target = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    s = per_image_scores(pred, target)
    assert s["miou"] == 1.0 and s["background_pa"] == 1.0 and s["background_iou"] == 1.0
    assert s["landslide_pa"] is None and s["landslide_iou"] is None
    pred[0, 0] = 1  # one false positive: landslide IoU 0/1, background IoU 15/16
    s = per_image_scores(pred, target)
    assert s["miou"] == pytest.approx((15 / 16 + 0) / 2) and s["landslide_iou"] == 0.0
    assert s["landslide_pa"] is None  # still no landslide in the truth
    target[1, 1], pred[1, 1] = 255, 1  # ignored pixel: background IoU 14/15
    assert per_image_scores(pred, target)["miou"] == pytest.approx((14 / 15 + 0) / 2)
    # all landslide, predicted so: background absent from both
    s = per_image_scores(np.ones((3, 3)), np.ones((3, 3)))
    assert s["miou"] == 1.0 and s["background_pa"] is None and s["landslide_pa"] == 1.0
    # valid == False acts as 255: hiding the false positive at (0, 0) leaves no landslide
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    s = per_image_scores(pred, target, valid)
    assert s["miou"] == 1.0 and s["landslide_iou"] is None


def test_per_image_rejects_other_labels() -> None:
    with pytest.raises(ValueError):
        per_image_scores(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        per_image_scores(np.zeros((2, 2)), np.zeros((2, 3)))


@pytest.mark.parametrize("value, label", [
    (1.0, "> 0.9"), (0.9000001, "> 0.9"), (0.9, "0.8–0.9"), (0.85, "0.8–0.9"),
    (0.8000001, "0.8–0.9"), (0.8, "0.7–0.8"), (0.7, "0.6–0.7"), (0.6, "0.6–0.7"),
    (0.5999999, "< 0.6"), (0.0, "< 0.6")])
def test_fig8_bin_edges(value: float, label: str) -> None:
    # 0.8 < v <= 0.9 etc.: an edge value goes to the bin below, except 0.6 ("< 0.6" is strict)
    assert miou_bin(value) == label


def test_fig8_counts_match_the_paper() -> None:
    """Fig. 8: 52 of 231 images (22.51 %) > 0.9, 119 (51.52 %) in 0.8–0.9, 7.79 % < 0.7, 5 < 0.6."""
    values = [0.95] * 52 + [0.85] * 119 + [0.75] * 42 + [0.65] * 13 + [0.5] * 5 + [None]
    bins = miou_bins(values)
    assert list(bins) == list(MIOU_BINS)
    assert [bins[k]["count"] for k in MIOU_BINS] == [52, 119, 42, 13, 5]  # None skipped
    assert bins["> 0.9"]["fraction"] == pytest.approx(0.2251, abs=5e-5)
    assert bins["0.8–0.9"]["fraction"] == pytest.approx(0.5152, abs=5e-5)
    assert bins["0.6–0.7"]["fraction"] + bins["< 0.6"]["fraction"] == pytest.approx(0.0779,
                                                                                      abs=5e-5)
    assert miou_bins([None]) == {k: {"count": 0, "fraction": 0.0} for k in MIOU_BINS}


# --- boundary F1 ----------------------------------------------------------------------------

def test_boundary_of_a_3x3_square_is_its_8_outer_pixels() -> None:
    b = boundary_pixels(square())
    expected = square().astype(bool)
    expected[3, 3] = False
    assert b.sum() == 8 and (b == expected).all()


def test_image_border_is_not_a_boundary() -> None:
    assert boundary_pixels(np.ones((5, 5))).sum() == 0
    mask = np.zeros((7, 7), np.uint8)
    mask[:, :3] = 1  # touches top, bottom and left border: only column 2 is boundary
    expected = np.zeros((7, 7), bool)
    expected[:, 2] = True
    assert (boundary_pixels(mask) == expected).all()


def test_ignored_pixels_are_no_boundary_and_make_none() -> None:
    truth = np.zeros((7, 7), np.uint8)
    truth[:, :3] = 1
    truth[:, 3:5] = 255  # landslide meets only ignored pixels: no outline
    c = boundary_counts(truth.clip(0, 1), truth)
    assert c["true_boundary"] == 0 and c["pred_boundary"] == 0
    truth = np.zeros((7, 7), np.uint8)
    truth[:, :3] = 1
    truth[0, :] = 255  # row 0 ignored: boundary = column 2, rows 1..6
    pred = np.where(truth == 255, 1, truth)
    assert boundary_counts(pred, truth, tolerance=0) == {
        "pred_boundary": 6, "pred_matched": 6, "true_boundary": 6, "true_matched": 6}
    valid = truth != 255  # valid == False is the same as 255
    assert boundary_counts(pred, np.where(valid, truth, 0), 0, valid=valid)["true_boundary"] == 6


def test_boundary_counts_by_hand() -> None:
    truth = square()            # 3x3 at rows/cols 2..4: boundary is its 8 outer pixels
    pred = square(7, 2, 4)      # 2x2 at rows/cols 2..3: all 4 pixels are boundary
    c = boundary_counts(pred, truth, tolerance=0)
    # (2,2), (2,3), (3,2) lie on the true boundary; (3,3) is the truth's interior
    assert c == {"pred_boundary": 4, "pred_matched": 3, "true_boundary": 8, "true_matched": 3}
    f = boundary_f1_from_counts(c)
    assert f["precision"] == 3 / 4 and f["recall"] == 3 / 8 and f["f1"] == pytest.approx(1 / 2)
    # tolerance 1: (3,3) is 1 px from (2,3); every true pixel but (4,4) (√2 from (3,3)) matched
    assert boundary_counts(pred, truth, tolerance=1) == {
        "pred_boundary": 4, "pred_matched": 4, "true_boundary": 8, "true_matched": 7}
    assert boundary_counts(pred, truth, tolerance=1.5)["true_matched"] == 8


def test_boundary_f1_identity_and_shift() -> None:
    truth = square(12, 3, 8)
    assert boundary_f1_from_counts(boundary_counts(truth, truth, 0))["f1"] == 1.0
    shifted = np.roll(truth, 1, axis=1)
    assert boundary_f1_from_counts(boundary_counts(shifted, truth, 2))["f1"] == 1.0
    assert boundary_f1_from_counts(boundary_counts(shifted, truth, 1))["f1"] == 1.0
    assert boundary_f1_from_counts(boundary_counts(shifted, truth, 0))["f1"] < 1.0


def test_boundary_empty_cases() -> None:
    empty = np.zeros((6, 6), np.uint8)
    blob = square(6, 1, 4)
    assert boundary_counts(empty, empty) == dict.fromkeys(
        ("pred_boundary", "pred_matched", "true_boundary", "true_matched"), 0)
    assert boundary_f1_from_counts(boundary_counts(empty, empty)) == {
        "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert boundary_f1_from_counts(boundary_counts(blob, empty))["f1"] == 0.0
    assert boundary_f1_from_counts(boundary_counts(empty, blob))["f1"] == 0.0


def test_boundary_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        boundary_counts(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        boundary_counts(np.zeros((3, 3)), np.zeros((3, 3)), tolerance=-1)


# --- Evaluator ------------------------------------------------------------------------------

def test_evaluator_equals_the_hand_counted_matrix() -> None:
    t1 = np.array([[0, 0], [1, 1]])
    p1 = np.array([[0, 1], [1, 1]])
    t2 = torch.tensor([[1, 255], [0, 0]], dtype=torch.uint8)   # tensors work too
    p2 = torch.tensor([[0, 1], [0, 0]], dtype=torch.uint8)
    ev = Evaluator(tolerance=1)
    ev.update(p1, t1, "a")
    ev.update(p2, t2, "b")
    m = ev.compute()
    # by hand: bg→bg 1+2, bg→ls 1+0, ls→bg 0+1, ls→ls 2+0; the 255 pixel (predicted 1) ignored
    expected = scores_from_confusion([[3, 1], [1, 2]])
    assert {k: m[k] for k in expected} == expected
    assert m["images"] == 2 and m["boundary_tolerance_px"] == 1
    assert [r["pixels"] for r in ev.rows] == [4, 3]
    json.dumps(m)


def test_dataset_boundary_f1_comes_from_summed_counts() -> None:
    ev = Evaluator(tolerance=2)
    row_a = ev.update(square(), square(), "a")                   # 8 true px, all matched: F1 1
    row_b = ev.update(np.zeros((6, 6)), square(6, 1, 3), "b")    # 4 true px, none predicted: 0
    assert row_a["boundary_f1"] == 1.0 and row_b["boundary_f1"] == 0.0
    m = ev.compute()
    # sums: predicted 8, matched 8; true 12, matched 8 -> P 1, R 2/3, F1 0.8 (not the mean 0.5)
    assert m["boundary_counts"] == {"pred_boundary": 8, "pred_matched": 8, "true_boundary": 12,
                                    "true_matched": 8}
    assert m["boundary_precision"] == 1.0 and m["boundary_recall"] == pytest.approx(2 / 3)
    assert m["boundary_f1"] == pytest.approx(0.8)
    assert m["miou_bins"]["> 0.9"]["count"] == 1 and m["miou_bins"]["0.6–0.7"]["count"] == 0


def test_evaluator_valid_mask_excludes_pixels() -> None:
    ev = Evaluator()
    row = ev.update(np.ones((2, 2)), np.zeros((2, 2)), "x", valid=np.array([[1, 0], [0, 0]]))
    assert ev.compute()["confusion"] == [[0, 1], [0, 0]] and row["pixels"] == 1


def test_evaluator_rejects_bad_input() -> None:
    ev = Evaluator()
    with pytest.raises(ValueError, match="x"):
        ev.update(np.zeros((2, 2)), np.zeros((2, 3)), "x")
    with pytest.raises(ValueError):
        ev.update(np.full((2, 2), 0.5), np.zeros((2, 2)), "x")
    with pytest.raises(ValueError):
        ev.update(np.zeros((2, 2)), np.full((2, 2), 7), "x")
    assert ev.rows == []


def test_empty_evaluator_gives_none_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = Evaluator().compute()
    assert m["images"] == 0 and m["pixels"] == 0
    assert m["miou"] is None and m["boundary_f1"] is None


def test_csv_header_empty_cells_and_no_temp_file(tmp_path: Path) -> None:
    ev = Evaluator()
    ev.update(np.zeros((3, 3)), np.zeros((3, 3)), "background-only")
    ev.update(np.array([[0, 1], [1, 1]]), np.array([[0, 0], [1, 1]]), "b")
    out = tmp_path / "per_image.csv"
    out.write_text("old content\n")  # replaced, not appended to
    ev.write_csv(out)
    text = out.read_text()
    assert text.splitlines()[0] == ("name,miou,landslide_pa,background_pa,landslide_iou,"
                                    "boundary_f1,pixels")
    assert "\r" not in text and "old content" not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert rows[0] == {"name": "background-only", "miou": "1.000000", "landslide_pa": "",
                       "background_pa": "1.000000", "landslide_iou": "", "boundary_f1": "1.000000",
                       "pixels": "9"}
    # image b: bg IoU 1/2, ls IoU 2/3 -> MIoU 7/12; PA ls 2/2, bg 1/2
    assert rows[1]["miou"] == f"{7 / 12:.6f}" and rows[1]["background_pa"] == "0.500000"
    assert [p.name for p in tmp_path.iterdir()] == ["per_image.csv"]


def test_format_table_shows_percent_and_na() -> None:
    text = format_table(scores_from_confusion([[9896, 104], [2589, 7411]]))
    for shown in ("74.11", "98.96", "25.89", "1.04", "MIoU", "FWIoU"):
        assert shown in text
    ev = Evaluator()
    ev.update(np.zeros((3, 3)), np.zeros((3, 3)), "a")
    text = format_table(ev.compute())
    assert "n/a" in text and "boundary" in text and "tolerance 2 px" in text and "> 0.9" in text
