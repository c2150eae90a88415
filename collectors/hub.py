"""Hugging Face Hub: how many shared models each framework has, and its most downloaded ones.

The article says PyTorch has "a vast ecosystem of pre-trained models" and "extensive shared
models". This source counts, per framework, the models on the Hub that carry the framework's
tag, through the Hub's own client library (``huggingface_hub.HfApi.list_models``, its default
endpoint: ``HF_ENDPOINT`` when set), and keeps the top models by downloads so a reader can
check the listing by hand.

**What counts (one rule for every framework).** A framework's models are those whose tags
include the framework's *own* tag, the first tag listed for it in ``[sources.hub] tags``:
``list_models(filter=TAG)`` matches any tag of a model (the Hub's search guide: "Models can be
filtered by library, language, task, tags, and more"; huggingface_hub docs, guides/search).
The Hub gives a model its framework tags (``pytorch``, ``tf``, ``jax``) from its weight files
(Hub docs, models-the-hub, "How are model tags determined?"), and its library tag from the
card's ``library_name`` (huggingface.js packages/tasks/src/model-libraries.ts: "The key you
choose is the tag your models have in their library_name on the Hub"). So a ``transformers``
model with PyTorch weights is tagged both ``transformers`` and ``pytorch`` and counts once, as
PyTorch's, through ``pytorch``; counting higher-level libraries too would count it twice.
Trax is no registered Hub library (it is not among model-libraries.ts' keys, and the Hub adds
no ``trax`` tag from weight files): its models are those their authors tagged ``trax``, the
same rule applied to the tag its users write. Further tags listed for a framework are stored
for context (``primary_tag = 0``) and never enter the metric.

**Counting.** The Hub's listing gives no total: it is paginated by ``Link`` headers, which
the client follows. The count pages through the minimal listing (``full=False``) up to
``max_models``; when more models remain, the stored count is a lower bound (``complete = 0``)
and the metric uses it only where a lower bound still decides the comparison.

**Faults.** A transport guard (an ``httpx2`` transport installed with the documented
``huggingface_hub.set_client_factory``) bounds the client's own retries by the source's
``retries`` and its rate-limit waits by ``max_rate_limit_wait``: a connection failure or a 5xx
that outlasts them makes the source unreachable (nothing stored, never a zero), a rate limit
longer than the bound stops the source as incomplete. ``HF_HUB_OFFLINE`` makes it unreachable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import Any

import httpx2
import huggingface_hub
from huggingface_hub import HfApi, is_offline_mode, set_client_factory
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError
from pydantic import field_validator

from fwsurvey.config import SourceSettings, SurveyConfig
from fwsurvey.errors import ConfigError
from fwsurvey.sources import (
    Collector,
    Item,
    PartialItem,
    Reachability,
    Record,
    SourceOptions,
    SourceUnreachable,
)

log = logging.getLogger(__name__)

#: Each framework's own tag on the Hub where the configuration names none (see the module's
#: docstring: the framework tags the Hub derives from weight files, and Trax's written tag).
DEFAULT_TAGS: dict[str, list[str]] = {"pytorch": ["pytorch"], "trax": ["trax"], "jax": ["jax"]}

#: The listing's properties read for the top models (documented ``expand`` values).
TOP_EXPAND = ["downloads", "likes", "lastModified"]


class HubOptions(SourceOptions):
    """``[sources.hub]``'s own keys."""

    #: Per framework key, its Hub tags: the first is the framework's own (the one counted by
    #: the metric), the others are stored for context. A framework not listed is not queried.
    #: Absent: DEFAULT_TAGS for the configured frameworks among them.
    tags: dict[str, list[str]] | None = None
    #: Most models paged through per tag; beyond it the count is a lower bound (complete=0).
    max_models: int = 20_000
    #: Most downloaded models kept per tag (hub_top_models).
    top_n: int = 10
    #: Longest rate-limit wait (Retry-After) the client may sleep; longer ones stop the source.
    max_rate_limit_wait: float = 60.0

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for framework, tags in (value or {}).items():
            if not tags or any(not t.strip() for t in tags):
                raise ValueError(f"{framework}: expected a non-empty list of Hub tags")
            if len(set(tags)) != len(tags):
                raise ValueError(f"{framework}: a tag is listed twice")
        return value

    @field_validator("max_models", "top_n")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value


