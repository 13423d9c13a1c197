"""Per-user cache generations: the key names and the rule that picks the generation a reader uses.

Shared by :mod:`tradingsite.caching` (which writes the counters) and :mod:`tradingsite.page_hit` (which
checks a stored page against them before serving it), so neither imports the other.

Two counters per user, both plain integers in the cache:

* ``gen:u<id>`` — the **latest** generation: INCR'd when a write to the user's data commits;
* ``pub:u<id>`` — the **published** generation: the newest one whose hot reads are stored (set by the
  warm that follows the write), with a short TTL (the page TTL) renewed by each write.

Readers use the published generation while it is behind the latest one (a warm is under way: the
previous entries are still whole and still answer), the latest one otherwise or when nothing is
published (the counter expired: a warm that never finished can hold readers back for at most its
TTL). See the module docstring of :mod:`tradingsite.caching`.
"""

from __future__ import annotations

import contextvars

# The attribute of a stored page (a pickled response) that records the generation its data was read
# under; :class:`tradingsite.page_hit.PageHitMiddleware` serves it only while that is still current.
PAGE_GENERATION_ATTR = "cache_generation"


# (user id, readers' generation) read by the fast path in the same MGET as the page, for the rest of the
# request when the page missed: the data lookups of that request then use it instead of reading the
# counters again (one round trip per lookup saved), and all of them read the same generation.
request_generation: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "tradingsite_request_generation", default=None
)


def generation_cache_key(user_id: int) -> str:
    """Key of the user's latest cache generation counter."""
    return f"gen:u{int(user_id)}"


def published_cache_key(user_id: int) -> str:
    """Key of the user's published cache generation (the newest one whose hot reads are stored)."""
    return f"pub:u{int(user_id)}"


def readers_generation(latest: int | None, published: int | None) -> int | None:
    """The generation a reader uses, from the two counters' values (None when absent): the published
    one while it is behind the latest, else the latest (None when there is no latest counter)."""
    if latest is None:
        return None
    if published is not None and published < latest:
        return published
    return latest


def page_is_current(page: object, latest: int | None, published: int | None) -> bool:
    """True when a stored page may still be served: it records no generation (stored without one), or
    its generation is not behind the readers' (:func:`readers_generation`). A page whose user has no
    counter any more (evicted, expired) is not current: the data it came from can no longer be told
    apart from newer data."""
    stored = getattr(page, PAGE_GENERATION_ATTR, None)
    if stored is None:
        return True
    current = readers_generation(latest, published)
    return current is not None and stored >= current
