"""Learning-rate sweeps across width and depth (``modzoo sweep``); results beside each config."""
