"""Ceilings on what a data file may make brittle allocate, checked from headers before reading.

A small file can claim to hold gigabytes (a zip or gzip bomb, a forged ``.npy`` or IDX header,
a PNG of 20000 x 20000 pixels). Every reader compares what a header claims with these
ceilings, and with what the file really holds, before it allocates or decodes anything. The
defaults cover every data set that attacks are run on; a user who means more raises one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from brittle.errors import DataError
from brittle.validation import is_integer

GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """What one data file may ask for.

    - ``max_bytes``: bytes decompressed into memory at once (a compressed ``.npz`` member, a
      gzip-compressed IDX file, a ``.mat`` array). 2 GiB: CIFAR-10's training set is 150 MB
      as bytes, MNIST's 47 MB. Arrays memory-mapped from uncompressed files are read a batch
      at a time and do not count.
    - ``max_elements``: values in one array, as its header declares them. 2**32: four
      gigabytes of bytes, far beyond any set an attack evaluation reads.
    - ``max_pixels``: pixels (height x width) of one image. 4096 x 4096: attacks run on
      inputs of at most a few hundred pixels a side.
    - ``max_classes``: the number of classes, so the largest label plus one. 100,000: more
      than ImageNet-21k's 21,841.
    """

    max_bytes: int = 2 * GIB
    max_elements: int = 1 << 32
    max_pixels: int = 4096 * 4096
    max_classes: int = 100_000

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not is_integer(value) or value < 1:
                raise DataError(f"Limits.{field.name} must be a positive integer, got {value!r}")

    def exceeded(self, field: str, what: str) -> DataError:
        """The error for ``what`` (a sentence naming the file and its claim) beyond ``field``."""
        value = getattr(self, field)
        option = "--" + field.replace("_", "-")
        return DataError(
            f"{what}, beyond the limit {field}={value:,}; if that is what you mean to read, "
            f"raise the limit ({option} on the command line, Limits({field}=...) in Python)"
        )

    def check(self, field: str, amount: int, what: str) -> None:
        """Refuse ``amount`` (of what ``field`` bounds) above the limit."""
        if amount > getattr(self, field):
            raise self.exceeded(field, what)


DEFAULT_LIMITS = Limits()
