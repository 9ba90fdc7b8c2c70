"""``trashseg shift``: do the splits look alike to a pretrained network? The seed team's perceptual-distance check.

Every image goes through an ImageNet encoder (the packaged EfficientNet-Lite0, or a trained run's encoder); each
stage's feature map is averaged to a vector, each stage scaled to the same spread over the images, and PCA keeps
the main directions. Several stages, like the seed's VGG conv4_4 and perceptual losses, because the last stage
alone is nearly blind to colour and brightness: on the generated data it cannot tell a split from its copy at 35%
brightness, while the early stages see it at once. On those features:

- the **energy distance** between two splits (0 when their distributions are equal; a V-statistic, so a finite
  sample is slightly above 0 even without shift). The number means nothing alone, so it is compared with a
  **permutation baseline**: the same two sets pooled, their split labels shuffled N times. Images of one video or
  batch folder resemble each other, so a second baseline shuffles whole groups: the distance a random *grouped*
  split would have. A split well above its grouped baseline is shifted beyond what grouping explains;
- a 2-D map (the first two principal components) coloured by split;
- the pool's images farthest from the target (mean distance to their nearest target images);
- a validation subset of the pool chosen group by group (greedy) to minimise the energy distance to the target,
  written as COCO files that ``trashseg train --set data.val=... --set data.train=...`` reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np
import torch
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA

from trashseg.analysis.html import Cell, Page, thumbnail
from trashseg.data.coco import CocoSplit
from trashseg.data.images import read_image
from trashseg.data.splits import image_groups, subset_coco
from trashseg.draw import figure, plain
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_json, make_folder
from trashseg.progress import progress_bar

IMAGENET_ENCODER = "tf_efficientnet_lite0"
NEAREST = 10  # "far from the target" = mean distance to this many nearest target images
MIN_GROUPS = 8  # fewer groups than this make a grouped permutation meaningless


@dataclass
class Extractor:
    """uint8 B×H×W×3 → one B×D_k pooled feature block per encoder stage; `name` says which network made them."""

    name: str
    features: Callable[[torch.Tensor], list[torch.Tensor]]


def imagenet_extractor(device: str) -> Extractor:
    """EfficientNet-Lite0 with Google's ImageNet weights (installed with trashseg: no network), its five stages
    pooled, inputs normalised as its weights expect."""
    from trashseg.models.pretrained import encoder_normalization, load_offline_classifier

    model: Any = load_offline_classifier(IMAGENET_ENCODER).to(device)  # timm's: forward_intermediates is its API
    mean, std = (
        torch.tensor(v, device=device).view(1, 3, 1, 1) * 255 for v in encoder_normalization(f"tu-{IMAGENET_ENCODER}")
    )

    def features(images: torch.Tensor) -> list[torch.Tensor]:
        x = (images.permute(0, 3, 1, 2).float() - mean) / std
        return [f.mean(dim=(2, 3)) for f in model.forward_intermediates(x, intermediates_only=True)]

    return Extractor(f"ImageNet {IMAGENET_ENCODER}", features)


def run_extractor(run: Path, device: str) -> Extractor:
    """A trained run's encoder (every feature map it hands the decoder, averaged), with the normalisation it was
    trained with."""
    from trashseg.models.segmenter import load_segmenter

    model = load_segmenter(run, device)

    def features(images: torch.Tensor) -> list[torch.Tensor]:
        return [f.float().mean(dim=(2, 3)) for f in model.net.get_submodule("encoder")(model.normalize(images))]

    return Extractor(f"encoder of {model.info['source']}", features)


def extract(
    split: CocoSplit, extractor: Extractor, *, size: int, device: str, batch_size: int = 16
) -> list[np.ndarray]:
    """Per stage, N×D_k features of every image of `split`, each resized to size×size; shows images/s."""
    out: list[list[np.ndarray]] = []
    start = time.perf_counter()
    images = split.images
    with progress_bar() as bar, torch.inference_mode():
        task = bar.add_task(f"features of {split.name}", total=len(images), rate="-")
        for i in range(0, len(images), batch_size):
            batch = np.stack(
                [
                    cv2.resize(
                        read_image(split.image_path(img), split.max_pixels), (size, size), interpolation=cv2.INTER_AREA
                    )
                    for img in images[i : i + batch_size]
                ]
            )
            out.append([f.cpu().numpy() for f in extractor.features(torch.from_numpy(batch).to(device))])
            done = min(i + batch_size, len(images))
            bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - start):.1f}")
    if not out:
        raise TrashsegError(f"{split.path}: has no images")
    return [np.concatenate(stage) for stage in zip(*out, strict=True)]


def balance_stages(stages: list[np.ndarray]) -> np.ndarray:
    """Stages side by side, each divided by its mean distance to its centroid, so that every stage weighs the
    same in the distances whatever its width and scale."""
    scaled = []
    for block in stages:
        spread = np.linalg.norm(block - block.mean(0), axis=1).mean()
        scaled.append(block / spread if spread > 0 else block)
    return np.concatenate(scaled, axis=1).astype(np.float64)


# -- distances ---------------------------------------------------------------------------------------------------
def energy(d: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Energy distance (V-statistic) between the rows marked by `a` and by `b` of a pairwise distance matrix `d`;
    `a` and `b` are 0/1 weight vectors, or P×n stacks of them (one distance per row)."""
    a, b = np.atleast_2d(a).astype(d.dtype), np.atleast_2d(b).astype(d.dtype)
    na, nb = a.sum(1), b.sum(1)
    da, db = a @ d, b @ d
    return 2 * (da * b).sum(1) / (na * nb) - (da * a).sum(1) / na**2 - (db * b).sum(1) / nb**2


