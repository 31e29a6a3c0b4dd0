"""Error messages in the CLI's words (API option spellings become flags)."""

from onnxprune.errors import cli_words, input_shape_hint


def test_cli_words_translate_api_spellings():
    hint = input_shape_hint("x", "1, 3, 224, 224")
    assert hint == "input_shapes={'x': [1, 3, 224, 224]}"
    assert cli_words(f"give {hint}") == "give --input-shape x:1,3,224,224"
    assert cli_words("input_shapes['x']: dimension 2 is 5") == "--input-shape x: dimension 2 is 5"
    assert cli_words("input_shapes names unknown input 'y'") == (
        "--input-shape names unknown input 'y'"
    )
    assert cli_words("needs calibration data (give data=...)") == (
        "needs calibration data (give --data PATH)"
    )