class RateLimited(Exception):
    """The Hub asked for a longer wait than ``max_rate_limit_wait`` (or kept asking)."""


class GuardedTransport(httpx2.BaseTransport):
    """Bounds huggingface_hub's built-in retries by the source's settings.

    The client retries 429, 5xx and transport errors itself (``http_backoff``, up to five
    times, sleeping up to Retry-After + 1 s). This transport counts the attempts per URL
    (``failures``, shared by the clients the factory builds) and, once ``retries`` attempts
    failed, raises :class:`SourceUnreachable` (or :class:`RateLimited`), which the client does
    not retry. ``requests`` counts the HTTP requests sent.
    """

    def __init__(self, inner: httpx2.BaseTransport, retries: int, max_wait: float,
                 failures: dict[str, int], counter: list[int]):
        self.inner = inner
        self.retries = retries
        self.max_wait = max_wait
        self.failures = failures
        self.counter = counter

    def _failed(self, url: str) -> int:
        self.failures[url] = self.failures.get(url, 0) + 1
        return self.failures[url]

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        where = _redact(request.url)
        self.counter[0] += 1
        try:
            response = self.inner.handle_request(request)
        except httpx2.TransportError as exc:
            attempts = self._failed(url)
            if attempts >= self.retries:
                raise SourceUnreachable(f"{_transport_reason(exc)} from {where}"
                                        f" after {attempts} attempts") from None
            log.warning("hub: %s: attempt %d failed (%s); retrying", where, attempts,
                        _transport_reason(exc))
            raise
        status = response.status_code
        if status == 429:
            attempts = self._failed(url)
            wait = retry_after(response.headers)
            if wait is not None and wait > self.max_wait:
                response.close()
                raise RateLimited(f"rate limited by {where}: Retry-After {wait:g} s is over"
                                  f" max_rate_limit_wait ({self.max_wait:g} s)")
            if attempts >= self.retries:
                response.close()
                raise RateLimited(f"rate limited by {where}: HTTP 429 after {attempts}"
                                  " attempts")
        elif status >= 500:
            attempts = self._failed(url)
            if attempts >= self.retries:
                response.close()
                raise SourceUnreachable(f"HTTP {status} from {where} after {attempts} attempts")
        else:
            self.failures.pop(url, None)
        return response

    def close(self) -> None:
        self.inner.close()


def retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date)."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _redact(url: httpx2.URL) -> str:
    """The URL without its query (which may carry a cursor or, elsewhere, a secret)."""
    return str(url.copy_with(query=None))


def _transport_reason(exc: BaseException) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"connection failed: {type(exc).__name__}: {exc}"