def _label_permutations(n_a: int, n: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """rounds × n 0/1 rows, each marking a random n_a of n."""
    return np.stack([rng.permutation(n) < n_a for _ in range(rounds)])


def _group_permutations(n_a: int, groups: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """rounds × n 0/1 rows, each marking whole groups taken in random order until about n_a images."""
    keys, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    rows = []
    for _ in range(rounds):
        order = rng.permutation(len(keys))
        taken = np.cumsum(counts[order])
        k = int(np.argmin(np.abs(taken - n_a))) + 1
        k = min(max(k, 1), len(keys) - 1)
        rows.append(np.isin(inverse, order[:k]))
    return np.stack(rows)


def compare(
    d: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray, rounds: int, seed: int
) -> tuple[dict, dict[str, np.ndarray]]:
    """The energy distance of two index sets of `d`, with the image- and group-shuffled baselines; and the
    baselines' distances themselves (for the page's histogram)."""
    idx = np.concatenate([a, b])
    sub = d[np.ix_(idx, idx)]
    mark = np.arange(len(idx)) < len(a)
    observed = float(energy(sub, mark, ~mark)[0])
    rng = np.random.default_rng(seed)
    out = {"images": [len(a), len(b)], "distance": observed}
    sets = {"shuffled_images": _label_permutations(len(a), len(idx), rounds, rng)}
    group_keys = groups[idx]
    if len(np.unique(group_keys)) >= MIN_GROUPS:
        sets["shuffled_groups"] = _group_permutations(len(a), group_keys, rounds, rng)
    nulls = {}
    for name, perm in sets.items():
        chunks = np.array_split(perm, max(1, len(perm) // 25))
        null = nulls[name] = np.concatenate([energy(sub, p, ~p) for p in chunks])
        out[name] = {
            "mean": float(null.mean()),
            "p95": float(np.percentile(null, 95)),
            "p_value": float((1 + (null >= observed).sum()) / (1 + len(null))),
            "ratio_to_mean": observed / float(null.mean()) if null.mean() > 0 else None,
        }
    return out, nulls


def farthest(d: np.ndarray, pool: np.ndarray, target: np.ndarray, k: int = NEAREST) -> np.ndarray:
    """Per pool image, the mean distance to its k nearest target images."""
    block = d[np.ix_(pool, target)]
    k = min(k, block.shape[1])
    return np.sort(block, axis=1)[:, :k].mean(1)


def greedy_subset(d: np.ndarray, pool: np.ndarray, target: np.ndarray, groups: list[str], size: int) -> np.ndarray:
    """Indices into `pool` of whole groups, added one at a time, each the group that brings the subset's energy
    distance to `target` lowest, until the subset holds at least `size` images."""
    keys, gid = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(gid == g) for g in range(len(keys))]
    pp, pt = d[np.ix_(pool, pool)], d[np.ix_(pool, target)]
    to_target = pt.sum(1)  # per pool image: summed distance to the target
    n_t = len(target)
    within_t = float(d[np.ix_(target, target)].sum())
    g_target = np.array([to_target[m].sum() for m in members])
    g_self = np.array([pp[np.ix_(m, m)].sum() for m in members])
    g_size = np.array([len(m) for m in members], float)
    to_chosen = np.zeros(len(pool))  # per pool image: summed distance to the chosen subset
    chosen = np.zeros(len(members), bool)
    n_s, s_t, s_s = 0.0, 0.0, 0.0
    while n_s < size and not chosen.all():
        g_chosen = np.array([to_chosen[m].sum() for m in members])
        n = n_s + g_size
        score = 2 * (s_t + g_target) / (n * n_t) - (s_s + 2 * g_chosen + g_self) / n**2 - within_t / n_t**2
        fits = ~chosen & (n <= max(size * 1.25, n_s + g_size.min()))
        score[~(fits if fits.any() else ~chosen)] = np.inf
        g = int(np.argmin(score))
        chosen[g] = True
        n_s, s_t, s_s = n_s + g_size[g], s_t + g_target[g], s_s + 2 * g_chosen[g] + g_self[g]
        to_chosen += pp[:, members[g]].sum(1)
    return np.sort(np.concatenate([members[g] for g in np.flatnonzero(chosen)]))


# -- the command ---------------------------------------------------------------------------------------------------
def _map_figure(xy: np.ndarray, labels: list[str], names: list[str], proposed: np.ndarray | None):
    fig, axes = figure(
        1, 2 if proposed is not None else 1, figsize=(12 if proposed is not None else 6.5, 5), squeeze=False
    )
    colors = matplotlib.colormaps["tab10"]
    labels_arr = np.asarray(labels)
    for k, name in enumerate(names):
        pts = xy[labels_arr == name]
        axes[0, 0].scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.5, color=colors(k), label=plain(f"{name} ({len(pts)})"))
    axes[0, 0].set_title("features: first two principal components", fontsize=10)
    axes[0, 0].legend(fontsize=8, markerscale=2)
    if proposed is not None:
        pool, target = names[0], names[-1]
        ax = axes[0, 1]
        pool_pts = xy[labels_arr == pool]
        keep = np.ones(len(pool_pts), bool)
        keep[proposed] = False
        ax.scatter(
            pool_pts[keep, 0], pool_pts[keep, 1], s=5, alpha=0.3, color="lightgrey", label=plain(f"{pool}: rest")
        )
        ax.scatter(*xy[labels_arr == target].T, s=6, alpha=0.5, color=colors(len(names) - 1), label=plain(target))
        ax.scatter(
            pool_pts[proposed, 0],
            pool_pts[proposed, 1],
            s=6,
            alpha=0.6,
            color="black",
            label=f"proposed val ({len(proposed)})",
        )
        ax.set_title(plain(f"proposed validation subset of {pool} (closest to {target})"), fontsize=10)
        ax.legend(fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def write_shift(
    splits: dict[str, CocoSplit],
    out: str | Path,
    extractor: Extractor,
    *,
    device: str = "cpu",
    size: int = 224,
    components: int = 50,
    rounds: int = 200,
    group_by: str | None = r"^(.*)/",
    val_size: int | None = None,
    show: int = 16,
    seed: int = 0,
) -> dict:
    """Features → PCA → distances, map, farthest pool images and a proposed validation subset of the first split
    (the pool) closest to the last (the target). Writes ``out/index.html``, ``out/shift.json``,
    ``out/val_proposed.json`` and ``out/train_rest.json`` (the pool without it)."""
    if len(splits) < 2:
        raise TrashsegError("--splits: give at least two splits to compare, e.g. train,val")
    names = list(splits)
    out = Path(out)
    make_folder(out)
    small = [name for name, split in splits.items() if len(split.images) < 2]
    if small:
        raise TrashsegError(f"split(s) {small} hold fewer than 2 images; nothing to compare")
    feats = {name: extract(split, extractor, size=size, device=device) for name, split in splits.items()}
    counts = {name: len(f[0]) for name, f in feats.items()}
    labels = [name for name in names for _ in range(counts[name])]
    all_feats = balance_stages([np.concatenate(stage) for stage in zip(*(feats[n] for n in names), strict=True)])
    pca = PCA(n_components=min(components, *all_feats.shape), random_state=seed).fit(all_feats)
    z = pca.transform(all_feats)
    d = cdist(z, z).astype(np.float64)
    offsets = np.cumsum([0] + [counts[n] for n in names])
    index = {n: np.arange(offsets[k], offsets[k + 1]) for k, n in enumerate(names)}
    groups = np.asarray([f"{n}:{g}" for n in names for g in image_groups(splits[n], group_by)])
    compared = {
        f"{a} vs {b}": compare(d, index[a], index[b], groups, rounds, seed)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }
    pairs = {pair: numbers for pair, (numbers, _) in compared.items()}
    nulls = {pair: null for pair, (_, null) in compared.items()}

    pool, target = names[0], names[-1]
    pool_split = splits[pool]
    far = farthest(d, index[pool], index[target])
    order = np.argsort(-far)
    size_wanted = val_size or min(len(index[target]), max(1, len(index[pool]) // 5))
    pool_groups = image_groups(pool_split, group_by)
    chosen = greedy_subset(d, index[pool], index[target], pool_groups, size_wanted)
    rest = np.setdiff1d(np.arange(len(index[pool])), chosen)
    proposal = {
        "pool": pool,
        "target": target,
        "images": len(chosen),
        "groups": len({pool_groups[i] for i in chosen}),
        "distance_to_target": float(
            energy(d, np.isin(np.arange(len(d)), index[pool][chosen]), np.isin(np.arange(len(d)), index[target]))[0]
        ),
    }
    if pool_split.has_annotations:
        atomic_write_json(out / "val_proposed.json", subset_coco(pool_split, chosen.tolist()))
        atomic_write_json(out / "train_rest.json", subset_coco(pool_split, rest.tolist()))
        proposal["files"] = {
            "val": str((out / "val_proposed.json").resolve()),
            "train": str((out / "train_rest.json").resolve()),
        }
    numbers = {
        "features": extractor.name,
        "image_size": size,
        "pca_components": int(pca.n_components_),
        "pca_explained_variance": float(pca.explained_variance_ratio_.sum()),
        "permutations": rounds,
        "group_by": group_by,
        "splits": {n: {"file": str(splits[n].path), "images": len(index[n])} for n in names},
        "distances": pairs,
        "proposed_val": proposal,
        "farthest_from_target": [
            {
                "file_name": pool_split.images[i]["file_name"],
                "image_id": pool_split.images[i]["id"],
                "score": float(far[i]),
            }
            for i in order[:50]
        ],
    }
    atomic_write_json(out / "shift.json", numbers)
    _page(numbers, nulls, z, labels, names, chosen, pool_split, order, far, show).write(out / "index.html")
    return numbers


def _baseline_figure(distances: dict, nulls: dict[str, dict[str, np.ndarray]]):
    """Per pair, the shuffled splits' distances (histograms) and the observed one (a line): how far above chance."""
    fig, axes = figure(1, len(nulls), figsize=(4.2 * len(nulls), 3.2), squeeze=False)
    for ax, (pair, null) in zip(axes[0], nulls.items(), strict=True):
        for k, (name, values) in enumerate(null.items()):
            ax.hist(values, bins=30, alpha=0.55, color=f"C{k}", label=name.replace("_", " "))
        ax.axvline(distances[pair]["distance"], color="black", linewidth=2, label="observed")
        ax.set_title(plain(pair), fontsize=10)
        ax.set_xlabel("energy distance", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _page(
    numbers: dict,
    nulls: dict[str, dict[str, np.ndarray]],
    z: np.ndarray,
    labels: list[str],
    names: list[str],
    chosen: np.ndarray,
    pool_split: CocoSplit,
    order: np.ndarray,
    far: np.ndarray,
    show: int,
) -> Page:
    page = Page(
        "Dataset shift",
        f"features: {numbers['features']} at {numbers['image_size']}², PCA to "
        f"{numbers['pca_components']} components ({numbers['pca_explained_variance']:.0%} of the variance); "
        f"energy distance with {numbers['permutations']} permutations",
    )
    page.heading("Distance between splits")
    rows = []
    for pair, v in numbers["distances"].items():
        img, grp = v["shuffled_images"], v.get("shuffled_groups")
        rows.append(
            [
                pair,
                f"{v['images'][0]} / {v['images'][1]}",
                v["distance"],
                img["mean"],
                img["p95"],
                img["p_value"],
                grp["mean"] if grp else None,
                grp["p95"] if grp else None,
                grp["p_value"] if grp else None,
            ]
        )
    page.table(
        ["pair", "images", "energy distance", "images shuffled: mean", "p95", "p", "groups shuffled: mean", "p95", "p"],
        rows,
    )
    page.note(
        "Above the shuffled-images p95: the two splits differ more than chance. Above the shuffled-groups p95 "
        f"(groups: {numbers['group_by'] or 'none'}): more than a random split by group would make them differ."
    )
    page.figure(_baseline_figure(numbers["distances"], nulls), "distance against its permutation baselines")
    page.figure(_map_figure(z[:, :2], labels, names, chosen), "PCA map of the splits")
    prop = numbers["proposed_val"]
    page.heading(f"Proposed validation set: {prop['images']} images of {prop['pool']} closest to {prop['target']}")
    page.note(
        f"{prop['groups']} whole groups; energy distance to {prop['target']}: {prop['distance_to_target']:.4f}"
        + (
            f". Train with: trashseg train RECIPE --data ROOT --set data.train={prop['files']['train']} "
            f"--set data.val={prop['files']['val']}"
            if "files" in prop
            else ""
        )
    )
    pool, target = numbers["proposed_val"]["pool"], numbers["proposed_val"]["target"]
    page.heading(f"The {show} images of {pool} farthest from {target}")
    rows = []
    for i in order[:show]:
        img = pool_split.images[i]
        pic = thumbnail(read_image(pool_split.image_path(img), pool_split.max_pixels), 200)
        rows.append([img["file_name"], Cell(img["file_name"], rgb=pic), float(far[i])])
    page.table(["file_name", "image", f"mean distance to the {NEAREST} nearest {target} images"], rows, sortable=True)
    return page
