"""``python -m image3.synth``: write a synthetic program (see ``image3.synth.cli``)."""

from image3.synth.cli import main

main()
