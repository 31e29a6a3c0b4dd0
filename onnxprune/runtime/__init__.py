"""ONNX Runtime sessions and measurements: providers, :func:`create_session`, latency, memory.

Public API: :func:`create_session` -> :class:`ModelRunner`; :func:`resolve_provider`;
:func:`compare_latency` -> :class:`LatencyComparison` (imported lazily).
"""

from onnxprune.runtime.providers import CHOICES as PROVIDER_CHOICES
from onnxprune.runtime.providers import resolve_provider
from onnxprune.runtime.session import InputSpec, ModelRunner, check_feeds, create_session

__all__ = [
    "PROVIDER_CHOICES",
    "InputSpec",
    "LatencyComparison",
    "ModelRunner",
    "check_feeds",
    "compare_latency",
    "create_session",
    "resolve_provider",
]


def __getattr__(name: str):
    if name in ("compare_latency", "LatencyComparison"):
        from onnxprune.runtime import latency

        return getattr(latency, name)
    raise AttributeError(name)
