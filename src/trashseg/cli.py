"""The ``trashseg`` command: one sub-command per stage. Wiring and printing only; logic lives in the stages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trashseg.config import Config, load_config
from trashseg.errors import TrashsegError, VideoError, disk_full, user_message

if TYPE_CHECKING:  # the model layer (torch) loads only in the commands that need it
    from trashseg.models.segmenter import InferenceModel

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Segment recycling waste: data checks, training, inference, ensembles, submission.",
)
data_app = typer.Typer(no_args_is_help=True, help="Dataset checks.")
submission_app = typer.Typer(no_args_is_help=True, help="Competition submission CSV.")
app.add_typer(data_app, name="data")
app.add_typer(submission_app, name="submission")
convert_app = typer.Typer(
    no_args_is_help=True, help="Labels in from other tools (masks, CVAT, Label Studio) and out to labelling tools."
)
app.add_typer(convert_app, name="convert")
console = Console()

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Recipe: a YAML file or a shipped recipe's name (e.g. data/trashcan; `trashseg configs`).",
    ),
]
DEMO_OUT = Path("demo_out")  # where `trashseg demo` writes by default, and `trashseg serve` looks without a model
# `\\[` keeps rich from reading "[a,b]" as markup and dropping it from the help text.
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key: --set data.classes=\\[a,b] (value parsed as YAML)."),
]
SplitOpt = Annotated[
    str, typer.Option(help="train / val / test, or a COCO file under the dataset root (.json may be left out).")
]
FolderSplitOpt = Annotated[str | None, typer.Option(help="Default: the split the folder was predicted on.")]
TtaOpt = Annotated[
    str | None,
    typer.Option(
        "--tta",
        help="TTA flips by name, as the Python API and the web service read them: none, hflip, vflip, hvflip "
        "(flip = hflip); --hflip / --vflip change it.",
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from trashseg import __version__

        console.print(f"trashseg {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log lines: -v what is being done, -vv debug.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log errors only.")] = False,
) -> None:
    """Segment recycling waste: data checks, training, inference, ensembles, submission."""
    from trashseg.progress import configure_logging

    configure_logging(-1 if quiet else verbose)


def _config(
    config: Path | None, overrides: list[str] | None, data: Path | None = None, classes: list[str] | None = None
) -> Config:
    """Config file + --set overrides + --data. When neither the config nor an override states ``data.classes``,
    `classes` (those a model or prediction folder was made with) or the dataset's own ``dataset.yaml`` give them."""
    from trashseg.data.manifest import read_classes

    cfg = load_config(config, overrides)
    if data is not None:
        cfg.data.root = data
    if "classes" not in cfg.data.model_fields_set:
        found = classes or (read_classes(cfg.data.root) if cfg.data.root else None)
        if found:
            cfg.data.classes = found
    return cfg


def _load(cfg: Config, split: str, require_annotations: bool = False):
    from trashseg.data.coco import load_named_split

    return load_named_split(cfg.data, split, require_annotations)


def _scores_table(scores, classes: list[str], title: str) -> Table:
    table = Table(title=escape(title))
    table.add_column("class")
    table.add_column("IoU", justify="right")
    table.add_column("acc", justify="right")
    for name, iou, acc in zip(classes, scores.iou, scores.class_acc, strict=True):
        table.add_row(escape(name), "—" if iou != iou else f"{iou:.4f}", "—" if acc != acc else f"{acc:.4f}")
    table.add_section()
    table.add_row("[bold]mIoU[/bold]", f"[bold]{scores.miou:.4f}[/bold]", f"{scores.mean_class_acc:.4f}")
    return table


@app.command()
def sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the generated dataset into.")],
    train: int = 48,
    val: int = 16,
    test: int = 16,
    size: int = 256,
    seed: int = 0,
) -> None:
    """Write a deterministic procedural dataset in the competition layout (11 recycling classes)."""
    from trashseg.data.sample import write_sample_dataset

    counts = write_sample_dataset(out, n_train=train, n_val=val, n_test=test, size=size, seed=seed)
    console.print(f"wrote sample dataset to [bold]{out}[/bold]: {counts}")


