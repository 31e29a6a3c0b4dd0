"""parse_equation: ellipses spelled out as letters aligned from the right, implicit outputs in
alphabetical order, and the reasons an equation is not read; einsum_macs."""

from __future__ import annotations

from onnxprune.graph.einsum import EinsumTerms, chain_steps, einsum_macs, parse_equation


def test_ellipses_are_spelled_out_and_aligned_from_the_right():
    terms = parse_equation("...ij,...jk->...ik", [4, 3])
    assert isinstance(terms, EinsumTerms)
    left, right = terms.operands
    assert len(left) == 4 and len(right) == 3
    assert left[1:2] == right[:1]
    assert terms.output == left[:2] + "ik"


def test_implicit_output_lists_the_letters_used_once_alphabetically():
    assert parse_equation("kj,ji", [2, 2]) == EinsumTerms(("kj", "ji"), "ik")
    assert parse_equation(" ij , jk -> ik ", [2, 2]) == EinsumTerms(("ij", "jk"), "ik")


def test_what_is_not_read_says_why():
    assert parse_equation("...ij->ji", [None]) == "an ellipsis over an operand of unknown rank"
    assert "rank 3" in parse_equation("ij->ji", [3])
    assert "repeats within one term" in parse_equation("ii->i", [2])
    assert "mixed-case" in parse_equation("iJ,Jk", [2, 2])
    assert "2 operand(s)" in parse_equation("ij->ji", [2, 2])
    assert "other than letters" in parse_equation("i1,1j->ij", [2, 2])
    assert "names one no operand has" in parse_equation("ij->ik", [2])


def test_macs_are_the_product_of_all_letter_sizes():
    terms = parse_equation("bthd,bshd->bhts", [4, 4])
    assert einsum_macs(terms, [(2, 5, 3, 4), (2, 6, 3, 4)]) == 2 * 5 * 3 * 4 * 6
    assert einsum_macs(terms, [(1, 5, 3, 4), (2, 6, 3, 4)]) == 2 * 5 * 3 * 4 * 6  # broadcast
    assert einsum_macs(parse_equation("ij->ji", [2]), [(3, 4)]) == 0
    # pairwise from the left: ij,jk -> ik (2·3·4), then ik,kl -> il (2·4·5)
    chain = parse_equation("ij,jk,kl->il", [2, 2, 2])
    assert chain_steps(chain) == ["ik", "il"]
    assert einsum_macs(chain, [(2, 3), (3, 4), (4, 5)]) == 2 * 3 * 4 + 2 * 4 * 5
    assert einsum_macs(chain, [(2, 3), (3, 4)]) is None
