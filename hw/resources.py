"""The memory a command may use, and the refusal, with the estimate, of work that would exceed it."""

from __future__ import annotations

import os

from leopard.hw.errors import LeopardError

LIMIT_VARIABLE = "LEOPARD_MEMORY_LIMIT_GB"
SHARE_OF_MACHINE = 0.75
"""Without ``LEOPARD_MEMORY_LIMIT_GB``, a command may use this share of the machine's memory."""

GIB = 1 << 30


def memory_limit() -> int:
    """Bytes a command may allocate: ``LEOPARD_MEMORY_LIMIT_GB`` when set, else 75 % of the machine's
    physical memory."""
    given = os.environ.get(LIMIT_VARIABLE)
    if given is not None:
        try:
            gigabytes = float(given)
        except ValueError:
            raise LeopardError(f"{LIMIT_VARIABLE} must be a number of gigabytes, got {given!r}") from None
        if not gigabytes > 0:
            raise LeopardError(f"{LIMIT_VARIABLE} must be positive, got {given!r}")
        return int(gigabytes * GIB)
    return int(SHARE_OF_MACHINE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_memory(needed: int, what: str, remedy: str) -> None:
    """Refuse ``what`` when its estimated ``needed`` bytes exceed ``memory_limit()``; ``remedy`` says how
    to proceed."""
    limit = memory_limit()
    if needed > limit:
        raise LeopardError(
            f"{what} needs about {needed / GIB:.1f} GB of memory, above the limit of {limit / GIB:.1f} GB "
            f"(75 % of this machine's memory unless {LIMIT_VARIABLE} is set); {remedy}"
        )
