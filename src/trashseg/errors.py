"""User-facing errors: the CLI prints their message without a traceback and exits non-zero."""


class TrashsegError(Exception):
    """A mistake in the user's input (file, id, config key) with a message that says what to do."""