class HubCollector(Collector):
    """Model counts per framework tag (``hub_model_counts``) and top models (``hub_top_models``)."""

    name = "hub"
    title = "Hugging Face Hub model counts"
    Options = HubOptions
    options: HubOptions

    def __init__(
        self,
        config: SurveyConfig,
        settings: SourceSettings | None = None,
        now: Callable[[], datetime] | None = None,
        transport: Callable[[], httpx2.BaseTransport] | None = None,
    ):
        super().__init__(config, settings)
        self.now = now or (lambda: datetime.now(UTC))
        #: Builds the real transport (tests pass an ``httpx2.MockTransport``).
        self.make_transport = transport or httpx2.HTTPTransport
        self.failures: dict[str, int] = {}
        self.requests = [0]
        self.api = HfApi()
        self._installed = False
        self._telemetry = False

    @classmethod
    def parse_options(cls, config: SurveyConfig,
                      settings: SourceSettings | None = None) -> SourceOptions:
        """The options; every framework under ``tags`` must be a configured framework."""
        options = super().parse_options(config, settings)
        for framework in options.tags or {}:  # type: ignore[attr-defined]
            if framework not in config.frameworks:
                raise ConfigError(config.path, f"sources.{cls.name}.tags.{framework}",
                                  "not a configured framework ([frameworks.NAME])")
        return options

    @property
    def tags(self) -> dict[str, list[str]]:
        """Each queried framework's tags, its own first."""
        if self.options.tags is not None:
            return self.options.tags
        return {fw: tags for fw, tags in DEFAULT_TAGS.items() if fw in self.config.frameworks}

    def items(self) -> list[Item]:
        return [Item(f"{framework}:{tag}", framework)
                for framework, tags in self.tags.items() for tag in tags]

    def _install(self) -> None:
        """Route huggingface_hub's requests through the guard (timeouts, bounded retries)."""
        if self._installed:
            return

        def factory() -> httpx2.Client:
            guard = GuardedTransport(self.make_transport(), max(self.settings.retries, 1),
                                     self.options.max_rate_limit_wait, self.failures,
                                     self.requests)
            return httpx2.Client(transport=guard, follow_redirects=True,
                                 timeout=self.settings.timeout)

        set_client_factory(factory)
        # No telemetry from a survey: huggingface_hub otherwise adds the torch version to its
        # User-Agent and fetches an "agent harness" registry from the Hub (an extra request,
        # cached under HF_HOME). This is its documented HF_HUB_DISABLE_TELEMETRY, read per call.
        self._telemetry = hf_constants.HF_HUB_DISABLE_TELEMETRY
        hf_constants.HF_HUB_DISABLE_TELEMETRY = True
        self._installed = True

    def _listing(self, **kwargs: Any) -> Iterator[Any]:
        """``list_models`` anonymously (public counts, no token stored or sent)."""
        if is_offline_mode():
            raise SourceUnreachable("HF_HUB_OFFLINE is set: the Hub is not queried")
        self._install()
        return self.api.list_models(token=False, **kwargs)

    def fetch(self, item: Item) -> list[Record]:
        framework, tag = item.key.split(":", 1)
        primary = self.tags[framework][0] == tag
        cap = self.options.max_models
        count_query = {"filter": tag, "full": False}
        top_query = {"filter": tag, "sort": "downloads", "limit": self.options.top_n,
                     "expand": TOP_EXPAND}
        try:
            self.requests[0] = 0
            seen = sum(1 for _ in islice(self._listing(**count_query), cap + 1))
            requests_made = self.requests[0]
            top = list(self._listing(**top_query))
        except RateLimited as exc:
            # A spent rate limit: nothing of this item is stored, the rest waits for next run.
            raise PartialItem(str(exc), [], stop_source=True) from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status is not None and status >= 500:  # the client's own retries ran out first
                raise SourceUnreachable(f"HTTP {status} from the Hub's model listing") from None
            if status == 429:
                raise PartialItem(f"rate limited: HTTP 429 ({exc})", [], stop_source=True) from None
            raise  # another status (a 400 for a malformed filter): this item's fault only
        except httpx2.TransportError as exc:
            raise SourceUnreachable(_transport_reason(exc)) from None
        fetched_at = _iso(self.now())
        common = {"framework": framework, "library_tag": tag, "fetched_at": fetched_at}
        records = [Record("hub_model_counts", {
            **common,
            "primary_tag": primary,
            "query": json.dumps({"method": "HfApi.list_models", **count_query}),
            "endpoint": self.api.endpoint,
            "model_count": min(seen, cap),
            "complete": seen <= cap,
            "max_models": cap,
            "requests": requests_made,
            "client_version": huggingface_hub.__version__,
        })]
        query = json.dumps({"method": "HfApi.list_models", **top_query})
        for rank, model in enumerate(top, start=1):
            records.append(Record("hub_top_models", {
                **common,
                "rank": rank,
                "model_id": model.id,
                "downloads": model.downloads,
                "likes": model.likes,
                "last_modified": _iso(model.last_modified),
                "query": query,
            }))
        return records

    def check(self) -> Reachability:
        items = self.items()
        if not items:
            return Reachability(True, "no Hub tags configured")
        tag = items[0].key.split(":", 1)[1]
        try:
            next(iter(self._listing(filter=tag, limit=1)), None)
        except (SourceUnreachable, RateLimited) as exc:
            return Reachability(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - a probe reports, never raises
            return Reachability(False, f"{type(exc).__name__}: {exc}")
        return Reachability(True, f"listed models tagged {tag!r}")

    def close(self) -> None:
        if self._installed:
            # Back to the library's own client for anything else in this process.
            from huggingface_hub.utils._http import default_client_factory
            set_client_factory(default_client_factory)
            hf_constants.HF_HUB_DISABLE_TELEMETRY = self._telemetry
            self._installed = False


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat(timespec="seconds") if ts else None
