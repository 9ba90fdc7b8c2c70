"""User-facing errors: the CLI prints their message without a traceback and exits non-zero."""


class TrashsegError(Exception):
    """A mistake in the user's input (file, id, config key) with a message that says what to do."""


class ModelNotFoundError(TrashsegError):
    """No model where one was asked for: no such run folder, checkpoint or ONNX file, or a run without checkpoints."""


def user_message(exc: Exception) -> str:
    """The message of `exc` as raised. A DataLoader re-raises a worker's error as a new exception of the same class
    whose message is "Caught X in DataLoader worker process N. Original Traceback ..." : the original message is
    what follows the traceback's last ``module.X: `` line."""
    text = str(exc)
    cls = type(exc)
    if not text.startswith(f"Caught {cls.__name__} in DataLoader worker process"):
        return text
    name = cls.__qualname__ if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}.{cls.__qualname__}"
    return text.rpartition(f"\n{name}: ")[2].rstrip("\n") or text
