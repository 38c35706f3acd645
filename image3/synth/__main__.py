"""``python -m image3.synth``: write a synthetic association (see ``image3.synth.main``)."""

from image3.synth import main

main()
