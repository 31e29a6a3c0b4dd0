"""``GradientSession``: one ONNX Runtime session of a gradient model, run many times.

Nothing is rebuilt between calls: new parameter values are fed as inputs (initializers in
``wrt`` are declared as graph inputs by :func:`~onnxprune.autodiff.build_gradient_model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from onnx import ModelProto


class GradientSession:
    """Runs a gradient model; ``run(feeds)`` returns ``{output name: array}``."""

    def __init__(
        self,
        model: ModelProto,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4
        if threads is not None:
            options.intra_op_num_threads = threads
        # Worker threads that spin between the many small backward kernels steal the cores
        # from each other and from other processes (2x slower on a loaded 2-core machine).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=list(providers)
        )
        self.output_names = [value.name for value in self.session.get_outputs()]
        self.input_names = {value.name for value in self.session.get_inputs()}
        self.input_names |= {value.name for value in self.session.get_overridable_initializers()}
        declared = [*self.session.get_inputs(), *self.session.get_overridable_initializers()]
        # float16 feeds of a model differentiated in float32 (autodiff.precision)
        self.float_inputs = {value.name for value in declared if value.type == "tensor(float)"}

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs is not None else self.output_names
        usable = {
            key: value.astype(np.float32)
            if key in self.float_inputs and value.dtype == np.float16
            else value
            for key, value in feeds.items()
            if key in self.input_names
        }
        return dict(zip(names, self.session.run(names, usable), strict=True))
