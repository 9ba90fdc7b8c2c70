"""``trashseg serve``: a web demo and API. Upload a photo; get the segmentation drawn over it and each class's share.

FastAPI over the same Predictor as ``trashseg predict`` (run folder, checkpoint or ONNX model, TTA from the config),
so the page shows what predict would write. Hardened for a shared port (the limits are the ``serve`` config
section): the model loads in the background (``/health`` answers at once, ``/ready`` once it is loaded); decoding
and inference run in a bounded pool (``serve.workers`` at once, ``serve.queue`` waiting, 503 + Retry-After beyond,
504 after ``serve.timeout``); bodies over ``serve.max_upload_mb`` and images over ``data.max_pixels`` are refused
before they are decoded; a request may choose its TTA only within ``serve.tta`` / ``max_scales`` / ``max_scale``.
Nothing is written to disk but the upload's own temporary spool, which Starlette removes.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from trashseg.config import MAX_PIXELS, TTA_ALIASES, TTA_FLIPS, InferConfig, ServeConfig, tta_of, tta_word
from trashseg.data.images import ImageTooLarge, decode_image
from trashseg.draw import class_colors, overlay_panel
from trashseg.errors import TrashsegError
from trashseg.infer.objects import find_objects
from trashseg.infer.predictor import Predictor
from trashseg.models.segmenter import InferenceModel
from trashseg.serve.limits import BodyLimit
from trashseg.serve.live import BOUNDARY, MAX_VIEWERS, PAGE as LIVE_PAGE, LiveFeed
from trashseg.serve.pool import InferencePool, PoolFull

log = logging.getLogger(__name__)


def _png(image: np.ndarray) -> bytes:
    """RGB (or single-channel mask) array → PNG bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", image)[1].tobytes()


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def class_shares(mask: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """Pixel count and share of every class present, largest first."""
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    colors = class_colors(len(classes))
    return sorted(
        (
            {"id": i, "name": classes[i], "pixels": int(n), "share": float(n / mask.size), "color": _hex(colors[i])}
            for i, n in enumerate(counts)
            if n
        ),
        key=lambda row: -row["pixels"],
    )


ALIASES = ", ".join(f"{alias} = {word}" for alias, word in TTA_ALIASES.items())


def request_tta(default: InferConfig, limits: ServeConfig, tta: str | None, scales: str | None) -> InferConfig:
    """The infer settings a request asked for, within the server's limits (400 naming the limit otherwise); the
    server's own settings, always allowed, when it asks for nothing."""
    update: dict[str, Any] = {}
    if tta is not None:
        try:
            tta = tta_word(tta)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if tta != tta_of(default) and tta not in limits.tta:
            raise HTTPException(
                400,
                f"tta={tta}: not allowed on this server (allowed: "
                f"{', '.join(sorted({*limits.tta, tta_of(default)}))}; serve.tta)",
            )
        update["hflip"], update["vflip"] = TTA_FLIPS[tta]
    if scales is not None:
        try:
            values = [float(v) for v in scales.split(",")]
        except ValueError:
            raise HTTPException(400, f"scales={scales!r}: expected comma-separated numbers, e.g. 1,1.25") from None
        if values != default.scales:
            if len(values) > limits.max_scales:
                raise HTTPException(
                    400,
                    f"scales={scales}: {len(values)} scales, over this server's limit of "
                    f"{limits.max_scales} (serve.max_scales)",
                )
            if not all(0 < v <= limits.max_scale for v in values):
                raise HTTPException(
                    400, f"scales={scales}: each must be > 0 and at most {limits.max_scale:g} (serve.max_scale)"
                )
        update["scales"] = values
    return default.model_copy(update=update) if update else default


class Served:
    """The model once loaded in the background, or why it is not (yet)."""

    def __init__(
        self,
        load: Callable[[], InferenceModel],
        on_failure: Callable[[Exception], None] | None = None,
        live: LiveFeed | None = None,
    ):
        self._load = load
        self._on_failure = on_failure
        self.live = live
        self.model: InferenceModel | None = None
        self.error: str | None = None

    def load(self) -> None:
        try:
            self.model = self._load()
            if self.live is not None:
                self.live.start(self.model)
        except Exception as exc:  # noqa: BLE001 - any failure keeps /ready at 503 with its reason; /health lives on
            if isinstance(exc, TrashsegError):  # a named error says all: no traceback in the log
                log.error("the model failed to load: %s", exc)
            else:
                log.exception("the model failed to load")
            self.error = f"the model failed to load: {exc}"
            if self._on_failure is not None:
                self._on_failure(exc)

    def require(self) -> InferenceModel:
        """The model, or 503 saying it is still loading (or failed to)."""
        if self.model is None:
            raise HTTPException(
                503,
                self.error or "the model is still loading; retry shortly (GET /ready says when)",
                headers=None if self.error else {"Retry-After": "5"},
            )
        return self.model


def model_info(model: InferenceModel, infer: InferConfig, limits: ServeConfig, device: str) -> dict[str, Any]:
    info = {
        "classes": model.classes,
        "colors": [_hex(c) for c in class_colors(len(model.classes))],
        "image_size": model.image_size,
        **model.info,
        "tta": {
            "hflip": infer.hflip,
            "vflip": infer.vflip,
            "scales": infer.scales,
            "mode": infer.mode,
            "name": tta_of(infer),
        },
        "limits": {
            "tta": sorted({*limits.tta, tta_of(infer)}),
            "max_scales": limits.max_scales,
            "max_scale": limits.max_scale,
            "max_upload_mb": limits.max_upload_mb,
        },
        "device": device,
    }
    if "source" in info:  # the file's name only: its absolute path would show every visitor the server's folders
        info["source"] = Path(info["source"]).name
    return info


def answer(
    model: InferenceModel,
    cfg: InferConfig,
    data: bytes,
    name: str,
    *,
    fmt: str,
    max_pixels: int,
    device: torch.device | str,
    min_area: int = 0,
) -> Any:
    """Decode, predict and encode one upload: the work the pool bounds (decoding a large JPEG is work too).

    Only the JSON answer carries objects, whose confidences need the probabilities; the PNG answers take the
    argmax on the device instead."""
    image = decode_image(data, name, max_pixels, exif=True)  # a phone's portrait photo: stored sideways, tagged
    predictor = Predictor(model, model.image_size, cfg, device=device)
    if fmt == "mask":
        return Response(_png(predictor.predict_masks([image])[0]), media_type="image/png")
    if fmt == "overlay":
        mask = predictor.predict_masks([image])[0]
        return Response(_png(overlay_panel(image, mask, model.classes)), media_type="image/png")
    probs = predictor.predict([image])[0]
    mask = probs.argmax(0).astype(np.uint8)
    objects = find_objects(mask, model.classes, probs, min_area=min_area)
    return {
        "file": name,
        "height": int(mask.shape[0]),
        "width": int(mask.shape[1]),
        "tta": {"name": tta_of(cfg), "scales": cfg.scales},
        "classes": class_shares(mask, model.classes),
        "objects": [obj.to_dict() for obj in objects],
        "overlay_png": base64.b64encode(_png(overlay_panel(image, mask, model.classes))).decode(),
        "mask_png": base64.b64encode(_png(mask)).decode(),
    }


# What the runtimes say when an allocation fails: Python's MemoryError aside, ONNX Runtime raises its
# RuntimeException ("Failed to allocate memory for requested buffer", "bad allocation") and torch a RuntimeError
# ("DefaultCPUAllocator: can't allocate memory", "CUDA out of memory").
_ALLOCATION_FAILED = ("failed to allocate memory", "bad allocation", "bad_alloc", "can't allocate", "out of memory")


def model_failure(name: str, exc: Exception) -> HTTPException:
    """The answer to an upload on which the model itself failed, logged in one line rather than a traceback: 503
    when it could not allocate memory for this image (others, or a smaller image, may fit), 500 otherwise."""
    if isinstance(exc, MemoryError) or any(s in str(exc).lower() for s in _ALLOCATION_FAILED):
        log.error("%s: the model could not allocate memory: %s", name, exc)
        return HTTPException(
            503,
            f"{name}: the model could not allocate memory for this image; retry later, or send a smaller image",
            headers={"Retry-After": "5"},
        )
    log.error("%s: the model failed: %s: %s", name, type(exc).__name__, exc)
    return HTTPException(500, f"{name}: the model failed on this image ({type(exc).__name__}); see the server's log")


def create_app(
    load: Callable[[], InferenceModel],
    *,
    infer: InferConfig,  # what the server states; the model's own infer section fills the rest
    serve: ServeConfig | None = None,
    device: torch.device | str = "cpu",
    max_pixels: int = MAX_PIXELS,
    on_load_failure: Callable[[Exception], None] | None = None,
    live: LiveFeed | None = None,
) -> FastAPI:
    """`load` runs in a background thread once the server starts (``/ready`` turns 200 when it returns; if it
    raises, ``/ready`` stays 503 with the reason and `on_load_failure` gets the error, e.g. to stop the server);
    `max_pixels` (data.max_pixels) refuses uploads by their header's size, before decoding them. With `live`, the
    stream it runs once the model has loaded is shown at ``/stream`` (``trashseg.serve.live``)."""
    limits = serve or ServeConfig()
    served = Served(load, on_load_failure, live)
    pool = InferencePool(limits.workers, limits.queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=served.load, name="trashseg-load", daemon=True).start()
        yield
        if live is not None:
            live.stop()
        pool.shutdown()

    app = FastAPI(title="trashseg", description="Segmentation of recycling waste, pixel by pixel.", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=int(limits.max_upload_mb * 2**20))

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    if live is not None:
        _live_routes(app, live)

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness: 200 while the process answers, model loaded or not."""
        return {"status": "alive"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        """Readiness: 200 once the model is loaded, 503 before (or when it failed to load, with the reason)."""
        if served.model is None:
            return JSONResponse({"ready": False, "detail": served.error or "the model is still loading"}, 503)
        return JSONResponse({"ready": True, "busy": pool.pending, "capacity": pool.capacity})

    @app.get("/info")
    def info() -> dict[str, Any]:
        model = served.require()
        return model_info(model, infer.over(model.infer), limits, str(device))

    @app.post("/predict")
    async def predict(
        file: UploadFile = File(...),
        format: str = Query(
            "json",
            pattern="^(json|overlay|mask)$",
            description="json (shares + PNGs in base64), overlay or mask (a PNG)",
        ),
        tta: str | None = Query(None, description=f"flips: {' | '.join(TTA_FLIPS)} (within serve.tta); {ALIASES}"),
        scales: str | None = Query(
            None, description="TTA scales, e.g. 1,1.25 (within serve.max_scales and serve.max_scale)"
        ),
        min_area: int = Query(
            0, ge=0, description="objects smaller than this (pixels) are left out of the JSON's objects"
        ),
    ) -> Any:
        """Async, with the work in the bounded pool: the event loop stays free to refuse what does not fit."""
        model = served.require()
        cfg = request_tta(infer.over(model.infer), limits, tta, scales)
        name = file.filename or "upload"
        data = await file.read()
        try:
            return await pool.run(
                lambda: answer(
                    model, cfg, data, name, fmt=format, max_pixels=max_pixels, device=device, min_area=min_area
                ),
                limits.timeout,
            )
        except PoolFull as exc:
            raise HTTPException(
                503,
                f"server busy: {pool.capacity} requests running or queued (serve.workers + "
                f"serve.queue); retry in {exc.retry_after} s",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        except TimeoutError:
            raise HTTPException(504, f"{name}: no answer within {limits.timeout:g} s (serve.timeout)") from None
        except ImageTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except TrashsegError as exc:
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the model's own failure: named to the client, the next one served
            raise model_failure(name, exc) from None

    return app


def _live_routes(app: FastAPI, live: LiveFeed) -> None:
    """``/stream`` (the page), ``/stream.mjpg`` (the overlay as MJPEG), ``/stream/latest.json`` (the newest
    frame's objects and the stream's counts)."""

    @app.get("/stream", response_class=HTMLResponse)
    def stream_page() -> str:
        return LIVE_PAGE

    @app.get("/stream.mjpg")
    def stream_video() -> StreamingResponse:
        if not live.viewer():
            raise HTTPException(503, f"{MAX_VIEWERS} viewers already watch this stream", headers={"Retry-After": "30"})
        return StreamingResponse(live.frames(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")

    @app.get("/stream/latest.json")
    def stream_latest() -> dict[str, Any]:
        return live.latest()
