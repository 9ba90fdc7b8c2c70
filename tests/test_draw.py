import numpy as np

from trashseg.draw import blend, class_colors, overlay_panel


def test_blend_tints_only_the_labelled_pixels_with_the_class_colour():
    image = np.full((4, 6, 3), 100, np.uint8)
    mask = np.zeros((4, 6), np.uint8)
    mask[:, 3:] = 2
    mask[0, 0] = 255  # ignore: left as it is
    colors = class_colors(3)
    out = blend(image, mask, colors, alpha=0.5)
    assert np.array_equal(out[:, :3], image[:, :3])
    expected = np.round(0.5 * 100 + 0.5 * np.array(colors[2]))
    np.testing.assert_allclose(out[1, 4], expected, atol=1)
    assert out.dtype == np.uint8 and len(set(class_colors(40))) == 40  # distinct past tab20's 20


def test_panel_puts_truth_beside_prediction_with_a_legend():
    image = np.zeros((40, 50, 3), np.uint8)
    pred = np.ones((20, 25), np.uint8)  # a submission-sized mask: brought to the image's size
    truth = np.full((50, 40), 2, np.uint8)  # COCO's size disagreeing with the (rotated) photo
    panel = overlay_panel(image, pred, ["bg", "paper", "metal"], truth)
    assert panel.shape[1] == 2 * 50 + 6 and panel.shape[0] > 40 + 20  # titles and legend below/above
    alone = overlay_panel(image, np.zeros((40, 50), np.uint8), ["bg", "paper"])
    assert alone.shape == (40 + 24, 50, 3)  # nothing but background: no legend
