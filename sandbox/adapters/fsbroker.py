"""Kombu's filesystem transport with atomic message files.

Kombu's own `_put` creates `<name>.msg`, then locks and writes it; its `_get` moves and
reads any `*.msg` without taking the lock, so a worker polling at that moment reads an
empty file and dies on a JSONDecodeError (seen in CI). Here a message is written under a
name `_get` ignores and renamed into place, which is atomic on one filesystem."""
from __future__ import annotations

import itertools
import os
import uuid
from time import monotonic_ns

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


# `_get` takes files in name order. Kombu names them by the millisecond and a uuid, so two
# messages put in one millisecond came out in random order (a CI failure); zero-padded
# nanoseconds and a per-process counter keep first-in first-out.
_SEQUENCE = itertools.count()


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{monotonic_ns():020d}_{next(_SEQUENCE):012d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: `_get` takes the text after the first dot as the queue, so this
        # name never matches one while it is being written.
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
