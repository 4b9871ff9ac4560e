"""The host-wide provider breaker: while OpenRouter is down, no process on this host calls it.

One run that exhausts its retries opens the breaker for a cool-down (doubling while outages
repeat, capped); every run on the host then stops before its next call and is requeued, instead
of each spending its own retries against a provider that is down. State is one small JSON file
under the state directory, replaced atomically; no file (tests, the CLI without one) keeps it
in memory.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from config.log import get_logger

log = get_logger(__name__)


BREAKER_FILE = "openrouter-breaker.json"


def breaker_path(state_dir: Path) -> Path:
    """The host's breaker file under the state directory (OUTPUT_DIR/.state)."""
    return state_dir / BREAKER_FILE


@dataclass
class ProviderBreaker:
    """Open for a while after an outage; ``open_for()`` says how long is left (0 when closed)."""

    path: Path | None = None
    first_cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    _memory: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self) -> dict[str, float]:
        if self.path is None:
            return dict(self._memory)
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}

    def _write(self, state: dict[str, float]) -> None:
        if self.path is None:
            self._memory = dict(state)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)

    def open_for(self) -> float:
        """Seconds until calls may be tried again; 0.0 when the breaker is closed."""
        return max(0.0, self._read().get("open_until", 0.0) - time.time())

    def trip(self, at_least_s: float = 0.0) -> float:
        """Open after an outage; returns the cool-down chosen (longer while outages repeat)."""
        with self._lock:
            state = self._read()
            previous = state.get("cooldown_s", 0.0)
            recent = time.time() - state.get("open_until", 0.0) < self.max_cooldown_s
            grown = min(self.max_cooldown_s, previous * 2 if recent and previous else self.first_cooldown_s)
            cooldown = max(at_least_s, grown)  # a server's Retry-After is honoured even past our cap
            self._write({"open_until": time.time() + cooldown, "cooldown_s": cooldown})
        log.warning("llm_breaker_opened", cooldown_s=round(cooldown, 1))
        return cooldown

    def reset(self) -> None:
        """Close after a success."""
        with self._lock:
            if self._read():
                self._write({})
                log.info("llm_breaker_closed")
