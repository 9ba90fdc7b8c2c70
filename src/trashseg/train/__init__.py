"""Train stage: losses, optimisation, the Lightning module, sampling, callbacks and the run folder."""
