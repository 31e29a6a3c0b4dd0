"""Einsum equations: parsing (ellipses spelled out) and the MACs of a contraction.

Shared by the ``lower_einsum`` pass (:mod:`onnxprune.passes.lower_einsum`), which rewrites
Einsum as MatMul, and the MAC counters, which count an Einsum the pass leaves or that a report
reads from the user's original model.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod


@dataclass(frozen=True)
class EinsumTerms:
    """A parsed equation: one letter string per operand and the output's letters."""

    operands: tuple[str, ...]
    output: str


def parse_equation(equation: str, ranks: Sequence[int | None]) -> EinsumTerms | str:
    """The equation's terms with every ellipsis spelled out as letters, or why it is not lowered.

    ``ranks``: each operand's rank (None: unknown; needed only under an ellipsis). An ellipsis
    stands for the operand's leading unnamed axes, aligned from the right across operands like
    broadcasting; each of its axes gets a letter the equation does not use.
    """
    text = equation.replace(" ", "")
    explicit = "->" in text
    left, output = text.split("->", 1) if explicit else (text, "")
    terms = left.split(",")
    if len(terms) != len(ranks):
        return f"{len(ranks)} operand(s) for an equation of {len(terms)} term(s)"
    if any(not term.replace("...", "").isalpha() and term.replace("...", "") for term in terms):
        return f"equation {equation!r} has characters other than letters"
    used = {char for char in text if char.isalpha()}
    spare = [char for char in string.ascii_letters if char not in used]
    widths = []
    for term, rank in zip(terms, ranks, strict=True):
        named = len(term.replace("...", ""))
        if "..." not in term:
            if rank is not None and rank != named:
                return f"term {term!r} names {named} axes of an operand of rank {rank}"
            widths.append(0)
            continue
        if rank is None:
            return "an ellipsis over an operand of unknown rank"
        if rank < named:
            return f"term {term!r} names more axes than its operand's rank {rank}"
        widths.append(rank - named)
    ellipsis = "".join(spare[: max(widths, default=0)])
    operands = tuple(
        term.replace("...", ellipsis[len(ellipsis) - width :] if width else "")
        for term, width in zip(terms, widths, strict=True)
    )
    if any(len(set(term)) != len(term) for term in operands):
        return "a letter repeats within one term (diagonal or trace)"
    if explicit:
        output = output.replace("...", ellipsis)
    else:
        letters = "".join(operands)
        if ellipsis or (any(c.isupper() for c in letters) and any(c.islower() for c in letters)):
            return "implicit output with an ellipsis or mixed-case letters"
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(set(output)) != len(output) or not set(output) <= set("".join(operands)):
        return f"output {output!r} repeats a letter or names one no operand has"
    return EinsumTerms(operands, output)


def chain_steps(terms: EinsumTerms) -> list[str]:
    """The output letters of each pairwise step that contracts the operands from the left:
    step i joins the result so far with operand i + 1 and keeps, in order of first
    appearance, the letters that a later operand or the output still needs (the last step's
    are the output's)."""
    steps, letters = [], terms.operands[0]
    for index, right in enumerate(terms.operands[1:], 1):
        later = set("".join(terms.operands[index + 1 :])) | set(terms.output)
        if index == len(terms.operands) - 1:
            letters = terms.output
        else:
            letters = "".join(dict.fromkeys(c for c in letters + right if c in later))
        steps.append(letters)
    return steps


def einsum_macs(terms: EinsumTerms, shapes: Sequence[Sequence[int]]) -> int | None:
    """Multiply-accumulates of an einsum contracted pairwise from the left
    (:func:`chain_steps`, what the ``lower_einsum`` pass writes): each step costs the product
    of the sizes of the distinct letters of its two operands (each of its output elements
    sums one product per contracted index), a letter's size being its largest over the
    operands (size-1 axes broadcast). One operand: 0 (a transpose or a sum, no product).
    None when a shape does not match its term."""
    if len(terms.operands) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for letters, shape in zip(terms.operands, shapes, strict=True):
        if len(letters) != len(shape):
            return None
        for letter, size in zip(letters, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), int(size))
    total, left = 0, terms.operands[0]
    for right, step in zip(terms.operands[1:], chain_steps(terms), strict=True):
        total += prod(sizes[c] for c in set(left + right))
        left = step
    return total


def equation_macs(equation: str | bytes, shapes: Sequence[Sequence[int]]) -> int | None:
    """MACs of an Einsum node from its ``equation`` attribute and static operand ``shapes``
    (:func:`einsum_macs`); None when the equation is not read (:func:`parse_equation`)."""
    text = equation.decode() if isinstance(equation, bytes) else str(equation)
    terms = parse_equation(text, [len(shape) for shape in shapes])
    return None if isinstance(terms, str) else einsum_macs(terms, shapes)