@data_app.command("check")
def data_check(
    data: Annotated[Path, typer.Argument(help="Dataset root folder.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("data_check.json"),
    strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False,
    workers: int = 4,
) -> None:
    """Validate JSON, ids, categories, images and annotations; exit 1 when something is wrong."""
    from trashseg.data.check import check_dataset, summarize
    from trashseg.fileio import atomic_write_json, ensure_writable

    cfg = _config(config, set_, data)
    ensure_writable(report)
    reports = check_dataset(cfg.data, workers=workers)
    summary = summarize(reports)
    atomic_write_json(report, summary)
    table = Table(title=escape(f"data check: {data}"))
    for col in ("file", "images", "annotations", "errors", "warnings"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in reports:
        table.add_row(
            escape(Path(r.file).name),
            str(r.images),
            str(r.annotations),
            f"[red]{r.count('error')}[/red]" if r.count("error") else "0",
            str(r.count("warning")),
        )
    console.print(table)
    problems = [p for r in reports for p in r.problems]
    for p in problems[:30]:
        console.print(
            f"[{'red' if p.severity == 'error' else 'yellow'}]{escape(str(p))}[/]", highlight=False, soft_wrap=True
        )
    if len(problems) > 30:
        console.print(f"... {len(problems) - 30} more in {report}")
    console.print(f"report: {report}")
    failed = not summary["ok"] or (strict and problems)
    raise typer.Exit(1 if failed else 0)


@submission_app.command("check")
def submission_check(
    file: Annotated[Path, typer.Argument(help="Submission CSV.")],
    data: Annotated[Path | None, typer.Option(help="Dataset root.")] = None,
    split: SplitOpt = "test",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check a submission CSV against the test split: header, rows, ids, order, lengths, class ids."""
    from trashseg.submission import check_submission

    cfg = _config(config, set_, data)
    problems = check_submission(file, _load(cfg, split))
    for p in problems:
        console.print(f"[red]{escape(str(p))}[/red]", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]{file}: OK[/green]")


@app.command()
def evaluate(
    pred: Annotated[Path, typer.Argument(help="Submission CSV or prediction folder (masks/*.png).")],
    data: Annotated[Path | None, typer.Option(help="Dataset root.")] = None,
    split: SplitOpt = "val",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    size: Annotated[int, typer.Option(help="Score at size×size (competition: 256); 0 = native.")] = 256,
    out: Annotated[Path | None, typer.Option(help="Write scores as JSON here.")] = None,
) -> None:
    """Score predictions with the competition's mIoU and print per-class IoU."""
    from trashseg.data.masks import mask_cache
    from trashseg.evaluate import evaluate as run_evaluate
    from trashseg.fileio import atomic_write_json

    cfg = _config(config, set_, data, _folder_classes(pred) if pred.is_dir() else None)
    split_obj = _load(cfg, split, require_annotations=True)
    scores = run_evaluate(pred, split_obj, mask_cache(split_obj, cfg.data), size=size)
    console.print(_scores_table(scores, cfg.data.classes, f"{pred} on {split_obj.name}"))
    if out:
        atomic_write_json(out, scores.to_dict(cfg.data.classes))


@app.command()
def split(
    data: Annotated[Path, typer.Argument(help="Dataset root.")],
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="Regex on file_name; images with the same match (first group) stay together. "
            "Default: the folder. Empty string: no grouping."
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Split file to divide (train / a COCO file name). Default: train, or the one COCO file."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the fold JSONs (default DATA/folds).")] = None,
    seed: int = 0,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Multilabel-stratified, grouped k-fold split; prints per-fold class balance."""
    from trashseg.data.coco import default_source
    from trashseg.data.masks import mask_cache
    from trashseg.data.splits import default_groups, image_groups, make_folds, write_folds
    from trashseg.data.stats import class_stats

    cfg = _config(config, set_, data)
    src = _load(cfg, source or default_source(cfg.data), require_annotations=True)
    stats = class_stats(src, mask_cache(src, cfg.data))
    groups, note = default_groups(src) if group_by is None else (image_groups(src, group_by), None)
    if note:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    fold_list = make_folds(stats, groups, folds, seed=seed)
    out = out or cfg.data.root_dir() / cfg.data.folds_dir
    write_folds(src, fold_list, out)
    table = Table(title=escape(f"{folds} folds of {src.name} ({len(set(groups))} groups) → {out}"))
    table.add_column("class")
    for k in range(folds):
        table.add_column(f"fold {k} val", justify="right")
    for c, name in enumerate(cfg.data.classes[1:], start=1):
        table.add_row(
            escape(name),
            *[f"{int(stats.presence[f.val, c].sum())}/{int(stats.presence[:, c].sum())}" for f in fold_list],
        )
    table.add_section()
    table.add_row("images", *[str(len(f.val)) for f in fold_list])
    console.print(table)
    console.print("cells: val images containing the class / all images containing it")


@app.command()
def train(
    config: Annotated[
        Path,
        typer.Argument(
            help="Recipe: a shipped recipe's name (e.g. upernet_swin_b; `trashseg configs`) or a YAML file."
        ),
    ],
    data: Annotated[Path | None, typer.Option(help="Dataset root (data.root).")] = None,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/<name>).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from last.ckpt.")] = False,
    fold: Annotated[int | None, typer.Option(help="Train on fold k of `trashseg split`.")] = None,
    all_folds: Annotated[
        int | None, typer.Option("--all-folds", help="Train folds 0..K-1, each into OUT/fold<k>.")
    ] = None,
    extra_data: Annotated[
        list[Path] | None,
        typer.Option(help="Pseudo-label dataset(s) from `trashseg pseudo` (data.extra); mix with data.extra_ratio."),
    ] = None,
) -> None:
    """Train a model; the run folder holds config, checkpoints (best by val mIoU, last), metrics and plots."""
    from trashseg.train.run import train as run_train

    cfg = _config(config, set_, data)
    if extra_data:
        cfg.data.extra = extra_data
    run_dir = out or Path("runs") / cfg.name
    folds = range(all_folds) if all_folds else [fold] if fold is not None else [None]
    for k in folds:
        fold_cfg = cfg.model_copy(deep=True)
        if k is not None:
            fold_cfg.data.train = f"{cfg.data.folds_dir}/fold{k}_train.json"
            fold_cfg.data.val = f"{cfg.data.folds_dir}/fold{k}_val.json"
            if not fold_cfg.data.split_path("train").exists():
                raise TrashsegError(
                    f"{fold_cfg.data.split_path('train')}: not found; make the folds first with "
                    f"`trashseg split {cfg.data.root_dir()} --folds K`"
                )
        target = run_dir / f"fold{k}" if all_folds else run_dir
        best = run_train(fold_cfg, target, resume=resume)
        if best:
            from trashseg.metrics import SegScores

            console.print(
                _scores_table(SegScores.from_dict(best), cfg.data.classes, f"{target}: best epoch {best['epoch']}")
            )


PredOut = Annotated[Path, typer.Option(help="Prediction folder to write (resumes if it exists).")]


def _flips(tta: str | None, hflip: bool | None, vflip: bool | None) -> tuple[bool | None, bool | None]:
    """--tta's flips, changed by --hflip / --vflip where they are given."""
    from trashseg.config import TTA_FLIPS, tta_word

    if tta is None:
        return hflip, vflip
    try:
        h, v = TTA_FLIPS[tta_word(tta)]
    except ValueError as exc:
        raise TrashsegError(f"--{exc}") from None
    return (h if hflip is None else hflip), (v if vflip is None else vflip)


def _infer_cfg(
    cfg: Config, hflip: bool | None, vflip: bool | None, scales: str | None, model: InferenceModel | None = None
) -> None:
    """Flags override the config's infer section (which --set can also change); what none of them states comes
    from the model's own infer section, the run's test-time recipe."""
    if hflip is not None:
        cfg.infer.hflip = hflip
    if vflip is not None:
        cfg.infer.vflip = vflip
    if scales:
        cfg.infer.scales = _numbers("--scales", scales, "0.75,1.0,1.25")
    if model is not None:
        cfg.infer = cfg.infer.over(model.infer)


def _numbers(option: str, text: str, example: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise TrashsegError(f"{option} {text!r}: expected comma-separated numbers, e.g. {example}") from None


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


@app.command()
def predict(
    source: Annotated[Path, typer.Argument(help="Run folder, .ckpt file or exported .onnx model.")],
    data: Annotated[Path | None, typer.Option(help="Dataset root.")] = None,
    split: SplitOpt = "test",
    out: PredOut = Path("preds/latest"),
    save_probs: Annotated[
        bool, typer.Option(help="Also write float16 probabilities (for ensembles, CRF, pseudo-labels).")
    ] = False,
    hflip: Annotated[bool | None, typer.Option("--hflip/--no-hflip")] = None,
    vflip: Annotated[bool | None, typer.Option("--vflip/--no-vflip")] = None,
    tta: TtaOpt = None,
    scales: Annotated[str | None, typer.Option(help="TTA scales, e.g. 0.75,1.0,1.25,1.5")] = None,
    crf: Annotated[bool, typer.Option(help="Refine with dense CRF (crf.* keys).")] = False,
    objects: Annotated[
        bool,
        typer.Option(
            help="Also write objects/<file_name>.json: each connected region "
            "of a class with its area, box, centroid, confidence."
        ),
    ] = False,
    min_area: Annotated[
        int, typer.Option(min=0, help="With --objects: leave out regions smaller than this (pixels).")
    ] = 0,
    device: Annotated[str | None, typer.Option(help="cuda / cpu (default: cuda when present).")] = None,
    images: Annotated[
        str | None,
        typer.Option(
            help="Instead of a dataset: a folder of photos (JPEG, PNG, ...; searched recursively), a pattern "
            "such as 'photos/*.jpg', or a video file (MP4, AVI, MOV, MKV, ...: its frames, kept under "
            "OUT/frames/). EXIF orientation is honoured; unreadable files are skipped and named at the end "
            "(exit 2)."
        ),
    ] = None,
    every: Annotated[int | None, typer.Option(min=1, help="With a video: predict every Nth frame.")] = None,
    max_frames: Annotated[
        int | None, typer.Option(min=1, help="With a video: predict at most N frames (the first ones kept by --every).")
    ] = None,
    max_disk: Annotated[
        float | None,
        typer.Option(min=0, help="With a video: GB of kept frames on disk at most (default 2; 0: no limit)."),
    ] = None,
    workers: int = 2,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Predict a split, or a folder of photos (--images), into a prediction folder: masks/, optional probs/ and
    objects/, meta.json (and images.json, the photos' list, for --images)."""
    from trashseg.infer.image_folder import find_images, predict_images, unreadable_error
    from trashseg.infer.predict import predict_split
    from trashseg.infer.video import MAX_DISK_GB, FrameStride, check_video, is_video
    from trashseg.models.engines import select_engine
    from trashseg.models.segmenter import load_model
    from trashseg.postprocess.crf import DenseCRF

    if images is not None:
        if data is not None:
            raise TrashsegError("give either --images (a folder of photos) or --data (a dataset), not both")
        if is_video(images):  # a video that cannot be opened, or a folder without photos, is named before the
            check_video(Path(images))  # model loads
        else:
            find_images(images, out)
    stride = FrameStride(every or 1, max_frames) if every or max_frames else None
    if crf:
        from trashseg.postprocess.crf import require_crf

        require_crf()  # a missing extra is named before the model loads
    dev = _device(device)
    model: InferenceModel = load_model(source, dev)
    cfg = _config(config, set_, data, model.classes)
    _infer_cfg(cfg, *_flips(tta, hflip, vflip), scales, model)
    model = select_engine(model, cfg.infer.engine, dev)
    options: dict[str, Any] = {  # the same for a split and for photos
        "save_probs": save_probs,
        "refine": DenseCRF(cfg.crf) if crf else None,
        "objects": objects,
        "min_area": min_area,
        "device": dev,
        "workers": workers,
    }
    if images is not None:
        budget = MAX_DISK_GB if max_disk is None else max_disk
        stats = predict_images(model, images, out, cfg=cfg, stride=stride, max_disk_gb=budget, **options)
        shown = {"engine": model.info["engine"]} | {
            k: v for k, v in stats.items() if k not in ("unreadable", "video_problem", "video_stopped")
        }
        console.print(f"{out}: {shown}", soft_wrap=True)  # one line, whatever the terminal's width: scripts grep it
        if "video_stopped" in stats:
            console.print(f"[yellow]note:[/yellow] {escape(stats['video_stopped'])}", highlight=False)
        if stats["unreadable"]:
            raise unreadable_error(stats, out)
        if "video_problem" in stats:
            raise VideoError(f"{stats['video_problem']}; the frames before it are predicted in {out}")
        return
    stats = predict_split(model, _load(cfg, split), out, cfg=cfg.infer, **options)
    console.print(f"{out}: { ({'engine': model.info['engine']} | stats) }", soft_wrap=True)


@app.command()
def stream(
    source: Annotated[Path, typer.Argument(help="Run folder, .ckpt file or exported .onnx model.")],
    frames: Annotated[
        str,
        typer.Argument(
            help="A camera index (0), an rtsp:// or http(s):// stream, a video file, or a folder watched for new "
            "images.",
            show_default=False,
        ),
    ],
    out: Annotated[Path | None, typer.Option(help="Write the JSON lines to this file (default: stdout).")] = None,
    every_frame: Annotated[
        bool, typer.Option(help="A video file: predict every frame, as fast as the model goes (none dropped).")
    ] = False,
    min_area: Annotated[int, typer.Option(min=0, help="Leave out objects smaller than this (pixels).")] = 0,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Stop after predicting N frames.")] = None,
    save_every: Annotated[
        int | None, typer.Option(min=1, help="Write the mask and overlay of every Nth predicted frame (--save-dir).")
    ] = None,
    save_dir: Annotated[Path | None, typer.Option(help="Folder for --save-every: masks/ and overlays/.")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Reconnection attempts of a lost live stream.")] = 10,
    hflip: Annotated[bool | None, typer.Option("--hflip/--no-hflip")] = None,
    vflip: Annotated[bool | None, typer.Option("--vflip/--no-vflip")] = None,
    scales: Annotated[str | None, typer.Option(help="TTA scales, e.g. 0.75,1.0,1.25,1.5")] = None,
    device: Annotated[str | None, typer.Option(help="cuda / cpu (default: cuda when present).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Predict a live stream frame by frame: one JSON line per frame (index, capture time, latency, objects);
    stale frames are dropped when the model falls behind. Ctrl-C ends it with a summary on stderr."""
    import json

    from trashseg.fileio import ensure_writable
    from trashseg.infer.stream import Retry, Stream, open_source, stopped_by_signals
    from trashseg.models.segmenter import load_model

    if out is not None:
        ensure_writable(out)  # a path that cannot be written is named before the model loads
    dev = _device(device)
    model = load_model(source, dev)
    cfg = _config(config, set_, None, model.classes)
    _infer_cfg(cfg, hflip, vflip, scales, model)
    run = Stream(
        model,
        open_source(frames, cfg.data.max_pixels, every_frame),
        infer=cfg.infer,
        device=dev,
        every_frame=every_frame,
        min_area=min_area,
        max_frames=max_frames,
        save_every=save_every,
        save_dir=save_dir,
        retry=Retry(attempts=retries),
    )
    sink = out.open("w", encoding="utf-8") if out is not None else sys.stdout
    try:
        with stopped_by_signals(run.stop):
            for result in run:
                sink.write(json.dumps(result.to_dict()) + "\n")
                sink.flush()  # a line per frame as it comes: whoever reads the stream acts on it now
    finally:
        if out is not None:
            sink.close()
        Console(stderr=True).print(str(run.summary()), highlight=False, soft_wrap=True)


def _folder_split(pred: Path, config: Path | None, set_: list[str] | None, data: Path | None, split: str | None):
    """Config and split for a step that reads a prediction folder: its meta.json knows the dataset root, the
    split and the classes it was predicted with, so only what differs needs giving."""
    from trashseg.infer.folder import PredictionFolder

    meta = PredictionFolder(pred).meta()
    recorded = Path(meta.split or "test.json")
    recorded_root = Path(meta.data_root) if meta.data_root else None
    if recorded_root and recorded.is_relative_to(recorded_root):
        recorded = recorded.relative_to(recorded_root)  # so that --data can point at a moved copy
    cfg = _config(config, set_, data or recorded_root, meta.classes)
    return cfg, _load(cfg, split or str(recorded))


@app.command("crf")
def crf_cmd(
    pred: Annotated[Path, typer.Argument(help="Prediction folder with probabilities.")],
    out: PredOut,
    data: Annotated[Path | None, typer.Option(help="Dataset root (for the images).")] = None,
    split: FolderSplitOpt = None,
    save_probs: bool = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Dense CRF on saved probabilities, parallel over images (crf.workers)."""
    from trashseg.postprocess.apply import crf_folder

    cfg, images = _folder_split(pred, config, set_, data, split)
    console.print(crf_folder(pred, images, out, cfg=cfg.crf, save_probs=save_probs))


@app.command()
def overlay(
    pred: Annotated[Path, typer.Argument(help="Prediction folder (predict, crf or ensemble output).")],
    out: Annotated[Path | None, typer.Option(help="Folder for the JPEGs (default PRED/overlays).")] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset root (for the images).")] = None,
    split: FolderSplitOpt = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N images of the split.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Each image with its prediction drawn over it, beside the ground truth when the split has it."""
    from trashseg.analysis.overlays import write_overlays

    cfg, images = _folder_split(pred, config, set_, data, split)
    console.print(write_overlays(pred, images, out or pred / "overlays", data=cfg.data, limit=limit))


def _folder_classes(pred: Path) -> list[str]:
    from trashseg.infer.folder import PredictionFolder

    return PredictionFolder(pred).classes


@app.command()
def ensemble(
    members: Annotated[list[Path], typer.Argument(help="Prediction folders, or submission CSVs.")],
    out: Annotated[Path, typer.Option(help="Output prediction folder (or .csv for CSV voting).")],
    mode: Annotated[str, typer.Option(help="soft (probabilities) or hard (majority).")] = "soft",
    weights: Annotated[str | None, typer.Option(help="Comma-separated member weights.")] = None,
    save_probs: bool = False,
    num_classes: Annotated[int, typer.Option(help="Class count, for CSV voting only.")] = 11,
) -> None:
    """Soft or hard voting, image by image; ties go to the member with the best validation mIoU."""
    from trashseg.ensemble.voting import check_mode, ensemble_csvs, ensemble_folders

    check_mode(mode)
    w = _numbers("--weights", weights, "2,1,1") if weights else None
    if all(m.suffix == ".csv" for m in members):
        if mode != "hard":
            raise TrashsegError("submission CSVs hold no probabilities: use --mode hard")
        console.print(f"{out}: {ensemble_csvs(members, out, num_classes, weights=w)} rows", soft_wrap=True)
        return
    console.print(ensemble_folders(members, out, mode, weights=w, save_probs=save_probs))


@app.command()
def kfold(
    root: Annotated[Path, typer.Argument(help="Folder of fold runs (train --all-folds K --out ROOT).")],
    data: Annotated[Path | None, typer.Option(help="Dataset root.")] = None,
    split: Annotated[
        str | None,
        typer.Option(help="Split to predict (default test); with --oof the split the folds divide (default train)."),
    ] = None,
    out: PredOut = Path("preds/kfold"),
    mode: str = "soft",
    oof: Annotated[
        bool,
        typer.Option(
            help="Out-of-fold: each fold's model predicts only its own validation images, into one folder "
            "with probabilities (the honest input for `trashseg audit`); no voting."
        ),
    ] = False,
    hflip: Annotated[bool | None, typer.Option("--hflip/--no-hflip")] = None,
    device: str | None = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Predict with every fold's model and vote, in one command (or --oof: out-of-fold probabilities)."""
    from trashseg.ensemble.kfold import fold_runs, kfold_predict, oof_predict
    from trashseg.models.segmenter import load_model

    first = load_model(fold_runs(root)[0])
    cfg = _config(config, set_, data, first.classes)
    _infer_cfg(cfg, hflip, None, None, first)
    if oof:
        split_obj = _load(cfg, split or "train")
        console.print(oof_predict(root, cfg.data, split_obj, out, cfg=cfg.infer, device=_device(device)))
        return
    console.print(
        kfold_predict(root, _load(cfg, split or "test"), out, cfg=cfg.infer, mode=mode, device=_device(device))
    )


@app.command()
def audit(
    source: Annotated[
        Path,
        typer.Argument(
            help="Prediction folder with probabilities (predict --save-probs, kfold --oof), a folder of fold "
            "runs (train --all-folds: predicted out-of-fold), or a run folder / checkpoint."
        ),
    ],
    data: Annotated[Path | None, typer.Option(help="Dataset root (default: the prediction folder's).")] = None,
    split: Annotated[
        str | None, typer.Option(help="Split to audit (default: the prediction folder's, else train).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("reports/audit"),
    limit: Annotated[int, typer.Option(help="Suspects shown in the gallery and exported to COCO.")] = 200,
    min_share: Annotated[
        float, typer.Option(help="Share of an object's pixels the model must confidently contradict.")
    ] = 0.5,
    duplicate_iou: Annotated[
        float, typer.Option(help="Mask IoU above which two annotations of different classes are one object.")
    ] = 0.5,
    device: str | None = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Rank the annotations that are probably wrong: gallery.html, issues.json, flagged_coco.json."""
    from trashseg.analysis.audit import AuditSettings, leakage_warnings, predictions_for, run_audit, write_audit
    from trashseg.data.masks import mask_cache

    if (source / "meta.json").is_file():
        cfg, split_obj = _folder_split(source, config, set_, data, split)
    else:
        from trashseg.ensemble.kfold import fold_runs
        from trashseg.models.segmenter import load_model

        folds = source.is_dir() and not (source / "checkpoints").is_dir()
        model = load_model(fold_runs(source)[0] if folds else source)
        cfg = _config(config, set_, data, model.classes)
        _infer_cfg(cfg, None, None, None, model)
        split_obj = _load(cfg, split or "train", require_annotations=True)
    pred = predictions_for(source, cfg.data, split_obj, out, cfg=cfg.infer, device=_device(device))
    result = run_audit(
        pred,
        split_obj,
        mask_cache(split_obj, cfg.data),
        settings=AuditSettings(min_share=min_share, duplicate_iou=duplicate_iou),
    )
    result.warnings = leakage_warnings(pred, split_obj) + result.warnings
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
    summary = write_audit(result, pred, split_obj, out, limit=limit)
    console.print(
        f"{summary['issues']} suspects {summary['by_kind']} in {summary['images']} images → "
        f"{out}/gallery.html, issues.json, flagged_coco.json",
        highlight=False,
    )


@app.command()
def pseudo(
    pred: Annotated[Path, typer.Argument(help="Prediction folder with probabilities (--save-probs).")],
    out: Annotated[Path, typer.Option(help="Pseudo-label dataset to write.")],
    threshold: Annotated[float, typer.Option(help="Keep pixels whose top probability reaches this.")] = 0.9,
) -> None:
    """Confident pixels → a dataset for `trashseg train --extra-data OUT`."""
    from trashseg.pseudo import write_pseudo

    console.print(write_pseudo(pred, out, threshold))


@app.command()
def submit(
    pred: Annotated[Path, typer.Argument(help="Prediction folder.")],
    data: Annotated[Path | None, typer.Option(help="Dataset root.")] = None,
    split: SplitOpt = "test",
    out: Annotated[Path, typer.Option(help="CSV to write.")] = Path("submission.csv"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write the competition CSV (256×256, rows in the split's order)."""
    from trashseg.infer.submit import submit as write

    cfg = _config(config, set_, data, _folder_classes(pred))
    console.print(f"{out}: {write(pred, _load(cfg, split), out)} rows", soft_wrap=True)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run folder or checkpoint.")],
    format: Annotated[
        str, typer.Option("--format", help="onnx, or safetensors (the model file: model.safetensors + model.yaml).")
    ] = "onnx",
    out: Annotated[
        Path | None, typer.Option(help="Output file (default RUN/model.onnx), or folder for safetensors (RUN).")
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Also write an int8 model beside it (OUT with .int8.onnx), calibrated on training images, and "
            "score both on the run's val split (the mIoUs go into its JSON).",
        ),
    ] = False,
    calib: Annotated[int, typer.Option(min=1, help="With --int8: training images to calibrate on.")] = 64,
    data: Annotated[Path | None, typer.Option(help="With --int8: dataset root (default: the run's).")] = None,
) -> None:
    """Export to ONNX (uint8 NHWC in, logits out, dynamic batch/size) and report parity with PyTorch; or write the
    model file of a run trained before runs wrote it."""
    from trashseg.infer.export import export_pretrained, export_run

    if format == "safetensors":
        console.print(export_pretrained(run, out))
        return
    if format != "onnx":
        raise TrashsegError(f"--format {format!r}: choose onnx or safetensors")
    console.print(export_run(run, out, int8=int8, calib=calib, data_root=data))


@app.command()
def serve(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="Run folder, .ckpt file or exported .onnx model (default: the best model of `trashseg demo`).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="0.0.0.0 to reach it from other machines.")] = "127.0.0.1",
    port: int = 8000,
    hflip: Annotated[bool | None, typer.Option("--hflip/--no-hflip")] = None,
    vflip: Annotated[bool | None, typer.Option("--vflip/--no-vflip")] = None,
    tta: TtaOpt = None,
    scales: Annotated[str | None, typer.Option(help="TTA scales, e.g. 0.75,1.0,1.25,1.5")] = None,
    workers: Annotated[int | None, typer.Option(help="Inferences at once (serve.workers).")] = None,
    queue: Annotated[int | None, typer.Option(help="Requests waiting; more get 503 (serve.queue).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before 504 (serve.timeout).")] = None,
    header_timeout: Annotated[
        float | None, typer.Option(help="Seconds a client has to send its request line and headers.")
    ] = None,
    max_connections: Annotated[int | None, typer.Option(help="Open connections; more get 503.")] = None,
    stream: Annotated[
        str | None,
        typer.Option(
            "--stream",
            help="Also predict a live source (camera index, RTSP/HTTP URL, video file, watched folder) and show "
            "it at /stream: the overlay as MJPEG and its objects.",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cuda / cpu (default: cuda when present).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Web demo: upload a photo, see its segmentation and class shares (also a JSON / PNG API at /predict,
    /health and /ready for probes; with --stream, a live page at /stream). The model loads once the server
    listens."""
    import uvicorn

    from trashseg.models.engines import load_engine
    from trashseg.models.segmenter import checkpoint_of, has_model_file
    from trashseg.serve.app import create_app
    from trashseg.serve.limits import server_config

    source = source or _demo_model()
    if not source.exists():  # a wrong path fails here, by name, rather than after the server started
        raise TrashsegError(f"{source}: no such run folder, checkpoint or ONNX file")
    if not (source.is_dir() and has_model_file(source)):
        checkpoint_of(source)
    dev = _device(device)
    cfg = _config(config, set_)
    _infer_cfg(cfg, *_flips(tta, hflip, vflip), scales)
    options = {"header_timeout": header_timeout, "max_connections": max_connections}
    for key, value in (("workers", workers), ("queue", queue), ("timeout", timeout), *options.items()):
        if value is not None:
            setattr(cfg.serve, key, value)
    failures: list[Exception] = []

    def stop(exc: Exception) -> None:  # a server whose model cannot load answers nothing: exit with the reason
        failures.append(exc)
        server.should_exit = True

    live = None
    if stream is not None:
        from trashseg.infer.stream import Stream, open_source
        from trashseg.serve.live import LiveFeed

        def feed(model: InferenceModel) -> Stream:
            frames = open_source(stream, cfg.data.max_pixels)
            return Stream(model, frames, infer=cfg.infer.over(model.infer), device=dev)

        live = LiveFeed(feed)
    app = create_app(
        lambda: load_engine(source, dev, cfg.infer),
        infer=cfg.infer,
        serve=cfg.serve,
        device=dev,
        max_pixels=cfg.data.max_pixels,
        on_load_failure=stop,
        live=live,
    )
    server = uvicorn.Server(server_config(app, host, port, cfg.serve))
    console.print(f"trashseg serving {source} on http://{host}:{port}/  (API docs: /docs)")
    if stream is not None:
        console.print(f"live page of {stream}: http://{host}:{port}/stream", highlight=False)
    server.run()
    if failures:
        raise (
            failures[0]
            if isinstance(failures[0], TrashsegError)
            else TrashsegError(f"{source}: the model failed to load: {failures[0]}")
        )


def _demo_model() -> Path:
    """The best run `trashseg demo` trained (in its default folder), for `serve` without arguments."""
    from trashseg.models.segmenter import best_run

    run = best_run(DEMO_OUT / "runs")
    if run is None:
        raise TrashsegError(
            f"no model given and no trained demo run under {DEMO_OUT / 'runs'}: run `trashseg demo` "
            "first, or pass a run folder, .ckpt or .onnx to serve"
        )
    return run


@app.command()
def models(
    encoders: Annotated[
        str | None,
        typer.Option(help="List encoder names matching this shell pattern, e.g. '*lite*' or 'tu-convnext*'."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many encoders.")] = 50,
) -> None:
    """Architectures, encoders, and which encoders' ImageNet weights work offline here."""
    from trashseg.models import list_archs
    from trashseg.models.catalog import find_encoders, offline_status
    from trashseg.models.pretrained import OFFLINE_WEIGHTS

    console.print(f"[bold]Architectures[/bold] (model.arch): {', '.join(list_archs())}")
    table = Table(
        "model.encoder", "alias", "offline `imagenet` weights", title="Pretrained encoders that need no network"
    )
    for spec in OFFLINE_WEIGHTS.values():
        table.add_row(spec.encoder, spec.alias, offline_status(spec.encoder))
    console.print(table)
    if encoders:
        found = find_encoders(encoders)
        shown = f", first {limit}" if len(found) > limit else ""
        table = Table(
            "model.encoder", "library", "offline weights", title=f"Encoders matching {encoders!r}: {len(found)}{shown}"
        )
        for info in found[:limit]:
            table.add_row(info.name, info.library, info.offline or "hub download only")
        console.print(table)
    console.print(
        "Other encoders' `imagenet` weights download from the smp/timm hub; offline, point model.weights "
        "at a local file instead.",
        highlight=False,
    )


@app.command()
def eda(
    data: Annotated[Path, typer.Argument(help="Dataset root.")],
    split: SplitOpt = "train",
    out: Annotated[Path, typer.Option(help="Folder for index.html and eda.json.")] = Path("reports/eda"),
    examples: Annotated[int, typer.Option(help="Example crops per class.")] = 6,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Per-class objects, images and pixels, object sizes and thin objects, co-occurrence, image sizes and
    brightness, examples per class with masks drawn: one self-contained HTML page."""
    from trashseg.analysis.eda import write_eda
    from trashseg.data.masks import mask_cache

    cfg = _config(config, set_, data)
    split_obj = _load(cfg, split, require_annotations=True)
    numbers = write_eda(split_obj, out, mask_cache(split_obj, cfg.data), examples=examples)
    console.print(f"{numbers['images']} images, {numbers['objects']} objects → {out / 'index.html'}")


@app.command()
def shift(
    data: Annotated[Path, typer.Argument(help="Dataset root.")],
    splits: Annotated[
        str,
        typer.Option(
            help="Splits to compare; the first is the pool a validation subset is "
            "proposed from, the last the target it should resemble."
        ),
    ] = "train,val,test",
    out: Annotated[Path, typer.Option(help="Folder for index.html, shift.json and the proposed split files.")] = Path(
        "reports/shift"
    ),
    run: Annotated[
        Path | None, typer.Option(help="Use this trained run's encoder instead of ImageNet EfficientNet-Lite0.")
    ] = None,
    size: Annotated[int, typer.Option(help="Images are resized to size×size for the encoder.")] = 224,
    permutations: Annotated[int, typer.Option(help="Shuffles for the baseline.")] = 200,
    group_by: Annotated[
        str,
        typer.Option(
            help="Regex on file_name: images with the same match form a group "
            "(default: the folder); empty: every image its own."
        ),
    ] = r"^(.*)/",
    val_size: Annotated[
        int | None,
        typer.Option(
            help="Images in the proposed validation set (default: the target's size, at most a fifth of the pool)."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cuda / cpu (default: cuda when present).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Do the splits look alike to a pretrained encoder? Energy distance with a permutation baseline, a PCA map,
    the pool images farthest from the target, and a validation subset closest to the target (COCO files)."""
    from trashseg.analysis.shift import imagenet_extractor, run_extractor, write_shift

    cfg = _config(config, set_, data)
    names = [s.strip() for s in splits.split(",") if s.strip()]
    dev = _device(device)
    extractor = run_extractor(run, dev) if run else imagenet_extractor(dev)
    numbers = write_shift(
        {n: _load(cfg, n) for n in names},
        out,
        extractor,
        device=dev,
        size=size,
        rounds=permutations,
        group_by=group_by or None,
        val_size=val_size,
    )
    table = Table(title=f"energy distance ({numbers['features']})")
    for col in ("pair", "distance", "shuffled images p95", "shuffled groups p95"):
        table.add_column(col, justify="left" if col == "pair" else "right")
    for pair, v in numbers["distances"].items():
        grp = v.get("shuffled_groups")
        table.add_row(
            pair, f"{v['distance']:.4f}", f"{v['shuffled_images']['p95']:.4f}", f"{grp['p95']:.4f}" if grp else "—"
        )
    console.print(table)
    prop = numbers["proposed_val"]
    if "files" in prop:
        console.print(
            f"proposed validation set: {prop['images']} images → train with --set "
            f"data.train={prop['files']['train']} --set data.val={prop['files']['val']}",
            soft_wrap=True,
        )
    console.print(f"report: {out / 'index.html'}")


@app.command()
def report(
    preds: Annotated[list[Path], typer.Argument(help="Prediction folder(s) of one split; several are compared.")],
    data: Annotated[Path | None, typer.Option(help="Dataset root.")] = None,
    split: FolderSplitOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for index.html, report.json, per_image.csv/json.")] = Path(
        "reports/eval"
    ),
    worst: Annotated[int, typer.Option(help="Images in the gallery of the worst.")] = 12,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Per-class IoU, confusion matrix, IoU by object size, per-image scores, the worst images beside the ground
    truth, several folders side by side, and the source runs' learning curves: one HTML page."""
    from trashseg.analysis.report import write_report
    from trashseg.data.masks import mask_cache

    cfg, split_obj = _folder_split(preds[0], config, set_, data, split)
    numbers = write_report(preds, split_obj, out, mask_cache(split_obj, cfg.data), worst=worst)
    for name, v in numbers["folders"].items():
        console.print(f"{name}: mIoU {v['miou']:.4f}")
    console.print(f"report: {out / 'index.html'}")


ClassesOpt = Annotated[
    Path | None,
    typer.Option(
        "--classes", help="Class list file: one name per line, background first (default: the config's data.classes)."
    ),
]
ConvertOut = Annotated[
    Path,
    typer.Option(
        help="COCO file to write, in the dataset folder (e.g. DATA/train.json); "
        "images outside that folder are linked in under images/."
    ),
]


def _convert_classes(
    classes: Path | None, config: Path | None, set_: list[str] | None, own: list[str] | None = None
) -> list[str]:
    """--classes FILE, else the tool's own labels (--own-classes), else the config's data.classes."""
    from trashseg.data.convert import read_class_list

    if classes is not None:
        return read_class_list(classes)
    return own or _config(config, set_).data.classes


def _print_conversion(summary: dict, classes: list[str], own_list: bool) -> None:
    """The counts, notes, and (for a class list the config does not hold) how to give it to later commands."""
    console.print(
        f"{summary['file']}: {summary['images']} images, {summary['annotations']} annotations "
        f"({summary['polygons']} polygons, {summary['rle']} RLE)",
        highlight=False,
        soft_wrap=True,
    )
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    if own_list:
        from trashseg.data.manifest import write_classes

        manifest = write_classes(Path(summary["file"]).parent, classes)
        console.print(
            escape(f"classes ({len(classes)}) recorded in {manifest}: later commands given this folder use them"),
            highlight=False,
            soft_wrap=True,
        )


@convert_app.command("masks")
def convert_masks(
    masks: Annotated[Path, typer.Argument(help="Folder of PNG masks (searched recursively).")],
    images: Annotated[
        Path, typer.Option(help="Folder of the images: same relative path as each mask, any image suffix.")
    ],
    out: ConvertOut,
    classes: ClassesOpt = None,
    colours: Annotated[
        Path | None,
        typer.Option(help="Colour masks: a colour map such as CVAT's labelmap.txt (name:r,g,b:: per line)."),
    ] = None,
    own_classes: Annotated[
        bool, typer.Option(help="With --colours: the colour map's labels are the class list.")
    ] = False,
    rle: Annotated[bool, typer.Option(help="Store every region as RLE (no polygons).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """PNG class masks (pixel = class index) or colour masks → COCO: one annotation per connected region."""
    from trashseg.data.convert import masks_to_coco, read_labelmap

    if own_classes and colours is None:
        raise TrashsegError("--own-classes takes the classes from a colour map: give --colours too (or --classes FILE)")
    colour_map = read_labelmap(colours) if colours else None
    own = (
        ["Background"] + [n for n in colour_map.values() if n.lower() != "background"]
        if own_classes and colour_map
        else None
    )
    names = _convert_classes(classes, config, set_, own)
    result = masks_to_coco(
        masks,
        images,
        names,
        out,
        colours=colour_map,
        polygons=not rle,
        max_pixels=_config(config, set_).data.max_pixels,
    )
    _print_conversion(result.summary(), names, own_list=classes is not None or own_classes)


@convert_app.command("coco")
def convert_coco(
    export: Annotated[Path, typer.Argument(help='CVAT "COCO 1.0" or Label Studio "COCO" JSON.')],
    out: ConvertOut,
    images: Annotated[
        Path | None,
        typer.Option(help="Folder holding the images (default: beside the JSON, its parent, or their images/)."),
    ] = None,
    classes: ClassesOpt = None,
    own_classes: Annotated[
        bool, typer.Option(help="The export's own categories are the class list (Background first).")
    ] = False,
    strict: Annotated[
        bool, typer.Option(help="Refuse the export for an annotation that covers no pixel (default: leave it out).")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Normalise a CVAT or Label Studio COCO export: categories onto the class list by name, file names found,
    RLE compressed, areas and boxes computed, box-only annotations left out."""
    from trashseg.data.convert import normalise_coco, own_classes as export_classes

    names = _convert_classes(classes, config, set_, export_classes(export) if own_classes else None)
    data = _config(config, set_).data
    result = normalise_coco(
        export,
        names,
        out,
        images_dir=images,
        max_pixels=data.max_pixels,
        allow_links=data.allow_external_links,
        strict=strict,
    )
    _print_conversion(result.summary(), names, own_list=classes is not None or own_classes)


@convert_app.command("export")
def convert_export(
    source: Annotated[
        Path,
        typer.Argument(help="Prediction folder (its regions become predictions), or a dataset root (annotations)."),
    ],
    out: Annotated[Path, typer.Option(help="File to write (tasks JSON or COCO JSON).")],
    format: Annotated[str, typer.Option("--format", help="label-studio or cvat.")] = "label-studio",
    data: Annotated[Path | None, typer.Option(help="Dataset root (default: the folder's).")] = None,
    split: Annotated[
        str | None, typer.Option(help="Default: the split the folder was predicted on; for a dataset root, train.")
    ] = None,
    truth: Annotated[
        bool,
        typer.Option(
            help="Label Studio: add the annotations beside the predictions; CVAT: export the annotations "
            "instead of the predictions."
        ),
    ] = False,
    flagged: Annotated[
        Path | None,
        typer.Option(help="Only the images of this `trashseg audit` issues.json (tasks carry its verdicts)."),
    ] = None,
    image_url: Annotated[
        str,
        typer.Option(
            help="Label Studio: prefix of each image's URL before its file_name (default: local files "
            "served from LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT = the dataset root)."
        ),
    ] = "/data/local-files/?d=",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Predictions and/or annotations → a Label Studio import (tasks + label_config.xml) or a CVAT COCO 1.0 file,
    so a person can fix the labels the model doubts."""
    from trashseg.analysis.labelling import write_labelling
    from trashseg.infer.folder import PredictionFolder

    if (source / "meta.json").is_file():
        cfg, split_obj = _folder_split(source, config, set_, data, split)
        pred = PredictionFolder(source)
    else:
        cfg = _config(config, set_, source)
        split_obj, pred, truth = _load(cfg, split or "train"), None, True
    summary = write_labelling(split_obj, pred, out, format, truth=truth, flagged=flagged, image_url=image_url)
    console.print(summary, highlight=False)


@app.command()
def configs(
    keys: Annotated[
        str | None, typer.Option("--keys", help="List every config key (or those starting with this, e.g. train).")
    ] = None,
) -> None:
    """The recipes that ship with trashseg: give one by name to train / -c, or copy it to change it."""
    from trashseg.config import RECIPES, recipe_description, recipe_names

    if keys is not None:
        from trashseg.config_reference import config_keys

        found = Table("key", "type", "default", "meaning", title="Config keys (--set KEY=VALUE, or in a recipe)")
        for key in config_keys():
            if key.name.startswith(keys):
                found.add_row(*(escape(v) for v in (key.name, key.type, key.default, key.meaning)))
        console.print(found)
        return
    table = Table("recipe", "what it is", title=f"Recipes in {RECIPES}")
    for name in recipe_names():
        table.add_row(name, recipe_description(RECIPES / f"{name}.yaml"))
    console.print(table)
    console.print(
        "Use: trashseg train NAME --data DATA (data/* recipes hold a dataset's classes: -c data/trashcan)",
        highlight=False,
    )


@app.command()
def doctor(
    offline: Annotated[bool, typer.Option(help="Do not try to reach the model hubs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for a bug report).")] = False,
) -> None:
    """What a bug report needs: versions, CPU features and the fastest precision, GPUs, extras, offline weights,
    caches, and whether the model hubs answer."""
    import json

    from trashseg.doctor import report

    sections = report(network=not offline)
    if as_json:
        print(json.dumps(sections, indent=2))
        return
    for title, items in sections.items():
        table = Table(show_header=False, title=title, title_justify="left")
        for key, value in items.items():
            table.add_row(escape(key), escape(value))
        console.print(table)


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Folder for everything the demo makes.")] = DEMO_OUT) -> None:
    """Run every stage on generated data and print what it made."""
    from trashseg.demo import run_demo

    run_demo(out, console)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes print one clear message (no traceback) and exit 2."""
    try:
        app(args=argv, prog_name="trashseg")
    except (TrashsegError, OSError) as exc:
        error = exc if isinstance(exc, TrashsegError) else disk_full(exc, exc.filename)  # written outside fileio
        if error is None:
            raise
        message = escape(user_message(error))  # text, not markup: messages quote lists such as [bg, a]
        Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(2)
