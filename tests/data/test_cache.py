"""The decoded-image cache (issue 16.8: a cache folder that cannot be written is named, with how to move it)."""

import pytest

from tests.conftest import make_read_only, write_image
from trashseg.data.cache import ImageCache
from trashseg.errors import TrashsegError


def test_read_only_cache_folder_is_named_with_the_settings_that_move_it(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png")
    cache = ImageCache(make_read_only(tmp_path / "cache", monkeypatch))
    with pytest.raises(TrashsegError, match=r"cannot create folder .*cache/[0-9a-f]{2}: Permission denied; .*"
                                            r"set data.cache_dir or \$TRASHSEG_CACHE to a writable folder"):
        cache.get(tmp_path / "a.png")
