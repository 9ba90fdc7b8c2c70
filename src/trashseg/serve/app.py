"""``trashseg serve``: a web demo. Upload a photo; get the segmentation drawn over it and each class's share.

FastAPI over the same Predictor as ``trashseg predict`` (run folder, checkpoint or ONNX model, TTA from the config),
so the page shows what predict would write. One model per process and one image at a time through it: torch
already spreads one image over every core, and a lock keeps concurrent uploads from interleaving on the device.
"""

from __future__ import annotations

import base64
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse, Response

from trashseg.config import MAX_PIXELS, InferConfig
from trashseg.data.images import ImageTooLarge, decode_image
from trashseg.draw import class_colors, overlay_panel
from trashseg.errors import TrashsegError
from trashseg.infer.predictor import Predictor
from trashseg.models.segmenter import InferenceModel

MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # a 50-megapixel JPEG fits; anything larger is rather a mistake


def _png(image: np.ndarray) -> bytes:
    """RGB (or single-channel mask) array → PNG bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", image)[1].tobytes()


def class_shares(mask: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """Pixel count and share of every class present, largest first."""
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    colors = class_colors(len(classes))
    return sorted(({"id": i, "name": classes[i], "pixels": int(n), "share": float(n / mask.size),
                    "color": "#%02x%02x%02x" % colors[i]} for i, n in enumerate(counts) if n),
                  key=lambda row: -row["pixels"])


def create_app(model: InferenceModel, cfg: InferConfig, *, device: torch.device | str = "cpu",
               max_pixels: int = MAX_PIXELS) -> FastAPI:
    """`max_pixels` (data.max_pixels) refuses uploads by their header's size, before decoding them."""
    predictor = Predictor(model, model.image_size, cfg, device=device)
    lock = threading.Lock()
    app = FastAPI(title="trashseg", description="Segmentation of recycling waste, pixel by pixel.")
    info = {"classes": model.classes, "image_size": model.image_size, **model.info,
            "tta": {"hflip": cfg.hflip, "vflip": cfg.vflip, "scales": cfg.scales, "mode": cfg.mode},
            "device": str(device)}
    if "source" in info:  # the file's name only: its absolute path would show every visitor the server's folders
        info["source"] = Path(info["source"]).name

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/info")
    def model_info() -> dict[str, Any]:
        return info

    @app.post("/predict")
    def predict(file: UploadFile = File(...),
                format: str = Query("json", pattern="^(json|overlay|mask)$",
                                    description="json (shares + PNGs in base64), overlay or mask (a PNG)")) -> Any:
        """Sync on purpose: FastAPI runs it in its thread pool, so inference never blocks the event loop."""
        name = file.filename or "upload"
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"{name}: larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        try:
            image = decode_image(data, name, max_pixels)
        except ImageTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except TrashsegError as exc:
            raise HTTPException(400, str(exc)) from None
        with lock:  # the overlay too: one image's worth of memory at a time, however many uploads wait
            mask = predictor.predict_masks([image])[0]
            overlay = overlay_panel(image, mask, model.classes) if format != "mask" else None
        if format == "mask":
            return Response(_png(mask), media_type="image/png")
        if format == "overlay":
            return Response(_png(overlay), media_type="image/png")
        return {"file": name, "height": int(mask.shape[0]), "width": int(mask.shape[1]),
                "classes": class_shares(mask, model.classes),
                "overlay_png": base64.b64encode(_png(overlay)).decode(),
                "mask_png": base64.b64encode(_png(mask)).decode()}

    return app
