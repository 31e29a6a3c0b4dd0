"""``python -m onnxprune.cli``: the same entry point as the ``onnxprune`` console script."""

from onnxprune.cli import main

if __name__ == "__main__":
    main()
